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


# Lua for scripts that read expiring sets (sorted sets scored by each member's expiry, in Redis
# time: presence's connection sets): redis_now() is Redis' clock in seconds with microseconds;
# holds_live(key, now) is 1 when the set at `key` holds a member that has not expired at `now`.
# Shared by presence's ONLINE and the frame script of emploiplus.effects (which reads the
# recipients' presence in the call that sends their frames).
LIVE_SET_LUA = """
local function redis_now() local t = redis.call('TIME'); return tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local function holds_live(key, now) return redis.call('ZCOUNT', key, '(' .. now, '+inf') > 0 and 1 or 0 end
"""


def key(*parts: object) -> str:
    """A key under this deployment's prefix: key("ratelimit", user_id) → "emploiplus:ratelimit:<id>"."""
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(p) for p in parts)])
