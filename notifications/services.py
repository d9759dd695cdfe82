"""Notification pipeline: one entry point, fan-out, batched delivery, read state.

Flow (docs/notifications.md has the picture):

1. `notification_queue(...)` (any service: messaging, matching, admin tools) writes one
   `NotificationBatch` row. Small explicit recipient lists (≤ NOTIFICATIONS_INLINE_MAX ids)
   are resolved and stored right there, in the caller's transaction; everything else is
   resolved by the worker: after commit, one `notification_batch_fanout` job is enqueued.
   The caller pays one INSERT and one enqueue whatever the audience size.
2. `notification_batch_store` resolves the recipients (active users, notifications
   enabled, filters narrowing the ids/role) and stores, in **one SQL statement**, one
   `notifications` row per user and one `notification_deliveries` row per external
   channel (push, email, sms). Fan-out rows get their delivery batch key right away
   (`push:<batch>:<n>`, ≤ 2000 ids each); rows stored inline get theirs from the
   dispatcher, which coalesces identical notifications of many small calls.
3. One job per delivery batch (`deliveries_send`, queue per channel) makes one provider
   call. The batch key is persisted before the call, so a retried or re-run job sends
   the same recipients with the same idempotency key (uuid5 of the key), and rows
   already marked sent are skipped.
4. Real time: every stored notification goes to the owner's notifications group after
   commit; a role-wide broadcast (role, no ids, no filters) goes once to the role group.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.db import connection, transaction
from django.db.models import Value
from django.utils import timezone

from accounts.models import Role
from emploiplus import events
from emploiplus.errors import ApplicationError, NotFound
from emploiplus.redis import get_redis, key
from notifications import conf
from notifications.models import (
    BatchStatus,
    Channel,
    DeliveryStatus,
    Notification,
    NotificationBatch,
    NotificationDelivery,
)
from notifications.senders import email as email_sender
from notifications.senders import onesignal

log = logging.getLogger(__name__)

CHANNELS = tuple(Channel.values)
EXTERNAL_CHANNELS = ("push", "email", "sms")
QUEUE_FOR_CHANNEL = {"push": "notifications", "email": "emails", "sms": "sms"}
FILTER_KEYS = {"skills", "location", "job_title"}
BATCH_ERROR_PREFIX = "batch: "  # last_error of rows whose whole batch failed
IDEMPOTENCY_NAMESPACE = uuid.UUID("5b1d6f0e-6a43-4c1e-9d0e-2f9a7c3e8b51")


def batch_size(channel: str) -> int:
    return conf.get_int(f"NOTIFICATIONS_{channel.upper()}_BATCH_SIZE")


def idempotency_key(batch_key: str) -> str:
    """Same delivery batch → same key, on every retry and every re-run."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, batch_key))


# --- the entry point ----------------------------------------------------------------------


def pack_user_ids(user_ids: Iterable[Any]) -> bytes:
    """Deduplicated ids as 16 bytes each, validated. Fast for large lists of UUIDs or
    strings (no per-id formatting: ~1 µs per id)."""
    values = list(dict.fromkeys(user_ids))
    try:
        if all(isinstance(v, uuid.UUID) for v in values):
            packed = b"".join([v.bytes for v in values])
        else:
            texts = [v.hex if isinstance(v, uuid.UUID) else str(v).replace("-", "") for v in values]
            if any(len(t) != 32 for t in texts):
                raise ValueError
            packed = bytes.fromhex("".join(texts))
    except (TypeError, ValueError) as exc:
        bad = next((v for v in values if not _is_uuid(v)), values[0] if values else None)
        raise ApplicationError("invalid_recipient", f"Identifiant d'utilisateur invalide : {bad!r}.") from exc
    if len(set(packed[i : i + 16] for i in range(0, len(packed), 16))) != len(packed) // 16:
        # "abc…" and "ABC…" or dashed/undashed spellings of one id: dedupe on the bytes.
        packed = b"".join(dict.fromkeys(packed[i : i + 16] for i in range(0, len(packed), 16)))
    return packed


def _is_uuid(value: Any) -> bool:
    try:
        uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError):
        return False
    return True


