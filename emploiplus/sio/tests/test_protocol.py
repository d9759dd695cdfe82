"""Engine.IO / Socket.IO edge cases with raw HTTP and WebSocket requests against a real server:
every refusal is the protocol's answer (HTTP 400/403 with `{"code", "message"}`, 413, or a
close), never a 500; sessions end on schedule and leave nothing in Redis."""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time

import pytest
from websockets.asyncio.client import connect

from accounts.testing import token_for
from emploiplus.redis import get_redis
from emploiplus.testing import asgi_server, until
from messaging import presence
from messaging.services import conversation_get_or_create_direct

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FAST = {"SOCKETIO_PING_INTERVAL": "1", "SOCKETIO_PING_TIMEOUT": "1", "SOCKETIO_MAX_PAYLOAD": "20000"}


class Polling:
    """A raw long-polling client."""

    def __init__(self, address: str, **query: str) -> None:
        self.address = address
        self.query = "&".join(f"{k}={v}" for k, v in {"EIO": "4", "transport": "polling", **query}.items())
        self.sid: str | None = None

    def request(self, method: str, body: bytes | None = None, *, sid: str | None = None, query: str | None = None):
        host, port = self.address.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        path = f"/socket.io/?{query or self.query}" + (f"&sid={sid or self.sid}" if (sid or self.sid) else "")
        conn.request(method, path, body=body, headers={"Content-Type": "text/plain;charset=UTF-8"})
        response = conn.getresponse()
        data = response.read().decode()
        conn.close()
        return response.status, response.headers, data

    def open(self) -> dict:
        status, _headers, body = self.request("GET")
        assert status == 200 and body[0] == "0", body
        handshake = json.loads(body[1:])
        self.sid = handshake["sid"]
        return handshake

    def post(self, *packets: str):
        return self.request("POST", "\x1e".join(packets).encode())

    def get(self) -> list[str]:
        status, _headers, body = self.request("GET")
        assert status == 200, body
        return body.split("\x1e")


def error_of(response) -> tuple[int, dict]:
    status, headers, body = response
    assert headers["Content-Type"] == "application/json", body
    return status, json.loads(body)


def test_it_answers_the_handshake_and_refuses_bad_requests_with_the_protocols_errors(alice):
    with asgi_server() as (address, _):
        client = Polling(address)
        handshake = client.open()
        assert set(handshake) == {"sid", "upgrades", "pingInterval", "pingTimeout", "maxPayload"}
        assert handshake["upgrades"] == ["websocket"] and handshake["pingInterval"] == 25000

        bare = Polling(address)
        assert error_of(bare.request("GET", query="EIO=3&transport=polling")) == (
            400,
            {"code": 5, "message": "Unsupported protocol version"},
        )
        assert error_of(bare.request("GET", query="EIO=4&transport=flash")) == (
            400,
            {"code": 0, "message": "Transport unknown"},
        )
        assert error_of(bare.request("POST", b"40")) == (400, {"code": 2, "message": "Bad handshake method"})
        assert error_of(bare.request("GET", sid="no-such-session")) == (
            400,
            {"code": 1, "message": "Session ID unknown"},
        )
        assert error_of(bare.request("POST", b"40", sid="no-such-session"))[1]["code"] == 1

        # An unknown namespace: CONNECT_ERROR, the session goes on.
        assert client.post("40/nope,")[2] == "ok"
        assert client.get() == ['44/nope,{"message":"Invalid namespace"}']
        # No token (neither in the CONNECT nor at the handshake): connect_error with the code.
        assert client.post("40/messages,")[2] == "ok"
        [refused] = client.get()
        assert refused.startswith("44/messages,") and json.loads(refused[len("44/messages,") :])["data"] == {
            "code": "token_missing"
        }
        # The handshake's ?token= stands for namespaces connected without auth.token.
        with_token = Polling(address, token=token_for(alice))
        with_token.open()
        assert with_token.post("40/notifications,")[2] == "ok"
        assert with_token.get()[0].startswith('40/notifications,{"sid":')

        # Malformed packets close the session: 400, then the session is unknown.
        nested = "42/messages," + "[" * 50_000 + "]" * 50_000  # json nesting too deep: RecursionError
        for junk in ("4x{", "9", "42/messages,[not json", nested):
            victim = Polling(address)
            victim.open()
            assert error_of(victim.post(junk))[0] == 400, junk
            assert error_of(victim.request("GET"))[1]["code"] == 1
        # A first packet that is not a CONNECT (an event for a namespace not connected): closed.
        victim = Polling(address)
        victim.open()
        assert error_of(victim.post('42/messages,["send_message",{}]')) == (400, {"code": 3, "message": "Bad request"})
        assert error_of(victim.request("GET"))[1]["code"] == 1


