"""`/ws/messages/` through the real ASGI application and the real Redis channel layer."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import pytest
from channels.db import database_sync_to_async
from django.db import connection, transaction

from accounts.testing import make_token
from emploiplus import effects
from messaging.models import Conversation, ConversationParticipant, Message
from messaging.services import conversation_create_group, conversation_get_or_create_direct, message_send
from messaging.tests.helpers import Client, ws

pytestmark = pytest.mark.django_db(transaction=True)

M = "/ws/messages/"


@pytest.fixture
def direct(alice, bob) -> Conversation:
    return conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)[0]


def _messages(conversation) -> list[Message]:
    return list(Message.objects.filter(conversation=conversation).order_by("created_at"))


amessages = database_sync_to_async(_messages)


async def test_it_closes_unauthenticated_connections_with_4401():
    for path in (M, "/ws/presence/"):
        for token in ("", "not-a-jwt", make_token(expires_in=-3600)):
            client = Client(path, token=token)
            connected, _ = await client.comm.connect(timeout=5)
            assert connected  # accepted, then closed (CONTRACT §5)
            assert await client.comm.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
            await client.close()


async def test_a_session_is_in_its_groups_once_its_handshake_completes(alice, bob, direct, monkeypatch):
    """A message sent right after a session's handshake reaches it, even when joining its
    groups is slow (a busy Redis): the namespace joins them before the handshake completes."""
    joined = effects.group_add_many

    async def slow_join(channel: str, groups: list[str]) -> None:
        await asyncio.sleep(0.3)
        await joined(channel, groups)

    monkeypatch.setattr(effects, "group_add_many", slow_join)
    bob_tab = await ws(M, bob)
    try:
        await database_sync_to_async(message_send)(user=alice, conversation_id=direct.id, content="Tout de suite")
        assert (await bob_tab.recv_event("new_message"))["data"]["content"] == "Tout de suite"
    finally:
        await bob_tab.close()


@pytest.fixture
def other(alice, charlie) -> Conversation:
    return conversation_get_or_create_direct(user=charlie, other_user_id=alice.pk)[0]


async def test_what_the_channel_layer_delivers_is_not_held_back_by_a_frame_in_flight(alice, charlie, direct, other):
    """A session's own send waiting on PostgreSQL (its conversation's row locked by another
    transaction) does not hold back a message sent to it meanwhile: the consumer handles what
    the channel layer delivers in a task of its own, not in turn with its client's frames."""
    locked, release = threading.Event(), threading.Event()

    def hold_row_lock() -> None:
        try:
            with transaction.atomic():
                Conversation.objects.select_for_update().get(pk=direct.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_row_lock)
    holder.start()
    alice_tab = await ws(M, alice)
    try:
        assert await asyncio.to_thread(locked.wait, 5)
        await alice_tab.send("send_message", {"conversationId": str(direct.id), "content": "Bloqué"}, ref="s1")
        await asyncio.sleep(0.3)  # the statement is now waiting on the lock
        await database_sync_to_async(message_send)(user=charlie, conversation_id=other.id, content="Pendant ce temps")
        frame = await alice_tab.recv()
        assert (frame["event"], frame["data"]["content"]) == ("new_message", "Pendant ce temps")
        release.set()
        assert (await alice_tab.call_ok("send_message", {"conversationId": str(direct.id), "content": "Après"}))[
            "content"
        ] == "Après"
        assert [m.content for m in await amessages(direct)] == ["Bloqué", "Après"]
        acks = [f for f in alice_tab.pending if f["event"] == "ack"]
        assert [a["ref"] for a in acks] == ["s1"] and acks[0]["data"]["content"] == "Bloqué"
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
        await alice_tab.close()


