"""The entry point (`notification_queue`), storing a batch's notifications, and their frames.

1. `notification_queue(...)` (any service: messaging, matching, admin tools) writes one
   `NotificationBatch` row. Small explicit recipient lists (≤ NOTIFICATIONS_INLINE_MAX ids)
   are resolved and stored right there, in the caller's transaction; everything else is
   resolved by the worker: after commit, one `notification_batch_fanout` job is enqueued.
   The caller pays one INSERT and one enqueue whatever the audience size.
2. `notification_batch_store` resolves the recipients (`recipients.recipients_sql`) and
   stores, in **one SQL statement**, one `notifications` row per user and one
   `notification_deliveries` row per external channel (push, email, sms). Fan-out rows get
   their delivery batch key right away (`push:<batch>:<n>`, ≤ 2000 ids each); rows stored
   inline get theirs from the dispatcher (`dispatch`), which coalesces identical
   notifications of many small calls.
3. Real time: every stored notification goes to its owner's notifications group after
   commit (inline batches in the same flush; fanned-out ones by one
   `notification_batch_broadcast` job); a role-wide broadcast (role, no ids, no filters)
   goes once to the role group. `notification_frame` is the one shape of that frame.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Role
from emploiplus import effects, events
from emploiplus.errors import ApplicationError
from emploiplus.events import iso
from notifications.models import BatchStatus, Channel, Notification, NotificationBatch
from notifications.services import dispatch
from notifications.services.dispatch import batch_size
from notifications.services.recipients import is_role_broadcast, normalize_filters, pack_user_ids, recipients_sql

log = logging.getLogger(__name__)

CHANNELS = tuple(Channel.values)
EXTERNAL_CHANNELS = ("push", "email", "sms")


def notification_frame(
    *, id: Any, type: str, title: str, body: str, data: dict[str, Any], created_at: datetime
) -> dict[str, Any]:
    """The `notification` event's payload (CONTRACT §5), for every transport."""
    return {"id": str(id), "type": type, "title": title, "body": body, "data": data, "createdAt": iso(created_at)}


def notification_queue(
    *,
    type: str,
    title: str,
    body: str,
    data: dict | None = None,
    user_ids: Iterable[Any] | None = None,
    role: str | None = None,
    filters: dict | None = None,
    channels: Iterable[str] = ("push", "websocket"),
    title_en: str | None = None,
    body_en: str | None = None,
) -> NotificationBatch:
    """Notify users. Recipients: `user_ids`, or everyone with `role`, or both (then the
    intersection); `filters` (skills overlap, location, job title) only narrow that set.
    Users who are inactive or have notifications disabled are dropped.

    Returns the `NotificationBatch` (status `stored` when it was stored inline, `queued`
    when the worker fans it out). Everything is announced/enqueued after commit.
    """
    if not type or not isinstance(type, str) or len(type) > 50:
        raise ApplicationError("invalid_type", "Type de notification invalide.")
    if not title or not str(title).strip():
        raise ApplicationError("invalid_title", "Le titre est obligatoire.")
    channels = tuple(dict.fromkeys(channels))
    if not channels or set(channels) - set(CHANNELS):
        raise ApplicationError("invalid_channels", f"Canaux possibles : {', '.join(CHANNELS)}.")
    if role is not None and role not in Role.values:
        raise ApplicationError("invalid_role", f"Rôle inconnu : {role!r}.")
    if user_ids is None and role is None:
        raise ApplicationError("recipients_required", "Indiquez des destinataires (user_ids ou role).")
    if data is not None and not isinstance(data, dict):
        raise ApplicationError("invalid_data", "'data' doit être un objet.")
    packed = None if user_ids is None else pack_user_ids(user_ids)
    clean_filters = normalize_filters(filters)

    batch = NotificationBatch(
        type=type,
        title=str(title)[:300],
        body=body or "",
        title_en=(title_en or "")[:300],
        body_en=body_en or "",
        data=data or {},
        channels=list(channels),
        recipient_ids=packed,
        requested_count=None if packed is None else len(packed) // 16,
        role=role or "",
        filters=clean_filters,
    )
    if packed is not None and not packed:
        batch.status = BatchStatus.STORED
        batch.recipients_count = 0
        return batch  # nobody to notify: nothing stored

    inline = packed is not None and len(packed) // 16 <= settings.NOTIFICATIONS_INLINE_MAX
    with transaction.atomic():
        batch.save(force_insert=True)
        if inline:
            notification_batch_store(batch=batch, inline=True)
        else:
            dispatch.enqueue_fanout(batch.id)
    return batch


