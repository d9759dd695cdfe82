"""Services under concurrency: races decided by the database's unique constraints."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection

from emploiplus.errors import ApplicationError, Forbidden
from messaging import presence, selectors
from messaging.models import MAX_GROUP_SIZE, Conversation, ConversationParticipant, Message
from messaging.services import (
    conversation_create,
    conversation_create_group,
    conversation_get_or_create_direct,
    message_delete,
    message_send,
    messages_mark_read,
)


def _concurrently(n: int, fn):
    """Run fn(i) in n threads released together; return results (exceptions included)."""
    barrier = threading.Barrier(n)
    results: list = [None] * n

    def run(i):
        try:
            barrier.wait(timeout=10)
            results[i] = fn(i)
        except Exception as exc:
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return results


@pytest.mark.django_db(transaction=True)
def test_it_creates_one_direct_conversation_under_a_race(alice, bob):
    results = _concurrently(
        8, lambda i: conversation_get_or_create_direct(user=(alice, bob)[i % 2], other_user_id=(bob, alice)[i % 2].pk)
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({conv.pk for conv, _created in results}) == 1
    assert sum(created for _conv, created in results) == 1
    (conversation,) = Conversation.objects.all()
    assert conversation.is_group is False
    assert set(conversation.memberships.values_list("user_id", flat=True)) == {alice.pk, bob.pk}


@pytest.mark.django_db(transaction=True)
def test_it_stores_one_message_for_concurrent_resends(alice, bob):
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    results = _concurrently(
        8,
        lambda i: message_send(user=alice, conversation_id=conversation.pk, content="hello", client_message_id="same"),
    )
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len({m.pk for m, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Message.objects.filter(conversation=conversation).count() == 1


@pytest.mark.django_db
def test_it_limits_groups_to_fifty(alice, make_user):
    others = [make_user(f"user{i}") for i in range(MAX_GROUP_SIZE)]
    group = conversation_create_group(user=alice, participant_ids=[u.pk for u in others[:49]], title=" Équipe ")
    assert group.memberships.count() == MAX_GROUP_SIZE and group.title == "Équipe"
    with pytest.raises(ApplicationError) as exc:
        conversation_create_group(user=alice, participant_ids=[u.pk for u in others])
    assert exc.value.code == "too_many_participants"
    with pytest.raises(ApplicationError) as exc:
        conversation_create(user=alice, participant_ids=[uuid.uuid4()])
    assert exc.value.code == "invalid_participants"
    with pytest.raises(ApplicationError) as exc:
        conversation_create(user=alice, participant_ids=[alice.pk])
    assert exc.value.code == "invalid_participants"
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_validates_content_and_membership(alice, bob, charlie):
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    for content in ("", "   ", None, 42, "x" * 5001):
        with pytest.raises(ApplicationError) as exc:
            message_send(user=alice, conversation_id=conversation.pk, content=content)
        assert exc.value.code == "invalid_content"
    message, created = message_send(user=alice, conversation_id=conversation.pk, content="x" * 5000)
    assert created and len(message.content) == 5000
    with pytest.raises(Forbidden):
        message_send(user=charlie, conversation_id=conversation.pk, content="intrus")
    with pytest.raises(Forbidden):
        messages_mark_read(user=charlie, conversation_id=conversation.pk)
    assert Message.objects.count() == 1


@pytest.mark.django_db
def test_it_counts_unread_per_conversation(alice, bob, charlie):
    with_bob, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    with_charlie, _ = conversation_get_or_create_direct(user=alice, other_user_id=charlie.pk)
    sent = [message_send(user=bob, conversation_id=with_bob.pk, content=f"m{i}")[0] for i in range(3)]
    message_send(user=charlie, conversation_id=with_charlie.pk, content="salut")
    message_send(user=alice, conversation_id=with_bob.pk, content="mine")  # own messages are never unread
    assert selectors.unread_counts(user=alice) == {str(with_bob.pk): 3, str(with_charlie.pk): 1}

    messages_mark_read(user=alice, conversation_id=with_bob.pk, message_ids=[sent[1].pk])
    assert selectors.unread_counts(user=alice)[str(with_bob.pk)] == 1  # reading m1 reads m0 too
    message_delete(user=bob, message_id=sent[2].pk)
    assert selectors.unread_counts(user=alice)[str(with_bob.pk)] == 0  # deleted ones don't count
    assert selectors.unread_counts(user=bob) == {str(with_bob.pk): 1}


@pytest.mark.django_db
def test_it_keeps_last_message_and_hides_deleted_content(alice, bob):
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    _first, _ = message_send(user=alice, conversation_id=conversation.pk, content="premier")
    last, _ = message_send(user=bob, conversation_id=conversation.pk, content="dernier")
    conversation.refresh_from_db()
    assert conversation.last_message_id == last.pk and conversation.last_message_at == last.created_at
    message_delete(user=bob, message_id=last.pk)
    payload = selectors.conversation_payload(
        selectors.conversation_get_for_user(user=alice, conversation_id=conversation.pk), user=alice
    )
    assert payload["lastMessage"]["content"] == "" and payload["lastMessage"]["deleted"] is True
    assert Message.objects.get(pk=last.pk).content == "dernier"


@pytest.mark.django_db(transaction=True)
def test_it_hands_messages_for_offline_recipients_to_notifications(alice, bob, charlie):
    """bob has no connection: his message goes to the notifications pipeline; charlie,
    online, gets no push."""
    notification_services = pytest.importorskip("notifications.services")
    if not hasattr(notification_services, "notification_queue"):
        pytest.skip("notifications.services.notification_queue not available yet")
    from notifications.models import Notification

    presence.get_redis().eval(
        presence.TOUCH,
        2,
        presence.connections_key(charlie.pk),
        presence.online_index_key(),
        0,
        30,
        str(charlie.pk),
        "c1",
    )
    group = conversation_create_group(user=alice, participant_ids=[bob.pk, charlie.pk])
    message, _ = message_send(user=alice, conversation_id=group.pk, content="Entretien demain ?")
    notes = list(Notification.objects.filter(type="message"))
    assert [n.user_id for n in notes] == [bob.pk]
    assert notes[0].data["messageId"] == str(message.pk)
    assert notes[0].data["conversationId"] == str(group.pk)
    assert "Entretien demain" in notes[0].body
    assert ConversationParticipant.objects.filter(conversation=group).count() == 3


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("layer", ["on our Redis", "on another address"])
def test_on_a_loop_the_offline_check_rides_in_the_call_that_sends_the_frames(alice, bob, charlie, settings, layer):
    """From an event loop, the one script call that sends a message's frames also reads
    whether each recipient is online (`effects.after_commit(live_keys=…)`): a message costs one
    Redis round trip, not one for the frames and one for presence. In a group, charlie
    (online) gets his frame and no push, bob (offline) a push. With the channel layer behind
    another address, the check is a call of its own on our Redis, and finds the same."""
    import asyncio

    from channels.layers import get_channel_layer

    from emploiplus import effects
    from emploiplus.postgres import aio
    from emploiplus.testing import Listener, TurnCountingProxy, channel_layer_at
    from messaging import services
    from notifications.models import Notification

    touch = (presence.connections_key(charlie.pk), presence.online_index_key(), 0, 30, str(charlie.pk), "c1")
    presence.get_redis().eval(presence.TOUCH, 2, *touch)  # the sync client stays on Redis itself
    group = conversation_create_group(user=alice, participant_ids=[bob.pk, charlie.pk])
    direct, _ = conversation_get_or_create_direct(user=alice, other_user_id=charlie.pk)
    listener = Listener()  # bob's and charlie's sockets, on Redis itself
    inboxes = {user.pk: listener.join(f"user.{user.pk}") for user in (bob, charlie)}
    try:
        with TurnCountingProxy.in_front_of(settings.REDIS_URL) as proxy:
            proxied = proxy.proxied(settings.REDIS_URL)
            channel_layer_at(settings, proxied)
            if layer == "on our Redis":
                settings.REDIS_URL = proxied  # presence's own loop client goes through the proxy too
            effects.reset_for_tests()

            async def send_two() -> int:
                await services.amessage_send(user=alice, conversation_id=group.pk, content="Entretien demain ?")
                proxy.reset()  # the pools are open; bob's push has sent its own frame
                await services.amessage_send(user=alice, conversation_id=direct.pk, content="À 10 h ?")
                turns = proxy.turns
                await get_channel_layer().close_pools()
                await (await aio.loop_connections()).close()
                return turns

            turns = asyncio.run(send_two())
    finally:
        effects.reset_for_tests()
        got = {uid: [m["data"]["content"] for m in listener.received(inbox)] for uid, inbox in inboxes.items()}
        listener.close()
    assert turns == 1  # on another address: the frames' call (presence went to Redis itself)
    assert got == {bob.pk: ["Entretien demain ?"], charlie.pk: ["Entretien demain ?", "À 10 h ?"]}
    pushed = Notification.objects.filter(type="message")
    assert [(n.user_id, n.body) for n in pushed] == [(bob.pk, "Entretien demain ?")]


@pytest.mark.django_db(transaction=True)
def test_the_frames_and_the_message_returned_are_those_of_the_stored_row(alice, bob):
    """The frames are built before any `Message` instance (services._NewMessage): what bob's
    socket gets and what both paths return are exactly what the database holds."""
    import asyncio

    from channels.layers import get_channel_layer

    from emploiplus.postgres import aio
    from emploiplus.testing import Listener
    from messaging import services

    direct, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    listener = Listener()
    inbox = listener.join(f"user.{bob.pk}")
    attachments = [{"url": "https://cdn.emploiplus.fr/cv.pdf", "name": "cv.pdf", "mime": "application/pdf", "size": 12}]

    async def send() -> Message:
        message, created = await services.amessage_send(
            user=alice, conversation_id=direct.pk, content="CV", attachments=attachments, client_message_id="c-1"
        )
        assert created
        await get_channel_layer().close_pools()
        await (await aio.loop_connections()).close()
        return message

    try:
        sent_on_loop = asyncio.run(send())
        sent_in_thread, _ = message_send(user=alice, conversation_id=direct.pk, content="Et la lettre")
        frames = [m["data"] for m in listener.received(inbox) if m["event"] == "new_message"]
    finally:
        listener.close()
    stored = [Message.objects.get(pk=m.pk) for m in (sent_on_loop, sent_in_thread)]
    payloads = [selectors.message_payload(m, sender_email=alice.email) for m in stored]
    assert frames == payloads
    assert [selectors.message_payload(m, sender_email=alice.email) for m in (sent_on_loop, sent_in_thread)] == payloads
    assert payloads[0]["attachments"] == attachments and payloads[0]["recipientId"] == str(bob.pk)
    assert [(m.updated_at, m._state.adding, m._state.db) for m in (sent_on_loop, sent_in_thread)] == [
        (m.updated_at, False, "default") for m in stored
    ]


@pytest.mark.django_db
def test_it_refuses_a_client_message_id_reused_in_another_conversation(alice, bob, charlie):
    with_bob, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    with_charlie, _ = conversation_get_or_create_direct(user=alice, other_user_id=charlie.pk)
    message_send(user=alice, conversation_id=with_bob.pk, content="pour Bob", client_message_id="k1")
    with pytest.raises(ApplicationError) as exc:
        message_send(user=alice, conversation_id=with_charlie.pk, content="pour Charlie", client_message_id="k1")
    assert exc.value.code == "client_message_id_conflict" and exc.value.status == 409
    # Another sender may use the same id.
    _, created = message_send(user=bob, conversation_id=with_bob.pk, content="réponse", client_message_id="k1")
    assert created
    assert list(Message.objects.order_by("created_at").values_list("content", flat=True)) == ["pour Bob", "réponse"]


@pytest.mark.django_db(transaction=True)
def test_it_sends_a_message_in_one_statement(alice, bob, charlie):
    """Membership check, insert and last-message move are one SQL statement (one round
    trip, autocommit); a resend costs one more read and stores nothing."""
    from django.test.utils import CaptureQueriesContext

    # bob online: no push (an offline recipient's push is the notifications app's queries)
    presence.get_redis().eval(
        presence.TOUCH, 2, presence.connections_key(bob.pk), presence.online_index_key(), 0, 30, str(bob.pk), "b1"
    )
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    attachments = [{"url": "https://files.test/cv.pdf", "name": "cv.pdf", "mime": "application/pdf", "size": 10}]
    with CaptureQueriesContext(connection) as queries:
        message, created = message_send(
            user=alice,
            conversation_id=conversation.pk,
            content=" bonjour ",
            attachments=attachments,
            client_message_id=7,
        )
    assert created and len(queries.captured_queries) == 1
    stored = Message.objects.get(pk=message.pk)
    assert (stored.content, stored.attachments, stored.client_message_id) == ("bonjour", attachments, "7")
    assert (stored.sender_id, stored.recipient_id, stored.created_at) == (alice.pk, bob.pk, message.created_at)
    conversation.refresh_from_db()
    assert (conversation.last_message_id, conversation.last_message_at) == (message.pk, message.created_at)

    with CaptureQueriesContext(connection) as queries:
        again, created = message_send(user=alice, conversation_id=conversation.pk, content="autre", client_message_id=7)
    assert not created and again.pk == message.pk and again.content == "bonjour"
    assert len(queries.captured_queries) == 2

    with CaptureQueriesContext(connection) as queries, pytest.raises(Forbidden):
        message_send(user=charlie, conversation_id=conversation.pk, content="intrus")
    assert len(queries.captured_queries) == 1
    with pytest.raises(Forbidden):  # an unknown conversation looks the same
        message_send(user=alice, conversation_id=uuid.uuid4(), content="perdu")
    assert Message.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_it_moves_last_message_forward_only_under_concurrent_sends(alice, make_user):
    members = [make_user(f"member{i}") for i in range(3)]
    group = conversation_create_group(user=alice, participant_ids=[m.pk for m in members])
    senders = [alice, *members]
    results = _concurrently(8, lambda i: message_send(user=senders[i % 4], conversation_id=group.pk, content=f"m{i}"))
    assert not [r for r in results if isinstance(r, Exception)], results
    group.refresh_from_db()
    latest = Message.objects.filter(conversation=group).order_by("-created_at").first()
    assert Message.objects.filter(conversation=group).count() == 8
    assert group.last_message_at == latest.created_at
    assert Message.objects.filter(conversation=group, recipient_id__isnull=False).count() == 0  # groups: no recipient


@pytest.mark.django_db(transaction=True)
def test_sends_of_one_loop_stored_together_are_each_answered_as_if_alone(alice, bob, charlie):
    """Concurrent sends of one event loop share a statement (`_SEND_MANY_SQL`): each gets what
    it would get alone — stored, a duplicate of a clientMessageId (even one of the same
    batch), refused for a non-participant — and each conversation's last message is its
    latest. A send whose conversation is gone fails alone: the others are stored."""
    import asyncio

    from django.db import IntegrityError

    from emploiplus.postgres import aio
    from messaging import services

    ab, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    bc, _ = conversation_get_or_create_direct(user=bob, other_user_id=charlie.pk)
    gone, _ = conversation_get_or_create_direct(user=alice, other_user_id=charlie.pk)
    statements: list[int] = []
    real = aio.fetchall

    async def counted(sql, params):
        statements.append(len(params["id"]))
        return await real(sql, params)

    async def scenario() -> list:
        aio.fetchall = counted
        # Every call through a drain task, as on a busy loop: an idle loop's first send goes in
        # its caller's task (`eager_after`, emploiplus/tests/test_batching.py), which would
        # make what batches here depend on the timing.
        services._send_batcher().eager_after = None
        try:
            first = asyncio.ensure_future(services.amessage_send(user=alice, conversation_id=ab.pk, content="0"))
            await asyncio.sleep(0)  # in flight: what follows waits and goes together
            sends = [
                services.amessage_send(user=alice, conversation_id=ab.pk, content=str(i), client_message_id=f"a{i}")
                for i in range(1, 6)
            ] + [
                services.amessage_send(user=alice, conversation_id=ab.pk, content="again", client_message_id="a1"),
                services.amessage_send(user=bob, conversation_id=bc.pk, content="to charlie"),
                services.amessage_send(user=charlie, conversation_id=ab.pk, content="stranger"),
            ]
            results = [await first, *await asyncio.gather(*sends, return_exceptions=True)]
            # A batch with a send to a conversation deleted under it: a foreign key fails.
            await asyncio.to_thread(_delete_conversation_keeping_participants, gone.pk)
            results += await asyncio.gather(
                services.amessage_send(user=alice, conversation_id=gone.pk, content="lost"),
                services.amessage_send(user=alice, conversation_id=ab.pk, content="kept"),
                return_exceptions=True,
            )
            return results
        finally:
            aio.fetchall = real
            await (await aio.loop_connections()).close()

    results = asyncio.run(scenario())
    created = [r[1] if isinstance(r, tuple) else type(r) for r in results]
    assert created == [True, True, True, True, True, True, False, True, Forbidden, IntegrityError, True]
    assert results[6][0].pk == results[1][0].pk  # the resend is answered with the first one
    assert statements == [8, 2]  # the 8 that came during the first went together; then the pair
    assert not Message.objects.filter(content__in=["again", "lost"]).exists()
    assert Message.objects.filter(conversation=ab).count() == 7
    ab.refresh_from_db()
    bc.refresh_from_db()
    assert (ab.last_message_id, bc.last_message_id) == (results[-1][0].pk, results[7][0].pk)


def _delete_conversation_keeping_participants(conversation_id) -> None:
    """The race a batch may meet: its statement sees the participants, not the conversation."""
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")  # no foreign-key triggers here
        cursor.execute("DELETE FROM conversations WHERE id = %s", [conversation_id])
        cursor.execute("SET session_replication_role = DEFAULT")
    connection.close()
