"""Rate limits shared by every server process through Redis.

120 requests/min per user (per client IP when anonymous). A fixed one-minute window
counted with an atomic INCR: every process sees the same counter.
"""

from __future__ import annotations

import time

from django.conf import settings
from rest_framework.throttling import BaseThrottle

from emploiplus.redis import get_redis, key


def client_ip(meta: dict) -> str:
    """REMOTE_ADDR, or the address `TRUSTED_PROXY_COUNT` hops from the right of X-Forwarded-For."""
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if hops > 0 and forwarded:
        addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
        if len(addresses) >= hops:
            return addresses[-hops]
    return meta.get("REMOTE_ADDR", "") or "unknown"


def hit(bucket: str, *, limit: int, window: int) -> tuple[bool, int]:
    """Count one event in `bucket`; (allowed, seconds until the window resets)."""
    now = int(time.time())
    window_start = now - now % window
    redis_key = key("ratelimit", bucket, window_start)
    pipe = get_redis().pipeline()
    pipe.incr(redis_key)
    pipe.expire(redis_key, window + 1)
    count, _ = pipe.execute()
    retry_after = window_start + window - now
    return count <= limit, max(retry_after, 1)


class UserOrIPRateThrottle(BaseThrottle):
    window = 60

    def allow_request(self, request, view) -> bool:
        user = getattr(request, "user", None)
        ident = f"user:{user.pk}" if user is not None and user.is_authenticated else f"ip:{client_ip(request.META)}"
        allowed, self._wait = hit(ident, limit=settings.RATE_LIMIT_PER_MINUTE, window=self.window)
        return allowed

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
