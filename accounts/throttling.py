"""Rate limits shared by every server process through Redis (CONTRACT §4).

`RATE_LIMIT_PER_MINUTE` (120) requests per rolling minute per user, per client IP when
anonymous. The window is a true sliding window: a Redis sorted set of the accepted
requests' timestamps per identity, trimmed and counted by one Lua script (atomic, one
round trip, the Redis server's clock — so every process shares one count and one
clock). The 121st request inside any 60 s gets 429 with `Retry-After` = seconds until
the oldest counted request leaves the window. Refused requests are not counted, so a
client that keeps retrying is let in again as soon as the window allows.

DRF runs authentication and permissions *before* throttles, so a request without a token
(or with a bad one) on a protected endpoint would be answered 401 without ever being
counted. `SupabaseJWTAuthentication` therefore counts those requests against the client
IP itself (`check_request`), and the throttle class reuses that outcome instead of
counting twice.
"""

from __future__ import annotations

import math
import uuid

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from emploiplus.redis import get_redis, key

WINDOW_SECONDS = 60

# KEYS[1] = bucket; ARGV = window ms, limit, unique member. Returns {allowed, retry_ms}.
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {0, tonumber(oldest[2]) + window - now}
"""
_script = None


def client_ip(meta: dict) -> str:
    """REMOTE_ADDR, or the address `TRUSTED_PROXY_COUNT` hops from the right of X-Forwarded-For.

    With N trusted proxies, the N-th address from the right was written by our outermost
    proxy; anything further left is client-controlled and ignored.
    """
    hops = settings.TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR", "")
    if hops > 0 and forwarded:
        addresses = [a.strip() for a in forwarded.split(",") if a.strip()]
        if len(addresses) >= hops:
            return addresses[-hops]
    return meta.get("REMOTE_ADDR", "") or "unknown"


def hit(bucket: str, *, limit: int, window: int = WINDOW_SECONDS) -> tuple[bool, int]:
    """Count one event in `bucket` if under `limit` per `window` s; (allowed, Retry-After seconds)."""
    global _script
    if _script is None:
        _script = get_redis().register_script(_SLIDING_WINDOW)
    allowed, retry_ms = _script(keys=[key("ratelimit", bucket)], args=[window * 1000, limit, uuid.uuid4().hex])
    return bool(allowed), max(1, math.ceil(int(retry_ms) / 1000))


def check_request(request, *, ident: str) -> None:
    """Count `request` once against `ident`; raise Throttled (429 + Retry-After) when over."""
    django_request = getattr(request, "_request", request)
    outcome = getattr(django_request, "_emploiplus_rate", None)
    if outcome is None:
        outcome = hit(ident, limit=settings.RATE_LIMIT_PER_MINUTE)
        django_request._emploiplus_rate = outcome
    allowed, wait = outcome
    if not allowed:
        raise Throttled(wait=wait)


class UserOrIPRateThrottle(BaseThrottle):
    """DRF default throttle: per user, per IP when anonymous (counted once per request)."""

    def allow_request(self, request, view) -> bool:
        from webhooks.signing import WebhookProof

        if isinstance(getattr(request, "auth", None), WebhookProof):
            return True  # verified server-to-server deliveries: no per-user budget
        django_request = getattr(request, "_request", request)
        outcome = getattr(django_request, "_emploiplus_rate", None)
        if outcome is None:
            user = getattr(request, "user", None)
            ident = f"user:{user.pk}" if user is not None and user.is_authenticated else f"ip:{client_ip(request.META)}"
            outcome = hit(ident, limit=settings.RATE_LIMIT_PER_MINUTE)
            django_request._emploiplus_rate = outcome
        self._wait = outcome[1]
        return outcome[0]

    def wait(self) -> float | None:
        return getattr(self, "_wait", None)