_STORE_SQL = """
WITH recipients AS ({recipients}),
stored AS (
    INSERT INTO notifications (id, user_id, batch_id, type, title, body, data, created_at)
    SELECT gen_random_uuid(), r.user_id, %(batch)s::uuid, %(type)s, %(title)s, %(body)s, %(data)s::jsonb, %(now)s
    FROM recipients r
    RETURNING id, user_id
),
deliveries AS (
    INSERT INTO notification_deliveries
        (id, notification_id, channel, status, attempts, last_error, provider_id, batch_key, created_at, updated_at)
    SELECT gen_random_uuid(), s.id, ch.name, 'pending', 0, '', '',
           CASE WHEN %(assign)s THEN ch.name || ':' || %(batch)s || ':'
                || ((row_number() OVER (PARTITION BY ch.name ORDER BY s.user_id) - 1) / ch.size)::text
                ELSE '' END,
           %(now)s, %(now)s
    FROM stored s
    CROSS JOIN unnest(%(ch_names)s::text[], %(ch_sizes)s::int[]) AS ch(name, size)
    RETURNING channel
)
SELECT (SELECT count(*) FROM stored), (SELECT count(*) FROM deliveries)
"""


def notification_batch_store(*, batch: NotificationBatch, inline: bool = False) -> int:
    """Resolve and store the batch's notifications and delivery rows (one statement).

    Idempotent: runs under a row lock on the batch and does nothing once it is stored,
    so a fan-out job re-run after a worker crash never stores a user twice (the unique
    (batch, user) constraint backs this up; no ON CONFLICT: speculative inserts cost). Enqueues
    delivery jobs and real-time frames on commit. Returns the number of recipients.
    """
    with transaction.atomic():
        locked = NotificationBatch.objects.select_for_update().get(pk=batch.pk)
        if locked.status == BatchStatus.STORED:
            dispatch.enqueue_pending_batches(batch.pk)
            return locked.recipients_count or 0
        sql, params = recipients_sql(locked)
        external = [c for c in locked.channels if c in EXTERNAL_CHANNELS]
        now = timezone.now()
        params.update(
            batch=str(locked.pk),
            type=locked.type,
            title=locked.title,
            body=locked.body,
            data=json.dumps(locked.data),
            now=now,
            ch_names=external,
            ch_sizes=[batch_size(c) for c in external],
            assign=not inline,
        )
        with connection.cursor() as cursor:
            cursor.execute(_STORE_SQL.format(recipients=sql), params)
            stored_count, _ = cursor.fetchone()
        locked.status = BatchStatus.STORED
        locked.recipients_count = stored_count
        locked.stored_at = now
        locked.save(update_fields=["status", "recipients_count", "stored_at"])
        batch.status, batch.recipients_count, batch.stored_at = locked.status, stored_count, now

        if external and stored_count:
            if inline:
                effects.after_commit(dispatch.deliveries_request_dispatch)
            else:
                # Delivery jobs are enqueued before the websocket job: one worker pushes first.
                dispatch.enqueue_pending_batches(batch.pk)
        if "websocket" in locked.channels and stored_count:
            if is_role_broadcast(locked):
                # One frame for a whole role; its id is the batch id, which `mark_read` also accepts.
                effects.broadcast(
                    events.role_group(locked.role),
                    "notification",
                    _frame_of_batch(locked, id=locked.id, created_at=locked.stored_at),
                )
            elif inline:
                rows = Notification.objects.filter(batch=locked).values_list("id", "user_id", "created_at")
                effects.broadcast_many(
                    (
                        events.notifications_group(user_id),
                        "notification",
                        _frame_of_batch(locked, id=nid, created_at=created_at),
                    )
                    for nid, user_id, created_at in rows
                )
            else:
                dispatch.enqueue_broadcast(batch.pk)
        return stored_count


def _frame_of_batch(batch: NotificationBatch, *, id: Any, created_at: datetime) -> dict[str, Any]:
    return notification_frame(
        id=id, type=batch.type, title=batch.title, body=batch.body, data=batch.data, created_at=created_at
    )


def notification_batch_fanout(*, batch_id: uuid.UUID | str) -> int:
    """Worker side of a large `notification_queue` call."""
    try:
        batch = NotificationBatch.objects.get(pk=batch_id)
    except NotificationBatch.DoesNotExist:
        log.warning("notification batch %s vanished before its fan-out", batch_id)
        return 0
    return notification_batch_store(batch=batch, inline=False)


def notification_batch_broadcast(*, batch_id: uuid.UUID | str) -> int:
    """Send each stored notification of a fanned-out batch to its owner's group (worker side).
    Groups nobody listens to cost nothing but their share of one pipelined read."""
    try:
        batch = NotificationBatch.objects.get(pk=batch_id)
    except NotificationBatch.DoesNotExist:
        return 0
    rows = list(
        Notification.objects.filter(batch_id=batch_id).values_list("id", "user_id", "created_at").iterator(5000)
    )
    effects.broadcast_many(
        (events.notifications_group(user_id), "notification", _frame_of_batch(batch, id=nid, created_at=created_at))
        for nid, user_id, created_at in rows
    )
    return len(rows)