def test_it_closes_a_session_on_an_oversized_payload_and_on_a_second_long_poll(alice):
    with asgi_server(**FAST) as (address, _):
        client = Polling(address)
        assert client.open()["maxPayload"] == 20000
        status, _headers, _body = client.post("4" + "x" * 20001)
        assert status == 413
        assert error_of(client.request("GET"))[1]["code"] == 1

        client = Polling(address)
        client.open()
        first: dict = {}
        waiting = threading.Thread(target=lambda: first.setdefault("packets", client.get()))
        waiting.start()
        time.sleep(0.3)  # the first long poll is pending
        assert error_of(client.request("GET")) == (400, {"code": 3, "message": "Bad request"})
        waiting.join(10)
        assert first["packets"] == ["1"]  # the pending poll learns the session closed
        assert error_of(client.request("POST", b"3"))[1]["code"] == 1


def redis_keys() -> set[bytes]:
    return {k for k in get_redis().keys("*") if b"sio" in k or b"presence" in k or b"group" in k}


def test_a_silent_polling_session_ends_and_leaves_nothing_in_redis(alice, bob):
    """Ping interval 1 s + timeout 1 s: a client that stops polling is gone within ~2 s (+ the
    sweeper's tick): its namespaces disconnect (presence released, groups left), every key
    deleted."""
    conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    before = redis_keys()
    with asgi_server(**FAST) as (address, _):
        client = Polling(address, token=token_for(alice))
        client.open()
        assert client.post("40/messages,", "40/presence,")[2] == "ok"
        packets = client.get()
        assert any(p.startswith("40/messages,") for p in packets)
        assert presence.online_user_ids([alice.pk]) == {str(alice.pk)}
        assert redis_keys() - before  # the session, its channel, groups, presence
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (redis_keys() - before or presence.online_user_ids([alice.pk])):
            time.sleep(0.2)
        assert presence.online_user_ids([alice.pk]) == set()
        assert redis_keys() - before == set()
        assert error_of(client.request("GET"))[1]["code"] == 1


async def _ws(address: str, query: str):
    return await connect(f"ws://{address}/socket.io/?EIO=4&transport=websocket{query}", open_timeout=10)


async def _probe_upgrade(address: str, client: Polling):
    """The first half of the upgrade: a websocket for the session, `2probe` → `3probe`, and the
    long poll pending meanwhile flushed with a NOOP. The caller sends `5` when it is ready."""
    ws = await _ws(address, f"&sid={client.sid}")
    pending = asyncio.ensure_future(asyncio.to_thread(client.get))
    await asyncio.sleep(0.3)  # let the poll reach the server (it must be pending, not yet sent)
    await ws.send("2probe")
    assert await asyncio.wait_for(ws.recv(), 5) == "3probe"
    assert await asyncio.wait_for(pending, 5) == ["6"]  # the pending poll is flushed with a NOOP
    return ws


def test_it_upgrades_a_polling_session_to_websocket_and_keeps_its_namespaces(alice, bob):
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    with asgi_server() as (address, _):
        client = Polling(address, token=token_for(alice))
        client.open()
        assert client.post("40/messages,")[2] == "ok"
        assert client.get()[0].startswith("40/messages,")
        join = json.dumps(["join_conversation", {"conversationId": str(conversation.pk)}])
        assert client.post(f"42/messages,1{join}")[2] == "ok"
        assert client.get() == [f'43/messages,1[{{"conversationId":"{conversation.pk}"}}]']

        async def upgrade() -> list[str]:
            ws = await _probe_upgrade(address, client)
            await ws.send("5")
            await asyncio.sleep(0.3)
            # The namespace (and the room it joined) now lives on the socket.
            send = json.dumps(["send_message", {"conversationId": str(conversation.pk), "content": "après"}])
            await ws.send(f"42/messages,2{send}")
            frames = [await asyncio.wait_for(ws.recv(), 5) for _ in range(3)]
            await ws.close()
            return frames

        frames = asyncio.run(upgrade())
        events = [json.loads(f[len("42/messages,") :]) for f in frames if f.startswith("42/messages,")]
        assert ["new_message", "après"] in [[e[0], e[1].get("content")] for e in events]
        assert any(f.startswith("43/messages,2[") for f in frames)
        assert error_of(client.request("GET"))[0] == 400  # polling is over for this session


