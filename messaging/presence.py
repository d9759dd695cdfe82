"""Presence across server processes: who has at least one live WebSocket connection.

Redis holds, per user, a sorted set of that user's connection ids scored by their
expiry time (`<prefix>:presence:conns:<user id>`), and one index of the users counted as
online scored by their latest expiry (`<prefix>:presence:online`). Times come from the
Redis server (`TIME` inside the scripts), so processes on hosts with skewed clocks agree.

- A connection is registered when its consumer connects and removed when it closes.
- Every process heartbeats its own connections every `PRESENCE_HEARTBEAT_SECONDS`
  (one background task per process, one Redis round trip per tick), pushing their
  expiry to now + `PRESENCE_TTL_SECONDS`.
- The same task sweeps: users whose every connection has expired (their process
  crashed, lost Redis, or was SIGKILLed) are removed from the index.
- A user goes online when added to the index and offline when removed from it. Each
  transition happens inside one Lua script, so exactly one process announces it
  (`user_online` / `user_offline` to the subscribers' `presence_group`).

A process that exits normally (SIGTERM) releases its connections at exit
(`release_all_sync`), so its users go offline at once.

Bound: a connection of a dead process stops being refreshed; it is ignored by every
query once its expiry passes (at most TTL after its last heartbeat) and `user_offline`
is sent at the next sweep of any live process: within TTL + HEARTBEAT seconds
(40 s by default). Queries (`online_user_ids`) never trust an expired entry, so they
are exact to TTL even when no process is left to sweep.

Late writes: a TOUCH, LEAVE or SWEEP whose caller stopped waiting (its read timed out: a
partition, a stalled Redis) may still run later — the kernel keeps retransmitting what a
closed socket had written, so it lands once the network heals, and what it changed is
announced by nobody (a user back online unannounced; removed from the index and `user_offline`
never sent, subscribers then show them online for good). Each script therefore carries a
deadline in Redis time (`ARGV[1]`, this process's estimate of Redis' clock plus half its
client's read timeout, see `_Clock`) and changes nothing when it runs later (returns LATE):
whatever it would have done is done by the next heartbeat, the next sweep or the TTL.

The scripts touch keys derived from their arguments (one user's set per user id), so
they need a single Redis (or a cluster with every presence key in one hash slot).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import time
import weakref
from collections.abc import Iterable
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from emploiplus import effects
from emploiplus.batching import LoopBatcher, for_loop
from emploiplus.events import now_iso, presence_group
from emploiplus.redis import LIVE_SET_LUA, get_redis, key

log = logging.getLogger(__name__)


def ttl_seconds() -> float:
    return settings.PRESENCE_TTL_SECONDS


def heartbeat_seconds() -> float:
    return settings.PRESENCE_HEARTBEAT_SECONDS


def online_index_key() -> str:
    return key("presence", "online")


def connections_key(user_id: object) -> str:
    return key("presence", "conns", user_id)


# now() in Redis server time, in seconds with microseconds.
_NOW = LIVE_SET_LUA + "local now = redis_now()\n"
# ARGV[1] of every script that writes: its deadline in Redis time (0: none). Later, it
# changes nothing and returns LATE (module docstring, "Late writes").
LATE = -1
_ON_TIME = _NOW + "if tonumber(ARGV[1]) > 0 and now > tonumber(ARGV[1]) then return -1 end\n"

# KEYS[1] = the user's connection set, KEYS[2] = online index.
# ARGV[1] = deadline, ARGV[2] = ttl, ARGV[3] = user id, ARGV[4..] = connection ids.
# Returns 1 when the user was not counted as online before (→ user_online).
TOUCH = (
    _ON_TIME
    + """
local expiry = now + tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
for i = 4, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
return redis.call('ZADD', KEYS[2], 'GT', expiry, ARGV[3])
"""
)

# KEYS as TOUCH; ARGV[1] = deadline, ARGV[2] = user id, ARGV[3] = connection id.
# Returns 1 when this was the user's last live connection (→ user_offline).
LEAVE = (
    _ON_TIME
    + """
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
redis.call('DEL', KEYS[1])
return redis.call('ZREM', KEYS[2], ARGV[2])
"""
)

# KEYS[1] = online index; ARGV[1] = deadline, ARGV[2] = connection-set key prefix,
# ARGV[3] = batch size. Returns the ids of the users whose every connection expired
# (→ user_offline).
SWEEP = (
    _ON_TIME
    + """
