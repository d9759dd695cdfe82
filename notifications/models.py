"""Notifications and their per-channel delivery records."""

from __future__ import annotations

import uuid

from django.conf import settings
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


class Notification(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
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

    def __str__(self) -> str:
        return f"{self.type}: {self.title}"


class NotificationDelivery(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="deliveries")
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
        indexes = [models.Index(fields=["status", "channel"], name="idx_deliveries_status")]
