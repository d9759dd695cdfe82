"""Reads of notifications: the owner's list (keyset cursor), unread count."""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from django.db.models import Q

from emploiplus.errors import ApplicationError
from notifications.models import Notification

MAX_LIMIT = 100


def encode_cursor(n: Notification) -> str:
    raw = f"{n.created_at.isoformat()}|{n.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, nid = raw.split("|", 1)
        return datetime.fromisoformat(created), uuid.UUID(nid)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApplicationError("invalid_cursor", "Curseur invalide.") from exc


def notification_list_for_user(
    *, user, cursor: str | None = None, limit: int = 20, unread_only: bool = False
) -> tuple[list[Notification], str | None]:
    """Newest first, keyset on (created_at desc, id desc): stable while new ones arrive."""
    limit = max(1, min(MAX_LIMIT, limit))
    qs = Notification.objects.filter(user=user)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    if cursor:
        created, nid = decode_cursor(cursor)
        qs = qs.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=nid))
    rows = list(qs.order_by("-created_at", "-id")[: limit + 1])
    next_cursor = encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return rows[:limit], next_cursor


def notification_unread_count(*, user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
