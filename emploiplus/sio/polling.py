"""Engine.IO long-polling over HTTP, served by any process (no sticky sessions).

Nothing of a polling session lives in a process's memory between requests:

- the session: a Redis hash `<prefix>:sio:s:<sid>` — its transport state (`polling`,
  `upgrading`), the handshake's identity, and per connected namespace its socket id, user,
  token expiry, presence flag and the namespace's state (`Namespace.state()`);
- the packets waiting for the client: plain channel-layer channels, one per namespace
  (`sio.<sid>.<namespace>`, which the namespace's groups deliver to, and where its acks go
  after its events) and one for the engine (`sio.<sid>.engine`: NOOP, CLOSE);
- its deadline: a sorted set `<prefix>:sio:sessions` scored by the time the session dies if
  the client goes quiet (SOCKETIO_PING_INTERVAL + SOCKETIO_PING_TIMEOUT after its last
  request). Every process runs a sweeper that claims dead sessions (ZREM decides who) and
  cleans them up: namespaces disconnected (`user_left`, presence), groups left, every key
  deleted.

Requests:
- `GET` without `sid`: the handshake — a new session, answered with the OPEN packet;
- `GET ?sid=`: a long poll: whatever waits, or a PING after SOCKETIO_PING_INTERVAL; one at a
  time per session (a second concurrent GET closes the session and answers 400, as the
  reference server does); presence of the session is refreshed while it waits;
- `POST ?sid=`: packets from the client (PONG, Socket.IO MESSAGEs, CLOSE), one POST at a time,
  at most SOCKETIO_MAX_PAYLOAD bytes (413 and the session closed otherwise); answered `ok`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from typing import Any
from urllib.parse import parse_qs

from channels.layers import get_channel_layer
from django.conf import settings

from emploiplus import effects
from emploiplus.sio import protocol
from emploiplus.sio.protocol import ProtocolError
from emploiplus.sio.session import NAMESPACE_KEYS, Claimed, Session, Slot, count_sent

log = logging.getLogger(__name__)

POLL_SLICE_SECONDS = 5.0  # a long poll wakes up this often to refresh its session's presence


# --- keys ------------------------------------------------------------------------------------
def _key(*parts: object) -> str:
    from emploiplus.redis import key

    return key("sio", *parts)


def session_key(sid: str) -> str:
    return _key("s", sid)


def sessions_index() -> str:
    return _key("sessions")


def lock_key(sid: str, kind: str) -> str:
    return _key(kind, sid)


def budget_key(sid: str, name: str) -> str:
    return _key("budget", sid, NAMESPACE_KEYS.get(name, "x"))


def engine_channel(sid: str) -> str:
    return f"sio.{sid}.engine"


def namespace_channel(sid: str, name: str) -> str:
    return f"sio.{sid}.{NAMESPACE_KEYS[name]}"


def all_channels(sid: str) -> list[str]:
    return [engine_channel(sid), *(f"sio.{sid}.{k}" for k in NAMESPACE_KEYS.values())]


def session_lifetime() -> float:
    return protocol.ping_interval() + protocol.ping_timeout()


def _redis():
    from messaging.presence import _aredis

    return _aredis()


# --- a namespace connection of a polling session -----------------------------------------------
class StubClaims:
    def __init__(self, exp: float | None) -> None:
        self.exp = exp


class PollingConnection:
    """The Connection (emploiplus.realtime) of a namespace of a long-polling session."""

    def __init__(self, session: PollingSession, name: str, user: Any, claims: Any) -> None:
        self.session = session
        self.name = name
        self.user = user
        self.claims = claims
        self.channel_name = namespace_channel(session.sid, name)
        self.connection_id = self.channel_name
        self.tracked = False

    async def join(self, groups: list[str]) -> None:
        await effects.group_add_many(self.channel_name, groups)

    async def leave(self, groups: list[str]) -> None:
        await effects.group_discard_many(self.channel_name, groups)

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        await self.session.emit(self.name, event, data)

    async def track_presence(self) -> None:
        from messaging import presence

        await presence.touch(user_id=self.user.pk, email=self.user.email or "", connection_ids=[self.connection_id])
        self.tracked = True

    async def untrack_presence(self) -> None:
        from messaging import presence

        self.tracked = False
        try:
            await presence.disconnect(user_id=self.user.pk, connection_id=self.connection_id)
        except Exception:
            log.warning("presence disconnect failed", exc_info=True)


# --- the session, as stored ----------------------------------------------------------------------
def _stub_user(record: dict[str, Any]):
    """The user of a namespace record, without a query (a long poll only filters events)."""
    from accounts.models import User

    return User(id=record["u"], email=record.get("email") or None, role=record.get("role") or "candidate")


def _load_user(*, user_id: str):
    from accounts.models import User

    return User.objects.filter(pk=user_id, is_active=True).first()


class PollingSession(Session):
    transport = "polling"

    def __init__(self, sid: str, *, handshake: Claimed | None = None) -> None:
        super().__init__(sid, handshake=handshake)
        self.outbox: dict[str, list[str]] = {}
        self.changed: dict[str, dict[str, Any] | None] = {}

    async def make_connection(self, name: str, user: Any, claims: Any) -> PollingConnection:
        return PollingConnection(self, name, user, claims)

    async def send(self, packets: list[str], *, namespace: str | None = None) -> None:
        channel = namespace_channel(self.sid, namespace) if namespace else engine_channel(self.sid)
        self.outbox.setdefault(channel, []).extend(packets)

    async def over_budget(self, name: str) -> bool:
        r = _redis()
        async with r.pipeline(transaction=False) as pipe:
            pipe.incr(budget_key(self.sid, name))
            pipe.expire(budget_key(self.sid, name), 10, nx=True)
            count, _ = await pipe.execute()
        return int(count) > settings.WS_EVENTS_PER_10_SECONDS

    async def slot_changed(self, slot: Slot | None, name: str) -> None:
        self.changed[name] = None if slot is None else self.record_of(slot)

    @staticmethod
    def record_of(slot: Slot) -> dict[str, Any]:
        user = slot.conn.user
        return {
            "nsid": slot.nsid,
            "u": str(user.pk),
            "email": user.email or "",
            "role": user.role,
            "exp": slot.expires,
            "tracked": slot.conn.tracked,
            "state": slot.namespace.state(),
        }

    async def restore(self, records: dict[str, dict[str, Any]], *, load_users: bool) -> None:
        """Rebuild the connected namespaces from their records (users from the database when
        the request may act, stubs when it only delivers)."""
        for name, record in records.items():
            cls = self.classes.get(name)
            if cls is None:
                continue
            if load_users:
                user = await effects.run_sync(_load_user, user_id=record["u"])
                if user is None:  # deactivated meanwhile: the namespace ends
                    user = _stub_user(record)
                    record = {**record, "exp": 0}
            else:
                user = _stub_user(record)
            conn = PollingConnection(self, name, user, StubClaims(record.get("exp")))
            conn.tracked = bool(record.get("tracked"))
            namespace = cls(conn)
            namespace.restore(record.get("state") or {})
            self.slots[name] = Slot(
                name=name, nsid=record["nsid"], namespace=namespace, conn=conn, expires=record.get("exp")
            )

    async def flush(self) -> None:
        """Send what this request produced to the session's channels, save what changed."""
        layer = get_channel_layer()
        outbox, self.outbox = self.outbox, {}
        for channel, packets in outbox.items():
            await layer.send(channel, {"type": "sio.packets", "p": packets})
        if self.changed:
            changed, self.changed = self.changed, {}
            gone = [f"ns:{n}" for n, rec in changed.items() if rec is None]
            kept = {f"ns:{n}": json.dumps(rec) for n, rec in changed.items() if rec is not None}
            async with _redis().pipeline(transaction=False) as pipe:
                if kept:
                    pipe.hset(session_key(self.sid), mapping=kept)
                if gone:
                    pipe.hdel(session_key(self.sid), *gone)
                await pipe.execute()


