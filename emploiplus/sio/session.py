"""What an Engine.IO session does with Socket.IO packets, whatever transport carries them.

A `Session` holds one `Slot` per connected namespace (the `Namespace` of emploiplus.realtime,
its `Connection`, its socket id, its token's expiry). Transports subclass it and say how a
namespace's connection is made (`make_connection`), how packets leave (`send`), and how the
event budget is counted (`over_budget`).

- CONNECT `/ns` with `{token}` (socket.io-client's `auth`), else the handshake's token:
  unknown namespace → CONNECT_ERROR "Invalid namespace"; no or bad token → CONNECT_ERROR
  `{message, data: {code}}` (`token_missing`, `token_invalid`, `token_expired`,
  `user_inactive`) and no socket; else `on_connect` runs and `40/ns,{sid}` answers (events the
  namespace emits while connecting follow the CONNECT, as the client expects).
- EVENT for a namespace that is not connected: the session is closed (the reference server's
  "invalid state"), as for a malformed packet.
- EVENT `["name", data]`, with an ack id or not: the namespace's handler runs; its result is
  the ack (`[result]`), an error is `[{"error": {code, message}}]` as the ack, or, without
  one, an `error` event `{"event": name, "error": {code, message}}`.
- DISCONNECT: `on_disconnect`, presence released, groups left. A token that expires
  disconnects its namespace the same way, with a DISCONNECT to the client (as `/ws/` closes
  with 4401).
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

from socketio import packet as sio

from emploiplus import metrics
from emploiplus.errors import ApplicationError
from emploiplus.realtime import (
    MAX_FRAME_BYTES,
    Namespace,
    error_body,
    expires_at,
    frame_too_large_error,
    rate_limited_error,
    unexpected_error_body,
)
from emploiplus.sio import protocol
from emploiplus.sio.protocol import ProtocolError

log = logging.getLogger(__name__)


class RootNamespace(Namespace):
    """`/`: socket.io-client may connect it; it has no events."""

    name = "/"


def namespace_classes() -> dict[str, type[Namespace]]:
    from messaging.consumers import MessagesNamespace, PresenceNamespace
    from notifications.consumers import NotificationsNamespace

    return {cls.name: cls for cls in (RootNamespace, MessagesNamespace, NotificationsNamespace, PresenceNamespace)}


NAMESPACE_KEYS = {"/": "root", "/messages": "messages", "/notifications": "notifications", "/presence": "presence"}


@dataclass
class Slot:
    name: str
    nsid: str
    namespace: Namespace
    conn: Any
    expires: float | None
    connecting: list[str] = field(default_factory=list)

    def expired(self) -> bool:
        return self.expires is not None and time.time() >= self.expires


@dataclass
class Claimed:
    """The identity of a namespace connection: the user, and when its token expires."""

    user: Any
    claims: Any
    exp: float | None = None


class Session:
    transport: ClassVar[str] = ""

    def __init__(self, sid: str, *, handshake: Claimed | None = None) -> None:
        self.sid = sid
        self.handshake = handshake
        self.slots: dict[str, Slot] = {}
        self.classes = namespace_classes()

    # --- what a transport provides ----------------------------------------------------------
    async def make_connection(self, name: str, user: Any, claims: Any) -> Any:
        raise NotImplementedError

    async def send(self, packets: list[str], *, namespace: str | None = None) -> None:
        raise NotImplementedError

    async def over_budget(self, name: str) -> bool:
        raise NotImplementedError

    async def slot_changed(self, slot: Slot | None, name: str) -> None:
        """A namespace connected, disconnected or changed state (long-polling saves it)."""

    # --- emitting through a slot (Connection.emit calls this) ----------------------------------
    async def emit(self, name: str, event: str, data: dict[str, Any]) -> None:
        count_sent(name, event)
        packet = protocol.event_packet(name, event, data)
        slot = self.slots.get(name)
        if slot is not None and not slot.nsid:  # still connecting: after the CONNECT answer
            slot.connecting.append(packet)
            return
        await self.send([packet], namespace=name)

    # --- packets from the client ------------------------------------------------------------
    async def handle_message(self, text: str) -> None:
        """The data of an Engine.IO MESSAGE: one Socket.IO packet (its size is bounded by
        SOCKETIO_MAX_PAYLOAD before it gets here)."""
        packet = protocol.decode_socketio(text)
        name = packet.namespace or "/"
        if packet.packet_type == sio.CONNECT:
            await self.connect_namespace(name, packet.data)
        elif packet.packet_type == sio.DISCONNECT:
            await self.disconnect_namespace(name, notify=False)
        elif packet.packet_type == sio.EVENT:
            if len(text) > MAX_FRAME_BYTES // 4 and len(text.encode()) > MAX_FRAME_BYTES:
                data = packet.data
                event = data[0] if isinstance(data, list) and data and isinstance(data[0], str) else None
                await self._refuse(name, packet.id, event, error_body(frame_too_large_error()))
                return
            await self.event(name, packet.id, packet.data)
        # ACK: we never ask the client for one; nothing to do.

    async def connect_namespace(self, name: str, data: Any) -> None:
        cls = self.classes.get(name)
        if cls is None:
            await self.send([protocol.connect_error_packet(name, "Invalid namespace")])
            return
        if name in self.slots:  # already connected (a client's retry): answer again
            await self.send([protocol.connect_packet(name, self.slots[name].nsid)], namespace=name)
            return
        token = data.get("token") if isinstance(data, dict) else None
        try:
            claimed = await self.authenticate(token)
        except ApplicationError as exc:
            await self.send([protocol.connect_error_packet(name, exc.message, exc.code)])
            return
        conn = await self.make_connection(name, claimed.user, claimed.claims)
        namespace = cls(conn)
        slot = Slot(name=name, nsid="", namespace=namespace, conn=conn, expires=claimed.exp)
        self.slots[name] = slot
        try:
            await namespace.on_connect()
        except Exception as exc:
            self.slots.pop(name, None)
            await self._release(slot)
            body = error_body(exc) if isinstance(exc, ApplicationError) else unexpected_error_body(exc)
            await self.send([protocol.connect_error_packet(name, body["message"], body["code"])])
            return
        slot.nsid = secrets.token_urlsafe(15)
        waiting, slot.connecting = slot.connecting, []
        await self.send([protocol.connect_packet(name, slot.nsid), *waiting], namespace=name)
        await self.slot_changed(slot, name)

    async def authenticate(self, token: str | None) -> Claimed:
        from accounts.middleware import authenticate_token
        from accounts.tokens import TokenError

        if token is None and self.handshake is not None:
            return self.handshake
        if not token or not isinstance(token, str):
            raise ApplicationError("token_missing", "Jeton d'accès manquant.")
        try:
            user, claims = await authenticate_token(token)
        except TokenError as exc:
            raise ApplicationError(exc.code, exc.message) from exc
        return Claimed(user=user, claims=claims, exp=expires_at(claims))

    async def event(self, name: str, ack_id: int | None, data: Any) -> None:
        slot = self.slots.get(name)
        if slot is None:
            # As the reference server: a packet for a namespace that is not connected is an
            # invalid state, and the connection is closed.
            raise ProtocolError(protocol.BAD_REQUEST, f"event for {name}, which is not connected")
        event = data[0] if isinstance(data, list) and data and isinstance(data[0], str) else None
        metrics.ws_received(metric_namespace(name), event, slot.namespace.handled_events)
        try:
            if slot.expired():
                await self.disconnect_namespace(name, notify=True)
                return
            if await self.over_budget(name):
                raise rate_limited_error()
            if event is None:
                raise ApplicationError("invalid_frame", 'An event is ["name", data].')
            args = data[1] if len(data) > 1 else {}
            result = await slot.namespace.handle(event, args)
        except ApplicationError as exc:
            await self._refuse(name, ack_id, event, error_body(exc))
            return
        except Exception as exc:
            await self._refuse(name, ack_id, event, unexpected_error_body(exc))
            return
        if ack_id is not None:
            count_sent(name, "ack")
            await self.send([protocol.ack_packet(name, ack_id, result)], namespace=name)
        await self.slot_changed(slot, name)

    async def _refuse(self, name: str, ack_id: int | None, event: str | None, error: dict[str, Any]) -> None:
        if ack_id is not None:
            packet = protocol.ack_packet(name, ack_id, {"error": error})
        else:
            packet = protocol.event_packet(name, "error", {"event": event, "error": error})
        count_sent(name, "ack" if ack_id is not None else "error")
        await self.send([packet], namespace=name if name in self.slots else None)

    async def disconnect_namespace(self, name: str, *, notify: bool) -> None:
        slot = self.slots.pop(name, None)
        if slot is None:
            return
        try:
            await slot.namespace.on_disconnect()
        except Exception:
            log.exception("on_disconnect of %s failed", name)
        await self._release(slot)
        if notify:
            await self.send([protocol.disconnect_packet(name)])
        await self.slot_changed(None, name)

    async def _release(self, slot: Slot) -> None:
        if getattr(slot.conn, "tracked", False):
            await slot.conn.untrack_presence()
        await slot.namespace.leave_all()

    async def disconnect_expired(self) -> None:
        for name in [n for n, slot in self.slots.items() if slot.expired()]:
            await self.disconnect_namespace(name, notify=True)

    async def close(self) -> None:
        """The session ends (client gone, closed, expired): every namespace disconnects."""
        for name in list(self.slots):
            await self.disconnect_namespace(name, notify=False)


# --- metrics (emploiplus.metrics: the same families as /ws/, namespace without its slash) ------
def metric_namespace(name: str) -> str:
    return name.strip("/") or "_root"


def count_sent(name: str, event: Any) -> None:
    metrics.ws_sent(metric_namespace(name), event)
