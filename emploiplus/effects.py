"""What leaves a transaction: frames to channel-layer groups, RQ jobs, follow-up work.

The one door for every side effect of a write (ARCHITECTURE: "side effects after commit,
through one door"). Services call, inside their transaction:

    effects.broadcast(group, event, data)              # a frame to every socket of a group
    effects.broadcast_many([(group, event, data), …])
    effects.enqueue("matching.jobs.process_job", job_id, job_id=…, queue="notifications")
    effects.after_commit(fn, afn=None)                 # follow-up work (may itself write)

and from async code, for what has nothing to persist (typing, presence):

    await effects.abroadcast(group, event, data)

Nothing here raises into the caller once the data is committed.

**Buffering.** Inside `transaction.atomic` every effect is buffered and leaves once, after
the outermost commit; in autocommit it leaves at once. What was registered inside a
savepoint that rolled back is dropped with it: each registration is a marker in Django's
`on_commit` hooks (Django discards the markers of a rolled-back savepoint) followed by a
flush callback outside any savepoint; only the last flush callback does anything, and it
sends what the markers kept. A rolled-back transaction sends nothing.

**One flush per commit, fewest round trips.** The flush sends every frame of the commit in one
Redis round trip whatever their number (one Lua script reads the members of every group and
pushes each message to each member's channel key — channels_redis' own format, so every
process's layer reads them as usual; from an event loop, the members that are that loop's own
channels get it in memory instead, `ChannelLayer.hand_over`), then every job in one RQ
`enqueue_many` pipeline, then the follow-ups (from an event loop, each in a task of its own:
started alongside the frames, or, for one that reads expiring sets — a message's offline
check — once the frames' script call has read them for it). Sync callers (REST, jobs) talk
to Redis directly from their thread (no hop to an event loop); async callers (consumers)
use `run_sync`, which runs the service in a database thread and flushes its effects
afterwards from the consumer's own event loop.

**Failures.** A flush that fails after the commit is logged with what was lost (frames by event
and group, jobs by function and id) and never turns a committed write into an error. What the
sweeps recover (all of them run every minute by `emploiplus.cron`):

- `matching.jobs.process_job` → `matching.services.job_sweep_pending` (the job stays `queued`;
  run again after MATCHING_STUCK_AFTER_SECONDS);
- `matching.jobs.rematch_candidate` → `matching.services.candidate_sweep_rematch` (the
  candidate's `rematch_requested_at` stays set);
- `webhooks.jobs.process_event` → `webhooks.services.webhook_sweep` (the event stays `received`);
- notification fan-outs, delivery batches and the dispatcher → `notifications_sweep` (batches
  stay `queued`, deliveries `pending`);
- not recovered: frames (a client that missed one catches up with REST `?after=`) and the
  websocket frames of a large notification fan-out (the notifications are in the REST list);
  a follow-up that failed (e.g. the push to an offline participant of a message).

**Library internals.** Sending to many groups in one round trip needs channels_redis 4.3
internals (`_group_key`, `non_local_name`, the serializer's format, key layout); they are
used here only, `fast_path_supported()` says whether the configured layer has that shape, and
`emploiplus/tests/test_effects.py` fails loudly if the pinned layer changes it. Any other layer
(or a sharded one) gets `group_send` per frame. Django's commit hooks are read here too (the
flush callback is appended to `connection.run_on_commit` with no savepoint ids; same test).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import hashlib
import itertools
import logging
import os
import time
import uuid
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import msgpack
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.layers import get_channel_layer
from channels_redis.core import RedisChannelLayer as _RedisChannelLayer
from channels_redis.serializers import MsgPackSerializer
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, transaction
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from emploiplus import logs
from emploiplus.batching import LoopBatcher, for_loop
from emploiplus.events import event_message
from emploiplus.redis import LIVE_SET_LUA

log = logging.getLogger(__name__)

FRAME, JOB, FOLLOW_UP = "frame", "job", "follow_up"

# Frames per call of the send script (a fan-out to 50,000 users is cut so that Redis never
# runs one long script: a frame is mostly one user's group, of a few connections).
FRAMES_PER_SEND = 500


# --- what an effect is ---------------------------------------------------------------------
@dataclass(frozen=True)
class Frame:
    group: str
    event: str
    data: dict[str, Any]
    exclude: str | None = None  # a channel name that must not receive it (the sender's socket)

    def message(self) -> dict[str, Any]:
        message = event_message(self.event, self.data, exclude_channel=self.exclude)
        message["fid"] = _frame_id()  # lets a transport moving a session drop what it got twice
        return message


@dataclass(frozen=True)
class Job:
    func: Callable[..., Any] | str
    args: tuple[Any, ...]
    queue: str
    job_id: str | None = None
    description: str | None = None
    meta: dict[str, Any] | None = field(default_factory=logs.job_meta)  # the enqueuing request's id

    def describe(self) -> str:
        name = self.func if isinstance(self.func, str) else f"{self.func.__module__}.{self.func.__qualname__}"
        return f"{name}{self.args!r}" + (f" [{self.job_id}]" if self.job_id else "")


@dataclass(frozen=True)
class FollowUp:
    fn: Callable[[], None]
    afn: Callable[..., Awaitable[None]] | None = None  # the same work, for async flushes
    live_keys: tuple[str, ...] = ()  # expiring sets read with the frames: afn(live) (after_commit)

    @property
    def reads_live(self) -> bool:
        """Its async flush waits for the frames' call, which reads its `live_keys`."""
        return bool(self.live_keys) and self.afn is not None


_FRAME_ID_PREFIX = uuid.uuid4().hex[:10]
_frame_ids = itertools.count()


