"""Queueing the notification pipeline's jobs (through `emploiplus.effects`, after commit)
and the dispatcher that gives small inline notifications a delivery batch.

Job ids are deterministic (`notif-fanout-<batch>`, `notif-ws-<batch>`,
`notif-deliver-<channel>-<batch>-<n>`), so the sweep can tell whether a job is still live
and a re-enqueue replaces the waiting job instead of doubling it.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from emploiplus import effects
from emploiplus.redis import get_redis, key
from notifications.models import DeliveryStatus, NotificationDelivery

QUEUE_FOR_CHANNEL = {"push": "notifications", "email": "emails", "sms": "sms"}


def batch_size(channel: str) -> int:
    """Recipients per provider call / per delivery job on `channel`."""
    return getattr(settings, f"NOTIFICATIONS_{channel.upper()}_BATCH_SIZE")


def fanout_job_id(batch_id: uuid.UUID | str) -> str:
    return f"notif-fanout-{batch_id}"


def delivery_job_id(batch_key: str) -> str:
    return "notif-deliver-" + batch_key.replace(":", "-")


def enqueue_fanout(batch_id: uuid.UUID | str) -> None:
    effects.enqueue(
        "notifications.jobs.notification_batch_fanout",
        str(batch_id),
        job_id=fanout_job_id(batch_id),
        description=f"fan-out of notification batch {batch_id}",
    )


def enqueue_broadcast(batch_id: uuid.UUID | str) -> None:
    effects.enqueue(
        "notifications.jobs.notification_batch_broadcast",
        str(batch_id),
        job_id=f"notif-ws-{batch_id}",
        description=f"websocket frames of notification batch {batch_id}",
    )


def enqueue_deliveries(batch_keys: Iterable[str]) -> int:
    """One job per delivery batch on its channel's queue."""
    jobs = [
        effects.Job(
            "notifications.jobs.deliveries_send",
            (batch_key,),
            queue=QUEUE_FOR_CHANNEL[batch_key.split(":", 1)[0]],
            job_id=delivery_job_id(batch_key),
            description=f"deliver {batch_key}",
        )
        for batch_key in batch_keys
    ]
    effects.enqueue_many(jobs)
    return len(jobs)


def enqueue_pending_batches(batch_id: uuid.UUID) -> int:
    keys = (
        NotificationDelivery.objects.filter(notification__batch_id=batch_id, status=DeliveryStatus.PENDING)
        .exclude(batch_key="")
        .values_list("batch_key", flat=True)
        .distinct()
    )
    return enqueue_deliveries(sorted(keys, key=_batch_key_order))


def _batch_key_order(batch_key: str) -> tuple[str, str, int]:
    channel, batch, seq = batch_key.rsplit(":", 2) if batch_key.count(":") >= 2 else (batch_key, "", "0")
    return (channel, batch, int(seq) if seq.isdigit() else 0)


def _dispatch_flag() -> str:
    return key("notifications", "dispatch-requested")


def deliveries_request_dispatch() -> None:
    """Ask for one dispatcher run (a no-op while one is already queued). A follow-up of the
    commit that stored inline notifications; if it is lost, the sweep dispatches them."""
    if get_redis().set(_dispatch_flag(), "1", nx=True, ex=120):
        effects.enqueue("notifications.jobs.deliveries_dispatch", description="dispatch pending deliveries")


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
        enqueue_deliveries(created)
    return len(created)
