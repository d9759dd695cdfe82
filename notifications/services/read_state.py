"""Read state of the owner's notifications (REST and `/ws/notifications/` `mark_read`)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from emploiplus.errors import ApplicationError, NotFound
from notifications.models import Notification


def notification_mark_read(*, user, notification_ids: Iterable[Any]) -> list[str]:
    """Mark the caller's own notifications read. Ids of others' notifications are ignored;
    a role-broadcast frame's id (the batch id) marks the caller's notification of that batch.
    Returns the ids of the caller's notifications now read."""
    try:
        ids = [str(uuid.UUID(str(i))) for i in notification_ids]
    except (TypeError, ValueError, AttributeError) as exc:
        raise ApplicationError("invalid_id", "Identifiant de notification invalide.") from exc
    if not ids:
        return []
    now = timezone.now()
    with transaction.atomic():
        mine = Notification.objects.filter(Q(id__in=ids) | Q(batch_id__in=ids), user=user)
        matched = [str(i) for i in mine.values_list("id", flat=True)]
        mine.filter(read_at__isnull=True).update(read_at=now)
    return matched


def notification_mark_one_read(*, user, notification_id: Any) -> Notification:
    try:
        nid = uuid.UUID(str(notification_id))
    except ValueError as exc:
        raise NotFound("Notification introuvable.") from exc
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=nid, user=user).first()
        if notification is None:
            raise NotFound("Notification introuvable.")
        if notification.read_at is None:
            notification.read_at = timezone.now()
            notification.save(update_fields=["read_at"])
    return notification


def notification_mark_all_read(*, user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).update(read_at=timezone.now())
