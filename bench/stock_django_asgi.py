"""Benchmarks only: every HTTP path through Django's stock ASGIHandler (async middleware
chain, no webhook consumer) — the "before" of emploiplus.handlers.SyncStackASGIHandler and
of webhooks.apis.WebhookConsumer, measured in the same runs."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")
application = get_asgi_application()