def _normalize_filters(filters: dict | None) -> dict[str, Any]:
    if not filters:
        return {}
    if not isinstance(filters, dict):
        raise ApplicationError("invalid_filters", "Les filtres doivent être un objet.")
    unknown = set(filters) - FILTER_KEYS
    if unknown:
        raise ApplicationError("invalid_filters", f"Filtres inconnus : {', '.join(sorted(unknown))}.")
    out: dict[str, Any] = {}
    skills = filters.get("skills")
    if skills:
        if isinstance(skills, str):
            skills = [skills]
        out["skills"] = _normalize_skills([str(s) for s in skills])
    for name in ("location", "job_title"):
        value = (filters.get(name) or "").strip()
        if value:
            out[name] = value
    return out


def _normalize_skills(skills: list[str]) -> list[str]:
    """The matching app's normaliser when present (aliases: ReactJS → react), else case/space folding."""
    try:
        from matching.skills import normalize_skills  # type: ignore[import-not-found]
    except ImportError:
        return sorted({" ".join(s.lower().split()) for s in skills if s.strip()})
    return list(normalize_skills(skills))


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
    clean_filters = _normalize_filters(filters)

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

    inline = packed is not None and len(packed) // 16 <= conf.get_int("NOTIFICATIONS_INLINE_MAX")
    with transaction.atomic():
        batch.save(force_insert=True)
        if inline:
            notification_batch_store(batch=batch, inline=True)
        else:
            transaction.on_commit(lambda: _enqueue_fanout(batch.id), robust=True)
    return batch


# --- fan-out ----------------------------------------------------------------------------


def _recipients_sql(batch: NotificationBatch) -> tuple[str, dict[str, Any]]:
    conditions = [
        "u.is_active",
        # Users without a candidate profile (companies, admins) have no opt-out flag.
        "(c.id IS NULL OR (c.notifications_enabled AND c.is_active AND c.deleted_at IS NULL))",
    ]
    params: dict[str, Any] = {}
    if batch.recipient_ids is not None:
        # Unpack the 16-byte ids in SQL (no per-id work in Python).
        conditions.append(
            "u.id IN (SELECT encode(substring(%(ids)s::bytea FROM i * 16 + 1 FOR 16), 'hex')::uuid"
            " FROM generate_series(0, length(%(ids)s::bytea) / 16 - 1) AS i)"
        )
        params["ids"] = bytes(batch.recipient_ids)
    if batch.role:
        conditions.append("u.role = %(role)s")
        params["role"] = batch.role
    filters = batch.filters or {}
    if filters:
        conditions.append("c.id IS NOT NULL")
    if filters.get("skills"):
        conditions.append("c.skills && %(skills)s::text[]")
        params["skills"] = filters["skills"]
    for name in ("location", "job_title"):
        if filters.get(name):
            conditions.append(f"strpos(lower(f_unaccent(c.{name})), lower(f_unaccent(%({name})s))) > 0")
            params[name] = filters[name]
    sql = "SELECT u.id AS user_id FROM users u LEFT JOIN candidates c ON c.id = u.id WHERE " + " AND ".join(conditions)
    return sql, params


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
            transaction.on_commit(lambda: _enqueue_pending_batches(batch.pk), robust=True)
            return locked.recipients_count or 0
        recipients_sql, params = _recipients_sql(locked)
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
        sql = f"""
WITH recipients AS ({recipients_sql}),
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
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            stored_count, _ = cursor.fetchone()
        locked.status = BatchStatus.STORED
        locked.recipients_count = stored_count
        locked.stored_at = now
        locked.save(update_fields=["status", "recipients_count", "stored_at"])
        batch.status, batch.recipients_count, batch.stored_at = locked.status, stored_count, now

        if external and stored_count:
            if inline:
                transaction.on_commit(deliveries_request_dispatch, robust=True)
            else:
                # Delivery jobs are enqueued before the websocket job: one worker pushes first.
                transaction.on_commit(lambda: _enqueue_pending_batches(batch.pk), robust=True)
        if "websocket" in locked.channels and stored_count:
            if _is_role_broadcast(locked):
                frame = _role_frame(locked)
                events.broadcast_on_commit(events.role_group(locked.role), "notification", frame)
            elif inline:
                for n in Notification.objects.filter(batch=locked).only(
                    "id", "user_id", "type", "title", "body", "data", "created_at"
                ):
                    events.broadcast_on_commit(events.notifications_group(n.user_id), "notification", _frame(n))
            else:
                transaction.on_commit(lambda: _enqueue_broadcast(batch.pk), robust=True)
        return stored_count


def notification_batch_fanout(*, batch_id: uuid.UUID | str) -> int:
    """Worker side of a large `notification_queue` call."""
    try:
        batch = NotificationBatch.objects.get(pk=batch_id)
    except NotificationBatch.DoesNotExist:
        log.warning("notification batch %s vanished before its fan-out", batch_id)
        return 0
    return notification_batch_store(batch=batch, inline=False)


def _is_role_broadcast(batch: NotificationBatch) -> bool:
    return bool(batch.role) and batch.recipient_ids is None and not batch.filters


def _frame(n: Notification) -> dict[str, Any]:
    return {
        "id": str(n.id),
        "type": n.type,
        "title": n.title,
        "body": n.body,
        "data": n.data,
        "createdAt": _iso(n.created_at),
    }


def _role_frame(batch: NotificationBatch) -> dict[str, Any]:
    """One frame for a whole role; its id is the batch id, which `mark_read` also accepts."""
    return {
        "id": str(batch.id),
        "type": batch.type,
        "title": batch.title,
        "body": batch.body,
        "data": batch.data,
        "createdAt": _iso(batch.stored_at or batch.created_at),
    }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def notification_batch_broadcast(*, batch_id: uuid.UUID | str, concurrency: int = 100) -> int:
    """Send each stored notification of a fanned-out batch to its owner's group."""
    try:
        batch = NotificationBatch.objects.get(pk=batch_id)
    except NotificationBatch.DoesNotExist:
        return 0
    rows = list(
        Notification.objects.filter(batch_id=batch_id).values_list("id", "user_id", "created_at").iterator(5000)
    )
    frames = [
        (
            events.notifications_group(user_id),
            {
                "id": str(nid),
                "type": batch.type,
                "title": batch.title,
                "body": batch.body,
                "data": batch.data,
                "createdAt": _iso(created_at),
            },
        )
        for nid, user_id, created_at in rows
    ]
    async_to_sync(_group_send_all)(frames, concurrency)
    return len(frames)