async def load(sid: str) -> dict[str, Any] | None:
    raw = await _redis().hgetall(session_key(sid))
    if not raw:
        return None
    record = {k.decode(): v.decode() for k, v in raw.items()}
    return {
        "transport": record.get("t", "polling"),
        "handshake": json.loads(record["h"]) if record.get("h") else None,
        "namespaces": {k[3:]: json.loads(v) for k, v in record.items() if k.startswith("ns:")},
    }


async def refresh(sid: str) -> None:
    lifetime = session_lifetime()
    async with _redis().pipeline(transaction=False) as pipe:
        pipe.zadd(sessions_index(), {sid: time.time() + lifetime})
        pipe.expire(session_key(sid), int(lifetime) + 60)
        await pipe.execute()


async def handshake_claimed(record: dict[str, Any]) -> Claimed | None:
    handshake = record.get("handshake")
    if not handshake:
        return None
    exp = handshake.get("exp")
    if exp is not None and time.time() >= exp:
        return None
    user = await effects.run_sync(_load_user, user_id=handshake["u"])
    return None if user is None else Claimed(user=user, claims=StubClaims(exp), exp=exp)


async def create(*, handshake: Claimed | None) -> str:
    sid = protocol.new_sid()
    fields = {"t": "polling"}
    if handshake is not None:
        fields["h"] = json.dumps({"u": str(handshake.user.pk), "exp": handshake.exp})
    async with _redis().pipeline(transaction=False) as pipe:
        pipe.hset(session_key(sid), mapping=fields)
        await pipe.execute()
    await refresh(sid)
    return sid


