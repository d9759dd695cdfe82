"""Repair and health of the notification queues: the minute sweep and `/api/queues/health`."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from emploiplus import effects
from notifications.models import BatchStatus, DeliveryStatus, NotificationBatch, NotificationDelivery
from notifications.services import dispatch

QUEUES = ("notifications", "emails", "sms")


def _job_is_live(job_id: str) -> bool:
    from rq.exceptions import NoSuchJobError
    from rq.job import Job

    try:
        job = Job.fetch(job_id, connection=effects.queue("notifications").connection)
    except NoSuchJobError:
        return False
    return job.get_status(refresh=False) in ("queued", "started", "scheduled", "deferred")


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
    for name in QUEUES:
        queue = effects.queue(name)
        registry = StartedJobRegistry(queue=queue)
        before = len(registry.get_expired_job_ids(as_of)) if as_of else 0
        registry.cleanup(timestamp=as_of)
        report["abandoned"] += before
    minute_ago = timezone.now() - timedelta(minutes=1)
    for batch_id in NotificationBatch.objects.filter(status=BatchStatus.QUEUED, created_at__lt=minute_ago).values_list(
        "id", flat=True
    ):
        if not _job_is_live(dispatch.fanout_job_id(batch_id)):
            dispatch.enqueue_fanout(batch_id)
            report["fanouts"] += 1
    report["dispatched"] = dispatch.deliveries_dispatch(older_than=timedelta(seconds=30))
    stale = timezone.now() - timedelta(seconds=settings.NOTIFICATIONS_STALE_SECONDS)
    keys = (
        NotificationDelivery.objects.filter(status=DeliveryStatus.PENDING, updated_at__lt=stale)
        .exclude(batch_key="")
        .values_list("batch_key", flat=True)
        .distinct()
    )
    orphan = [k for k in keys if not _job_is_live(dispatch.delivery_job_id(k))]
    report["requeued"] = dispatch.enqueue_deliveries(orphan)
    return report


def queues_health() -> dict[str, Any]:
    from rq.registry import FailedJobRegistry, FinishedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
    from rq.worker import Worker

    queues: dict[str, Any] = {}
    healthy = True
    for name in QUEUES:
        queue = effects.queue(name)
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