async def _group_send_all(frames: list[tuple[str, dict[str, Any]]], concurrency: int) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    if layer is None:
        return
    frames = await _frames_with_listeners(layer, frames)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(group: str, data: dict[str, Any]) -> None:
        async with semaphore:
            await layer.group_send(group, events.event_message("notification", data))

    await asyncio.gather(*(one(g, d) for g, d in frames))


async def _frames_with_listeners(layer: Any, frames: list[tuple[str, dict[str, Any]]]) -> list:
    """Drop frames for groups nobody listens to (most recipients of a large fan-out are
    offline): one pipelined ZCARD per 5000 groups instead of a group_send each. Relies on
    channels_redis' group keys; with another layer (or several shards) every frame is sent."""
    group_key = getattr(layer, "_group_key", None)
    if group_key is None or getattr(layer, "ring_size", 0) != 1 or len(frames) < 100:
        return frames
    connection = layer.connection(0)
    kept: list[tuple[str, dict[str, Any]]] = []
    for start in range(0, len(frames), 5000):
        chunk = frames[start : start + 5000]
        async with connection.pipeline(transaction=False) as pipe:
            for group, _ in chunk:
                pipe.zcard(group_key(group))
            counts = await pipe.execute()
        kept += [frame for frame, count in zip(chunk, counts, strict=True) if count]
    return kept


# --- enqueueing (always after commit) ---------------------------------------------------------


def _queue(name: str):
    import django_rq

    return django_rq.get_queue(name)


def _retry_on_crash():
    """Enqueue-time retries: used when a job raised unexpectedly or was abandoned by a
    killed worker (StartedJobRegistry cleanup retries it while retries are left)."""
    from rq import Retry

    return Retry(max=3, interval=[0, 30, 120])  # first one immediate: no scheduler needed


def _enqueue_fanout(batch_id: uuid.UUID) -> None:
    from notifications import jobs

    _queue("notifications").enqueue(
        jobs.notification_batch_fanout,
        str(batch_id),
        job_id=f"notif-fanout-{batch_id}",
        retry=_retry_on_crash(),
        description=f"fan-out of notification batch {batch_id}",
    )


