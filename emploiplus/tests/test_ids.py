"""emploiplus.models.time_ordered_uuid: the ids of messages (RFC 9562 version 7)."""

from __future__ import annotations

import time
import uuid

import pytest

from emploiplus.models import time_ordered_uuid


def test_time_ordered_uuids_are_version_7_carry_their_millisecond_and_increase():
    time.sleep(0.01)  # past any millisecond an earlier id of this process took ahead
    before = time.time_ns() // 1_000_000
    first = time_ordered_uuid()
    after = time.time_ns() // 1_000_000
    ids = [first, *(time_ordered_uuid() for _ in range(500))]
    assert type(first) is uuid.UUID
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in ids)
    assert before <= first.int >> 80 <= after
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # UUIDs compare as integers


@pytest.mark.django_db(transaction=True)
def test_messages_get_time_ordered_ids_on_every_path(alice, bob):
    import asyncio

    from emploiplus.postgres import aio
    from messaging.models import Message
    from messaging.services import amessage_send, conversation_get_or_create_direct, message_send

    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    sync, _ = message_send(user=alice, conversation_id=conversation.pk, content="REST")

    async def over_the_socket():
        try:
            return (await amessage_send(user=bob, conversation_id=conversation.pk, content="socket"))[0]
        finally:
            await (await aio.loop_connections()).close()

    socket = asyncio.run(over_the_socket())
    admin = Message.objects.create(conversation=conversation, sender=alice, content="admin")
    assert [m.id.version for m in (sync, socket, admin)] == [7, 7, 7]
    assert Message.objects.filter(pk__in=[sync.id, socket.id, admin.id]).count() == 3