async def test_it_delivers_new_message_to_every_session_of_every_participant(alice, bob, charlie, direct):
    alice_tab = await ws(M, alice)
    bob_joined = await ws(M, bob)
    bob_elsewhere = await ws(M, bob)  # never joins the room
    stranger = await ws(M, charlie)
    try:
        await bob_joined.call_ok("join_conversation", {"conversationId": str(direct.id)})

        ack = await alice_tab.call_ok(
            "send_message", {"conversationId": str(direct.id), "content": "  Bonjour Bob  ", "clientMessageId": "c-1"}
        )

        stored = await amessages(direct)
        assert [(m.content, m.sender_id, m.recipient_id, m.client_message_id) for m in stored] == [
            ("Bonjour Bob", alice.pk, bob.pk, "c-1")
        ]
        assert ack["id"] == str(stored[0].id) and ack["duplicate"] is False
        for tab in (bob_joined, bob_elsewhere):
            frame = await tab.recv_event("new_message")
            assert frame["data"] == {
                "id": str(stored[0].id),
                "conversationId": str(direct.id),
                "senderId": str(alice.pk),
                "senderEmail": alice.email,
                "recipientId": str(bob.pk),
                "content": "Bonjour Bob",
                "attachments": [],
                "clientMessageId": "c-1",
                "timestamp": ack["timestamp"],
                "readAt": None,
                "deleted": False,
                "deletedAt": None,
            }
            assert await tab.nothing()
        # The sender's own sessions see the message and its confirmation.
        events = {(await alice_tab.recv())["event"] for _ in range(2)}
        assert events == {"new_message", "message_sent"}
        assert await alice_tab.nothing()
        assert await stranger.nothing()
        conversation = await database_sync_to_async(Conversation.objects.get)(pk=direct.pk)
        assert conversation.last_message_id == stored[0].id
    finally:
        for c in (alice_tab, bob_joined, bob_elsewhere, stranger):
            await c.close()


async def test_it_sends_attachments_validated(alice, bob, direct):
    alice_tab = await ws(M, alice)
    bob_tab = await ws(M, bob)
    try:
        attachment = {"url": "https://cdn.example/cv.pdf", "name": "cv.pdf", "mime": "application/pdf", "size": 1234}
        await alice_tab.call_ok(
            "send_message", {"conversationId": str(direct.id), "content": "Mon CV", "attachments": [attachment]}
        )
        assert (await bob_tab.recv_event("new_message"))["data"]["attachments"] == [attachment]
        for bad in ([{"url": "javascript:alert(1)", "name": "x", "mime": "a/b", "size": 1}], "x", [{"url": 1}]):
            frame = await alice_tab.call(
                "send_message", {"conversationId": str(direct.id), "content": "x", "attachments": bad}
            )
            assert frame["error"]["code"] == "invalid_attachments"
        assert [m.attachments for m in await amessages(direct)] == [[attachment]]
        assert await bob_tab.nothing()
    finally:
        await alice_tab.close()
        await bob_tab.close()


async def test_it_refuses_non_participants_and_joins_nothing(alice, bob, charlie, direct):
    alice_tab = await ws(M, alice)
    intruder = await ws(M, charlie)
    try:
        for event, data in [
            ("join_conversation", {"conversationId": str(direct.id)}),
            ("typing", {"conversationId": str(direct.id), "isTyping": True}),
            ("send_message", {"conversationId": str(direct.id), "content": "Je lis tout"}),
            ("mark_as_read", {"conversationId": str(direct.id)}),
            ("join_conversation", {"conversationId": str(uuid.uuid4())}),  # unknown: same answer
        ]:
            frame = await intruder.call(event, data)
            assert frame["event"] == "error" and frame["error"]["code"] == "forbidden", frame
        await alice_tab.call_ok("join_conversation", {"conversationId": str(direct.id)})
        await alice_tab.call_ok("send_message", {"conversationId": str(direct.id), "content": "Privé"})
        await alice_tab.call_ok("typing", {"conversationId": str(direct.id), "isTyping": True})
        assert await intruder.nothing()  # joined nothing, receives nothing
        assert await amessages(direct) != [] and all(m.sender_id == alice.pk for m in await amessages(direct))
    finally:
        await alice_tab.close()
        await intruder.close()


