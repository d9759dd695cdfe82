"""Engine.IO over WebSocket: a new session (`transport=websocket`), or the upgrade of a
long-polling one (`&sid=`).

The session lives in the process that holds the socket, as a `/ws/` consumer does: each
connected namespace has a process-local channel (the process's one channel-layer receive loop
serves them all) and a task forwarding what arrives there. The server pings every
SOCKETIO_PING_INTERVAL; a client that does not answer within SOCKETIO_PING_TIMEOUT is closed.

Upgrade (Engine.IO v4): the client sends `2probe`, we answer `3probe` and wake its pending
long poll with a NOOP (so it can pause polling), then it sends `5`. Then the session moves
here: the transport is marked `websocket` (polling requests for it are refused), its
namespaces are rebuilt from their stored state, their groups joined with the new channels and
left by the plain ones, what still waited on the plain channels is sent first, and frames that
reached both channels while the groups moved are dropped the second time (by frame id). The
Redis keys of the polling session are then deleted.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from emploiplus import effects, metrics
from emploiplus.consumers import (
    dispatch_without_connection_hop,
    handle_client_frames,
    send_or_drop,
    serve_until_stopped,
)
from emploiplus.realtime import EventWindow, expires_at
from emploiplus.sio import polling, protocol
from emploiplus.sio.protocol import ProtocolError
from emploiplus.sio.session import NAMESPACE_KEYS, Claimed, Session, Slot, count_sent, metric_namespace

log = logging.getLogger(__name__)

CLOSE_PROTOCOL_ERROR = 1002
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_GOING_AWAY = 1001


class WebSocketConnection:
    """The Connection (emploiplus.realtime) of a namespace on this socket."""

    def __init__(self, host: SocketIOConsumer, name: str, user: Any, claims: Any, channel: str) -> None:
        self.host = host
        self.name = name
        self.user = user
        self.claims = claims
        self.channel_name = channel
        self.connection_id = f"sio.{host.sid}.{NAMESPACE_KEYS[name]}"
        self.tracked = False
        self.window = EventWindow()
        self.seen_twice: set[str] = set()  # frame ids delivered from the plain channel at upgrade

    async def join(self, groups: list[str]) -> None:
        await effects.group_add_many(self.channel_name, groups)

    async def leave(self, groups: list[str]) -> None:
        await effects.group_discard_many(self.channel_name, groups)

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        await self.host.session.emit(self.name, event, data)

    async def track_presence(self) -> None:
        from messaging import presence

        await presence.connect(user_id=self.user.pk, email=self.user.email or "", connection_id=self.connection_id)
        self.tracked = True

    async def untrack_presence(self) -> None:
        from messaging import presence

        self.tracked = False
        try:
            await presence.disconnect(user_id=self.user.pk, connection_id=self.connection_id)
        except Exception:
            log.warning("presence disconnect failed", exc_info=True)


class WebSocketSession(Session):
    transport = "websocket"

    def __init__(self, host: SocketIOConsumer, sid: str, *, handshake: Claimed | None) -> None:
        super().__init__(sid, handshake=handshake)
        self.host = host
        self.readers: dict[str, asyncio.Task] = {}
        self.expiries: dict[str, asyncio.Task] = {}
        self.counted: set[str] = set()  # namespaces in emploiplus_websocket_connections

    async def make_connection(self, name: str, user: Any, claims: Any) -> WebSocketConnection:
        # The default prefix: channels_redis receives every process-local channel through one key.
        channel = await get_channel_layer().new_channel()
        conn = WebSocketConnection(self.host, name, user, claims, channel)
        self.readers[name] = asyncio.ensure_future(self._forward(name, conn))
        return conn

    async def _forward(self, name: str, conn: WebSocketConnection) -> None:
        """What the namespace's groups deliver to its channel → events for the client."""
        layer = get_channel_layer()
        while True:
            try:
                message = await layer.receive(conn.channel_name)
            except Exception as exc:  # Redis gone (emploiplus.effects.ChannelLayer): the socket ends
                self.host.channel_failed(exc)
                return
            slot = self.slots.get(name)
            if slot is None or slot.conn is not conn:
                continue
            fid = message.get("fid")
            if conn.seen_twice and fid in conn.seen_twice:
                conn.seen_twice.discard(fid)
                continue
            try:
                await self.deliver(slot, message)
            except Exception:
                log.exception("socket.io: delivery to %s failed", name)

    async def deliver(self, slot: Slot, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "emploiplus.event":
            if slot.namespace.wants(message):
                count_sent(slot.name, message["event"])
                await self.host.send_text(protocol.event_packet(slot.name, message["event"], message["data"]))
        elif kind == "sio.packets":
            for packet in message["p"]:
                await self.host.send_text(packet)

    async def send(self, packets: list[str], *, namespace: str | None = None) -> None:
        for packet in packets:
            await self.host.send_text(packet)

    async def over_budget(self, name: str) -> bool:
        slot = self.slots.get(name)
        return slot is not None and slot.conn.window.over()

    async def slot_changed(self, slot: Slot | None, name: str) -> None:
        if slot is not None and name not in self.counted:
            self.counted.add(name)
            metrics.WS_CONNECTIONS.labels(metric_namespace(name)).inc()
        elif slot is None and name in self.counted:
            self.counted.discard(name)
            metrics.WS_CONNECTIONS.labels(metric_namespace(name)).dec()
        if slot is not None and slot.expires is not None and name not in self.expiries:
            self.expiries[name] = asyncio.ensure_future(self._expire(name, slot.expires))

    async def _expire(self, name: str, when: float) -> None:
        """The token's expiry disconnects its namespace (as `/ws/` closes with 4401)."""
        await asyncio.sleep(max(0.0, when - time.time()))
        self.expiries.pop(name, None)
        await self.disconnect_namespace(name, notify=True)

    async def disconnect_namespace(self, name: str, *, notify: bool) -> None:
        await super().disconnect_namespace(name, notify=notify)
        for tasks in (self.readers, self.expiries):
            task = tasks.pop(name, None)
            if task is not None and task is not asyncio.current_task():
                task.cancel()

    async def adopt(self, sid: str, record: dict[str, Any]) -> None:
        """Take over the namespaces of an upgraded polling session (see the module docstring)."""
        from emploiplus.sio.polling import StubClaims, _load_user, _stub_user, namespace_channel

        for name, rec in record["namespaces"].items():
            cls = self.classes.get(name)
            if cls is None:
                continue
            user = await effects.run_sync(_load_user, user_id=rec["u"]) or _stub_user(rec)
            conn = await self.make_connection(name, user, StubClaims(rec.get("exp")))
            namespace = cls(conn)
            namespace.restore(rec.get("state") or {})
            slot = Slot(name=name, nsid=rec["nsid"], namespace=namespace, conn=conn, expires=rec.get("exp"))
            groups = sorted(namespace.groups)
            plain = namespace_channel(sid, name)
            await effects.group_add_many(conn.channel_name, groups)  # from now on frames reach both…
            await effects.group_discard_many(plain, groups)  # …and from now on only the new one
            self.slots[name] = slot
            await self.slot_changed(slot, name)
            for _channel, message in await effects.drain_channels([plain], wait=0, most=10_000):
                if message.get("fid"):
                    conn.seen_twice.add(message["fid"])
                await self.deliver(slot, message)
            if rec.get("tracked"):
                await conn.track_presence()  # this process heartbeats it from now on
            if conn.seen_twice:
                asyncio.get_running_loop().call_later(10, conn.seen_twice.clear)


class SocketIOConsumer(AsyncWebsocketConsumer):
    """`/socket.io/?EIO=4&transport=websocket[&sid=…]`."""

    async def connect(self) -> None:
        self.session: WebSocketSession | None = None
        self.upgrading_sid: str | None = None
        self._send_lock = asyncio.Lock()
        self._pinger: asyncio.Task | None = None
        self._last_pong = time.monotonic()
        query = {k: v[0] for k, v in parse_qs(self.scope.get("query_string", b"").decode("latin-1")).items()}
        if query.get("EIO") != "4" or query.get("transport") != "websocket":
            await self.close(code=CLOSE_PROTOCOL_ERROR)
            return
        handshake = None
        if self.scope.get("user") is not None:
            claims = self.scope.get("claims")
            handshake = Claimed(user=self.scope["user"], claims=claims, exp=expires_at(claims))
        sid = query.get("sid")
        if sid:
            record = await polling.load(sid)
            if record is None or record["transport"] == "websocket":
                await self.close(code=CLOSE_PROTOCOL_ERROR)
                return
            self.upgrading_sid = sid
            self.sid = sid
            self.session = WebSocketSession(self, sid, handshake=await polling.handshake_claimed(record) or handshake)
            await self.accept()
            return
        self.sid = protocol.new_sid()
        self.session = WebSocketSession(self, self.sid, handshake=handshake)
        await self.accept()
        await self.send_text(protocol.open_packet(self.sid, upgrades=[]))
        self._start_pinging()

    def _start_pinging(self) -> None:
        self._pinger = asyncio.ensure_future(self._ping())

    async def _ping(self) -> None:
        interval, timeout = protocol.ping_interval(), protocol.ping_timeout()
        while True:
            await asyncio.sleep(interval)
            sent = time.monotonic()
            await self.send_text(protocol.EIO_PING)
            await asyncio.sleep(timeout)
            if self._last_pong < sent:
                log.info("socket.io: no pong within %s s, closing %s", timeout, self.sid)
                await self.close(code=CLOSE_GOING_AWAY)
                await self._end()
                return
            await asyncio.sleep(max(0.0, interval - timeout))

    async def send_text(self, text: str) -> None:
        async with self._send_lock:
            if not await send_or_drop(self, text):
                log.debug("socket.io packet dropped: the client is gone")

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.session is None:
            return
        if text_data is None:
            await self.close(code=CLOSE_PROTOCOL_ERROR)
            return
        if (
            len(text_data) > settings.SOCKETIO_MAX_PAYLOAD // 4
            and len(text_data.encode()) > settings.SOCKETIO_MAX_PAYLOAD
        ):
            await self.close(code=CLOSE_MESSAGE_TOO_BIG)
            return
        try:
            if self.upgrading_sid is not None:
                await self._upgrade_step(text_data)
                return
            packet = protocol.decode_engine(text_data)
            kind = packet.packet_type
            if kind == protocol.eio.MESSAGE and isinstance(packet.data, str):
                await self.session.handle_message(packet.data)
            elif kind == protocol.eio.PONG:
                self._last_pong = time.monotonic()
            elif kind == protocol.eio.CLOSE:
                await self.close()
            elif kind == protocol.eio.PING:  # not sent by v4 clients; answer anyway
                await self.send_text(protocol.EIO_PONG + (packet.data if isinstance(packet.data, str) else ""))
            else:
                raise ProtocolError(protocol.BAD_REQUEST, f"unexpected packet {kind}")
        except ProtocolError as exc:
            log.info("socket.io websocket closed: %s", exc)
            await self.close(code=CLOSE_PROTOCOL_ERROR)

    async def _upgrade_step(self, text: str) -> None:
        sid = self.upgrading_sid
        if text == protocol.PROBE_PING:
            await self.send_text(protocol.PROBE_PONG)
            r = polling._redis()
            await r.hset(polling.session_key(sid), "t", "upgrading")
            await polling.refresh(sid)
            # Wake the pending long poll so the client can pause polling and send "5".
            await get_channel_layer().send(polling.engine_channel(sid), {"type": "sio.noop"})
            return
        if text != protocol.EIO_UPGRADE:
            raise ProtocolError(protocol.BAD_REQUEST, "expected the upgrade packet")
        record = await polling.load(sid)
        if record is None:
            raise ProtocolError(protocol.SESSION_ID_UNKNOWN)
        r = polling._redis()
        async with r.pipeline(transaction=False) as pipe:
            pipe.hset(polling.session_key(sid), "t", "websocket")
            pipe.zrem(polling.sessions_index(), sid)  # no sweeper ends it now: this socket owns it
            await pipe.execute()
        # Engine-level packets the last poll did not take (a CONNECT_ERROR answered to a POST
        # after the poll returned with the NOOP) go first, then the namespaces'.
        for _channel, message in await effects.drain_channels([polling.engine_channel(sid)], wait=0, most=1_000):
            if message.get("type") == "sio.packets":
                for packet in message["p"]:
                    await self.send_text(packet)
        await self.session.adopt(sid, record)
        with contextlib.suppress(Exception):
            await get_channel_layer().send(polling.engine_channel(sid), {"type": "sio.noop"})
        await polling.destroy_keys(sid)
        self.upgrading_sid = None
        self._start_pinging()

    async def _serve(self, scope, receive, send) -> None:
        """Channels' `AsyncConsumer.__call__` without its channel: what the channel layer
        delivers reaches a namespace's own channel (`WebSocketSession._forward`), so this
        consumer needs none, nor `await_many_dispatch`'s task per client frame
        (emploiplus.consumers.handle_client_frames)."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.base_send = send
        self._task = asyncio.current_task()
        self._channel_failed: BaseException | None = None
        await handle_client_frames(self, receive)

    def channel_failed(self, error: BaseException) -> None:
        """A namespace's channel could not be received (Redis gone): the consumer ends with
        that error, as /ws/ does (emploiplus.consumers), so the client reconnects and joins
        its groups again rather than staying connected and deaf."""
        if self._channel_failed is None:
            self._channel_failed = error
            self._task.cancel()

    async def disconnect(self, code: int) -> None:
        await self._end()

    async def dispatch(self, message: dict[str, Any]) -> None:
        await dispatch_without_connection_hop(self, message)

    async def _end(self) -> None:
        if self._pinger is not None and self._pinger is not asyncio.current_task():
            self._pinger.cancel()
        session, self.session = self.session, None
        if session is not None:
            await session.close()
            for task in [*session.readers.values(), *session.expiries.values()]:
                task.cancel()
        if self.upgrading_sid is not None:  # an upgrade that never finished: polling goes on
            with contextlib.suppress(Exception):
                await polling._redis().hset(polling.session_key(self.upgrading_sid), "t", "polling")

    async def __call__(self, scope, receive, send):
        await serve_until_stopped(self, self._serve(scope, receive, send), stopping=self._stopping, failed=self._end)

    async def _stopping(self) -> None:
        """The server stops: namespaces disconnect, the client gets 1001."""
        with contextlib.suppress(Exception):
            await self._end()
        await self.close(code=CLOSE_GOING_AWAY)
