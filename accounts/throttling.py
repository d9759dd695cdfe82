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

Redis unreachable (down, restarting, paused, out of connections): **fail open** with a
local limit. Each server process then counts in memory, with the same sliding window and
the same `RATE_LIMIT_PER_MINUTE` per identity, so one client still gets 429 beyond the
limit on the process it reaches (with N processes a client spread over all of them can get
up to N × the limit until Redis is back). The first failure opens a breaker: for
`REDIS_RETRY_SECONDS` every request counts locally without waiting for Redis, then one
request probes Redis again while the others stay local. A warning is logged when the
fallback starts (at most once per `WARN_EVERY_SECONDS`, with the number of requests
counted locally since the last one) and when Redis answers again. The local counts are
dropped when Redis is back: the shared window takes over from its own state.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid

from django.conf import settings
from rest_framework.exceptions import Throttled
from rest_framework.throttling import BaseThrottle

from emploiplus.redis import get_redis, key

log = logging.getLogger(__name__)

WINDOW_SECONDS = 60
REDIS_RETRY_SECONDS = 5.0  # while Redis fails: count locally this long before probing it again
WARN_EVERY_SECONDS = 60.0  # at most one "counting locally" warning per period
LOCAL_MAX_IDENTITIES = 50_000  # memory bound of the local fallback

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


class LocalWindow:
    """The fallback: per-process sliding windows in memory (monotonic clock), thread-safe."""

    def __init__(self, max_identities: int = LOCAL_MAX_IDENTITIES) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, collections.deque[float]] = {}
        self._max = max_identities

    def hit(self, bucket: str, *, limit: int, window: int) -> tuple[bool, int]:
        now = time.monotonic()
        with self._lock:
            stamps = self._hits.get(bucket)
            if stamps is None:
                if len(self._hits) >= self._max:
                    self._evict(now, window)
                stamps = self._hits[bucket] = collections.deque()
            while stamps and stamps[0] <= now - window:
                stamps.popleft()
            if len(stamps) < limit:
                stamps.append(now)
                return True, 0
            return False, max(1, math.ceil(stamps[0] + window - now))

    def _evict(self, now: float, window: int) -> None:
        for bucket in [b for b, stamps in self._hits.items() if not stamps or stamps[-1] <= now - window]:
            del self._hits[bucket]
        if len(self._hits) >= self._max:  # a flood of distinct identities: forget them all
            self._hits.clear()

    def clear(self) -> None:
        with self._lock:
            self._hits.clear()


class _Fallback:
    """Breaker + warnings around the Redis window (see the module docstring)."""

    def __init__(self) -> None:
        self.local = LocalWindow()
        self._lock = threading.Lock()
        self._down_until = 0.0  # 0: Redis is believed up
        self._probing = False
        self._warned_at = -math.inf
        self._local_hits = 0

    def use_redis(self) -> bool:
        with self._lock:
            if not self._down_until:
                return True
            if self._probing or time.monotonic() < self._down_until:
                return False
            self._probing = True  # this request probes Redis; the others stay local
            return True

    def redis_ok(self) -> None:
        if not self._down_until:
            return
        with self._lock:
            was_down, self._down_until, self._probing = bool(self._down_until), 0.0, False
            counted, self._local_hits = self._local_hits, 0
        if was_down:
            self.local.clear()
            log.info("rate limits: Redis answers again, shared limits resume (%d requests counted locally)", counted)

    def redis_failed(self, exc: Exception) -> None:
        now = time.monotonic()
        with self._lock:
            self._down_until = now + REDIS_RETRY_SECONDS
            self._probing = False
            warn = now - self._warned_at >= WARN_EVERY_SECONDS
            if warn:
                self._warned_at = now
                counted, self._local_hits = self._local_hits, 0
        if warn:
            log.warning(
                "rate limits: Redis unreachable (%s: %s), counting per process (%d per minute per identity) "
                "until it answers again (%d requests counted locally since the last warning)",
                type(exc).__name__,
                exc,
                settings.RATE_LIMIT_PER_MINUTE,
                counted,
            )

    def hit_locally(self, bucket: str, *, limit: int, window: int) -> tuple[bool, int]:
        with self._lock:
            self._local_hits += 1
        return self.local.hit(bucket, limit=limit, window=window)

    @property
    def active(self) -> bool:
        return bool(self._down_until)

    def reset(self) -> None:
        with self._lock:
            self._down_until, self._probing, self._warned_at, self._local_hits = 0.0, False, -math.inf, 0
        self.local.clear()


fallback = _Fallback()


def _redis_hit(bucket: str, *, limit: int, window: int) -> tuple[bool, int]:
    global _script
    if _script is None:
        _script = get_redis().register_script(_SLIDING_WINDOW)
    allowed, retry_ms = _script(keys=[key("ratelimit", bucket)], args=[window * 1000, limit, uuid.uuid4().hex])
    return bool(allowed), max(1, math.ceil(int(retry_ms) / 1000))


def hit(bucket: str, *, limit: int, window: int = WINDOW_SECONDS) -> tuple[bool, int]:
    """Count one event in `bucket` if under `limit` per `window` s; (allowed, Retry-After seconds).

    Shared by every process through Redis; counted in this process while Redis fails."""
    if fallback.use_redis():
        try:
            outcome = _redis_hit(bucket, limit=limit, window=window)
        except Exception as exc:  # RedisError, OSError — and anything else: the limit never takes the API down
            fallback.redis_failed(exc)
        else:
            fallback.redis_ok()
            return outcome
    return fallback.hit_locally(bucket, limit=limit, window=window)


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
