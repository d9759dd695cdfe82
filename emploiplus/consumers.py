"""Base class of every WebSocket consumer: the frame protocol of CONTRACT §5.

Client → server frames are `{"event", "data", "ref"?}`; a handler `on_<event>(data)`
returns the ack payload (or None). With a `ref`, the client gets
`{"event": "ack", "ref", "data"}` or `{"event": "error", "ref", "error": {"code", "message"}}`;
errors are sent even without a ref so a client always learns why nothing happened.
Server pushes arrive from the channel layer as `emploiplus.event` messages (see
`emploiplus.events`) and go out as `{"event", "data"}`.

Subclasses stay thin: declare `handled_events`, join groups in `on_connect`, turn
frames into service calls. Identity is `self.user`, set from the scope by the auth
middleware (accounts.middleware) at the handshake; nothing in a frame can change it.

Security behaviour of the base class:
- unauthenticated (no/bad token): accepted, then closed with 4401 (CONTRACT §5);
- the token's `exp` (+ JWT_LEEWAY_SECONDS) is enforced for the life of the connection:
  a timer closes it with 4401 at expiry, and a frame arriving after expiry is refused by
  closing with 4401 before any handler runs;
- every incoming frame (valid or not) counts against WS_EVENTS_PER_10_SECONDS per
  connection; over the limit the frame gets an `error` frame `rate_limited` and the
  connection stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from autobahn.exception import Disconnected as _DaphneDisconnected
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from emploiplus.errors import ApplicationError

log = logging.getLogger(__name__)

# What the servers raise when a frame is sent on a WebSocket the client already closed:
# daphne autobahn's Disconnected, uvicorn's ClientDisconnected (an OSError, as the ASGI spec
# asks of servers since 2.4).
ClientGone = (_DaphneDisconnected, OSError)


CLOSE_UNAUTHENTICATED = 4401
MAX_FRAME_BYTES = 64 * 1024


def _ref_of(text_data: str | None) -> str | int | None:
    """Best-effort `ref` of a frame we refuse without handling (so the client can match it)."""
    if not text_data or len(text_data) > MAX_FRAME_BYTES:
        return None
    try:
        ref = json.loads(text_data).get("ref")
    except (ValueError, AttributeError):
        return None
    return ref if isinstance(ref, (str, int)) else None


class EventConsumer(AsyncWebsocketConsumer):
    handled_events: tuple[str, ...] = ()

    # --- connection lifecycle -------------------------------------------------------
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.groups_joined: set[str] = set()
        self._rate_window = (0.0, 0)
        self._expiry_task: asyncio.Task | None = None
        await self.accept(subprotocol=self.scope.get("subprotocol"))
        if self.user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        expires_at = self._expires_at()
        if expires_at is not None:
            self._expiry_task = asyncio.ensure_future(self._close_at(expires_at))
        await self.on_connect()

    async def _close_at(self, expires_at: float) -> None:
        await asyncio.sleep(max(0.0, expires_at - time.time()))
        await self._close_expired()

    async def _close_expired(self) -> None:
        if not getattr(self, "_expired", False):
            self._expired = True
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        task = getattr(self, "_expiry_task", None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if getattr(self, "user", None) is not None:
            try:
                await self.on_disconnect(code)
            finally:
                for group in list(self.groups_joined):
                    await self.leave_group(group)

    async def on_connect(self) -> None:  # pragma: no cover - overridden
        pass

    async def on_disconnect(self, code: int) -> None:
        pass

    async def join_group(self, group: str) -> None:
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups_joined.add(group)

    async def leave_group(self, group: str) -> None:
        await self.channel_layer.group_discard(group, self.channel_name)
        self.groups_joined.discard(group)

    # --- frames in ------------------------------------------------------------------
    def _expires_at(self) -> float | None:
        exp = getattr(self.scope.get("claims"), "exp", None)
        if not isinstance(exp, (int, float)):
            return None
        return exp + settings.JWT_LEEWAY_SECONDS

    def _token_expired(self) -> bool:
        expires_at = self._expires_at()
        return expires_at is not None and time.time() >= expires_at

    def _rate_limited(self) -> bool:
        window_start, count = self._rate_window
        now = time.monotonic()
        if now - window_start >= 10:
            self._rate_window = (now, 1)
            return False
        self._rate_window = (window_start, count + 1)
        return count + 1 > settings.WS_EVENTS_PER_10_SECONDS

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.user is None:
            return
        if getattr(self, "_expired", False) or self._token_expired():
            await self._close_expired()
            return
        ref = None
        try:
            if self._rate_limited():
                ref = _ref_of(text_data)
                raise ApplicationError("rate_limited", "Trop d'événements, ralentissez.")
            if text_data is None:
                raise ApplicationError("invalid_frame", "Frames must be JSON text.")
            if len(text_data.encode()) > MAX_FRAME_BYTES:
                raise ApplicationError("frame_too_large", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
            try:
                frame = json.loads(text_data)
            except ValueError as exc:
                raise ApplicationError("invalid_json", "Frame is not valid JSON.") from exc
            if not isinstance(frame, dict):
                raise ApplicationError("invalid_frame", "Frame must be a JSON object.")
            ref = frame.get("ref")
            if ref is not None and not isinstance(ref, (str, int)):
                ref = None
            event = frame.get("event")
            data = frame.get("data") or {}
            if event not in self.handled_events:
                raise ApplicationError("unknown_event", f"Unknown event {event!r}.")
            if not isinstance(data, dict):
                raise ApplicationError("invalid_data", "'data' must be a JSON object.")
            result = await getattr(self, f"on_{event}")(data)
        except ApplicationError as exc:
            await self.send_frame({"event": "error", "ref": ref, "error": {"code": exc.code, "message": exc.message}})
            return
        except Exception:
            log.exception("websocket handler failed")
            await self.send_frame(
                {"event": "error", "ref": ref, "error": {"code": "internal_error", "message": "Erreur interne."}}
            )
            return
        if ref is not None:
            await self.send_frame({"event": "ack", "ref": ref, "data": result or {}})

    # --- frames out -----------------------------------------------------------------
    async def send_frame(self, frame: dict[str, Any]) -> None:
        text = json.dumps(frame, separators=(",", ":"), default=str)
        try:
            await self.send(text_data=text)
        except ClientGone:
            # The client closed between this event's arrival and its send (daphne raises
            # autobahn's Disconnected). Dropping the frame is all there is to do: the
            # websocket.disconnect message that follows runs the cleanup (presence, rooms).
            # Letting it raise would kill the consumer and skip that cleanup.
            log.debug("frame dropped: the client is gone")

    async def send_event(self, event: str, data: dict[str, Any]) -> None:
        await self.send_frame({"event": event, "data": data})

    async def emploiplus_event(self, message: dict[str, Any]) -> None:  # type "emploiplus.event"
        """Channel-layer message of type `emploiplus.event` → JSON frame."""
        if message.get("exclude") and message["exclude"] == self.channel_name:
            return
        await self.send_event(message["event"], message["data"])
