"""Hostile input on /ws/messages/ (issue 16): a small fuzzer of our own over a real server.

Malformed frames (not JSON, truncated, scalars, arrays, deep nesting, lone surrogates,
binary), wrong types in every field of every event, unknown events, huge payloads (over the
64 KiB frame limit, and 2 MiB). After each hostile frame a probe (`join_conversation` with a
ref) must be acknowledged on the same connection: the consumer is alive. Every answer to a
hostile frame is an `error` frame with a known code (never `internal_error`, our 500) or an
`ack`; a server that closes instead (a frame over its transport limit) closes with a
protocol code, never 1011. At the end the server process is alive and a real message sent
on the fuzzed connection is stored. Deterministic: a fixed seed.
"""

from __future__ import annotations

import contextlib
import json
import random
import uuid

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from accounts.testing import token_for
from emploiplus.testing import asgi_server
from messaging.models import Message
from messaging.services import conversation_get_or_create_direct

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(180)]

SEED = 16
EVENTS = ["join_conversation", "leave_conversation", "typing", "send_message", "mark_as_read", "delete_message"]
FIELDS = ["conversationId", "content", "attachments", "clientMessageId", "isTyping", "messageIds", "messageId"]
ALLOWED_CLOSES = {1002, 1003, 1007, 1009}  # protocol error, unsupported/invalid data, too big


def odd_values(rng: random.Random) -> list:
    return [
        None,
        True,
        0,
        -1,
        2**70,
        1.5e308,
        "",
        " ",
        "x" * rng.randint(1, 300),
        "😀" * 50,
        "\u0000",
        str(uuid.uuid4()),
        "not-a-uuid",
        [],
        [str(uuid.uuid4())] * 3,
        [None, 1, {"a": []}],
        {},
        {"$gt": ""},
        "'; DROP TABLE messages; --",
        "<script>alert(1)</script>",
    ]


def hostile_frames(rng: random.Random) -> list[str | bytes]:
    nested = "[" * 5000 + "]" * 5000
    frames: list[str | bytes] = [
        "",
        "not json",
        "{",
        '{"event": "send_message", "data": {',
        "null",
        "42",
        '"send_message"',
        "[]",
        '[{"event": "typing"}]',
        nested,
        '{"event": ' + nested + "}",
        '{"event": "send_message", "data": {"content": "\\ud800"}, "ref": "s"}',  # a lone surrogate
        '{"event": "typing", "data": NaN}',
        b"\x00\x01binary",
        json.dumps({"event": "send_message", "data": {"content": "x" * (70 * 1024)}, "ref": "big"}),
        "x" * (2 * 1024 * 1024),
    ]
    values = odd_values(rng)
    for _ in range(150):
        frame: dict = {}
        if rng.random() < 0.9:
            frame["event"] = rng.choice([*EVENTS, *values[:8], "__proto__", "ack", "error", "connect"])
        if rng.random() < 0.85:
            if rng.random() < 0.2:
                frame["data"] = rng.choice(values)
            else:
                frame["data"] = {name: rng.choice(values) for name in rng.sample(FIELDS, rng.randint(0, len(FIELDS)))}
        if rng.random() < 0.7:
            frame["ref"] = rng.choice(["r", 7, None, [], {}, 1.5, "r" * 500])
        frames.append(json.dumps(frame, allow_nan=True))
    return frames


def read_until_probe(ws, probe_ref: str) -> list[dict]:
    """Frames received until the probe's ack (ValueError-free: the server only sends JSON)."""
    seen = []
    while True:
        frame = json.loads(ws.recv(timeout=20))
        if frame.get("ref") == probe_ref and frame.get("event") == "ack":
            return seen
        seen.append(frame)


def test_hostile_frames_get_error_frames_or_closes_never_a_dead_consumer(alice, bob):
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    probe = {"event": "join_conversation", "data": {"conversationId": str(conversation.id)}}
    frames = hostile_frames(random.Random(SEED))
    answers: dict[str, int] = {}
    closes: list[int] = []
    with asgi_server(WS_EVENTS_PER_10_SECONDS="1000000") as (base, proc), contextlib.ExitStack() as sockets:
        url = f"ws://{base}/ws/messages/?token={token_for(alice)}"
        ws = sockets.enter_context(connect(url, max_size=None, open_timeout=20))
        for n, frame in enumerate(frames):
            try:
                ws.send(frame)
                ws.send(json.dumps({**probe, "ref": f"probe-{n}"}))
                seen = read_until_probe(ws, f"probe-{n}")
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else None
                closes.append(code)
                assert code in ALLOWED_CLOSES, (n, frame[:200], code)
                ws = sockets.enter_context(connect(url, max_size=None, open_timeout=20))
                continue
            for answer in seen:
                if answer["event"] == "error":
                    code = answer["error"]["code"]
                    assert code != "internal_error", (n, frame[:300], answer)
                    answers[code] = answers.get(code, 0) + 1
                else:  # a push of the room (user_joined…) or an ack of a frame that was valid
                    assert answer["event"] in (
                        "ack",
                        "user_joined",
                        "user_left",
                        "user_typing",
                        "new_message",
                        "message_sent",
                        "messages_read",
                        "message_deleted",
                    ), answer
        # Still serving: a real message on the fuzzed connection is stored.
        ws.send(
            json.dumps(
                {
                    "event": "send_message",
                    "ref": "last",
                    "data": {"conversationId": str(conversation.id), "content": "Toujours là"},
                }
            )
        )
        while (frame := json.loads(ws.recv(timeout=20))).get("ref") != "last":
            pass
        assert frame["event"] == "ack", frame
        assert proc.poll() is None  # the server process survived
    assert Message.objects.filter(conversation=conversation, content="Toujours là").count() == 1
    assert sum(answers.values()) >= len(frames) // 2, answers  # most hostile frames were refused
    assert "invalid_json" in answers and "invalid_frame" in answers, answers