def _frame_id() -> str:
    return f"{_FRAME_ID_PREFIX}{next(_frame_ids):x}"


# --- registering ---------------------------------------------------------------------------
def broadcast(group: str, event: str, data: dict[str, Any], *, exclude: str | None = None) -> None:
    """Send `{event, data}` to every socket in `group` once the current transaction commits."""
    _register([Frame(group, event, data, exclude)])


def broadcast_many(frames: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """`broadcast` for many (group, event, data) at once (in autocommit: one flush for all)."""
    _register([Frame(group, event, data) for group, event, data in frames])


def enqueue(
    func: Callable[..., Any] | str,
    *args: Any,
    queue: str = "notifications",
    job_id: str | None = None,
    description: str | None = None,
) -> None:
    """Queue the RQ job `func(*args)` once the current transaction commits.

    Every job gets the same retry policy (`JOB_RETRY`: an unexpected exception or a worker
    killed mid-job is retried). A fixed `job_id` makes a re-enqueue replace the waiting job.
    """
    enqueue_many([Job(func, tuple(args), queue, job_id, description)])


def enqueue_many(jobs: Iterable[Job]) -> None:
    """`enqueue` for many jobs at once (in autocommit: one pipeline for all)."""
    jobs = list(jobs)
    for job in jobs:
        if job.queue not in settings.RQ_QUEUES:
            raise ValueError(f"unknown queue {job.queue!r}")
    _register(jobs)


def after_commit(
    fn: Callable[[], None],
    *,
    afn: Callable[..., Awaitable[None]] | None = None,
    live_keys: Iterable[str] = (),
) -> None:
    """Run `fn()` once the current transaction commits, after its frames and jobs. For work
    that reads or writes again (e.g. a push to the participants who are offline). `afn` is the
    same work as a coroutine function, used when the flush happens on an event loop.

    With `live_keys` (expiring sets of our Redis: `emploiplus.redis.LIVE_SET_LUA`), `afn` is
    called as `afn(live)`: `live[i]` tells whether `live_keys[i]` holds a live member, read by
    the script call that sends the commit's frames (no round trip of its own) — or None when
    they could not be read there (a channel layer on another Redis or of another kind, a
    failed send): then `afn` reads them itself. A message's offline check is one."""
    _register([FollowUp(fn, afn, tuple(live_keys))])


def register(items: Iterable[Frame | Job | FollowUp]) -> None:
    """Frames, jobs and follow-ups made by the caller, registered together as `broadcast`,
    `enqueue` and `after_commit` register theirs: sent at once in autocommit, else once the
    current transaction commits."""
    _register(list(items))


async def asend_committed(items: list[Frame | Job | FollowUp]) -> None:
    """From an event loop, what a write that has already committed announces (an autocommit
    statement on the loop's own connection: `messaging.services.amessage_send`): sent as a
    flush sends it, shielded from the caller's cancellation, with no Django transaction to
    look up nor collector to fill on the way."""
    if items:
        await asyncio.shield(_aflush(items))


async def abroadcast(group: str, event: str, data: dict[str, Any], *, exclude: str | None = None) -> None:
    """Send now, from async code: for what has nothing to persist (typing, joined, presence).
    Raises if Redis is unreachable (the caller decides: an `error` frame, a log line)."""
    await _asend_frames([Frame(group, event, data, exclude)])


class _Pending:
    """The effects of one transaction on one connection."""

    def __init__(self, hooks: list) -> None:
        self.hooks = hooks  # the connection's run_on_commit list while this transaction lasts
        self.ready: list[Any] = []  # registered effects whose savepoint did not roll back
        self.generation = 0  # of the last flush callback registered
        self.flushed = False

    def keep(self, items: list[Any]) -> None:
        self.ready.extend(items)

    def flush(self, generation: int) -> None:
        if generation != self.generation:
            return  # not the last one: the last flush callback sends everything
        # Effects registered from now on (by a follow-up, or by a callback that a test's
        # captureOnCommitCallbacks runs inside its own transaction) belong to a new _Pending.
        self.flushed = True
        items, self.ready = self.ready, []
        if items:
            _flush(items)


_ATTR = "_emploiplus_effects"


def _register(items: list[Any], using: str = DEFAULT_DB_ALIAS) -> None:
    if not items:
        return
    conn = transaction.get_connection(using)
    if not conn.in_atomic_block:
        _flush(items)  # autocommit: whatever was written is committed already
        return
    pending: _Pending | None = getattr(conn, _ATTR, None)
    if pending is None or pending.flushed or not _same_transaction(pending, conn):
        pending = _Pending(conn.run_on_commit)
        setattr(conn, _ATTR, pending)
    # The items ride on a marker that Django drops if this savepoint rolls back…
    conn.on_commit(functools.partial(pending.keep, items))
    # …followed by a flush callback with no savepoint ids (only a rollback of the whole
    # transaction discards it). Only the last one registered sends; the others are no-ops.
    pending.generation += 1
    conn.run_on_commit.append((set(), functools.partial(pending.flush, pending.generation), True))


def _same_transaction(pending: _Pending, conn: Any) -> bool:
    """Django replaces the hooks list at every commit and rollback, and also when a savepoint
    rolls back (filtering it): then the transaction is the same if our last flush is there."""
    if pending.hooks is conn.run_on_commit:
        return True
    for _sids, func, _robust in reversed(conn.run_on_commit):
        if isinstance(func, functools.partial) and func.func == pending.flush:
            pending.hooks = conn.run_on_commit
            return True
    return False


# --- async callers: run the service in a thread, flush from the loop ------------------------
_collector: ContextVar[list[Any] | None] = ContextVar("emploiplus_effects_collector", default=None)


class Collected:
    """Effects of sync code run from an event loop, kept for the loop to send:

        with effects.Collected() as collected:
            result = await <sync code in a thread>   # its committed effects land here
        await collected.flush()                      # frames and follow-ups at once, jobs batched

    The thread inherits the collector through the context (asgiref and run_in_executor with
    a copied context both carry it). Used by `run_sync` (consumers) and by the HTTP handler
    (emploiplus.handlers: a request's effects leave once its response is sent)."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._token = None

    def __enter__(self) -> Collected:
        self._token = _collector.set(self.items)
        return self

    def __exit__(self, *exc: object) -> None:
        _collector.reset(self._token)

    async def flush(self) -> None:
        """Shielded: a task cancelled meanwhile (server shutdown) still sends what committed."""
        items, self.items = self.items, []
        await asend_committed(items)


@functools.cache
def _db_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=settings.WS_DB_THREADS, thread_name_prefix="ws-db")


async def run_sync(fn: Callable[..., Any], /, **kwargs: Any) -> Any:
    """`await database_sync_to_async(fn)(**kwargs)` on a pool of WS_DB_THREADS threads (not
    the single thread-sensitive thread: calls from many sockets overlap, each thread has its
    own connection), with `fn`'s committed effects flushed afterwards from this event loop —
    no hop from the database thread back to the loop."""
    with Collected() as collected:
        result = await database_sync_to_async(fn, thread_sensitive=False, executor=_db_executor())(**kwargs)
    await collected.flush()
    return result


# --- flushing ------------------------------------------------------------------------------
def _split(items: list[Any]) -> tuple[list[Frame], list[Job], list[FollowUp]]:
    frames = [i for i in items if isinstance(i, Frame)]
    jobs = [i for i in items if isinstance(i, Job)]
    follow_ups = [i for i in items if isinstance(i, FollowUp)]
    return frames, jobs, follow_ups


def _lost(kind: str, what: list[str]) -> None:
    shown = ", ".join(what[:10]) + (f" … (+{len(what) - 10})" if len(what) > 10 else "")
    log.exception("after-commit %s lost (%d): %s", kind, len(what), shown)


def _flush(items: list[Any]) -> None:
    collected = _collector.get()
    if collected is not None:
        collected.extend(items)  # the Collected's owner flushes them from its event loop
        return
    frames, jobs, follow_ups = _split(items)
    if frames:
        try:
            _send_frames(frames)
        except Exception:
            _lost("frames", [f"{f.event}→{f.group}" for f in frames])
    if jobs:
        try:
            _enqueue_jobs(jobs)
        except Exception:
            _lost("jobs", [j.describe() for j in jobs])
    for follow_up in follow_ups:
        try:
            follow_up.fn()
        except Exception:
            _lost("follow-up", [getattr(follow_up.fn, "__qualname__", repr(follow_up.fn))])


async def _aflush(items: list[Any]) -> None:
    """Frames, then jobs (to the loop's batcher). The follow-ups that read expiring sets
    (`live_keys`) get them from the frames' script call and start once it has answered; the
    others start alongside the frames, not after them. The frames are sent from this task."""
    frames, jobs, follow_ups = _split(items)
    reading = [f for f in follow_ups if f.reads_live]
    started = [asyncio.ensure_future(_afollow_up(f)) for f in follow_ups if not f.reads_live]
    live = await _aflush_frames(frames, [key for f in reading for key in f.live_keys])
    if jobs:
        _batcher().add(jobs)
    at = 0
    for follow_up in reading:
        flags = None if live is None else live[at : at + len(follow_up.live_keys)]
        at += len(follow_up.live_keys)
        started.append(asyncio.ensure_future(_afollow_up(follow_up, (flags,))))
    for task in started:
        await task


async def _aflush_frames(frames: list[Frame], live_keys: list[str]) -> list[bool] | None:
    """Sends `frames`; the flags of `live_keys` when the same call read them, else None."""
    if not frames:
        return None
    try:
        return await _asend_frames(frames, live_keys)
    except Exception:
        _lost("frames", [f"{f.event}→{f.group}" for f in frames])
        return None


async def _afollow_up(follow_up: FollowUp, args: tuple[Any, ...] = ()) -> None:
    try:
        if follow_up.afn is not None:
            await follow_up.afn(*args)
        else:
            await database_sync_to_async(follow_up.fn, thread_sensitive=False, executor=_db_executor())()
    except Exception:
        _lost("follow-up", [getattr(follow_up.fn, "__qualname__", repr(follow_up.fn))])


# --- jobs ----------------------------------------------------------------------------------
class _JobBatcher:
    """Jobs flushed from one event loop (server processes) go out together: while one
    pipeline is in flight, the jobs of every commit that finishes meanwhile wait for the next,
    so a busy server pays one Redis round trip (and one thread hop) per batch, not per commit.
    Whatever is still waiting when the process exits is sent at exit; a process killed before
    leaves it to the sweeps (the module docstring lists what they recover)."""

    MAX_BATCH = 500

    def __init__(self) -> None:
        self.pending: list[Job] = []
        self.task: asyncio.Task | None = None

    def add(self, jobs: list[Job]) -> None:
        self.pending.extend(jobs)
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            batch, self.pending = self.pending[: self.MAX_BATCH], self.pending[self.MAX_BATCH :]
            try:
                await loop.run_in_executor(_db_executor(), _enqueue_jobs, batch)
            except Exception:
                _lost("jobs", [j.describe() for j in batch])

    def drain_sync(self) -> None:
        batch, self.pending = self.pending, []
        if batch:
            try:
                _enqueue_jobs(batch)
            except Exception:
                _lost("jobs", [j.describe() for j in batch])


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _JobBatcher] = weakref.WeakKeyDictionary()


def _batcher() -> _JobBatcher:
    return for_loop(_batchers, _JobBatcher)


@atexit.register
def _drain_at_exit() -> None:
    for batcher in list(_batchers.values()):
        batcher.drain_sync()


def job_retry():
    """The one retry policy of every job: 3 retries, at once, then after 30 s and 120 s.
    The first one needs no scheduler: after a worker was killed (its job is retried by the
    started-job registry cleanup the notifications sweep runs every minute), the dead worker's
    scheduler lock keeps every scheduler away for a minute. Jobs are idempotent."""
    from rq import Retry

    return Retry(max=3, interval=[0, 30, 120])


@functools.cache
def queue(name: str):
    """The RQ queue `name` (one object per process, on the Redis client frames use too). For
    reading its registries; enqueue through `enqueue`."""
    import django_rq

    return django_rq.get_queue(name, connection=_sync_redis(settings.RQ_QUEUES[name]["URL"]))


def _enqueue_jobs(jobs: list[Job]) -> None:
    """Every job in one pipeline per Redis connection (all our queues share one)."""
    by_connection: dict[int, tuple[Any, list[tuple[Any, Job]]]] = {}
    for job in jobs:
        rq_queue = queue(job.queue)
        by_connection.setdefault(id(rq_queue.connection), (rq_queue.connection, []))[1].append((rq_queue, job))
    for redis_connection, entries in by_connection.values():
        with redis_connection.pipeline() as pipe:
            by_queue: dict[str, tuple[Any, list]] = {}
            for rq_queue, job in entries:
                data = rq_queue.prepare_data(
                    job.func,
                    args=job.args,
                    job_id=job.job_id,
                    description=job.description,
                    meta=job.meta,
                    retry=job_retry(),
                )
                by_queue.setdefault(rq_queue.name, (rq_queue, []))[1].append(data)
            for rq_queue, datas in by_queue.values():
                rq_queue.enqueue_many(datas, pipeline=pipe)
            pipe.execute()


# --- the channel layer: channels_redis, with one receive loop per process -----------------------


class ChannelLayer(_RedisChannelLayer):
    """channels_redis' layer (CHANNEL_LAYERS BACKEND), receiving process-local channels with one
    reader task per event loop instead of a lock handed from receiver to receiver.

    channels_redis receives a process's channels one message at a time, under a lock passed
    between the consumers' `receive()` calls, through a backup queue (so that a cancelled
    receive loses nothing): four Redis commands and two tasks per message. Here one task per
    process pops every waiting message at once (one BZMPOP of up to 500 that waits when there is
    none; ZPOPMIN, then BZPOPMIN, on a Redis older than 7.0) and puts each into the buffer of its
    channel(s); a consumer's `receive()` only waits on its buffer, so cancelling it (a consumer
    closing) cancels nothing in flight in Redis.
    Plain channels (no `!`, e.g. Socket.IO long-polling) are received as before. The
    serialized format, keys and expiry are channels_redis' own: both kinds of layer interoperate
    (tested in emploiplus/tests/test_channel_layer.py).

    Frames sent from an event loop to the channels of that same loop do not go through Redis at
    all: the layer knows which of its own channels are in which group (`_joined`, kept by
    `group_add`/`group_discard` and `group_add_many`/`group_discard_many`, expiring as
    channels_redis' memberships do), hands the frame to them (`hand_over`) before the send
    script leaves, and the script skips this process's key. The sender's own sockets, every
    socket of a fan-out that lives in the sending process — what Socket.IO's Redis adapter does
    for its local sockets, which it writes before it publishes."""

    READ_BATCH = 500

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._readers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()
        # The channels a receive() of each loop waits on (channel → number of waiting receives).
        self._waiting: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, int]] = (
            weakref.WeakKeyDictionary()
        )
        # The loop each process-local channel receives on, from its first receive() until one
        # is cancelled (its consumer ended): what `hand_over` may hand over in memory.
        self._loop_of: weakref.WeakValueDictionary[str, asyncio.AbstractEventLoop] = weakref.WeakValueDictionary()
        # This layer's own channels in each group (group → channel → when it joined, as
        # channels_redis scores a membership): who gets a frame in memory (`members_here`).
        self._joined: dict[str, dict[str, float]] = {}
        self._bzmpop = True  # until Redis says it has no such command

    def own_key(self) -> str:
        """The Redis key of this process's channels (channels_redis': one key per layer)."""
        return f"{self.prefix}specific.{self.client_prefix}!"

    def is_own(self, channel: str) -> bool:
        """A process-local channel of this layer (`new_channel()`'s), read through `own_key`."""
        return "!" in channel and self.prefix + self.non_local_name(channel) == self.own_key()

    def joined(self, channel: str, groups: Iterable[str], when: float) -> None:
        """`channel` was added to `groups` at `when` (in Redis too: call this once it is)."""
        if self.is_own(channel):
            for group in groups:
                self._joined.setdefault(group, {})[channel] = when

    def left(self, channel: str, groups: Iterable[str]) -> None:
        """`channel` leaves `groups` (before Redis hears it: no frame is handed to it after)."""
        for group in groups:
            members = self._joined.get(group)
            if members is not None and members.pop(channel, None) is not None and not members:
                del self._joined[group]

    def members_here(self, group: str, now: float) -> list[str]:
        """This layer's channels in `group` at `now`: those whose membership channels_redis
        has not expired (`group_expiry` after they joined: its ZREMRANGEBYSCORE 0 … cutoff)."""
        members = self._joined.get(group)
        if not members:
            return []
        cutoff = int(now) - self.group_expiry
        # list(…) of a dict is one step under the GIL: safe if another loop's thread joins meanwhile
        for channel, when in list(members.items()):
            if when <= cutoff:
                members.pop(channel, None)
        if not members:
            self._joined.pop(group, None)
        return list(members)

    def hand_over(self, message: dict[str, Any], channels: list[str]) -> list[str]:
        """`message` into the buffer of each of these channels that receives on the running
        loop, as the reader would put it; returns the others (another loop's, or one that has
        not received yet or no longer does), for the caller to send through Redis."""
        loop = asyncio.get_running_loop()
        elsewhere = []
        for channel in channels:
            if self._loop_of.get(channel) is loop:
                self.receive_buffer[channel].put_nowait(message)
            else:
                elsewhere.append(channel)
        return elsewhere

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        self.joined(channel, [group], time.time())  # not before Redis' own score: never expires first

    async def group_discard(self, group: str, channel: str) -> None:
        self.left(channel, [group])
        await super().group_discard(group, channel)

    async def flush(self) -> None:
        self._joined.clear()
        await super().flush()

    async def receive(self, channel: str) -> dict[str, Any]:
        if "!" not in channel:
            return await super().receive(channel)
        assert self.require_valid_channel_name(channel)
        real_channel = self.non_local_name(channel)
        assert real_channel.endswith(self.client_prefix + "!"), "Wrong client prefix"
        loop = asyncio.get_running_loop()
        if self._loop_of.get(channel) is not loop:
            self._loop_of[channel] = loop
        buffer = self.receive_buffer[channel]
        if not buffer.empty():
            message = buffer.get_nowait()
        else:
            waiting = self._waiting.setdefault(loop, {})
            waiting[channel] = waiting.get(channel, 0) + 1
            try:
                self._ensure_reader(loop, real_channel)
                message = await buffer.get()
            except asyncio.CancelledError:
                self.receive_buffer.pop(channel, None)  # nobody will read what comes for it
                self._loop_of.pop(channel, None)
                raise
            finally:
                waiting[channel] -= 1
                if not waiting[channel]:
                    del waiting[channel]
        if buffer.empty():
            self.receive_buffer.pop(channel, None)
        if isinstance(message, _ReaderFailed):
            raise message.error
        return message

    async def close_pools(self) -> None:
        """Stop this loop's reader before its connections go (tests and shutdown call this)."""
        with contextlib.suppress(RuntimeError):
            task = self._readers.pop(asyncio.get_running_loop(), None)
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await super().close_pools()

    def _ensure_reader(self, loop: asyncio.AbstractEventLoop, real_channel: str) -> None:
        task = self._readers.get(loop)
        if task is None or task.done():
            self._readers[loop] = loop.create_task(self._read(loop, real_channel), name="channel-layer-reader")

    async def _read(self, loop: asyncio.AbstractEventLoop, real_channel: str) -> None:
        """Runs while a `receive()` of this loop waits: it ends (in the same step as the check,
        so a new `receive()` starts a new reader) once nobody does — a loop that is being
        closed is not left with a task whose cancellation redis-py may swallow mid-connect.

        Redis failing fails every waiting `receive()` with the error, as channels_redis' own
        receive raises: a consumer ends (its client reconnects and joins its groups again —
        a restarted Redis has none of them), it is not left waiting on groups that are gone.

        The reader holds one connection of the layer's pool while it runs and sends its BZMPOP
        on it with redis-py's connection API: the client's per-command layers (pool checkout,
        retry, observability, reply callbacks; ~240 Python calls a command) were a third of
        a receiving server's CPU per message. A read that fails or is cancelled disconnects
        it (redis-py's `read_response`); it goes back to the pool when the reader ends."""
        key = self.prefix + real_channel
        client = self.connection(self.consistent_hash(real_channel))
        held = None  # the connection, once taken
        try:
            while self._waiting.get(loop):
                try:
                    if held is None:
                        held = await client.connection_pool.get_connection()
                    popped = await self._pop(client, key, held)
                except Exception as exc:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():  # redis-py turned our cancellation into this
                        raise asyncio.CancelledError from None
                    waiting = dict(self._waiting.get(loop, {}))
                    log.warning("channel layer: Redis unreachable, %d receive(s) fail: %r", sum(waiting.values()), exc)
                    for name, count in waiting.items():
                        for _ in range(count):
                            self.receive_buffer[name].put_nowait(_ReaderFailed(exc))
                    return
                for member, _score in popped:
                    message = self.deserialize(member)
                    channels = message.pop("__asgi_channel__", None)
                    for name in channels if isinstance(channels, list) else [channels]:
                        if name:
                            self.receive_buffer[name].put_nowait(message)
                if popped:  # the consumers woken write their frames before the next pop is sent
                    await asyncio.sleep(0)
        finally:
            if held is not None:
                await client.connection_pool.release(held)

    async def _pop(self, connection: Any, key: str, held: Any) -> list[Any]:
        """Up to READ_BATCH messages of `key`, waiting up to brpop_timeout for the first: one
        BZMPOP (Redis 7) on the `held` connection, else a ZPOPMIN and, when that found nothing,
        a BZPOPMIN through the client `connection`."""
        if self._bzmpop:
            try:
                await held.send_command("BZMPOP", self.brpop_timeout, 1, key, "MIN", "COUNT", self.READ_BATCH)
                reply = await held.read_response()  # [key, [[member, score], …]], or None
                return [] if reply is None else reply[1]
            except ResponseError as exc:
                if "unknown command" not in str(exc).lower():
                    raise
                log.info("channel layer: Redis has no BZMPOP (before 7.0), reading with ZPOPMIN/BZPOPMIN")
                self._bzmpop = False
        popped = await connection.zpopmin(key, self.READ_BATCH)
        if not popped:
            reply = await connection.bzpopmin(key, timeout=self.brpop_timeout)
            popped = [] if reply is None else [(reply[1], reply[2])]
        return popped


class _ReaderFailed:
    """Put in a waiting channel's buffer: its `receive()` raises `error`."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


# --- frames: channels_redis internals, here only --------------------------------------------
def fast_path_supported(layer: Any) -> bool:
    """The configured layer is channels_redis' RedisChannelLayer on one host, with the
    internals and the plain message format (msgpack, 12-byte random prefix, no encryption, one
    capacity for every channel) that the one-script send below writes itself."""
    serializer = getattr(layer, "_serializer", None)
    return (
        isinstance(layer, _RedisChannelLayer)
        and layer.ring_size == 1
        and all(hasattr(layer, name) for name in ("_group_key", "non_local_name", "connection"))
        and isinstance(serializer, MsgPackSerializer)
        and serializer.crypter is None
        and serializer.random_prefix_length == RANDOM_PREFIX_LENGTH
        and not layer.channel_capacity
    )


RANDOM_PREFIX_LENGTH = 12  # channels_redis' own: each stored message is unique in its sorted set

# One call per batch of frames: read each group's live members and push the frame's message to
# each member's channel key, in send order, with channels_redis' checks (group expiry, message
# expiry, capacity) and format: 12 random bytes, then the msgpack map of the message with
# `__asgi_channel__` (the names of the key's channels in the group). ARGV[8 + j] is frame j's
# map without that last value (its header counts it); the script appends the list of names.
# KEYS = one group key per frame (repeats allowed), then the expiring sets to read (a follow-up's
# `live_keys`). ARGV = now, group expiry, message expiry, capacity, key prefix, 8 random bytes
# (with a counter, the prefix of each stored message), the calling process's own channel key
# ("" for none): its channels are not pushed (the caller has handed them the frames in memory,
# `ChannelLayer.hand_over`), the number of frames.
# Returns {number of messages dropped over capacity, {flag, …}}, the second whether each set to
# read holds a live member (in Redis time, read only when there are any). Channel keys are read from the
# groups, so this needs one Redis (not a cluster), which `fast_path_supported` checks.
_SEND = (
    LIVE_SET_LUA
    + """
local now = tonumber(ARGV[1])
local group_cutoff = math.floor(now) - tonumber(ARGV[2])
local expiry = tonumber(ARGV[3])
local capacity = tonumber(ARGV[4])
local prefix, base, here, frames = ARGV[5], ARGV[6], ARGV[7], tonumber(ARGV[8])
local members_of, n, over, live = {}, 0, 0, {}
for j = 1, frames do
    local group = KEYS[j]
    local members = members_of[group]
    if not members then
        redis.call('ZREMRANGEBYSCORE', group, 0, group_cutoff)
        members = redis.call('ZRANGE', group, 0, -1)
        members_of[group] = members
    end
    local keys, names = {}, {}
    for _, channel in ipairs(members) do
        local bang = string.find(channel, '!', 1, true)
        local key = prefix .. (bang and string.sub(channel, 1, bang) or channel)
        if not names[key] then
            names[key] = {}
            keys[#keys + 1] = key
        end
        table.insert(names[key], channel)
    end
    for _, key in ipairs(keys) do
        if key ~= here then
            n = n + 1
            redis.call('ZREMRANGEBYSCORE', key, 0, math.floor(now) - expiry)
            if redis.call('ZCARD', key) < capacity then
                local message = base .. struct.pack('>I4', n) .. ARGV[8 + j] .. cmsgpack.pack(names[key])
                redis.call('ZADD', key, now + n * 0.000001, message)
                redis.call('EXPIRE', key, expiry)
            else
                over = over + 1
            end
        end
    end
end
if #KEYS > frames then
    local clock = redis_now()
    for i = frames + 1, #KEYS do live[#live + 1] = holds_live(KEYS[i], clock) end
end
return {over, live}
"""
)
_CHANNEL_NAMES_KEY = msgpack.packb("__asgi_channel__")


def _message_head(message: dict[str, Any]) -> bytes:
    """msgpack of `message` plus one more entry, `__asgi_channel__`, whose value is left out."""
    packer = msgpack.Packer()
    entries = (packer.pack(k) + packer.pack(v) for k, v in message.items())
    return b"".join([packer.pack_map_header(len(message) + 1), *entries, _CHANNEL_NAMES_KEY])


def _send_calls(
    layer: Any, items: list[Frame | str], *, here: str = ""
) -> Iterator[tuple[list[Frame | str], list[dict[str, Any]], list[str], list[Any]]]:
    """(items, the messages of their frames, KEYS, ARGV) of each call of `_SEND`,
    FRAMES_PER_SEND items a call; an item is a frame or (a str) an expiring set to read. `here`
    is the caller's own channel key, whose channels the script returns."""
    for start in range(0, len(items), FRAMES_PER_SEND):
        chunk = items[start : start + FRAMES_PER_SEND]
        keys, messages, reads = [], [], []
        for item in chunk:
            if isinstance(item, str):
                reads.append(item)
                continue
            assert layer.require_valid_group_name(item.group), "Group name not valid"
            keys.append(layer._group_key(item.group))
            messages.append(item.message())
        head = [time.time(), int(layer.group_expiry), int(layer.expiry), int(layer.capacity), layer.prefix]
        random_base = os.urandom(RANDOM_PREFIX_LENGTH - 4)
        args = [*head, random_base, here, len(messages), *(_message_head(m) for m in messages)]
        yield chunk, messages, keys + reads, args


def _script_reply(reply: list[Any], messages: list[dict[str, Any]]) -> list[int]:
    """The script's reply → the flags of the sets read."""
    over, live = reply
    if over:
        log.info("%s channel message(s) over capacity, of %s frame(s)", over, len(messages))
    return live


@functools.cache
def _sync_redis(address: str):
    import redis

    return redis.Redis.from_url(address, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)


@functools.cache
def _sync_send_script(address: str):
    return _sync_redis(address).register_script(_SEND)


def _layer_address(layer: Any) -> str:
    host = layer.hosts[0]
    return host.get("address") if isinstance(host, dict) and host.get("address") else settings.REDIS_URL


def _send_frames(frames: list[Frame]) -> None:
    """From a sync thread: straight to Redis (no event loop involved)."""
    layer = get_channel_layer()
    if layer is None:
        return
    if not fast_path_supported(layer):
        from asgiref.sync import async_to_sync

        async_to_sync(_asend_frames)(frames)
        return
    script = _sync_send_script(_layer_address(layer))
    for _chunk, messages, keys, args in _send_calls(layer, frames):  # no channel is this thread's
        _script_reply(script(keys=keys, args=args), messages)


async def _asend_frames(frames: list[Frame], live_keys: Sequence[str] = ()) -> list[bool] | None:
    """From an event loop: the layer's own connection pool for this loop. Frames flushed
    while an earlier send of this loop is in flight go together in the next one
    (`_frame_batcher`); raises what their send raised. Returns the flags of `live_keys` (our
    Redis' expiring sets) when the layer's Redis is ours and the same call read them, else None."""
    layer = get_channel_layer()
    if layer is None:
        return None
    if not fast_path_supported(layer):
        for frame in frames:
            await layer.group_send(frame.group, frame.message())
        return None
    if not live_keys or _layer_address(layer) != settings.REDIS_URL:
        await _frame_batcher().submit(frames)
        return None
    results = await _frame_batcher().submit([*frames, *live_keys])
    return results[len(frames) :]


_frame_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopBatcher] = weakref.WeakKeyDictionary()


def _frame_batcher() -> LoopBatcher:
    """The frames of one event loop leave in order, a batch at a time (`LoopBatcher`): flushes
    that come while a send is in flight (other sockets' messages, on a busy server) leave
    together in the next one — one Redis round trip for the batch instead of one per message.
    A Redis error raises in every caller of that batch, which logs what it lost."""
    return for_loop(_frame_batchers, lambda: LoopBatcher(_asend_batch, most=FRAMES_PER_SEND))


async def _asend_batch(items: list[Frame | str]) -> list[bool | None]:
    return await _asend_frames_now(get_channel_layer(), items)


async def _asend_frames_now(layer: Any, items: list[Frame | str]) -> list[bool | None]:
    """One script call per FRAMES_PER_SEND items (frames, and expiring sets to read: their
    flags are returned in their places, None in a frame's). What goes to this process's own
    channels is not pushed to Redis and read back: it is handed over in memory
    (`ChannelLayer.hand_over`) before the script is written, so that those sockets' frames
    (a sender's own) are written while Redis and the other processes work, not after Redis has
    answered, at the same time as theirs. Own channels that do not receive on this loop get it
    through Redis once the script has answered."""
    client = layer.connection(0)
    script = _held_send_script(client)
    own = isinstance(layer, ChannelLayer)
    results: list[bool | None] = []
    for chunk, messages, keys, args in _send_calls(layer, items, here=layer.own_key() if own else ""):
        elsewhere: list[tuple[str, dict[str, Any]]] = []
        if own:
            now = args[0]
            frames = (item for item in chunk if not isinstance(item, str))
            for frame, message in zip(frames, messages, strict=True):
                channels = layer.members_here(frame.group, now)
                if channels:
                    elsewhere += [(channel, message) for channel in layer.hand_over(message, channels)]
        # (A script that fails raises here: what was handed over has been delivered, the rest is
        # logged as lost by the caller, as before.)
        live = _script_reply(await script(client, keys, args), messages)
        for channel, message in elsewhere:
            try:
                await layer.send(channel, dict(message))
            except ChannelFull:  # as the script drops a message over capacity, for this channel only
                log.info("channel message over capacity for %s", channel)
        flags = iter(live)
        results.extend(bool(next(flags)) if isinstance(item, str) else None for item in chunk)
    return results


class _HeldScript:
    """`_SEND` on one connection held from a layer client's pool, through redis-py's connection
    API: EVALSHA, and EVAL (which loads it again) after a Redis restart forgot it. One call is
    in flight at a time (the frame batcher's), so one connection is enough; the client's
    per-command layers (pool checkout, retry, observability) cost more CPU than the call. As
    the client's retry would, a connection found dead (Redis restarted, an idle connection
    closed) is opened again and the call sent once more; a timeout is not retried (the
    script may have run). redis-py disconnects a connection whose read failed or was cancelled.
    It holds no reference to its client (the key of `_held_scripts`: that would keep it alive).

    The connection's socket timeout bounds each whole call (`asyncio.timeout`) instead of
    redis-py's own: with one set, redis-py writes every command through `asyncio.wait_for`, a
    task and a loop turn before the frames leave (Python 3.11), on the path of every message."""

    SHA = hashlib.sha1(_SEND.encode(), usedforsecurity=False).hexdigest()  # the name Redis gives it

    def __init__(self) -> None:
        self.connection: Any = None
        self.timeout: float | None = None

    async def __call__(self, client: Any, keys: list[Any], args: list[Any]) -> Any:
        if self.connection is None:
            connection = await client.connection_pool.get_connection()
            self.timeout, connection.socket_timeout = connection.socket_timeout, None  # ours for good
            self.connection = connection
        try:
            async with asyncio.timeout(self.timeout):
                try:
                    return await self._call(keys, args)
                except RedisConnectionError:
                    return await self._call(keys, args)  # send_command connects again
        except TimeoutError:  # the connection is disconnected (redis-py, on the cancelled read)
            raise RedisTimeoutError(f"no answer from Redis within {self.timeout} s (frames)") from None

    async def _call(self, keys: list[Any], args: list[Any]) -> Any:
        await self.connection.send_command("EVALSHA", self.SHA, len(keys), *keys, *args)
        try:
            return await self.connection.read_response()
        except NoScriptError:
            pass
        await self.connection.send_command("EVAL", _SEND, len(keys), *keys, *args)
        return await self.connection.read_response()


_held_scripts: weakref.WeakKeyDictionary[Any, _HeldScript] = weakref.WeakKeyDictionary()


def _held_send_script(client: Any) -> _HeldScript:
    """The `_HeldScript` of a layer client (channels_redis keeps one client per event loop)."""
    script = _held_scripts.get(client)
    if script is None:
        script = _held_scripts[client] = _HeldScript()
    return script


async def group_add_many(channel: str, groups: list[str]) -> None:
    """`group_add(group, channel)` for every group in one pipeline (a presence connection
    follows up to 1,000 contacts; one round trip instead of two per group)."""
    layer = get_channel_layer()
    if not groups:
        return
    if not fast_path_supported(layer):
        for group in groups:
            await layer.group_add(group, channel)
        return
    assert layer.require_valid_channel_name(channel), "Channel name not valid"
    now = time.time()
    async with layer.connection(0).pipeline(transaction=False) as pipe:
        for group in groups:
            assert layer.require_valid_group_name(group), "Group name not valid"
            key = layer._group_key(group)
            pipe.zadd(key, {channel: now})
            pipe.expire(key, layer.group_expiry)
        await pipe.execute()
    if isinstance(layer, ChannelLayer):
        layer.joined(channel, groups, now)


async def group_discard_many(channel: str, groups: list[str]) -> None:
    layer = get_channel_layer()
    if not groups:
        return
    if not fast_path_supported(layer):
        for group in groups:
            await layer.group_discard(group, channel)
        return
    if isinstance(layer, ChannelLayer):
        layer.left(channel, groups)
    async with layer.connection(0).pipeline(transaction=False) as pipe:
        for group in groups:
            pipe.zrem(layer._group_key(group), channel)
        await pipe.execute()


# --- plain channels of sessions no process owns (Socket.IO long-polling, emploiplus.sio) -----
def _channel_key(layer: Any, channel: str) -> str:
    assert "!" not in channel, "only plain channels are read here"
    return layer.prefix + channel


async def drain_channels(channels: list[str], *, wait: float, most: int = 500) -> list[tuple[str, dict]]:
    """What waits on plain channels (channels_redis' `receive` without the per-message
    backup queue: one BZPOPMIN up to `wait` seconds, then everything else queued, at most
    `most`, in one pipeline): [(channel, message)] oldest first. A message popped here and not
    delivered (the HTTP answer lost) is lost, as a long-polling answer is in Socket.IO."""
    layer = get_channel_layer()
    keys = {_channel_key(layer, c): c for c in channels}
    connection = layer.connection(0)
    popped: list[tuple[float, str, bytes]] = []
    async with connection.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.zpopmin(key, most)
        for key, replies in zip(keys, await pipe.execute(), strict=True):
            popped += [(score, keys[key], member) for member, score in replies]
    if not popped and wait > 0:
        reply = await connection.bzpopmin(list(keys), timeout=wait)
        if reply is not None:
            key, member, score = reply
            key = key.decode() if isinstance(key, bytes) else key
            popped.append((score, keys[key], member))
            async with connection.pipeline(transaction=False) as pipe:
                for other in keys:
                    pipe.zpopmin(other, most)
                for other, replies in zip(keys, await pipe.execute(), strict=True):
                    popped += [(s, keys[other], m) for m, s in replies]
    popped.sort(key=lambda item: item[0])
    out = []
    for _score, channel, member in popped[: most * 2]:
        message = layer.deserialize(member)
        message.pop("__asgi_channel__", None)
        out.append((channel, message))
    return out


async def delete_channels(channels: list[str]) -> None:
    """Drop whatever still waits on plain channels (a session closed or expired)."""
    layer = get_channel_layer()
    if channels:
        await layer.connection(0).delete(*(_channel_key(layer, c) for c in channels))


def reset_for_tests() -> None:
    """Forget cached queues and Redis clients (a test pointed the settings elsewhere)."""
    queue.cache_clear()
    _sync_redis.cache_clear()
    _sync_send_script.cache_clear()


__all__ = [
    "Collected",
    "Job",
    "abroadcast",
    "after_commit",
    "broadcast",
    "broadcast_many",
    "enqueue",
    "enqueue_many",
    "fast_path_supported",
    "job_retry",
    "queue",
    "run_sync",
]
