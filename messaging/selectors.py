"""Reads of messaging: permission-aware lookups, lists with keyset cursors, payloads.

Message and conversation payloads have the same camelCase shape over REST and
WebSocket (CONTRACT §5), so a client merges history and live events without mapping.
A deleted message keeps its row (admins see it) but its content and attachments are
never shown to users.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, DateTimeField, Max, OuterRef, Prefetch, Subquery, Value
from django.db.models.functions import Coalesce

from accounts.models import User
from emploiplus import pagination
from emploiplus.errors import ApplicationError, NotFound
from emploiplus.events import iso
from messaging.models import Conversation, ConversationParticipant, Message

DEFAULT_PAGE = 30
MAX_PAGE = 100
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- payloads ---------------------------------------------------------------------------
def user_payload(user: User) -> dict[str, Any]:
    return {"id": str(user.pk), "email": user.email, "fullName": user.full_name, "avatarUrl": user.avatar_url}


def message_payload(message: Message, *, sender_email: str | None = None) -> dict[str, Any]:
    deleted = message.deleted_at is not None
    if sender_email is None:
        sender_email = message.sender.email if message.sender_id else None
    return {
        "id": str(message.id),
        "conversationId": str(message.conversation_id),
        "senderId": str(message.sender_id),
        "senderEmail": sender_email,
        "recipientId": str(message.recipient_id) if message.recipient_id else None,
        "content": "" if deleted else message.content,
        "attachments": [] if deleted else (message.attachments or []),
        "clientMessageId": message.client_message_id,
        "timestamp": iso(message.created_at),
        "readAt": iso(message.read_at),
        "deleted": deleted,
        "deletedAt": iso(message.deleted_at),
    }


def conversation_payload(conversation: Conversation, *, user: User) -> dict[str, Any]:
    """Needs `memberships` prefetched with users and `last_message__sender` selected."""
    others = [m.user for m in conversation.memberships.all() if m.user_id != user.pk]
    last = conversation.last_message
    return {
        "id": str(conversation.id),
        "isGroup": conversation.is_group,
        "title": conversation.title,
        "participants": [user_payload(u) for u in others],
        "lastMessage": message_payload(last) if last is not None else None,
        "lastMessageAt": iso(conversation.last_message_at),
        "unreadCount": getattr(conversation, "unread_count", None),
        "createdAt": iso(conversation.created_at),
    }


# --- permission-aware lookups ----------------------------------------------------------
def parse_uuid(value: object, *, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        raise ApplicationError("invalid_data", f"'{field}' doit être un identifiant (UUID).") from None


def is_participant(*, user: User, conversation_id: uuid.UUID | str) -> bool:
    return ConversationParticipant.objects.filter(conversation_id=conversation_id, user_id=user.pk).exists()


MAX_CONTACTS = 1000


def contact_ids(*, user: User, limit: int = MAX_CONTACTS) -> list[str]:
    """The people `user` shares a conversation with (most recently active first): whose
    presence a presence connection follows without subscribing (CONTRACT §5)."""
    rows = (
        ConversationParticipant.objects.filter(conversation__memberships__user_id=user.pk, user__is_active=True)
        .exclude(user_id=user.pk)
        .values("user_id")
        .annotate(latest=Max(Coalesce("conversation__last_message_at", "conversation__created_at")))
        .order_by("-latest")
        .values_list("user_id", flat=True)[:limit]
    )
    return [str(uid) for uid in rows]


def are_contacts(*, user: User, user_ids: list[str]) -> set[str]:
    """Those of `user_ids` who share a conversation with `user`."""
    if not user_ids:
        return set()
    rows = ConversationParticipant.objects.filter(
        conversation__memberships__user_id=user.pk, user_id__in=user_ids
    ).values_list("user_id", flat=True)
    return {str(uid) for uid in rows}


def conversation_require_participant(*, user: User, conversation_id: uuid.UUID | str) -> None:
    """404 unless the user is in the conversation (REST hides what a user may not see)."""
    if not is_participant(user=user, conversation_id=conversation_id):
        raise NotFound("Conversation introuvable.")


def _unread_subquery(user: User) -> Subquery:
    """Messages of others, not deleted, newer than the user's last_read_at (per conversation)."""
    last_read = ConversationParticipant.objects.filter(
        conversation_id=OuterRef(OuterRef("pk")), user_id=user.pk
    ).values("last_read_at")[:1]
    unread = (
        Message.objects.filter(conversation_id=OuterRef("pk"), deleted_at__isnull=True)
        .exclude(sender_id=user.pk)
        .filter(created_at__gt=Coalesce(Subquery(last_read), Value(EPOCH, output_field=DateTimeField())))
        .order_by()
        .values("conversation_id")
        .annotate(n=Count("id"))
        .values("n")
    )
    return Subquery(unread)


