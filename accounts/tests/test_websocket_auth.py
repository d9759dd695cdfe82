"""WebSocket authentication through the real middleware and the real EventConsumer base.

A tiny probe consumer (built on emploiplus.consumers.EventConsumer exactly like the app's
consumers) is wrapped in the real WebSocketAuthMiddlewareStack and driven with
channels' WebsocketCommunicator; the channel layer is the real Redis one.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.db import connections
from django.urls import path

from accounts.middleware import WebSocketAuthMiddlewareStack
from accounts.models import User
from accounts.testing import make_token, token_for
from accounts.tests.conftest import claims
from emploiplus.consumers import EventConsumer
from emploiplus.events import event_message, user_group
from emploiplus.realtime import Namespace

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "https://app.emploiplus.fr"


class ProbeNamespace(Namespace):
    handled_events = ("whoami", "ping")

    async def on_connect(self) -> None:
        await self.join(user_group(self.user.pk))

    async def on_whoami(self, data):
        return {"userId": str(self.user.pk), "email": self.user.email}

    async def on_ping(self, data):
        return {"pong": True}


ProbeConsumer = EventConsumer.for_namespace(ProbeNamespace)
application = WebSocketAuthMiddlewareStack(URLRouter([path("ws/probe/", ProbeConsumer.as_asgi())]))


@pytest.fixture(autouse=True)
async def _close_worker_connections():
    """Close the DB connection the middleware's worker thread opened (lets the test DB drop)."""
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.fixture(autouse=True)
def _origins(settings):
    settings.CORS_ALLOWED_ORIGINS = [ORIGIN]
    settings.DEBUG = False


def communicator(query: str = "", headers=None, subprotocols=None) -> WebsocketCommunicator:
    url = "/ws/probe/" + (f"?{query}" if query else "")
    return WebsocketCommunicator(application, url, headers=headers or [], subprotocols=subprotocols)


async def whoami(comm, ref="1", **data):
    await comm.send_json_to({"event": "whoami", "data": data, "ref": ref})
    return await comm.receive_json_from(timeout=3)


async def assert_closed_4401(comm, *, connected_first=True):
    connected, _ = await comm.connect(timeout=5)
    assert connected is connected_first
    output = await comm.receive_output(timeout=3)
    assert output == {"type": "websocket.close", "code": 4401}
    await comm.disconnect()


# --- transports ---------------------------------------------------------------------------------
async def test_it_accepts_a_token_in_the_query_string(alice):
    comm = communicator(f"token={token_for(alice)}")
    connected, subprotocol = await comm.connect(timeout=5)
    assert connected and subprotocol is None
    assert (await whoami(comm))["data"]["userId"] == str(alice.pk)
    await comm.disconnect()


async def test_it_accepts_a_token_in_the_authorization_header(alice):
    comm = communicator(headers=[(b"authorization", f"Bearer {token_for(alice)}".encode())])
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert (await whoami(comm))["data"]["userId"] == str(alice.pk)
    await comm.disconnect()


async def test_it_accepts_a_token_as_subprotocol_and_echoes_bearer(alice):
    token = token_for(alice)
    comm = communicator(
        headers=[(b"origin", ORIGIN.encode()), (b"sec-websocket-protocol", f"bearer, {token}".encode())],
        subprotocols=["bearer", token],
    )
    connected, subprotocol = await comm.connect(timeout=5)
    assert connected
    assert subprotocol == "bearer"  # the token itself is never echoed
    assert (await whoami(comm))["data"]["userId"] == str(alice.pk)
    await comm.disconnect()


