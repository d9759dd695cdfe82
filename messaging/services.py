"""Writes of messaging: conversations, sending, reading, deleting.

The one path for every transport (REST, `/ws/messages/`, Socket.IO call these). Events
leave after the commit through `emploiplus.effects` (all frames of one commit in two Redis
round trips; from the consumer's own event loop when a consumer is the caller):

- `new_message` → `user_group` of every participant (every session, joined or not);
- `message_sent` → `user_group` of the sender;
- `messages_read`, `message_deleted` → `user_group` of every participant.

A participant with no live connection (see `messaging.presence`) gets the message
through the notifications pipeline (push), also after the commit.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import uuid
import weakref
from dataclasses import dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, connection, transaction
from django.db.models import Max, Q
from django.utils import timezone

from accounts.models import User
from emploiplus import effects
from emploiplus.batching import EAGER_AFTER, LoopBatcher, for_loop
from emploiplus.errors import ApplicationError, Forbidden, NotFound
from emploiplus.events import iso, user_group
from emploiplus.models import time_ordered_uuid
from emploiplus.postgres import aio
from messaging import presence
from messaging.models import MAX_GROUP_SIZE, MAX_MESSAGE_LENGTH, Conversation, ConversationParticipant, Message
from messaging.selectors import message_payload, parse_uuid

log = logging.getLogger(__name__)

MAX_ATTACHMENTS = 10
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024
MAX_CLIENT_MESSAGE_ID = 100
_MIME = re.compile(r"^[\w.+-]+/[\w.+-]+$")


# --- conversations ----------------------------------------------------------------------
def _active_users(user_ids: list[uuid.UUID]) -> list[User]:
    users = list(User.objects.filter(pk__in=user_ids, is_active=True))
    if len(users) != len(set(user_ids)):
        raise ApplicationError("invalid_participants", "Participant inconnu ou inactif.")
    return users


def direct_key(a: uuid.UUID | str, b: uuid.UUID | str) -> str:
    low, high = sorted([str(a), str(b)])
    return f"{low}:{high}"


@transaction.atomic
def conversation_get_or_create_direct(*, user: User, other_user_id: uuid.UUID | str) -> tuple[Conversation, bool]:
    """The one-to-one conversation between two users; `direct_key` is unique, so two
    concurrent calls find the same row (the loser's INSERT waits, fails, and reads)."""
    other_id = parse_uuid(other_user_id, field="participantIds")
    if other_id == user.pk:
        raise ApplicationError("invalid_participants", "Impossible de converser avec soi-même.")
    _active_users([other_id])
    key = direct_key(user.pk, other_id)
    existing = Conversation.objects.filter(direct_key=key).first()
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            conversation = Conversation.objects.create(direct_key=key, is_group=False, created_by=user)
            ConversationParticipant.objects.bulk_create(
                [ConversationParticipant(conversation=conversation, user_id=uid) for uid in (user.pk, other_id)]
            )
    except IntegrityError:
        return Conversation.objects.get(direct_key=key), False
    return conversation, True


@transaction.atomic
def conversation_create_group(*, user: User, participant_ids: list[uuid.UUID | str], title: str = "") -> Conversation:
    """A group conversation of the creator and `participant_ids` (at most MAX_GROUP_SIZE in all)."""
    ids = list(dict.fromkeys([user.pk, *(parse_uuid(p, field="participantIds") for p in participant_ids)]))
    if len(ids) < 2:
        raise ApplicationError("invalid_participants", "Une conversation a au moins deux participants.")
    if len(ids) > MAX_GROUP_SIZE:
        raise ApplicationError("too_many_participants", f"Un groupe compte au plus {MAX_GROUP_SIZE} participants.")
    _active_users(ids[1:])
    conversation = Conversation.objects.create(is_group=True, title=(title or "").strip()[:200], created_by=user)
    ConversationParticipant.objects.bulk_create(
        [ConversationParticipant(conversation=conversation, user_id=uid) for uid in ids]
    )
    return conversation


def conversation_create(
    *, user: User, participant_ids: list[uuid.UUID | str], title: str = "", is_group: bool | None = None
) -> tuple[Conversation, bool]:
    """Direct conversation for one other participant (unless is_group), else a group."""
    others = {str(p) for p in participant_ids} - {str(user.pk)}
    if not others:
        raise ApplicationError("invalid_participants", "Indiquez au moins un autre participant.")
    if len(others) == 1 and not is_group:
        return conversation_get_or_create_direct(user=user, other_user_id=others.pop())
    return conversation_create_group(user=user, participant_ids=list(others), title=title), True


# --- validation -------------------------------------------------------------------------
def _invalid(code: str, field: str, message: str) -> ApplicationError:
    """A validation error that REST renders with its field, like DRF's own."""
    return ApplicationError(code, message, extra={"errors": {field: [message]}})


def _clean_content(content: object) -> str:
    if not isinstance(content, str):
        raise _invalid("invalid_content", "content", "Le message doit être un texte.")
    content = content.strip()
    if not content:
        raise _invalid("invalid_content", "content", "Le message est vide.")
    if len(content) > MAX_MESSAGE_LENGTH:
        raise _invalid("invalid_content", "content", f"Le message dépasse {MAX_MESSAGE_LENGTH} caractères.")
    return content


def _clean_attachments(attachments: object) -> list[dict[str, Any]]:
    if attachments is None:
        return []
    if not isinstance(attachments, list) or len(attachments) > MAX_ATTACHMENTS:
        raise _invalid("invalid_attachments", "attachments", f"Au plus {MAX_ATTACHMENTS} pièces jointes, en liste.")
    cleaned = []
    for item in attachments:
        if not isinstance(item, dict) or set(item) - {"url", "name", "mime", "size"}:
            raise _invalid("invalid_attachments", "attachments", "Pièce jointe : {url, name, mime, size} attendus.")
        url, name, mime, size = item.get("url"), item.get("name"), item.get("mime"), item.get("size")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")) or len(url) > 2000:
            raise _invalid("invalid_attachments", "attachments", "Pièce jointe : 'url' doit être une URL http(s).")
        if not isinstance(name, str) or not name.strip() or len(name) > 255:
            raise _invalid("invalid_attachments", "attachments", "Pièce jointe : 'name' invalide.")
        if not isinstance(mime, str) or not _MIME.match(mime) or len(mime) > 100:
            raise _invalid("invalid_attachments", "attachments", "Pièce jointe : 'mime' invalide (type/sous-type).")
        if isinstance(size, bool) or not isinstance(size, int) or not 0 <= size <= MAX_ATTACHMENT_BYTES:
            raise _invalid("invalid_attachments", "attachments", "Pièce jointe : 'size' invalide (octets).")
        cleaned.append({"url": url, "name": name.strip(), "mime": mime, "size": size})
    return cleaned


def _clean_client_message_id(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool) or len(str(value)) > MAX_CLIENT_MESSAGE_ID:
        raise _invalid(
            "invalid_client_message_id", "clientMessageId", "clientMessageId invalide (100 caractères au plus)."
        )
    return str(value)


def _participants_or_forbidden(*, user: User, conversation_id: uuid.UUID | str) -> list[uuid.UUID]:
    ids = list(
        ConversationParticipant.objects.filter(conversation_id=conversation_id).values_list("user_id", flat=True)
    )
    if user.pk not in ids:
        raise Forbidden("Vous ne participez pas à cette conversation.")
    return ids


def _to_participants(user_ids: list[uuid.UUID], event: str, data: dict[str, Any]) -> list[tuple[str, str, dict]]:
    return [(user_group(uid), event, data) for uid in user_ids]


# --- messages ---------------------------------------------------------------------------
# One statement, one round trip (autocommit, no BEGIN/COMMIT): checks that the sender is a
# participant, inserts the message (a resend of the same (sender, clientMessageId) inserts
# nothing: ON CONFLICT on the partial unique index), moves the conversation's last message
# (never backwards: a concurrent send that committed a later message wins), and returns
# whether the sender may post, whether a row was inserted, and every participant id.
# Deferred foreign keys are checked at the statement's end, when the new row exists.
_SEND_SQL = """
WITH members AS (
    SELECT user_id FROM conversation_participants WHERE conversation_id = %(cid)s
), allowed AS (
    SELECT 1 WHERE EXISTS (SELECT 1 FROM members WHERE user_id = %(uid)s)
), inserted AS (
    INSERT INTO messages (id, conversation_id, sender_id, recipient_id, content, attachments,
                          client_message_id, created_at, updated_at)
    SELECT %(id)s, %(cid)s, %(uid)s,
           CASE WHEN (SELECT count(*) FROM members) = 2
                THEN (SELECT user_id FROM members WHERE user_id <> %(uid)s LIMIT 1) END,
           %(content)s, %(attachments)s::jsonb, %(cmid)s, %(now)s, %(now)s
    FROM allowed
    ON CONFLICT (sender_id, client_message_id) WHERE client_message_id IS NOT NULL DO NOTHING
    RETURNING recipient_id
), moved AS (
    UPDATE conversations SET last_message_id = %(id)s, last_message_at = %(now)s
    WHERE id = %(cid)s AND EXISTS (SELECT 1 FROM inserted)
      AND (last_message_at IS NULL OR last_message_at <= %(now)s)
)
SELECT EXISTS (SELECT 1 FROM allowed),
       EXISTS (SELECT 1 FROM inserted),
       (SELECT recipient_id FROM inserted),
       ARRAY(SELECT user_id FROM members)
"""


def message_send(
    *,
    user: User,
    conversation_id: uuid.UUID | str,
    content: object,
    attachments: object = None,
    client_message_id: object = None,
) -> tuple[Message, bool]:
    """Store a message and announce it; returns (message, created).

    Idempotent on (sender, clientMessageId): a resend — even concurrent — returns the
    stored message and announces nothing new. The unique index decides the race (a
    concurrent duplicate's INSERT waits for the first one's commit, then inserts nothing).
    The write is a single statement (`_SEND_SQL`): atomic on its own, and inside a caller's
    transaction the events still wait for that transaction's commit.
    """
    params = _send_params(user, conversation_id, content, attachments, client_message_id)
    with connection.cursor() as cursor:
        cursor.execute(_SEND_SQL, params)
        row = cursor.fetchone()
    new = _stored(user, params, row)
    if new is None:
        return _resent(user=user, params=params), False
    _announce(message_payload(new, sender_email=user.email), user, participants=row[3])
    return new.model(), True


async def amessage_send(
    *,
    user: User,
    conversation_id: uuid.UUID | str,
    content: object,
    attachments: object = None,
    client_message_id: object = None,
) -> tuple[Message, bool]:
    """`message_send` from an event loop (the consumers): the same statement, prepared, on
    the loop's own connections (emploiplus/postgres/aio.py) — no thread hop; its frames and
    the offline check leave from the loop before it returns, as with `effects.run_sync`.
    Sends of one loop that come while its statements are in flight go together in one
    statement (`_SEND_MANY_SQL`, `_astore`); on an idle loop the statement runs in this task
    (`EAGER_AFTER`)."""
    params = _send_params(user, conversation_id, content, attachments, client_message_id)
    [row] = await _send_batcher().submit([params])
    if isinstance(row, Exception):
        raise row
    new = _stored(user, params, row)
    if new is None:
        return await effects.run_sync(_resent, user=user, params=params), False
    # The statement has committed: its announcements leave now, from this task.
    await effects.asend_committed(_announcements(message_payload(new, sender_email=user.email), user, row[3]))
    return new.model(), True  # the model instance after the frames: it is not on their path


# The same statement for many sends at once, one row per send in their order: each send is
# checked, inserted (idempotent on (sender, clientMessageId), even between two sends of one
# batch) and answered as `_SEND_SQL` answers it; each conversation's last message moves once,
# to its latest new message. The conversations are locked in id order first, so that two
# processes' batches that touch the same conversations cannot deadlock.
_SEND_MANY_SQL = """
WITH input AS (
    SELECT * FROM unnest(%(cid)s::uuid[], %(uid)s::uuid[], %(id)s::uuid[], %(content)s::text[],
                         %(attachments)s::jsonb[], %(cmid)s::text[], %(now)s::timestamptz[])
        WITH ORDINALITY AS t(cid, uid, id, content, attachments, cmid, now, n)
), members AS (
    SELECT i.n, array_agg(p.user_id) AS users
    FROM input i JOIN conversation_participants p ON p.conversation_id = i.cid
    GROUP BY i.n
), allowed AS (
    SELECT i.*, m.users FROM input i JOIN members m ON m.n = i.n WHERE i.uid = ANY (m.users)
), inserted AS (
    INSERT INTO messages (id, conversation_id, sender_id, recipient_id, content, attachments,
                          client_message_id, created_at, updated_at)
    SELECT id, cid, uid,
           CASE WHEN cardinality(users) = 2 THEN (SELECT u FROM unnest(users) u WHERE u <> uid LIMIT 1) END,
           content, attachments, cmid, now, now
    FROM allowed ORDER BY n
    ON CONFLICT (sender_id, client_message_id) WHERE client_message_id IS NOT NULL DO NOTHING
    RETURNING id, recipient_id
), locked AS (
    SELECT c.id FROM conversations c WHERE c.id IN (SELECT cid FROM allowed) ORDER BY c.id FOR NO KEY UPDATE
), latest AS (
    SELECT DISTINCT ON (a.cid) a.cid, a.id, a.now
    FROM allowed a JOIN inserted USING (id) JOIN locked l ON l.id = a.cid
    ORDER BY a.cid, a.now DESC, a.n DESC
), moved AS (
    UPDATE conversations c SET last_message_id = l.id, last_message_at = l.now
    FROM latest l
    WHERE c.id = l.cid AND (c.last_message_at IS NULL OR c.last_message_at <= l.now)
)
SELECT a.n IS NOT NULL, ins.id IS NOT NULL, ins.recipient_id, coalesce(m.users, '{}')
FROM input i
LEFT JOIN members m ON m.n = i.n
LEFT JOIN allowed a ON a.n = i.n
LEFT JOIN inserted ins ON ins.id = i.id
ORDER BY i.n
"""
# Sends stored together at most, and statements of one loop in flight at once.
SEND_BATCH = 100
SEND_CONCURRENCY = 2
_send_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopBatcher] = weakref.WeakKeyDictionary()