def _conversations_for(user: User):
    return (
        Conversation.objects.filter(memberships__user_id=user.pk)
        .select_related("last_message__sender")
        .prefetch_related(Prefetch("memberships", queryset=ConversationParticipant.objects.select_related("user")))
        .annotate(
            unread_count=Coalesce(_unread_subquery(user), 0),
            activity_at=Coalesce("last_message_at", "created_at"),
        )
    )


def conversation_get_for_user(*, user: User, conversation_id: uuid.UUID | str) -> Conversation:
    """The conversation with its unread count, or 404 when the user is not in it."""
    conversation = _conversations_for(user).filter(pk=conversation_id).first()
    if conversation is None:
        raise NotFound("Conversation introuvable.")
    return conversation


def conversation_list(*, user: User, cursor: str | None = None, limit: int = DEFAULT_PAGE) -> dict[str, Any]:
    """The user's conversations, most recent activity first; `{"results", "next_cursor"}`."""
    rows, next_cursor = pagination.keyset_page(
        _conversations_for(user), list_name=f"conversations.{user.pk}", cursor=cursor, limit=limit, at="activity_at"
    )
    return {"results": [conversation_payload(c, user=user) for c in rows], "next_cursor": next_cursor}


def message_list(
    *,
    user: User,
    conversation_id: uuid.UUID | str,
    before: str | None = None,
    after: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PAGE,
) -> dict[str, Any]:
    """History of a conversation the user is in.

    Default and `?before=<message id>`: newest first. `?after=<message id>` (catch-up after
    being offline): oldest first. `next_cursor` continues in the same direction (pass it as
    `?cursor=`).
    """
    conversation_require_participant(user=user, conversation_id=conversation_id)
    if sum(x is not None for x in (before, after, cursor)) > 1:
        raise ApplicationError("invalid_data", "Utilisez 'before', 'after' ou 'cursor', un seul.")
    list_name = f"messages.{conversation_id}"
    qs = Message.objects.filter(conversation_id=conversation_id).select_related("sender")
    ascending = after is not None
    if cursor is not None:
        ascending = pagination.decode_cursor(list_name, cursor).get("a") is True
    anchor_id = before or after
    if anchor_id:
        anchor = (
            Message.objects.filter(conversation_id=conversation_id, pk=parse_uuid(anchor_id, field="before/after"))
            .values("created_at", "id")
            .first()
        )
        if anchor is None:
            raise NotFound("Message introuvable.")
        qs = pagination.keyset_after(qs, anchor["created_at"], anchor["id"], ascending=ascending)
    rows, next_cursor = pagination.keyset_page(qs, list_name=list_name, cursor=cursor, limit=limit, ascending=ascending)
    if next_cursor is not None:
        last = rows[-1]
        next_cursor = pagination.encode_cursor(
            list_name, {"t": last.created_at.isoformat(), "i": str(last.id), "a": ascending}
        )
    return {"results": [message_payload(m) for m in rows], "next_cursor": next_cursor}


def unread_counts(*, user: User) -> dict[str, int]:
    """Unread messages per conversation id, for every conversation of the user."""
    rows = (
        Conversation.objects.filter(memberships__user_id=user.pk)
        .annotate(n=Coalesce(_unread_subquery(user), 0))
        .values_list("id", "n")
    )
    return {str(cid): n for cid, n in rows}
