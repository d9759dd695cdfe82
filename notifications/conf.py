"""Tunables of the notification pipeline.

Each value is read from Django settings when defined there, else from the environment
variable of the same name, else the default below (so the project settings need not
change to tune them).
"""

from __future__ import annotations

import os

from django.conf import settings

DEFAULTS: dict[str, float] = {
    # Recipients per provider call / per job.
    "NOTIFICATIONS_PUSH_BATCH_SIZE": 2000,  # OneSignal's documented maximum of ids per call
    "NOTIFICATIONS_SMS_BATCH_SIZE": 2000,
    "NOTIFICATIONS_EMAIL_BATCH_SIZE": 100,  # one SMTP connection per batch
    # Explicit recipient lists up to this size are stored in the caller's transaction;
    # larger ones (and every role/filter query) are resolved and stored by the worker.
    "NOTIFICATIONS_INLINE_MAX": 20,
    # Retries of a provider call (429, 5xx, timeouts): exponential backoff from this base,
    # never sooner than the provider's Retry-After, at most this many attempts in total.
    "NOTIFICATIONS_RETRY_BASE_SECONDS": 2,
    "NOTIFICATIONS_RETRY_MAX_SECONDS": 300,
    "NOTIFICATIONS_MAX_ATTEMPTS": 6,
    # Deliveries still pending after this long are re-dispatched by the sweep.
    "NOTIFICATIONS_STALE_SECONDS": 600,
}


def get(name: str) -> float:
    if hasattr(settings, name):
        return getattr(settings, name)
    raw = os.environ.get(name)
    return type(DEFAULTS[name])(float(raw)) if raw else DEFAULTS[name]


def get_int(name: str) -> int:
    return int(get(name))
