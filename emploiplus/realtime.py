"""Real-time namespaces, independent of the wire: what `/ws/…/` and Socket.IO both serve.

A `Namespace` is the application side of one client connection to one namespace
(`/messages`, `/notifications`, `/presence`): it joins channel-layer groups on connect,
turns client events into service calls (`on_<event>(data)` returns the ack payload or raises
`ApplicationError`), and turns the group messages it receives into events for its client.
It talks to its transport only through a `Connection`:

- `user`, `claims`, `channel_name` (its channel-layer channel), `connection_id` (presence);
- `await join(groups)` / `await leave(groups)` (lists: one Redis round trip for many);
- `await emit(event, data)` — an event to this client;
- `await track_presence()` / `await untrack_presence()`.

Transports (thin, replaceable — ARCHITECTURE): `emploiplus.consumers.EventConsumer` hosts one
namespace per WebSocket with CONTRACT §5's JSON frames; `emploiplus.sio` hosts several on one
Engine.IO session (WebSocket, or long-polling with its state in Redis). A namespace's state
between events is plain data (`state()` / `restore()`), so a long-polling session can be
served by any process.

What every transport applies the same way, here: the event name and data checks, the
per-connection event budget (WS_EVENTS_PER_10_SECONDS), the token's expiry, the error shape.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar, Protocol

from django.conf import settings

from emploiplus.errors import ApplicationError

log = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
RATE_WINDOW_SECONDS = 10.0


class Connection(Protocol):
    user: Any
    claims: Any
    channel_name: str
    connection_id: str

    async def join(self, groups: list[str]) -> None: ...

    async def leave(self, groups: list[str]) -> None: ...

    async def emit(self, event: str, data: dict[str, Any]) -> None: ...

    async def track_presence(self) -> None: ...

    async def untrack_presence(self) -> None: ...


class Namespace:
    """Base of the namespaces. Subclasses declare `handled_events` and `on_<event>` methods,
    and list in `state_fields` the attributes that must survive between two events."""

    name: ClassVar[str] = ""
    handled_events: ClassVar[tuple[str, ...]] = ()
    state_fields: ClassVar[tuple[str, ...]] = ()

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.user = conn.user
        self.groups: set[str] = set()

    # --- lifecycle (overridden) ---------------------------------------------------------
    async def on_connect(self) -> None:
        pass

    async def on_disconnect(self) -> None:
        pass

    # --- groups -----------------------------------------------------------------------
    async def join(self, *groups: str) -> None:
        new = [g for g in dict.fromkeys(groups) if g not in self.groups]
        if new:
            await self.conn.join(new)
            self.groups.update(new)

    async def leave(self, *groups: str) -> None:
        gone = [g for g in dict.fromkeys(groups) if g in self.groups]
        if gone:
            self.groups.difference_update(gone)
            await self.conn.leave(gone)

    async def leave_all(self) -> None:
        await self.leave(*self.groups)

    # --- client events ----------------------------------------------------------------
    async def handle(self, event: Any, data: Any) -> dict[str, Any]:
        """Run the handler of a client event; its result is the ack payload."""
        if event not in self.handled_events:
            raise ApplicationError("unknown_event", f"Unknown event {event!r}.")
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ApplicationError("invalid_data", "'data' must be a JSON object.")
        return (await getattr(self, f"on_{event}")(data)) or {}

    # --- group messages ---------------------------------------------------------------
    def wants(self, message: dict[str, Any]) -> bool:
        """Whether a group message becomes an event for this client (the sender's own socket
        never gets what it excluded)."""
        exclude = message.get("exclude")
        return not (exclude and exclude == self.conn.channel_name)

    async def deliver(self, message: dict[str, Any]) -> None:
        if self.wants(message):
            await self.conn.emit(message["event"], message["data"])

    # --- state between events (long-polling transports) ----------------------------------
    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"groups": sorted(self.groups)}
        for name in self.state_fields:
            value = getattr(self, name)
            out[name] = sorted(value) if isinstance(value, set) else value
        return out

    def restore(self, state: dict[str, Any]) -> None:
        self.groups = set(state.get("groups", ()))
        for name in self.state_fields:
            value = state.get(name)
            current = getattr(self, name, None)
            setattr(self, name, set(value or ()) if isinstance(current, set) else value)


def error_body(exc: ApplicationError) -> dict[str, Any]:
    return {"code": exc.code, "message": exc.message}


def unexpected_error_body(exc: BaseException) -> dict[str, Any]:
    """The `error` of an event whose handler raised something else than ApplicationError: a
    dependency that is down (database, Redis) is `unavailable` (try again), anything else an
    `internal_error`, logged with its traceback."""
    import redis
    from django.db import InterfaceError, OperationalError

    if isinstance(exc, (OperationalError, InterfaceError, redis.ConnectionError, redis.TimeoutError)):
        log.warning("realtime event failed, a dependency is unavailable: %r", exc)
        return {"code": "unavailable", "message": "Service momentanément indisponible, réessayez."}
    log.error("realtime event handler failed", exc_info=exc)
    return {"code": "internal_error", "message": "Erreur interne."}


def rate_limited_error() -> ApplicationError:
    return ApplicationError("rate_limited", "Trop d'événements, ralentissez.")


def frame_too_large_error() -> ApplicationError:
    return ApplicationError("frame_too_large", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")


class EventWindow:
    """WS_EVENTS_PER_10_SECONDS for one connection, in memory (a fixed 10 s window)."""

    __slots__ = ("count", "start")

    def __init__(self) -> None:
        self.start = 0.0
        self.count = 0

    def over(self) -> bool:
        """Count one event; True when it is over the budget."""
        now = time.monotonic()
        if now - self.start >= RATE_WINDOW_SECONDS:
            self.start, self.count = now, 1
            return False
        self.count += 1
        return self.count > settings.WS_EVENTS_PER_10_SECONDS


def expires_at(claims: Any) -> float | None:
    """When a connection authenticated with `claims` must end: `exp` + JWT_LEEWAY_SECONDS."""
    exp = getattr(claims, "exp", None)
    if not isinstance(exp, (int, float)):
        return None
    return exp + settings.JWT_LEEWAY_SECONDS
