"""Base class of every WebSocket consumer: the frame protocol of CONTRACT §5.

Client → server frames are `{"event", "data", "ref"?}`; a handler `on_<event>(data)`
returns the ack payload (or None). With a `ref`, the client gets
`{"event": "ack", "ref", "data"}` or `{"event": "error", "ref", "error": {"code", "message"}}`;
errors are sent even without a ref so a client always learns why nothing happened.
Server pushes arrive from the channel layer as `emploiplus.event` messages (see
`emploiplus.events`) and go out as `{"event", "data"}`.

Subclasses stay thin: declare `handled_events`, join groups in `on_connect`, turn
frames into service calls.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from emploiplus.errors import ApplicationError

log = logging.getLogger(__name__)

CLOSE_UNAUTHENTICATED = 4401
MAX_FRAME_BYTES = 64 * 1024


class EventConsumer(AsyncWebsocketConsumer):
    handled_events: tuple[str, ...] = ()

    # --- connection lifecycle -------------------------------------------------------
    async def connect(self) -> None:
        self.user = self.scope.get("user")
        self.groups_joined: set[str] = set()
        self._rate_window = (0.0, 0)
        await self.accept(subprotocol=self.scope.get("subprotocol"))
        if self.user is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        await self.on_connect()

    async def disconnect(self, code: int) -> None:
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
    def _token_expired(self) -> bool:
        claims = self.scope.get("claims")
        exp = getattr(claims, "exp", None)
        return bool(exp) and time.time() > exp + settings.JWT_LEEWAY_SECONDS

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
        if self._token_expired():
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        ref = None
        try:
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
            if self._rate_limited():
                raise ApplicationError("rate_limited", "Trop d'événements, ralentissez.")
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
        await self.send(text_data=json.dumps(frame, separators=(",", ":"), default=str))

    async def send_event(self, event: str, data: dict[str, Any]) -> None:
        await self.send_frame({"event": event, "data": data})

    async def emploiplus_event(self, message: dict[str, Any]) -> None:  # type "emploiplus.event"
        """Channel-layer message of type `emploiplus.event` → JSON frame."""
        if message.get("exclude") and message["exclude"] == self.channel_name:
            return
        await self.send_event(message["event"], message["data"])