_SEND_MANY_KEYS = ("cid", "uid", "id", "content", "attachments", "cmid", "now")


def _send_batcher() -> LoopBatcher:
    """The running loop's: its sends stored together (`_astore`)."""
    return for_loop(
        _send_batchers,
        lambda: LoopBatcher(_astore, most=SEND_BATCH, concurrency=SEND_CONCURRENCY, eager_after=EAGER_AFTER),
    )


async def _astore(sends: list[dict[str, Any]]) -> list[tuple | Exception]:
    """The rows of `sends`, one statement for all; a send that makes the whole statement fail
    (e.g. its conversation deleted meanwhile: a foreign key) is found by storing each alone,
    so that only its own caller gets the error. An outage or a timeout fails them all."""
    if len(sends) == 1:
        return [await aio.fetchone(_SEND_SQL, sends[0])]
    try:
        return await aio.fetchall(_SEND_MANY_SQL, {key: [send[key] for send in sends] for key in _SEND_MANY_KEYS})
    except (IntegrityError, DataError, aio.Conflict):
        log.info("message batch of %s failed, storing each alone", len(sends), exc_info=True)
    rows: list[tuple | Exception] = []
    for send in sends:
        try:
            rows.append(await aio.fetchone(_SEND_SQL, send))
        except Exception as exc:
            rows.append(exc)
    return rows


