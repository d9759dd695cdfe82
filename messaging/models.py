"""Conversations (one-to-one or groups of up to 50), participants and messages."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual

from emploiplus.models import TimestampedModel, time_ordered_uuid

MAX_GROUP_SIZE = 50
MAX_MESSAGE_LENGTH = 5000


class Conversation(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    is_group = models.BooleanField(default=False)
    title = models.CharField(max_length=200, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # For one-to-one conversations: "<smaller uuid>:<larger uuid>", unique, so that
    # get-or-create between two users cannot create two conversations under a race.
    direct_key = models.CharField(max_length=80, null=True, blank=True, unique=True, editable=False)
    last_message = models.ForeignKey(
        "Message", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_constraint=True
    )
    last_message_at = models.DateTimeField(null=True, blank=True)
    participants = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="ConversationParticipant", related_name="conversations"
    )

    class Meta:
        db_table = "conversations"
        verbose_name = "conversation"
        indexes = [models.Index(fields=["-last_message_at"], name="idx_conversations_last_msg")]

    def __str__(self) -> str:
        return self.title or f"Conversation {self.id}"


class ConversationParticipant(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversation_memberships"
    )
    last_read_at = models.DateTimeField(null=True, blank=True)
    joined_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "conversation_participants"
        verbose_name = "participant"
        constraints = [
            models.UniqueConstraint(fields=["conversation", "user"], name="conversation_participants_unique_pair")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in {self.conversation_id}"


class Message(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=time_ordered_uuid, editable=False)
    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False)
    sender = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="messages_sent")
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="messages_received"
    )
    content = models.TextField()
    attachments = models.JSONField(default=list, blank=True)
    client_message_id = models.CharField(max_length=100, null=True, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "messages"
        verbose_name = "message"
        constraints = [
            models.UniqueConstraint(
                fields=["sender", "client_message_id"],
                condition=Q(client_message_id__isnull=False),
                name="messages_unique_client_message_id",
            ),
            models.CheckConstraint(
                condition=Q(deleted_at__isnull=False) | Q(LessThanOrEqual(Length("content"), MAX_MESSAGE_LENGTH)),
                name="messages_content_length",
            ),
        ]
        indexes = [
            # CONTRACT §3: history of a conversation, newest first, deleted rows excluded.
            models.Index(
                fields=["conversation", "-created_at"],
                name="idx_messages_conv_created",
                condition=Q(deleted_at__isnull=True),
            ),
            # Keyset pagination (?before= / ?after=) over every row, deleted ones shown as such.
            models.Index(fields=["conversation", "-created_at", "-id"], name="idx_messages_conv_keyset"),
        ]

    def __str__(self) -> str:
        return f"{self.sender_id}: {self.content[:40]}"