async def test_it_creates_the_user_of_a_first_websocket_token():
    sub = str(uuid.uuid4())
    comm = communicator(f"token={make_token(sub, email='ws@example.test')}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert (await whoami(comm))["data"] == {"userId": sub, "email": "ws@example.test"}
    await comm.disconnect()
    assert await User.objects.filter(pk=sub).aexists()


async def test_it_accepts_es256_tokens_on_websockets(jwks_server, ec_key, alice):
    token = ec_key.sign(claims(str(alice.pk), email=alice.email))
    comm = communicator(f"token={token}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert (await whoami(comm))["data"]["userId"] == str(alice.pk)
    await comm.disconnect()


# --- refusals --------------------------------------------------------------------------------------
async def test_it_closes_4401_without_a_token(db):
    await assert_closed_4401(communicator())


async def test_it_closes_4401_with_a_bad_token(alice):
    await assert_closed_4401(communicator("token=garbage"))
    await assert_closed_4401(communicator(f"token={make_token(alice.pk, expires_in=-3600)}"))
    await assert_closed_4401(
        communicator(headers=[(b"authorization", b"Bearer " + make_token(alice.pk, secret="x" * 40).encode())])
    )


async def test_it_closes_4401_for_a_deactivated_user(alice):
    await User.objects.filter(pk=alice.pk).aupdate(is_active=False)
    await assert_closed_4401(communicator(f"token={token_for(alice)}"))


async def test_it_refuses_a_foreign_origin_before_the_handshake(alice):
    comm = communicator(f"token={token_for(alice)}", headers=[(b"origin", b"https://evil.example")])
    connected, code = await comm.connect(timeout=5)
    assert connected is False
    assert code == 4403
    await comm.disconnect()


async def test_it_accepts_an_allowed_origin(alice):
    comm = communicator(f"token={token_for(alice)}", headers=[(b"origin", ORIGIN.encode())])
    connected, _ = await comm.connect(timeout=5)
    assert connected
    await comm.disconnect()


async def test_it_accepts_a_client_without_origin_that_brings_a_token(alice):
    comm = communicator(headers=[(b"authorization", f"Bearer {token_for(alice)}".encode())])
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert (await whoami(comm))["event"] == "ack"
    await comm.disconnect()


async def test_it_closes_a_client_without_origin_and_without_token(db):
    await assert_closed_4401(communicator())


# --- token expiry ---------------------------------------------------------------------------------
async def test_it_closes_4401_when_the_token_expires_while_idle(settings, alice):
    settings.JWT_LEEWAY_SECONDS = 0
    comm = communicator(f"token={make_token(alice.pk, expires_in=2)}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert (await whoami(comm))["event"] == "ack"
    assert await comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await comm.disconnect()


async def test_it_closes_4401_instead_of_handling_a_frame_after_expiry(settings, alice):
    settings.JWT_LEEWAY_SECONDS = 0
    comm = communicator(f"token={make_token(alice.pk, expires_in=2)}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    deadline = int(time.time()) + 2
    await asyncio.sleep(max(0.0, deadline - time.time()) + 0.05)
    await comm.send_json_to({"event": "whoami", "data": {}, "ref": "late"})
    # Whichever fires first (the timer or the frame check), no ack ever comes: only the close.
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
    assert await comm.receive_nothing(timeout=0.2)
    await comm.disconnect()


# --- rate limit and identity -------------------------------------------------------------------------
async def test_it_rate_limits_frames_per_connection_and_stays_open(settings, alice):
    settings.WS_EVENTS_PER_10_SECONDS = 3
    comm = communicator(f"token={token_for(alice)}")
    await comm.connect(timeout=5)
    replies = []
    for ref in range(5):
        await comm.send_json_to({"event": "ping", "data": {}, "ref": str(ref)})
        replies.append(await comm.receive_json_from(timeout=3))
    assert [r["event"] for r in replies] == ["ack", "ack", "ack", "error", "error"]
    assert replies[3] == {
        "event": "error",
        "ref": "3",
        "error": {"code": "rate_limited", "message": "Trop d'événements, ralentissez."},
    }
    # Still open: a server push for alice still reaches this connection.
    await get_channel_layer().group_send(user_group(alice.pk), event_message("notification", {"id": "n1"}))
    assert await comm.receive_json_from(timeout=3) == {"event": "notification", "data": {"id": "n1"}}
    await comm.disconnect()


async def test_it_counts_malformed_frames_against_the_rate_limit(settings, alice):
    settings.WS_EVENTS_PER_10_SECONDS = 2
    comm = communicator(f"token={token_for(alice)}")
    await comm.connect(timeout=5)
    for _ in range(2):
        await comm.send_to(text_data="not json")
        assert (await comm.receive_json_from(timeout=3))["error"]["code"] == "invalid_json"
    await comm.send_to(text_data="not json")
    assert (await comm.receive_json_from(timeout=3))["error"]["code"] == "rate_limited"
    await comm.disconnect()


async def test_it_takes_identity_from_the_token_never_from_frames(alice, bob):
    comm = communicator(f"token={token_for(alice)}&user_id={bob.pk}&sub={bob.pk}")
    await comm.connect(timeout=5)
    reply = await whoami(comm, userId=str(bob.pk), senderId=str(bob.pk), sub=str(bob.pk), user={"id": str(bob.pk)})
    assert reply["data"] == {"userId": str(alice.pk), "email": alice.email}
    # And bob's pushes do not reach alice's connection.
    await get_channel_layer().group_send(user_group(bob.pk), event_message("notification", {"for": "bob"}))
    assert await comm.receive_nothing(timeout=0.3)
    await comm.disconnect()