def _send_params(
    user: User, conversation_id: object, content: object, attachments: object, client_message_id: object
) -> dict[str, Any]:
    content = _clean_content(content)
    attachments = _clean_attachments(attachments)
    client_message_id = _clean_client_message_id(client_message_id)
    return {
        "cid": parse_uuid(conversation_id, field="conversationId"),
        "uid": user.pk,
        "id": time_ordered_uuid(),  # the primary key's B-tree grows at its right end
        "content": content,
        "attachments": json.dumps(attachments),
        "cmid": client_message_id,
        "now": timezone.now(),
    }


@dataclass(frozen=True, slots=True)
class _NewMessage:
    """A message just stored by `_SEND_SQL`, as `message_payload` reads it: its frames are
    built from this, and the `Message` instance (`model()`, ~40 µs of a cold server's CPU)
    only once they have left."""

    id: uuid.UUID
    conversation_id: uuid.UUID
    sender_id: uuid.UUID
    recipient_id: uuid.UUID | None
    content: str
    attachments: list[Any]
    client_message_id: str | None
    created_at: Any
    read_at: None = None
    deleted_at: None = None

    def model(self) -> Message:
        message = Message(
            id=self.id,
            conversation_id=self.conversation_id,
            sender_id=self.sender_id,
            recipient_id=self.recipient_id,
            content=self.content,
            attachments=self.attachments,
            client_message_id=self.client_message_id,
            created_at=self.created_at,
            updated_at=self.created_at,
        )
        message._state.adding = False
        message._state.db = DEFAULT_DB_ALIAS  # both paths write through the default database
        return message


