"""Every WebSocket namespace of the real application is behind the auth middleware.

The Node original authenticated only Socket.io's default namespace, so /messages,
/notifications and /presence were open. Here each real route is tried without a token
(close 4401), from a foreign Origin (handshake refused), and once over a real daphne
with the `bearer, <token>` subprotocol (echoed as `bearer`).
"""

from __future__ import annotations

import asyncio

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts.testing import token_for
from emploiplus.testing import asgi_server

PATHS = ["/ws/messages/", "/ws/notifications/", "/ws/presence/"]


@pytest.fixture
async def _close_worker_connections():
    yield
    await database_sync_to_async(connections.close_all)()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", PATHS)
async def test_it_closes_every_namespace_4401_without_a_token(path, _close_worker_connections):
    from emploiplus.asgi import application

    comm = WebsocketCommunicator(application, path)
    connected, _ = await comm.connect(timeout=5)
    assert connected
    assert await comm.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", PATHS)
async def test_it_refuses_a_foreign_origin_on_every_namespace(path, alice, settings, _close_worker_connections):
    from emploiplus.asgi import application

    settings.CORS_ALLOWED_ORIGINS = ["https://app.emploiplus.fr"]
    comm = WebsocketCommunicator(
        application, f"{path}?token={token_for(alice)}", headers=[(b"origin", b"https://evil.example")]
    )
    connected, code = await comm.connect(timeout=5)
    assert (connected, code) == (False, 4403)
    await comm.disconnect()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_speaks_the_bearer_subprotocol_over_a_real_server(alice):
    token = token_for(alice)

    async def scenario(base):
        url = f"ws://{base}/ws/notifications/"
        async with websockets.connect(url, subprotocols=["bearer", token], open_timeout=10) as ws:
            assert ws.subprotocol == "bearer"
            await ws.send('{"event": "mark_read", "data": {"notificationIds": []}, "ref": "r1"}')
            reply = await asyncio.wait_for(ws.recv(), 5)
            assert '"ref":"r1"' in reply  # authenticated: the frame reached the handler
        async with websockets.connect(url, open_timeout=10) as ws:  # no token
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd.code == 4401
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(url, subprotocols=["bearer", token], origin="https://evil.example")
        assert refused.value.response.status_code == 403

    with asgi_server(CORS_ALLOWED_ORIGINS="https://app.emploiplus.fr", DEBUG="0") as (base, _):
        asyncio.run(scenario(base))


@pytest.mark.django_db(transaction=True)
async def test_it_never_lets_a_frame_act_as_another_user(alice, bob, charlie, _close_worker_connections):
    """On the real /ws/messages/: ids in a frame never change who is acting."""
    from emploiplus.asgi import application
    from messaging.models import Message
    from messaging.services import conversation_get_or_create_direct

    ours, _ = await database_sync_to_async(conversation_get_or_create_direct)(user=alice, other_user_id=bob.pk)
    theirs, _ = await database_sync_to_async(conversation_get_or_create_direct)(user=bob, other_user_id=charlie.pk)
    comm = WebsocketCommunicator(application, f"/ws/messages/?token={token_for(alice)}&userId={bob.pk}")
    connected, _ = await comm.connect(timeout=5)
    assert connected
    impersonation = {"senderId": str(bob.pk), "userId": str(bob.pk), "senderEmail": bob.email, "user_id": str(bob.pk)}

    data = {"conversationId": str(ours.pk), "content": "hi", **impersonation}
    await comm.send_json_to({"event": "send_message", "ref": "a", "data": data})
    frames = [await comm.receive_json_from(timeout=5) for _ in range(3)]  # its new_message, message_sent, ack
    ack = next(f for f in frames if f.get("event") == "ack")
    assert ack["data"]["senderId"] == str(alice.pk)
    stored = await Message.objects.aget(pk=ack["data"]["id"])
    assert stored.sender_id == alice.pk

    # bob's conversation with charlie stays closed to alice whatever ids she puts in the frame
    data = {"conversationId": str(theirs.pk), "content": "x", **impersonation}
    await comm.send_json_to({"event": "send_message", "ref": "b", "data": data})
    for _ in range(5):
        frame = await comm.receive_json_from(timeout=5)
        if frame.get("ref") == "b":
            break
    assert frame["event"] == "error"
    assert not await Message.objects.filter(conversation_id=theirs.pk).aexists()
    await comm.disconnect()