async def destroy(sid: str, record: dict[str, Any] | None = None) -> None:
    """End a polling session: namespaces disconnected, groups left, every key deleted."""
    record = record if record is not None else await load(sid)
    if record is not None and record["transport"] != "websocket":
        session = PollingSession(sid)
        await session.restore(record["namespaces"], load_users=False)
        with contextlib.suppress(Exception):
            await session.close()
    await destroy_keys(sid)


async def destroy_keys(sid: str) -> None:
    """Every Redis key of a polling session (its namespaces are ended or moved already)."""
    r = _redis()
    async with r.pipeline(transaction=False) as pipe:
        pipe.zrem(sessions_index(), sid)
        pipe.delete(
            session_key(sid),
            lock_key(sid, "get"),
            lock_key(sid, "post"),
            *(budget_key(sid, n) for n in NAMESPACE_KEYS),
        )
        await pipe.execute()
    await effects.delete_channels(all_channels(sid))


async def close(sid: str) -> None:
    """The client closed (or broke the protocol): wake its long poll with CLOSE, end it."""
    with contextlib.suppress(Exception):
        await get_channel_layer().send(engine_channel(sid), {"type": "sio.close"})
    await destroy(sid)


# --- the sweeper: one task per process and event loop ----------------------------------------------
_sweepers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task] = weakref.WeakKeyDictionary()


def ensure_sweeper() -> None:
    loop = asyncio.get_running_loop()
    task = _sweepers.get(loop)
    if task is None or task.done():
        _sweepers[loop] = loop.create_task(_sweep_forever(), name="socketio-sweeper")


async def sweep_once(now: float | None = None) -> list[str]:
    """Claim and destroy the polling sessions whose deadline passed."""
    now = now or time.time()
    r = _redis()
    due = await r.zrangebyscore(sessions_index(), "-inf", now, start=0, num=100)
    ended = []
    for raw in due:
        sid = raw.decode()
        if await r.zrem(sessions_index(), sid):  # claimed by this process
            await destroy(sid)
            ended.append(sid)
    if ended:
        log.info("socket.io: %d silent polling session(s) ended: %s", len(ended), ", ".join(ended))
    return ended


async def _sweep_forever() -> None:
    while True:
        await asyncio.sleep(max(0.2, min(5.0, session_lifetime() / 4)))
        try:
            await sweep_once()
        except Exception:
            log.warning("socket.io sweeper failed", exc_info=True)