async def test_it_sends_typing_and_presence_in_room_to_others_only(alice, bob, charlie, direct):
    alice_tab, alice_other_tab = await ws(M, alice), await ws(M, alice)
    bob_tab, bob_outside = await ws(M, bob), await ws(M, bob)
    try:
        await alice_tab.call_ok("join_conversation", {"conversationId": str(direct.id)})
        await alice_other_tab.call_ok("join_conversation", {"conversationId": str(direct.id)})
        await bob_tab.call_ok("join_conversation", {"conversationId": str(direct.id)})
        for tab in (alice_tab, alice_other_tab):
            joined = await tab.recv_event("user_joined")
            assert joined["data"]["userId"] == str(bob.pk) and joined["data"]["conversationId"] == str(direct.id)

        await alice_tab.call_ok("typing", {"conversationId": str(direct.id), "isTyping": True})
        typing = await bob_tab.recv_event("user_typing")
        assert typing["data"]["userId"] == str(alice.pk)
        assert typing["data"]["email"] == alice.email
        assert typing["data"]["isTyping"] is True
        assert typing["data"]["timestamp"].endswith("Z")
        # Never to the sender, in any tab; never outside the room.
        assert await alice_tab.nothing() and await alice_other_tab.nothing() and await bob_outside.nothing()

        await bob_tab.call_ok("leave_conversation", {"conversationId": str(direct.id)})
        for tab in (alice_tab, alice_other_tab):
            assert (await tab.recv_event("user_left"))["data"]["userId"] == str(bob.pk)
        await alice_tab.call_ok("typing", {"conversationId": str(direct.id), "isTyping": False})
        assert await bob_tab.nothing()  # left the room: no more typing

        # Closing a socket that is in the room announces user_left too.
        await bob_tab.call_ok("join_conversation", {"conversationId": str(direct.id)})
        await alice_tab.recv_event("user_joined")
        await alice_other_tab.recv_event("user_joined")
        await bob_tab.close()
        assert (await alice_tab.recv_event("user_left"))["data"]["userId"] == str(bob.pk)
    finally:
        for c in (alice_tab, alice_other_tab, bob_tab, bob_outside):
            await c.close()


async def test_it_marks_messages_read_and_tells_participants(alice, bob, charlie, direct):
    alice_tab, bob_tab, stranger = await ws(M, alice), await ws(M, bob), await ws(M, charlie)
    try:
        first = await alice_tab.call_ok("send_message", {"conversationId": str(direct.id), "content": "un"})
        second = await alice_tab.call_ok("send_message", {"conversationId": str(direct.id), "content": "deux"})
        await bob_tab.recv_event("new_message")
        await bob_tab.recv_event("new_message")
        assert sorted(f["event"] for f in await alice_tab.drain()) == [
            "message_sent",
            "message_sent",
            "new_message",
            "new_message",
        ]

        ack = await bob_tab.call_ok("mark_as_read", {"conversationId": str(direct.id), "messageIds": [first["id"]]})
        assert ack["messageIds"] == [first["id"]]
        receipt = await alice_tab.recv_event("messages_read")
        assert receipt["data"] == {
            "conversationId": str(direct.id),
            "userId": str(bob.pk),
            "messageIds": [first["id"]],
            "readAt": ack["readAt"],
        }
        await bob_tab.recv_event("messages_read")  # bob's other sessions learn it too

        ack = await bob_tab.call_ok("mark_as_read", {"conversationId": str(direct.id)})
        assert ack["messageIds"] == [second["id"]]
        await alice_tab.recv_event("messages_read")
        await bob_tab.recv_event("messages_read")

        # Nothing left to read: acked, nobody is told anything.
        assert (await bob_tab.call_ok("mark_as_read", {"conversationId": str(direct.id)}))["messageIds"] == []
        assert await alice_tab.nothing() and await stranger.nothing()
        assert all(m.read_at is not None for m in await amessages(direct))
        membership = await database_sync_to_async(ConversationParticipant.objects.get)(conversation=direct, user=bob)
        assert membership.last_read_at is not None
    finally:
        for c in (alice_tab, bob_tab, stranger):
            await c.close()


async def test_it_soft_deletes_the_senders_message_only(alice, bob, direct):
    alice_tab, bob_tab = await ws(M, alice), await ws(M, bob)
    try:
        sent = await alice_tab.call_ok("send_message", {"conversationId": str(direct.id), "content": "oups"})
        await bob_tab.recv_event("new_message")

        frame = await bob_tab.call("delete_message", {"messageId": sent["id"]})
        assert frame["error"]["code"] == "forbidden"
        frame = await bob_tab.call("delete_message", {"messageId": str(uuid.uuid4())})
        assert frame["error"]["code"] == "not_found"

        ack = await alice_tab.call_ok("delete_message", {"messageId": sent["id"]})
        assert ack["messageId"] == sent["id"]
        deleted = await bob_tab.recv_event("message_deleted")
        assert deleted["data"] == {
            "messageId": sent["id"],
            "conversationId": str(direct.id),
            "timestamp": ack["timestamp"],
        }
        (row,) = await amessages(direct)
        assert row.deleted_at is not None and row.content == "oups"  # kept for the admin
    finally:
        await alice_tab.close()
        await bob_tab.close()


