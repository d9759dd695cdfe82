"""Hostile input on the Socket.IO transport (issue 16), as messaging/tests/test_ws_fuzz.py does
for /ws/messages/: seeded malformed Engine.IO / Socket.IO packets over a real server's
websocket, each followed by a probe (`join_conversation` with an ack id) that must be
acknowledged. Answers to hostile packets are `error` events or error acks with a known code
(never `internal_error`); a packet the protocol cannot accept closes the socket with a
protocol code (1002, 1009), never 1011, and a new session works. At the end the server is
alive and a real message sent on the fuzzed session is stored."""

from __future__ import annotations

import contextlib
import json
import random

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.testing import token_for
from emploiplus.testing import asgi_server
from messaging.models import Message
from messaging.services import conversation_get_or_create_direct
from messaging.tests.test_ws_fuzz import EVENTS, FIELDS, odd_values

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]

SEED = 16
NS = "/messages"
ALLOWED_CLOSES = {1002, 1009}


def hostile_packets(rng: random.Random) -> list[str | bytes]:
    nested = "[" * 5000 + "]" * 5000
    packets: list[str | bytes] = [
        "",
        "x",
        "9",
        "4",
        "4{",
        "40",  # CONNECT to "/" (no such namespace here): connect_error, the session goes on
        f"40{NS},",  # CONNECT again to a connected namespace: answered again
        '42/nope,["typing"]',
        f"42{NS},",
        f"42{NS},[not json",
        f"42{NS},{nested}",
        f'42{NS},["send_message",{{"content":"\\ud800"}}]',
        f"42{NS},[]",
        f"42{NS},[1,2,3]",
        f'42{NS},{{"event":"typing"}}',
        f'42{NS},99999999999999999999999["typing"]',
        f"43{NS},1[]",  # an ACK the server never asked for
        f'45{NS},1-["typing"]',  # binary event: refused
        b"\x00\x01binary",
        "4" + json.dumps([f"42{NS}", "x" * (2 * 1024 * 1024)]),  # over SOCKETIO_MAX_PAYLOAD
    ]
    values = odd_values(rng)
    for n in range(120):
        event = rng.choice([*EVENTS, *values[:8], "__proto__", "error", "connect"])
        if rng.random() < 0.2:
            data = rng.choice(values)
        else:
            data = {name: rng.choice(values) for name in rng.sample(FIELDS, rng.randint(0, len(FIELDS)))}
        args = [event, data] if rng.random() < 0.9 else [event]
        ack = str(1000 + n) if rng.random() < 0.5 else ""
        packets.append(f"42{NS},{ack}{json.dumps(args)}")
    return packets


class Session:
    """A raw Engine.IO v4 websocket session with /messages connected."""

    def __init__(self, stack: contextlib.ExitStack, base: str, token: str) -> None:
        url = f"ws://{base}/socket.io/?EIO=4&transport=websocket&token={token}"
        self.ws = stack.enter_context(connect(url, max_size=None, open_timeout=20))
        assert self.recv().startswith("0")
        self.ws.send(f"40{NS},")
        assert self.recv().startswith(f"40{NS},")

    def recv(self) -> str:
        while True:
            packet = self.ws.recv(timeout=20)
            if packet == "2":  # the server's ping
                self.ws.send("3")
                continue
            return packet

    def until_ack(self, ack_id: int) -> list[str]:
        seen = []
        prefix = f"43{NS},{ack_id}"
        while not (packet := self.recv()).startswith(prefix):
            seen.append(packet)
        return [*seen, packet]


def error_codes(packets: list[str]) -> list[str]:
    """The error codes in error events and error acks (the probe's own ack included: none)."""
    codes = []
    for packet in packets:
        for prefix in (f"42{NS},", f"43{NS},"):
            if packet.startswith(prefix):
                body = packet[len(prefix) :].lstrip("0123456789")
                args = json.loads(body)
                if prefix.startswith("42") and args[0] == "error":
                    codes.append(args[1]["error"]["code"])
                elif prefix.startswith("43") and isinstance(args[0], dict) and "error" in args[0]:
                    codes.append(args[0]["error"]["code"])
    return codes


def test_hostile_packets_get_errors_or_protocol_closes_never_a_dead_session(alice, bob):
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    join = json.dumps(["join_conversation", {"conversationId": str(conversation.id)}])
    packets = hostile_packets(random.Random(SEED))
    codes: dict[str, int] = {}
    closes: list[int | None] = []
    with asgi_server(WS_EVENTS_PER_10_SECONDS="1000000") as (base, proc), contextlib.ExitStack() as stack:
        session = Session(stack, base, token_for(alice))
        for n, packet in enumerate(packets):
            probe = 100_000 + n
            try:
                session.ws.send(packet)
                session.ws.send(f"42{NS},{probe}{join}")
                seen = session.until_ack(probe)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                closes.append(code)
                assert code in ALLOWED_CLOSES, (n, packet[:200], code)
                session = Session(stack, base, token_for(alice))
                continue
            for code in error_codes(seen):
                assert code != "internal_error", (n, packet[:300], seen)
                codes[code] = codes.get(code, 0) + 1
        # Still serving: a real message on the fuzzed session is stored.
        send = json.dumps(["send_message", {"conversationId": str(conversation.id), "content": "Toujours là"}])
        session.ws.send(f"42{NS},7{send}")
        ack = session.until_ack(7)[-1]
        assert "error" not in json.loads(ack[len(f"43{NS},7") :])[0], ack
        assert proc.poll() is None
    assert Message.objects.filter(conversation=conversation, content="Toujours là").count() == 1
    assert closes, "no packet was refused with a close"  # malformed Engine.IO packets close
    assert sum(codes.values()) >= 60, codes  # most hostile events were refused with a code
    assert {"invalid_data", "unknown_event"} <= set(codes), codes
