"""Reads of notifications: the owner's list (keyset cursor), unread count."""

from __future__ import annotations

from emploiplus import pagination
from notifications.models import Notification

MAX_LIMIT = 100


def notification_list_for_user(
    *, user, cursor: str | None = None, limit: int = 20, unread_only: bool = False
) -> tuple[list[Notification], str | None]:
    """Newest first, keyset on (created_at desc, id desc): stable while new ones arrive."""
    qs = Notification.objects.filter(user=user)
    if unread_only:
        qs = qs.filter(read_at__isnull=True)
    list_name = f"notifications.{user.pk}.{'unread' if unread_only else 'all'}"
    return pagination.keyset_page(qs, list_name=list_name, cursor=cursor, limit=limit)


def notification_unread_count(*, user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()
