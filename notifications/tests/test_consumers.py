"""`/ws/notifications/` through the real ASGI app and the real Redis channel layer."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from accounts.models import Role
from notifications import services
from notifications.models import Notification
from notifications.tests.helpers import WsClient

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("close_async_db_connections")]


async def test_it_closes_unauthenticated_connections_with_4401():
    client = WsClient(token="not-a-jwt")
    connected, _ = await client.comm.connect(timeout=5)
    assert connected
    assert await client.comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    await client.close()


async def test_it_sends_each_user_only_their_own_notifications(alice, bob):
    alice_ws, bob_ws = await WsClient(alice).connect(), await WsClient(bob).connect()
    try:
        batch = await sync_to_async(services.notification_queue)(
            type="message",
            title="Nouveau message",
            body="Bob : salut",
            data={"conversationId": "c1"},
            user_ids=[alice.id],
        )
        frame = await alice_ws.recv()
        row = await sync_to_async(Notification.objects.get)(batch_id=batch.id)
        assert frame == {
            "event": "notification",
            "data": {
                "id": str(row.id),
                "type": "message",
                "title": "Nouveau message",
                "body": "Bob : salut",
                "data": {"conversationId": "c1"},
                "createdAt": row.created_at.isoformat().replace("+00:00", "Z"),
            },
        }
        assert await bob_ws.nothing()
    finally:
        await alice_ws.close()
        await bob_ws.close()


async def test_it_broadcasts_role_notifications_once_to_the_role_group(alice, rita):
    alice_ws, rita_ws = await WsClient(alice).connect(), await WsClient(rita).connect()
    try:
        batch = await sync_to_async(services.notification_queue)(
            type="announce", title="Nouveautés", body="", role=Role.CANDIDATE
        )
        await sync_to_async(services.notification_batch_fanout)(batch_id=batch.id)  # what the worker runs
        frame = await alice_ws.recv()
        assert frame["event"] == "notification" and frame["data"]["id"] == str(batch.id)
        assert await alice_ws.nothing()  # one frame, not one per user plus one per role
        assert await rita_ws.nothing()
        # The broadcast's id marks the user's own row read.
        ack = await alice_ws.call("mark_read", {"notificationIds": [str(batch.id)]})
        row = await sync_to_async(Notification.objects.get)(batch_id=batch.id, user=alice)
        assert ack == {"event": "ack", "ref": "r1", "data": {"notificationIds": [str(row.id)]}}
        await sync_to_async(row.refresh_from_db)()
        assert row.read_at is not None
    finally:
        await alice_ws.close()
        await rita_ws.close()


async def test_it_marks_only_the_callers_own_notifications_read(alice, bob):
    batch = await sync_to_async(services.notification_queue)(
        type="message", title="Coucou", body="", user_ids=[alice.id, bob.id]
    )
    rows = {n.user_id: n async for n in Notification.objects.filter(batch_id=batch.id)}
    alice_ws = await WsClient(alice).connect()
    try:
        ack = await alice_ws.call("mark_read", {"notificationIds": [str(rows[alice.id].id), str(rows[bob.id].id)]})
        assert ack["event"] == "ack" and ack["data"] == {"notificationIds": [str(rows[alice.id].id)]}
        error = await alice_ws.call("mark_read", {"notificationIds": "x"}, ref="r2")
        assert error["event"] == "error" and error["error"]["code"] == "invalid_data"
    finally:
        await alice_ws.close()
    read = {n.user_id: n.read_at async for n in Notification.objects.filter(batch_id=batch.id)}
    assert read[alice.id] is not None and read[bob.id] is None
