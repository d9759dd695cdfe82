"""Inbound webhook deliveries, stored before they are acknowledged."""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q


class WebhookStatus(models.TextChoices):
    RECEIVED = "received", "Reçu"
    PROCESSING = "processing", "En cours"
    PROCESSED = "processed", "Traité"
    SKIPPED = "skipped", "Ignoré"
    FAILED = "failed", "Échec"


class WebhookEvent(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    delivery_key = models.CharField(
        max_length=300, unique=True, help_text="webhook-id, or table:record id:type:updated_at"
    )
    source = models.CharField(max_length=50, help_text="Endpoint that received it, e.g. jobs.notify")
    event_type = models.CharField(max_length=20, blank=True, default="")
    table_name = models.CharField(max_length=100, blank=True, default="")
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=WebhookStatus.choices, default=WebhookStatus.RECEIVED)
    attempts = models.PositiveSmallIntegerField(default=0)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    result = models.JSONField(default=dict, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "webhook_events"
        verbose_name = "événement webhook"
        constraints = [
            models.CheckConstraint(condition=Q(status__in=WebhookStatus.values), name="webhook_events_status_valid"),
        ]
        indexes = [models.Index(fields=["status", "-received_at"], name="idx_webhook_events_status")]

    def __str__(self) -> str:
        return f"{self.source} {self.event_type} {self.delivery_key}"