def test_a_connect_error_answered_after_the_last_poll_reaches_the_upgraded_socket(alice):
    """socket.io-client sends CONNECT by POST while it upgrades: the CONNECT_ERROR can land in
    the session after its last poll returned with the NOOP; the websocket must carry it."""
    with asgi_server() as (address, _):
        client = Polling(address)
        client.open()

        async def upgrade() -> list[str]:
            ws = await _probe_upgrade(address, client)
            bad = json.dumps({"token": "not-a-token"})
            assert (await asyncio.to_thread(client.post, f"40/messages,{bad}"))[2] == "ok"
            await ws.send("5")
            frame = await asyncio.wait_for(ws.recv(), 5)
            await ws.close()
            return [frame]

        (frame,) = asyncio.run(upgrade())
        assert frame.startswith("44/messages,"), frame
        assert json.loads(frame[len("44/messages,") :])["data"]["code"] == "token_invalid"


def test_a_websocket_session_is_pinged_and_closed_when_it_does_not_answer(alice):
    with asgi_server(**FAST) as (address, _):

        async def scenario() -> tuple[str, list[str]]:
            ws = await _ws(address, f"&token={token_for(alice)}")
            opened = await asyncio.wait_for(ws.recv(), 5)
            got = []
            with pytest.raises(Exception):  # noqa: B017 - any close: the server gave up on us
                while True:
                    got.append(await asyncio.wait_for(ws.recv(), 5))
            return opened, got

        opened, got = asyncio.run(scenario())
        assert json.loads(opened[1:])["upgrades"] == []
        assert got == ["2"]  # one ping, unanswered, then the close


def test_it_refuses_a_browser_origin_it_does_not_know(settings):
    with asgi_server(CORS_ALLOWED_ORIGINS="https://app.emploiplus.fr", DEBUG="0") as (address, _):
        host, port = address.split(":")

        def handshake(origin: str):
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/socket.io/?EIO=4&transport=polling", headers={"Origin": origin})
            response = conn.getresponse()
            return response.status, response.headers, response.read().decode()

        status, headers, _body = handshake("https://app.emploiplus.fr")
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "https://app.emploiplus.fr"
        assert headers["Access-Control-Allow-Credentials"] == "true"
        assert error_of(handshake("https://evil.example")) == (403, {"code": 4, "message": "Forbidden"})


def test_socketio_traffic_is_in_the_websocket_metrics(alice, bob):
    """The Socket.IO transport feeds the same metric families as /ws/ (emploiplus.metrics)."""
    from emploiplus.tests.test_metrics import AUTH, TOKEN, value

    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    with asgi_server(METRICS_TOKEN=TOKEN) as (address, _):

        def scrape() -> str:
            host, port = address.split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request("GET", "/metrics", headers=AUTH)
            body = conn.getresponse().read().decode()
            conn.close()
            return body

        async def traffic() -> str:
            ws = await _ws(address, f"&token={token_for(alice)}")
            assert (await asyncio.wait_for(ws.recv(), 5)).startswith("0")
            await ws.send("40/messages,")
            assert (await asyncio.wait_for(ws.recv(), 5)).startswith("40/messages,")
            join = json.dumps(["join_conversation", {"conversationId": str(conversation.pk)}])
            await ws.send(f"42/messages,1{join}")
            assert (await asyncio.wait_for(ws.recv(), 5)).startswith("43/messages,1")
            await ws.send('42/messages,["no_such_event",{}]')
            assert (await asyncio.wait_for(ws.recv(), 5)).startswith('42/messages,["error"')
            during = await asyncio.to_thread(scrape)
            await ws.close()
            return during

        during = asyncio.run(traffic())

        def after_the_close() -> str | None:  # the server notices the close asynchronously
            text = scrape()
            return text if value(text, "emploiplus_websocket_connections", namespace="messages") == 0 else None

        after = until(after_the_close) or scrape()
    assert value(during, "emploiplus_websocket_connections", namespace="messages") == 1
    assert value(after, "emploiplus_websocket_connections", namespace="messages") == 0
    received = "emploiplus_websocket_messages_received_total"
    assert value(after, received, namespace="messages", event="join_conversation") == 1
    assert value(after, received, namespace="messages", event="_invalid") == 1
    sent = "emploiplus_websocket_messages_sent_total"
    assert value(after, sent, namespace="messages", event="ack") == 1
    assert value(after, sent, namespace="messages", event="error") == 1