def _stored(user: User, params: dict[str, Any], row: tuple) -> _NewMessage | None:
    """The stored message from `_SEND_SQL`'s row; None when a resend inserted nothing."""
    allowed, created, recipient_id, _participants = row
    if not allowed:
        raise Forbidden("Vous ne participez pas à cette conversation.")
    if not created:
        if params["cmid"] is None:  # pragma: no cover - nothing else inserts nothing
            raise RuntimeError("message insert returned no row")
        return None  # only a (sender, clientMessageId) conflict inserts nothing for a participant
    return _NewMessage(
        id=params["id"],
        conversation_id=params["cid"],
        sender_id=user.pk,
        recipient_id=recipient_id,
        content=params["content"],
        attachments=json.loads(params["attachments"]),
        client_message_id=params["cmid"],
        created_at=params["now"],
    )


def _resent(*, user: User, params: dict[str, Any]) -> Message:
    existing = Message.objects.get(sender_id=user.pk, client_message_id=params["cmid"])
    return _same_conversation(existing, params["cid"])


def _announce(payload: dict[str, Any], user: User, *, participants: list[uuid.UUID]) -> None:
    """`_announcements`, immediately in autocommit (the statement has committed), else after
    the caller's commit."""
    effects.register(_announcements(payload, user, participants))