def _enqueue_broadcast(batch_id: uuid.UUID) -> None:
    from notifications import jobs

    _queue("notifications").enqueue(
        jobs.notification_batch_broadcast,
        str(batch_id),
        job_id=f"notif-ws-{batch_id}",
        description=f"websocket frames of notification batch {batch_id}",
    )


def delivery_job_id(batch_key: str) -> str:
    return "notif-deliver-" + batch_key.replace(":", "-")


def _enqueue_deliveries(batch_keys: Iterable[str]) -> int:
    """One job per delivery batch on its channel's queue (deterministic job ids)."""
    from notifications import jobs

    by_queue: dict[str, list[str]] = defaultdict(list)
    for batch_key in batch_keys:
        by_queue[QUEUE_FOR_CHANNEL[batch_key.split(":", 1)[0]]].append(batch_key)
    count = 0
    for queue_name, keys in by_queue.items():
        queue = _queue(queue_name)
        queue.enqueue_many(
            [
                queue.prepare_data(
                    jobs.deliveries_send,
                    (k,),
                    job_id=delivery_job_id(k),
                    retry=_retry_on_crash(),
                    description=f"deliver {k}",
                )
                for k in keys
            ]
        )
        count += len(keys)
    return count


def _enqueue_pending_batches(batch_id: uuid.UUID) -> int:
    keys = (
        NotificationDelivery.objects.filter(notification__batch_id=batch_id, status=DeliveryStatus.PENDING)
        .exclude(batch_key="")
        .values_list("batch_key", flat=True)
        .distinct()
    )
    return _enqueue_deliveries(sorted(keys, key=_batch_key_order))


def _batch_key_order(batch_key: str) -> tuple[str, str, int]:
    channel, batch, seq = batch_key.rsplit(":", 2) if batch_key.count(":") >= 2 else (batch_key, "", "0")
    return (channel, batch, int(seq) if seq.isdigit() else 0)


# --- dispatcher: gives small inline notifications a delivery batch ----------------------------


def _dispatch_flag() -> str:
    return key("notifications", "dispatch-requested")


def deliveries_request_dispatch() -> None:
    """Ask for one dispatcher run (a no-op while one is already queued)."""
    from notifications import jobs

    if get_redis().set(_dispatch_flag(), "1", nx=True, ex=120):
        _queue("notifications").enqueue(jobs.deliveries_dispatch, description="dispatch pending deliveries")


def deliveries_dispatch(*, older_than: timedelta | None = None) -> int:
    """Group undispatched pending deliveries with identical content into batches of the
    channel's size (many one-recipient calls → few provider calls), persist their batch
    keys, enqueue one job per batch. Concurrent dispatchers skip each other's rows."""
    get_redis().delete(_dispatch_flag())
    created: list[str] = []
    with transaction.atomic():
        qs = NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING, batch_key="")
        if older_than is not None:
            qs = qs.filter(created_at__lt=timezone.now() - older_than)
        rows = list(
            qs.select_for_update(skip_locked=True, of=("self",))
            .order_by("created_at")
            .values_list(
                "id",
                "channel",
                "notification__type",
                "notification__title",
                "notification__body",
                "notification__data",
                "notification__batch__title_en",
                "notification__batch__body_en",
            )[:50000]
        )
        groups: dict[tuple, list[uuid.UUID]] = defaultdict(list)
        for delivery_id, channel, *content in rows:
            groups[(channel, *[json.dumps(c, sort_keys=True) for c in content])].append(delivery_id)
        for signature, ids in groups.items():
            channel = signature[0]
            size = batch_size(channel)
            group_id = uuid.uuid4().hex
            for seq, start in enumerate(range(0, len(ids), size)):
                batch_key = f"{channel}:d{group_id}:{seq}"
                NotificationDelivery.objects.filter(id__in=ids[start : start + size]).update(batch_key=batch_key)
                created.append(batch_key)
        if created:
            transaction.on_commit(lambda: _enqueue_deliveries(created), robust=True)
    return len(created)


# --- delivery ------------------------------------------------------------------------------


@dataclass
class DeliveryOutcome:
    batch_key: str
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    retry_in: int | None = None  # seconds: the job should be retried
    permanent_error: str = ""  # the job should fail without retry
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_key": self.batch_key,
            "sent": self.sent,
            "failed": self.failed,
            "skipped": self.skipped,
            "retry_in": self.retry_in,
            "error": self.permanent_error,
        }