local gone = {}
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[3]))
for _, uid in ipairs(due) do
    local conns = ARGV[2] .. uid
    redis.call('ZREMRANGEBYSCORE', conns, '-inf', now)
    local latest = redis.call('ZRANGE', conns, -1, -1, 'WITHSCORES')
    if latest[2] then
        redis.call('ZADD', KEYS[1], latest[2], uid)
    else
        redis.call('DEL', conns)
        redis.call('ZREM', KEYS[1], uid)
        table.insert(gone, uid)
    end
end
return gone
"""
)

# KEYS = connection sets; returns, per key, 1 if it holds a live connection.
ONLINE = (
    _NOW
    + """
local out = {}
for i, k in ipairs(KEYS) do out[i] = holds_live(k, now) end
return out
"""
)


# --- queries (sync: services; async: consumers) ----------------------------------------
def online_user_ids(user_ids: Iterable[object]) -> set[str]:
    """Those of `user_ids` with at least one live connection (sync)."""
    ids = [str(u) for u in user_ids]
    if not ids:
        return set()
    flags = get_redis().eval(ONLINE, len(ids), *[connections_key(u) for u in ids])
    return {uid for uid, flag in zip(ids, flags, strict=True) if flag}


async def aonline_user_ids(user_ids: Iterable[object]) -> list[str]:
    """`online_user_ids` from an event loop. The lookups of one loop that come while one is in
    flight (every message sent on a busy server asks for its recipients) go together in the next
    call of the script: one round trip for the batch."""
    ids = list(dict.fromkeys(str(u) for u in user_ids))
    if not ids:
        return []
    flags = await for_loop(_online_batchers, lambda: LoopBatcher(_aonline_flags, most=ONLINE_BATCH)).submit(ids)
    return [uid for uid, flag in zip(ids, flags, strict=True) if flag]


ONLINE_BATCH = 1000  # keys per call of ONLINE
_online_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopBatcher] = weakref.WeakKeyDictionary()


async def _aonline_flags(ids: list[str]) -> list[int]:
    return await _aredis().eval(ONLINE, len(ids), *[connections_key(u) for u in ids])


# --- deadlines: this process's view of Redis' clock -----------------------------------
# Read timeouts of the two clients (`_aredis` here, `emploiplus.redis.get_redis` for the
# sync calls); a script must run within half of its client's, so that one that runs is
# answered while its caller still waits.
ASYNC_READ_TIMEOUT = 10.0
SYNC_READ_TIMEOUT = 5.0  # emploiplus.redis.get_redis


class _Clock:
    """Redis time minus this process's monotonic clock, from the latest `TIME` reply (the
    heartbeat asks for it in its pipeline): no host clock is trusted, as for the expiries.
    The reply's travel makes the estimate a little early, which only shortens the slack."""

    REFRESH_SECONDS = 60.0  # without a heartbeat to read it (no connection here), read it again

    def __init__(self) -> None:
        self.offset: float | None = None
        self.observed_at = 0.0

    def stale(self) -> bool:
        return self.offset is None or time.monotonic() - self.observed_at > self.REFRESH_SECONDS

    def observe(self, redis_time: tuple[int, int]) -> None:
        seconds, micros = redis_time
        self.observed_at = time.monotonic()
        self.offset = seconds + micros / 1_000_000 - self.observed_at

    def deadline(self, read_timeout: float) -> float:
        """The deadline of a script sent now (0, none, before the first observation)."""
        if self.offset is None:
            return 0
        return time.monotonic() + self.offset + read_timeout / 2


_clock = _Clock()


async def _adeadline() -> float:
    if _clock.stale():
        _clock.observe(await _aredis().time())
    return _clock.deadline(ASYNC_READ_TIMEOUT)


def _late(result: Any, what: str) -> bool:
    if result == LATE:
        log.warning("presence: a %s reached Redis too late and was not applied (a partition, a stalled Redis)", what)
        return True
    return False


