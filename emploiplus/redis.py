"""One pooled Redis client per process for our own keys (rate limits, presence, locks)."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def key(*parts: object) -> str:
    """A key under this deployment's prefix: key("ratelimit", user_id) → "emploiplus:ratelimit:<id>"."""
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(p) for p in parts)])
