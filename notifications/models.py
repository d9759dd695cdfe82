"""Notifications and their per-channel delivery records."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from emploiplus.models import TimestampedModel


class Channel(models.TextChoices):
    PUSH = "push", "Push (OneSignal)"
    EMAIL = "email", "E-mail"
    SMS = "sms", "SMS"
    WEBSOCKET = "websocket", "WebSocket"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "En attente"
    SENT = "sent", "Envoyée"
    FAILED = "failed", "Échec"
    SKIPPED = "skipped", "Ignorée"


class BatchStatus(models.TextChoices):
    QUEUED = "queued", "En file"
    STORED = "stored", "Enregistrée"
    FAILED = "failed", "Échec"


class NotificationBatch(models.Model):
    """One call of `notification_queue`: the message, the recipient spec, the fan-out state.

    Large recipient sets are resolved and stored by the worker (`notification_batch_fanout`);
    the request only writes this row. `title_en`/`body_en` are the English texts sent to
    OneSignal (which requires an "en" entry); they fall back to the French ones.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=50)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, default="")
    title_en = models.CharField(max_length=300, blank=True, default="")
    body_en = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    channels = ArrayField(models.CharField(max_length=16), default=list)
    # Explicit recipients, packed: 16 bytes per user id (None: no explicit list). Packing
    # keeps the caller's cost flat: 10,000 ids are one 160 kB value, not 10,000 UUIDs
    # to format; SQL unpacks them in the worker.
    recipient_ids = models.BinaryField(null=True, blank=True, editable=False)
    requested_count = models.PositiveIntegerField(null=True, blank=True, help_text="Explicit ids given")
    role = models.CharField(max_length=16, blank=True, default="")
    filters = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=BatchStatus.choices, default=BatchStatus.QUEUED)
    recipients_count = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    stored_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notification_batches"
        verbose_name = "lot de notifications"
        verbose_name_plural = "lots de notifications"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=BatchStatus.values), name="notification_batches_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.type}: {self.title} ({self.status})"

    @property
    def user_ids(self) -> list[uuid.UUID] | None:
        if self.recipient_ids is None:
            return None
        raw = bytes(self.recipient_ids)
        return [uuid.UUID(bytes=raw[i : i + 16]) for i in range(0, len(raw), 16)]


class Notification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    # No index of its own: the unique (batch, user) constraint below serves batch lookups.
    batch = models.ForeignKey(
        NotificationBatch,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
        db_index=False,
    )
    type = models.CharField(max_length=50)
    title = models.CharField(max_length=300)
    body = models.TextField(blank=True, default="")
    data = models.JSONField(default=dict, blank=True)
    read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "notifications"
        verbose_name = "notification"
        indexes = [
            models.Index(fields=["user", "-created_at", "-id"], name="idx_notifications_user_created"),
            models.Index(fields=["user"], name="idx_notifications_unread", condition=Q(read_at__isnull=True)),
        ]
        constraints = [
            # A re-run fan-out (worker killed mid-way) never stores a second row per user.
            models.UniqueConstraint(fields=["batch", "user"], name="notifications_unique_batch_user"),
        ]

    def __str__(self) -> str:
        return f"{self.type}: {self.title}"


class NotificationDelivery(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by the unique (notification, channel) constraint.
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries", db_index=False)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    provider_id = models.CharField(max_length=200, blank=True, default="")
    batch_key = models.CharField(max_length=100, blank=True, default="", db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "notification_deliveries"
        verbose_name = "envoi de notification"
        constraints = [
            models.UniqueConstraint(fields=["notification", "channel"], name="notification_deliveries_unique_channel"),
            models.CheckConstraint(
                condition=Q(channel__in=Channel.values), name="notification_deliveries_channel_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=DeliveryStatus.values), name="notification_deliveries_status_valid"
            ),
        ]
        indexes = [
            # Only rows still to send or failed are worth finding by status; "sent" rows (the
            # bulk) stay out of it, which keeps marking 2000 rows sent cheap.
            models.Index(fields=["status", "channel"], name="idx_deliveries_status", condition=~Q(status="sent")),
            # Deliveries waiting for the dispatcher to give them a batch.
            models.Index(
                fields=["channel", "created_at"],
                name="idx_deliveries_undispatched",
                condition=Q(status="pending", batch_key=""),
            ),
        ]