# --- one registry (and one heartbeat task) per event loop ------------------------------
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = weakref.WeakKeyDictionary()
_registries: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Registry] = weakref.WeakKeyDictionary()


def _aredis() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A blocking pool: a burst of connects waits for a free connection instead of
        # failing (redis-py's default pool raises past 100 connections).
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=50,
            timeout=20,
            socket_connect_timeout=2,
            socket_timeout=ASYNC_READ_TIMEOUT,
        )
        client = aioredis.Redis(connection_pool=pool)
        _clients[loop] = client
    return client


class _Registry:
    """This process's live connections: connection id → (user id, email)."""

    def __init__(self) -> None:
        self.connections: dict[str, tuple[str, str]] = {}
        self.task: asyncio.Task | None = None
        self.wake = asyncio.Event()

    def ensure_task(self) -> None:
        if self.task is None or self.task.done():
            self.wake = asyncio.Event()
            self.task = asyncio.get_running_loop().create_task(self._run(), name="presence-heartbeat")

    async def _run(self) -> None:
        while self.connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), heartbeat_seconds())
            self.wake.clear()
            if not self.connections:
                break
            try:
                await heartbeat(self.connections)
                await sweep()
            except Exception:  # Redis down: keep trying, the TTL bounds the damage
                log.warning("presence heartbeat failed", exc_info=True)


def _registry() -> _Registry:
    loop = asyncio.get_running_loop()
    registry = _registries.get(loop)
    if registry is None:
        registry = _registries[loop] = _Registry()
        _register_exit_cleanup()
    return registry


@functools.cache
def _register_exit_cleanup() -> None:
    atexit.register(release_all_sync)


def release_all_sync() -> list[str]:
    """Remove every connection this process still holds and announce the users who thereby
    go offline. Runs at interpreter exit: on SIGTERM daphne drops its sockets and stops
    the event loop without running the consumers' disconnect handlers, so without this
    their users would stay online until the TTL."""
    offline = []
    for registry in list(_registries.values()):
        for connection_id, (uid, _email) in list(registry.connections.items()):
            try:
                deadline = _clock.deadline(SYNC_READ_TIMEOUT)
                left = get_redis().eval(
                    LEAVE, 2, connections_key(uid), online_index_key(), deadline, uid, connection_id
                )
                if not _late(left, "LEAVE at exit") and left:
                    offline.append(uid)
            except Exception:  # Redis gone: the TTL expires them
                log.warning("presence cleanup at exit failed", exc_info=True)
                return offline
        registry.connections.clear()
    if offline:
        # Sync, straight to Redis: the process's event loop (and the layer's pools bound to
        # it) is gone by now.
        effects.broadcast_many(
            [(presence_group(uid), "user_offline", {"userId": uid, "timestamp": now_iso()}) for uid in offline]
        )
    return offline


async def _announce_online(user_id: str, email: str) -> None:
    await effects.abroadcast(
        presence_group(user_id), "user_online", {"userId": user_id, "email": email, "timestamp": now_iso()}
    )


async def _announce_offline(user_id: str) -> None:
    await effects.abroadcast(presence_group(user_id), "user_offline", {"userId": user_id, "timestamp": now_iso()})


async def connect(*, user_id: object, email: str, connection_id: str) -> bool:
    """Register a live connection; announce `user_online` if it is the user's first."""
    uid = str(user_id)
    registry = _registry()
    registry.connections[connection_id] = (uid, email or "")
    registry.ensure_task()
    try:
        deadline = await _adeadline()
        became_online = await _aredis().eval(
            TOUCH, 2, connections_key(uid), online_index_key(), deadline, ttl_seconds(), uid, connection_id
        )
    except BaseException:
        # Redis down (or the connect cancelled): the consumer fails to connect and never
        # disconnects this id. Left in the registry, the heartbeat would refresh it for as
        # long as this process lives once Redis is back: the user online for ever.
        registry.connections.pop(connection_id, None)
        raise
    if _late(became_online, "TOUCH"):
        return False  # the next heartbeat registers it (and announces user_online)
    if became_online:
        await _announce_online(uid, email or "")
    return bool(became_online)