def _backoff(attempt: int, retry_after: float | None) -> int:
    base = conf.get("NOTIFICATIONS_RETRY_BASE_SECONDS")
    delay = min(conf.get("NOTIFICATIONS_RETRY_MAX_SECONDS"), base * (2 ** max(0, attempt - 1)))
    if retry_after is not None:
        # RQ's scheduler keeps whole-second timestamps (truncated): one more second makes
        # sure the retry never comes before the provider's Retry-After.
        delay = max(delay, retry_after + 1)
    return max(1, round(delay + 0.49))


def delivery_batch_send(*, batch_key: str) -> DeliveryOutcome:
    """Send one delivery batch with one provider call (push/sms) or one SMTP session (email).

    Only rows still `pending` are sent, so a re-run after a crash skips what was
    already recorded as sent; the idempotency key covers a crash between the provider's
    answer and our bookkeeping.
    """
    outcome = DeliveryOutcome(batch_key=batch_key)
    channel = batch_key.split(":", 1)[0]
    pending = NotificationDelivery.objects.filter(batch_key=batch_key, status=DeliveryStatus.PENDING)
    # (id, user id, e-mail, full name, attempts); push/SMS need no join to users.
    if channel == "email":
        columns = ("id", "notification__user_id", "notification__user__email", "notification__user__full_name")
    else:
        columns = ("id", "notification__user_id", Value(""), Value(""))
    columns = (*columns, "attempts")
    rows = list(pending.order_by("notification__user_id").values_list(*columns))
    # A batch that failed as a whole (4xx, retries exhausted) is sent again when its job is
    # requeued from the RQ dashboard; per-recipient failures (invalid aliases) are not.
    if not rows and NotificationDelivery.objects.filter(
        batch_key=batch_key, status=DeliveryStatus.FAILED, last_error__startswith=BATCH_ERROR_PREFIX
    ).update(status=DeliveryStatus.PENDING, attempts=0):
        rows = list(pending.order_by("notification__user_id").values_list(*columns))
    if not rows:
        return outcome
    first = (
        Notification.objects.select_related("batch")
        .only("type", "title", "body", "data", "batch__title_en", "batch__body_en")
        .get(deliveries__id=rows[0][0])
    )
    attempt = max(r[4] for r in rows) + 1  # recorded with the outcome (one UPDATE per outcome)
    now = timezone.now()

    if channel == "email":
        return _send_email(outcome, pending, rows, first, attempt, now)

    external_ids = [str(r[1]) for r in rows]
    data = {**(first.data or {}), "type": first.type}
    payload = onesignal.build_payload(
        channel=channel,
        external_ids=external_ids,
        title=first.title,
        body=first.body,
        title_en=first.batch.title_en if first.batch else "",
        body_en=first.batch.body_en if first.batch else "",
        data=data,
        idempotency_key=idempotency_key(batch_key),
    )
    result = onesignal.send(payload)
    if result.kind == onesignal.OK:
        failed_users = {uid for uid in external_ids if uid in result.failed_ids}
        if failed_users:
            for reason in set(result.failed_ids.values()):
                users = [u for u in failed_users if result.failed_ids[u] == reason]
                outcome.failed += pending.filter(notification__user_id__in=users).update(
                    status=DeliveryStatus.FAILED,
                    last_error=reason[:1000],
                    provider_id=result.provider_id,
                    attempts=attempt,
                )
        outcome.sent = pending.update(
            status=DeliveryStatus.SENT, sent_at=now, provider_id=result.provider_id, last_error="", attempts=attempt
        )
        outcome.details["provider_id"] = result.provider_id
        return outcome
    return _handle_failure(outcome, pending, attempt, result.kind, result.error, result.retry_after)


def _handle_failure(outcome, pending, attempt: int, kind: str, error: str, retry_after: float | None):
    max_attempts = conf.get_int("NOTIFICATIONS_MAX_ATTEMPTS")
    if kind == onesignal.TRANSIENT and attempt < max_attempts:
        pending.update(last_error=f"attempt {attempt}: {error}"[:1000], attempts=attempt)
        outcome.retry_in = _backoff(attempt, retry_after)
        return outcome
    if kind == onesignal.TRANSIENT:
        error = f"gave up after {attempt} attempts: {error}"
    outcome.failed += pending.update(
        status=DeliveryStatus.FAILED, last_error=(BATCH_ERROR_PREFIX + error)[:1000], attempts=attempt
    )
    outcome.permanent_error = error
    return outcome