def _announcements(payload: dict[str, Any], user: User, participants: list[uuid.UUID]) -> list[Any]:
    """`new_message` (the message's `message_payload`) to every participant, `message_sent` to
    the sender's sockets, and a push to the recipients who are offline."""
    sent = {
        "id": payload["id"],
        "clientMessageId": payload["clientMessageId"],
        "timestamp": payload["timestamp"],
        "conversationId": payload["conversationId"],
    }
    others = [uid for uid in participants if uid != user.pk]
    items: list[Any] = [
        effects.Frame(group, event, data)
        for group, event, data in (
            *_to_participants(participants, "new_message", payload),
            (user_group(user.pk), "message_sent", sent),
        )
    ]
    if others:
        # On a loop, the recipients' presence is read by the call that sends their frames.
        items.append(
            effects.FollowUp(
                lambda: _notify_offline(payload=payload, sender=user, recipient_ids=others),
                afn=lambda live: _anotify_offline(payload=payload, sender=user, recipient_ids=others, live=live),
                live_keys=tuple(presence.connections_key(uid) for uid in others),
            )
        )
    return items


def _same_conversation(message: Message, conversation_id: uuid.UUID | str) -> Message:
    if str(message.conversation_id) != str(conversation_id):
        raise ApplicationError(
            "client_message_id_conflict", "Ce clientMessageId a déjà servi dans une autre conversation.", status=409
        )
    return message


def _notify_offline(*, payload: dict[str, Any], sender: User, recipient_ids: list[uuid.UUID]) -> None:
    """Recipients with no live connection get a push through the notifications pipeline."""
    online = presence.online_user_ids(recipient_ids)
    offline = [uid for uid in recipient_ids if str(uid) not in online]
    if offline:
        _queue_push(payload=payload, sender=sender, offline=offline)


