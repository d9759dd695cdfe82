"""Engine.IO v4 / Socket.IO v5 packets and the protocol's errors.

Encoding and decoding are python-engineio's and python-socketio's (`engineio.packet`,
`socketio.packet`); what is here is the glue: our packet strings, the handshake, limits.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from django.conf import settings
from engineio import json as eio_json
from engineio import packet as eio
from socketio import packet as sio

# Engine.IO packet types (one character) and the probe exchange of an upgrade.
EIO_OPEN, EIO_CLOSE, EIO_PING, EIO_PONG, EIO_MESSAGE, EIO_UPGRADE, EIO_NOOP = "0123456"
PROBE_PING, PROBE_PONG = "2probe", "3probe"
RECORD_SEPARATOR = "\x1e"  # between packets of a long-polling payload
MAX_PACKETS_PER_PAYLOAD = 1000

# The Engine.IO errors (HTTP 400, or 403 for Forbidden), as the reference server answers them.
TRANSPORT_UNKNOWN = (0, "Transport unknown")
SESSION_ID_UNKNOWN = (1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")
FORBIDDEN = (4, "Forbidden")
UNSUPPORTED_PROTOCOL_VERSION = (5, "Unsupported protocol version")


class ProtocolError(Exception):
    """A request or packet the protocol refuses: `error` is one of the pairs above."""

    def __init__(self, error: tuple[int, str], detail: str = "") -> None:
        super().__init__(detail or error[1])
        self.code, self.message = error
        self.detail = detail

    @property
    def status(self) -> int:
        return 403 if self.code == FORBIDDEN[0] else 400

    def body(self) -> bytes:
        return json.dumps({"code": self.code, "message": self.message}).encode()


def new_sid() -> str:
    return secrets.token_urlsafe(15)  # 20 characters of [A-Za-z0-9_-]


def ping_interval() -> float:
    return settings.SOCKETIO_PING_INTERVAL


def ping_timeout() -> float:
    return settings.SOCKETIO_PING_TIMEOUT


def open_packet(sid: str, *, upgrades: list[str]) -> str:
    handshake = {
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": int(ping_interval() * 1000),
        "pingTimeout": int(ping_timeout() * 1000),
        "maxPayload": settings.SOCKETIO_MAX_PAYLOAD,
    }
    return eio.Packet(eio.OPEN, data=handshake).encode()


def decode_engine(text: str) -> eio.Packet:
    """One Engine.IO packet (text only: binary payloads are not part of our protocol).

    A MESSAGE that carries a Socket.IO packet (a digit first: every packet of a v5 client) is
    what the library makes of it, without its attempt to read the packet as JSON, which
    fails on that digit and costs a JSON decoder and an exception per frame."""
    if not text or text[0] not in "0123456":
        raise ProtocolError(BAD_REQUEST, "malformed Engine.IO packet")
    if text[0] == EIO_MESSAGE and text[1:2].isdigit():
        return eio.Packet(eio.MESSAGE, data=text[1:])
    try:
        return eio.Packet(encoded_packet=text)
    except (ValueError, IndexError) as exc:
        raise ProtocolError(BAD_REQUEST, "malformed Engine.IO packet") from exc


def decode_payload(text: str) -> list[str]:
    """The packets of a long-polling POST body (`\\x1e`-separated)."""
    parts = text.split(RECORD_SEPARATOR)
    if len(parts) > MAX_PACKETS_PER_PAYLOAD:
        raise ProtocolError(BAD_REQUEST, "too many packets in one payload")
    return parts


def encode_payload(packets: list[str]) -> str:
    return RECORD_SEPARATOR.join(packets)


class _Json:
    """engineio's JSON (`loads` refuses integers of more than 100 digits) with one decoder
    made once: its `loads` makes a new `JSONDecoder` on every call, for its `parse_int`."""

    loads = json.JSONDecoder(parse_int=eio_json._safe_int).decode
    dumps = staticmethod(eio_json.dumps)


class _Packet(sio.Packet):
    json = _Json


def decode_socketio(text: str) -> sio.Packet:
    """A Socket.IO packet (the data of an Engine.IO MESSAGE). Binary events are refused."""
    try:
        packet = _Packet(encoded_packet=text)
    except (ValueError, TypeError, IndexError, json.JSONDecodeError, RecursionError) as exc:
        raise ProtocolError(BAD_REQUEST, "malformed Socket.IO packet") from exc
    if packet.packet_type not in (sio.CONNECT, sio.DISCONNECT, sio.EVENT, sio.ACK):
        raise ProtocolError(BAD_REQUEST, "unsupported Socket.IO packet type")
    return packet


def _namespace(name: str) -> str | None:
    return None if name == "/" else name


def message(sio_packet: str) -> str:
    """An Engine.IO MESSAGE carrying a Socket.IO packet."""
    return EIO_MESSAGE + sio_packet


def connect_packet(namespace: str, nsid: str) -> str:
    return message(sio.Packet(sio.CONNECT, data={"sid": nsid}, namespace=_namespace(namespace)).encode())


def connect_error_packet(namespace: str, text: str, code: str | None = None) -> str:
    data: dict[str, Any] = {"message": text}
    if code:
        data["data"] = {"code": code}
    return message(sio.Packet(sio.CONNECT_ERROR, data=data, namespace=_namespace(namespace)).encode())


def disconnect_packet(namespace: str) -> str:
    return message(sio.Packet(sio.DISCONNECT, namespace=_namespace(namespace)).encode())


def _data_packet(kind: str, namespace: str, ack_id: int | None, data: list[Any]) -> str:
    """An Engine.IO MESSAGE carrying a Socket.IO EVENT (2) or ACK (3) with JSON data: what
    `sio.Packet(…, binary=False).encode()` writes (type, `/ns,` unless the root, the id, the
    compact JSON), without a Packet per frame (about a tenth of a frame's CPU on a socket).
    Our payloads are JSON, never bytes. `test_event_and_ack_packets_are_the_librarys` holds
    it to the library's encoding."""
    head = EIO_MESSAGE + kind if namespace == "/" else EIO_MESSAGE + kind + namespace + ","
    return head + ("" if ack_id is None else str(ack_id)) + json.dumps(data, separators=(",", ":"))


def event_packet(namespace: str, event: str, data: Any) -> str:
    return _data_packet("2", namespace, None, [event, data])


def ack_packet(namespace: str, ack_id: int, data: Any) -> str:
    return _data_packet("3", namespace, ack_id, [data])