# --- HTTP ------------------------------------------------------------------------------------------
async def _read_body(receive, limit: int) -> bytes | None:
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client gone")
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            return bytes(body)


def _cors_headers(scope) -> list[tuple[bytes, bytes]]:
    from accounts.middleware import _headers, origin_allowed

    origin = _headers(scope).get("origin")
    if origin and origin_allowed(origin):
        return [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"access-control-allow-credentials", b"true"),
            (b"vary", b"Origin"),
        ]
    return []


async def _respond(send, status: int, body: bytes | str, *, content_type: bytes, extra=()) -> None:
    data = body.encode() if isinstance(body, str) else body
    headers = [(b"content-type", content_type), (b"content-length", str(len(data)).encode()), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


TEXT = b"text/plain; charset=UTF-8"


async def http_app(scope, receive, send) -> None:
    """The ASGI app of `/socket.io/` HTTP requests (emploiplus.asgi routes them here)."""
    ensure_sweeper()
    cors = _cors_headers(scope)
    try:
        status, body, content_type = await _handle(scope, receive)
    except ProtocolError as exc:
        if exc.detail:
            log.info("socket.io request refused: %s (%s)", exc.message, exc.detail)
        status, body, content_type = exc.status, exc.body(), b"application/json"
    except ConnectionError:
        return
    await _respond(send, status, body, content_type=content_type, extra=cors)


async def _handle(scope, receive) -> tuple[int, bytes | str, bytes]:
    from accounts.middleware import _headers, origin_allowed

    method = scope["method"]
    if method == "OPTIONS":
        return 204, b"", TEXT
    headers = _headers(scope)
    origin = headers.get("origin")
    if origin is not None and not origin_allowed(origin):
        raise ProtocolError(protocol.FORBIDDEN, f"origin {origin!r} not allowed")
    query = {k: v[0] for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()}
    if query.get("EIO") != "4":
        raise ProtocolError(protocol.UNSUPPORTED_PROTOCOL_VERSION)
    if query.get("transport") != "polling":
        raise ProtocolError(protocol.TRANSPORT_UNKNOWN)
    sid = query.get("sid")
    if sid is None:
        if method != "GET":
            raise ProtocolError(protocol.BAD_HANDSHAKE_METHOD)
        return 200, await _handshake(scope), TEXT
    record = await load(sid)
    if record is None:
        raise ProtocolError(protocol.SESSION_ID_UNKNOWN)
    if record["transport"] == "websocket":
        raise ProtocolError(protocol.BAD_REQUEST, "the session was upgraded to websocket")
    if method == "GET":
        return 200, await _poll(sid, record), TEXT
    if method == "POST":
        limit = settings.SOCKETIO_MAX_PAYLOAD
        body = await _read_body(receive, limit)
        if body is None:
            await close(sid)
            return (
                413,
                json.dumps({"code": protocol.BAD_REQUEST[0], "message": "Payload too large"}),
                b"application/json",
            )
        await _post(sid, record, body)
        return 200, "ok", b"text/html"
    raise ProtocolError(protocol.BAD_REQUEST, f"method {method}")


async def _handshake(scope) -> str:
    from accounts.middleware import authenticate_token, token_from_scope
    from accounts.tokens import TokenError
    from emploiplus.realtime import expires_at

    token, _subprotocol = token_from_scope(scope)
    handshake = None
    if token:
        with contextlib.suppress(TokenError):
            user, claims = await authenticate_token(token)
            handshake = Claimed(user=user, claims=claims, exp=expires_at(claims))
    sid = await create(handshake=handshake)
    return protocol.open_packet(sid, upgrades=["websocket"])


async def _poll(sid: str, record: dict[str, Any]) -> str:
    r = _redis()
    if not await r.set(lock_key(sid, "get"), "1", nx=True, ex=int(protocol.ping_interval()) + 10):
        await close(sid)
        raise ProtocolError(protocol.BAD_REQUEST, "a second long poll while one is pending")
    try:
        await refresh(sid)
        session = PollingSession(sid)
        await session.restore(record["namespaces"], load_users=False)
        if any(slot.expired() for slot in session.slots.values()):  # a token ran out: its namespace ends
            await session.disconnect_expired()
            await session.flush()
        # Every channel the session may use: a namespace may connect (by a POST) while we wait.
        channels = all_channels(sid)
        deadline = time.monotonic() + protocol.ping_interval()
        packets: list[str] = []
        while True:
            await _touch_presence(session)
            wait = min(POLL_SLICE_SECONDS, deadline - time.monotonic())
            drained = await effects.drain_channels(channels, wait=max(0.0, wait))
            packets = await _packets_of(session, drained)
            if packets or time.monotonic() >= deadline:
                break
            if not await r.exists(session_key(sid)):  # closed meanwhile (by another request)
                packets = [protocol.EIO_CLOSE]
                break
        if packets != [protocol.EIO_CLOSE]:
            await refresh(sid)
        return protocol.encode_payload(packets or [protocol.EIO_PING])
    finally:
        await r.delete(lock_key(sid, "get"))


async def _touch_presence(session: PollingSession) -> None:
    from messaging import presence

    by_user: dict[str, tuple[str, list[str]]] = {}
    for slot in session.slots.values():
        if slot.conn.tracked:
            by_user.setdefault(str(slot.conn.user.pk), (slot.conn.user.email or "", []))[1].append(
                slot.conn.connection_id
            )
    for uid, (email, ids) in by_user.items():
        await presence.touch(user_id=uid, email=email, connection_ids=ids)


async def _packets_of(session: PollingSession, drained: list[tuple[str, dict]]) -> list[str]:
    """Channel messages → Engine.IO packets for the client (events filtered by their namespace)."""
    by_channel = {namespace_channel(session.sid, n): s for n, s in session.slots.items()}
    packets: list[str] = []
    for channel, message in drained:
        if message.get("type") == "emploiplus.event" and channel not in by_channel:
            # A namespace that connected while this poll waited: read it (once).
            record = await load(session.sid)
            if record is not None:
                session.slots.clear()
                await session.restore(record["namespaces"], load_users=False)
                by_channel = {namespace_channel(session.sid, n): s for n, s in session.slots.items()}
        kind = message.get("type")
        if kind == "sio.packets":
            packets.extend(message["p"])
        elif kind == "sio.noop":
            packets.append(protocol.EIO_NOOP)
        elif kind == "sio.close":
            packets.append(protocol.EIO_CLOSE)
        elif kind == "emploiplus.event":
            slot = by_channel.get(channel)
            if slot is not None and slot.namespace.wants(message):
                count_sent(slot.name, message["event"])
                packets.append(protocol.event_packet(slot.name, message["event"], message["data"]))
    return packets


async def _post(sid: str, record: dict[str, Any], body: bytes) -> None:
    r = _redis()
    if not await r.set(lock_key(sid, "post"), "1", nx=True, ex=30):
        await close(sid)
        raise ProtocolError(protocol.BAD_REQUEST, "overlapping POST")
    try:
        await refresh(sid)
        try:
            text = body.decode()
        except UnicodeDecodeError as exc:
            raise ProtocolError(protocol.BAD_REQUEST, "payload is not UTF-8") from exc
        packets = [protocol.decode_engine(p) for p in protocol.decode_payload(text)]
        session = PollingSession(sid, handshake=await handshake_claimed(record))
        await session.restore(record["namespaces"], load_users=True)
        await session.disconnect_expired()
        closing = False
        try:
            for packet in packets:
                if packet.packet_type == protocol.eio.MESSAGE and isinstance(packet.data, str):
                    await session.handle_message(packet.data)
                elif packet.packet_type == protocol.eio.CLOSE:
                    closing = True
                    break
                elif packet.packet_type not in (protocol.eio.PONG,):
                    raise ProtocolError(protocol.BAD_REQUEST, f"unexpected packet {packet.packet_type} over polling")
        finally:
            await session.flush()
        if closing:
            await close(sid)
    except ProtocolError:
        await close(sid)
        raise
    finally:
        await r.delete(lock_key(sid, "post"))