async def test_it_stores_a_resent_client_message_id_once(alice, bob, direct):
    alice_tab, bob_tab = await ws(M, alice), await ws(M, bob)
    try:
        data = {"conversationId": str(direct.id), "content": "une fois", "clientMessageId": "retry-1"}
        first = await alice_tab.call_ok("send_message", data)
        again = await alice_tab.call_ok("send_message", data)
        assert again["id"] == first["id"] and again["duplicate"] is True
        await bob_tab.recv_event("new_message")
        assert await bob_tab.nothing()  # the resend announced nothing
        assert len(await amessages(direct)) == 1

        # Concurrently, from two tabs of the same sender.
        other_tab = await ws(M, alice)
        try:
            data["clientMessageId"] = "retry-2"
            results = await asyncio.gather(
                alice_tab.call_ok("send_message", data), other_tab.call_ok("send_message", data)
            )
            assert results[0]["id"] == results[1]["id"]
            assert sorted(r["duplicate"] for r in results) == [False, True]
            assert len(await amessages(direct)) == 2
            await bob_tab.recv_event("new_message")
            assert await bob_tab.nothing()
        finally:
            await other_tab.close()
    finally:
        await alice_tab.close()
        await bob_tab.close()


async def test_it_reaches_every_member_of_a_group(alice, bob, charlie, make_user):
    dora = await database_sync_to_async(make_user)("dora")
    group = await database_sync_to_async(conversation_create_group)(
        user=alice, participant_ids=[bob.pk, charlie.pk], title="Recrutement"
    )
    tabs = [await ws(M, u) for u in (alice, bob, charlie, dora)]
    try:
        sent = await tabs[0].call_ok("send_message", {"conversationId": str(group.id), "content": "Salut"})
        assert sent["recipientId"] is None
        for tab in tabs[1:3]:
            assert (await tab.recv_event("new_message"))["data"]["id"] == sent["id"]
        assert await tabs[3].nothing()
    finally:
        for t in tabs:
            await t.close()


async def test_it_answers_every_error_code(alice, bob, direct, settings):
    settings.WS_EVENTS_PER_10_SECONDS = 12
    tab = await ws(M, alice)
    try:
        cid = str(direct.id)
        await tab.comm.send_to(text_data="{not json")
        assert (await tab.recv())["error"]["code"] == "invalid_json"
        await tab.comm.send_to(text_data="[1, 2]")
        assert (await tab.recv())["error"]["code"] == "invalid_frame"
        await tab.comm.send_to(text_data=json.dumps({"event": "send_message", "data": "x" * (65 * 1024)}))
        assert (await tab.recv())["error"]["code"] == "frame_too_large"
        cases = [
            ("subscribe", {}, "unknown_event"),
            ("join_conversation", {"conversationId": "nope"}, "invalid_data"),
            ("send_message", {"conversationId": cid, "content": "   "}, "invalid_content"),
            ("send_message", {"conversationId": cid, "content": "x" * 5001}, "invalid_content"),
            ("send_message", {"conversationId": cid, "content": "x", "attachments": [{}]}, "invalid_attachments"),
            (
                "send_message",
                {"conversationId": cid, "content": "x", "clientMessageId": "x" * 101},
                "invalid_client_message_id",
            ),
        ]
        for event, data, code in cases:
            frame = await tab.call(event, data)
            assert frame["event"] == "error" and frame["error"]["code"] == code, (event, frame)
            assert frame["error"]["message"]
        # 9 frames so far; the rate limit (12 per 10 s) answers the 13th.
        for _ in range(3):
            await tab.call("typing", {"conversationId": cid})
        assert (await tab.call("typing", {"conversationId": cid}))["error"]["code"] == "rate_limited"
        assert await amessages(direct) == []
        # A forbidden action answers an error frame; the socket stays open.
        assert await tab.nothing()
    finally:
        await tab.close()