def _send_email(outcome, pending, rows, first, attempt, now):
    with_address = [(str(r[0]), r[2], r[3]) for r in rows if r[2]]
    no_address = [r[0] for r in rows if not r[2]]
    if no_address:
        outcome.skipped = NotificationDelivery.objects.filter(id__in=no_address).update(
            status=DeliveryStatus.SKIPPED, last_error="no e-mail address", attempts=attempt
        )
    if not with_address:
        return outcome
    result = email_sender.send_batch(with_address, title=first.title, body=first.body, data=first.data or {})
    if result.sent:
        outcome.sent = NotificationDelivery.objects.filter(id__in=result.sent).update(
            status=DeliveryStatus.SENT, sent_at=now, last_error="", attempts=attempt
        )
    for delivery_id, reason in result.refused.items():
        outcome.failed += NotificationDelivery.objects.filter(id=delivery_id).update(
            status=DeliveryStatus.FAILED, last_error=reason[:1000], attempts=attempt
        )
    if result.transient_error:
        rest = pending.exclude(id__in=[*result.sent, *result.refused])
        return _handle_failure(outcome, rest, attempt, onesignal.TRANSIENT, result.transient_error, None)
    return outcome


# --- read state ----------------------------------------------------------------------------------


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
    from django.db.models import Q

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


# --- sweep (cron) and queue health --------------------------------------------------------------


def _job_is_live(job_id: str) -> bool:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=get_redis_for_queues())
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in ("queued", "started", "scheduled", "deferred")


def get_redis_for_queues():
    return _queue("notifications").connection


def notifications_sweep(*, as_of: float | None = None) -> dict[str, int]:
    """Periodic repair (every minute via rqcron), also safe to run by hand:

    - abandoned jobs (their worker died: heartbeat expired) are retried or failed now,
      rather than at the next 10-minute worker maintenance (`as_of` lets an operator
      or a test treat every running job older than that instant as abandoned);
    - batches still `queued` a minute after creation get their fan-out re-enqueued;
    - pending deliveries without a batch are dispatched, stale pending batches with no
      live job are re-enqueued.
    """
    from rq.registry import StartedJobRegistry

    report = {"abandoned": 0, "fanouts": 0, "dispatched": 0, "requeued": 0}
    for name in ("notifications", "emails", "sms"):
        queue = _queue(name)
        registry = StartedJobRegistry(queue=queue)
        before = len(registry.get_expired_job_ids(as_of)) if as_of else 0
        registry.cleanup(timestamp=as_of)
        report["abandoned"] += before
    minute_ago = timezone.now() - timedelta(minutes=1)
    for batch_id in NotificationBatch.objects.filter(status=BatchStatus.QUEUED, created_at__lt=minute_ago).values_list(
        "id", flat=True
    ):
        if not _job_is_live(f"notif-fanout-{batch_id}"):
            _enqueue_fanout(batch_id)
            report["fanouts"] += 1
    report["dispatched"] = deliveries_dispatch(older_than=timedelta(seconds=30))
    stale = timezone.now() - timedelta(seconds=conf.get_int("NOTIFICATIONS_STALE_SECONDS"))
    keys = (
        NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING, updated_at__lt=stale)
        .exclude(batch_key="")
        .values_list("batch_key", flat=True)
        .distinct()
    )
    orphan = [k for k in keys if not _job_is_live(delivery_job_id(k))]
    report["requeued"] = _enqueue_deliveries(orphan) if orphan else 0
    return report


def queues_health() -> dict[str, Any]:
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
    from rq.worker import Worker

    queues: dict[str, Any] = {}
    healthy = True
    for name in ("notifications", "emails", "sms"):
        queue = _queue(name)
        workers = Worker.count(queue=queue)
        queues[name] = {
            "waiting": queue.count,
            "active": StartedJobRegistry(queue=queue).count,
            "scheduled": ScheduledJobRegistry(queue=queue).count,
            "completed": FinishedJobRegistry(queue=queue).count,
            "failed": FailedJobRegistry(queue=queue).count,
            "workers": workers,
        }
        healthy = healthy and workers > 0
    return {"healthy": healthy, "queues": queues}
