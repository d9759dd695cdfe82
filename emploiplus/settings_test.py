"""Test settings: the real settings with test secrets filled in (nothing else changes).

Secrets are set only when absent so a developer can point tests at other values.
"""

import os

os.environ.setdefault("EMPLOIPLUS_TESTING", "1")
os.environ.setdefault("SUPABASE_JWT_SECRET", "test-supabase-jwt-secret-with-at-least-32-bytes")
os.environ.setdefault("SUPABASE_WEBHOOK_SECRET", "test-webhook-secret")
os.environ.setdefault("REDIS_KEY_PREFIX", "emploiplus-test")
os.environ.setdefault("ONESIGNAL_APP_ID", "00000000-0000-4000-8000-000000000000")
os.environ.setdefault("ONESIGNAL_API_KEY", "test-onesignal-key")

from emploiplus.settings import *  # noqa: F403