async def touch(*, user_id: object, email: str, connection_ids: list[str]) -> bool:
    """Refresh connections that no process heartbeats for (Socket.IO long-polling sessions,
    which any process may serve: each of their requests, and a long poll while it waits,
    touches them); announce `user_online` if the user was not online. Released with
    `disconnect`, or expired by the TTL like a dead process's."""
    uid = str(user_id)
    deadline = await _adeadline()
    became_online = await _aredis().eval(
        TOUCH, 2, connections_key(uid), online_index_key(), deadline, ttl_seconds(), uid, *connection_ids
    )
    if _late(became_online, "TOUCH"):
        return False  # the session's next request touches it again
    if became_online:
        await _announce_online(uid, email or "")
    return bool(became_online)


async def disconnect(*, user_id: object, connection_id: str) -> bool:
    """Remove a connection; announce `user_offline` if it was the user's last anywhere."""
    uid = str(user_id)
    registry = _registry()
    registry.connections.pop(connection_id, None)
    if not registry.connections:
        registry.wake.set()
    deadline = await _adeadline()
    went_offline = await _aredis().eval(
        LEAVE, 2, connections_key(uid), online_index_key(), deadline, uid, connection_id
    )
    if _late(went_offline, "LEAVE"):
        return False  # the connection expires with its TTL; a sweep announces user_offline
    if went_offline:
        await _announce_offline(uid)
    return bool(went_offline)


async def heartbeat(
    connections: dict[str, tuple[str, str]], *, snapshot: list[tuple[str, tuple[str, str]]] | None = None
) -> None:
    """Refresh this process's connections (one pipelined round trip).

    `connections` is the live registry; `snapshot` (default: taken now) the entries the
    TOUCH is built from. A tab that closes while the TOUCH is in flight may see its LEAVE
    run first and the TOUCH re-add it: such ids (in the snapshot, gone from the registry
    by the time the answer comes) are left again, and announced as the registry's
    disconnect would have."""
    if snapshot is None:
        snapshot = list(connections.items())
    by_user: dict[str, tuple[str, list[str]]] = {}
    for connection_id, (uid, email) in snapshot:
        by_user.setdefault(uid, (email, []))[1].append(connection_id)
    if not by_user:
        return
    ttl, deadline = ttl_seconds(), await _adeadline()
    async with _aredis().pipeline(transaction=False) as pipe:
        for uid, (_email, conn_ids) in by_user.items():
            pipe.eval(TOUCH, 2, connections_key(uid), online_index_key(), deadline, ttl, uid, *conn_ids)
        pipe.time()  # Redis' clock, for the next deadlines
        *results, redis_time = await pipe.execute()
    _clock.observe(redis_time)
    if LATE in results:
        log.warning("presence: %d heartbeat TOUCH(es) reached Redis too late and were not applied", results.count(LATE))
    for (uid, (email, conn_ids)), became_online in zip(by_user.items(), results, strict=True):
        if became_online == LATE:
            continue  # not applied: the next heartbeat refreshes them
        left = [c for c in conn_ids if c not in connections]
        went_offline = False
        for connection_id in left:
            leave = await _aredis().eval(
                LEAVE, 2, connections_key(uid), online_index_key(), await _adeadline(), uid, connection_id
            )
            if leave == 1:
                went_offline = True
        if became_online and len(left) < len(conn_ids):
            await _announce_online(uid, email)  # a user swept while this process was stalled is back
        elif went_offline and not became_online:
            await _announce_offline(uid)  # their last tab left while the TOUCH was in flight
        # became_online with every tab gone: the TOUCH only undid a LEAVE that had already
        # announced user_offline; leaving again restored that state, nothing to announce.


async def sweep(batch: int = 500) -> list[str]:
    """Drop users whose every connection expired; announce `user_offline` for each."""
    gone = await _aredis().eval(SWEEP, 1, online_index_key(), await _adeadline(), connections_key(""), batch)
    if _late(gone, "sweep"):
        return []  # the next sweep does it
    offline = [g.decode() if isinstance(g, bytes) else str(g) for g in gone]
    for uid in offline:
        await _announce_offline(uid)
    return offline


def local_connection_count() -> int:
    registry = _registries.get(asyncio.get_running_loop())
    return len(registry.connections) if registry else 0