async def _anotify_offline(
    *, payload: dict[str, Any], sender: User, recipient_ids: list[uuid.UUID], live: list[bool] | None
) -> None:
    """`_notify_offline` from an event loop, given whether each recipient is online (`live`,
    read with the frames) or looking it up on the loop when that could not be (None); only
    when someone is offline does the push (database writes) go to a thread."""
    if live is None:
        online = set(await presence.aonline_user_ids(recipient_ids))
        live = [str(uid) in online for uid in recipient_ids]
    offline = [uid for uid, up in zip(recipient_ids, live, strict=True) if not up]
    if offline:
        await effects.run_sync(_queue_push, payload=payload, sender=sender, offline=offline)


def _queue_push(*, payload: dict[str, Any], sender: User, offline: list[uuid.UUID]) -> None:
    from notifications.services import notification_queue

    notification_queue(
        type="message",
        title=f"Nouveau message de {sender.full_name or sender.email or 'un utilisateur'}",
        body=payload["content"][:200],
        data={
            "conversationId": payload["conversationId"],
            "messageId": payload["id"],
            "senderId": str(sender.pk),
        },
        user_ids=offline,
    )


@transaction.atomic
def messages_mark_read(
    *, user: User, conversation_id: uuid.UUID | str, message_ids: list[uuid.UUID | str] | None = None
) -> dict[str, Any]:
    """Mark others' messages read (all, or `message_ids`) and move the user's last_read_at.

    Announces `messages_read {conversationId, userId, messageIds, readAt}` to every
    participant when something changed.
    """
    participants = _participants_or_forbidden(user=user, conversation_id=conversation_id)
    if message_ids is not None:
        if not isinstance(message_ids, list) or len(message_ids) > 500:
            raise ApplicationError("invalid_data", "'messageIds' : une liste de 500 identifiants au plus.")
        message_ids = [parse_uuid(m, field="messageIds") for m in message_ids]
    now = timezone.now()
    unread = Message.objects.filter(
        conversation_id=conversation_id, read_at__isnull=True, deleted_at__isnull=True
    ).exclude(sender_id=user.pk)
    if message_ids is not None:
        unread = unread.filter(pk__in=message_ids)
    ids = list(unread.values_list("id", flat=True))
    if ids:
        Message.objects.filter(pk__in=ids).update(read_at=now)
    # Reading up to a message reads everything before it (unread counts use last_read_at).
    if message_ids is None:
        read_up_to = now
    else:
        read_up_to = Message.objects.filter(conversation_id=conversation_id, pk__in=message_ids).aggregate(
            at=Max("created_at")
        )["at"]
    if read_up_to is not None:
        ConversationParticipant.objects.filter(conversation_id=conversation_id, user_id=user.pk).filter(
            Q(last_read_at__isnull=True) | Q(last_read_at__lt=read_up_to)
        ).update(last_read_at=read_up_to)
    data = {
        "conversationId": str(conversation_id),
        "userId": str(user.pk),
        "messageIds": [str(i) for i in ids],
        "readAt": iso(now),
    }
    if ids:
        effects.broadcast_many(_to_participants(participants, "messages_read", data))
    return data


@transaction.atomic
def message_delete(*, user: User, message_id: uuid.UUID | str) -> Message:
    """Soft delete by the sender: the row stays (admin), readers see no content."""
    message = Message.objects.select_for_update().filter(pk=message_id).first()
    if message is None:
        raise NotFound("Message introuvable.")
    participants = list(
        ConversationParticipant.objects.filter(conversation_id=message.conversation_id).values_list(
            "user_id", flat=True
        )
    )
    if user.pk not in participants:
        raise NotFound("Message introuvable.")
    if message.sender_id != user.pk:
        raise Forbidden("Seul l'expéditeur peut supprimer ce message.")
    if message.deleted_at is None:
        message.deleted_at = timezone.now()
        message.save(update_fields=["deleted_at", "updated_at"])
        effects.broadcast_many(
            _to_participants(
                participants,
                "message_deleted",
                {
                    "messageId": str(message.id),
                    "conversationId": str(message.conversation_id),
                    "timestamp": iso(message.deleted_at),
                },
            )
        )
    return message
