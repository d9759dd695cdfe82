"""RQ jobs of the notification pipeline: thin wrappers taking ids, calling one service.

Queues: `notifications` (fan-out, dispatcher, push batches, websocket frames, sweep),
`emails` (e-mail batches), `sms` (SMS batches).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rq import Retry, get_current_job

from emploiplus import metrics
from notifications import services


class DeliveryFailed(Exception):
    """A delivery batch failed for good (4xx other than 429, or retries exhausted)."""


def notification_batch_fanout(batch_id: str) -> dict[str, Any]:
    return {"recipients": services.notification_batch_fanout(batch_id=batch_id)}


def notification_batch_broadcast(batch_id: str) -> dict[str, Any]:
    return {"frames": services.notification_batch_broadcast(batch_id=batch_id)}


def deliveries_dispatch() -> dict[str, Any]:
    return {"batches": services.deliveries_dispatch()}


def deliveries_send(batch_key: str) -> Any:
    """One provider call. Transient failures return an RQ `Retry` whose delay honours
    Retry-After (exponential backoff otherwise); permanent ones raise so the job lands
    in the failed registry, without the crash retries it was enqueued with."""
    outcome = services.delivery_batch_send(batch_key=batch_key)
    metrics.delivery_batch(batch_key, outcome)
    if outcome.retry_in is not None:
        return Retry(max=settings.NOTIFICATIONS_MAX_ATTEMPTS + 3, interval=outcome.retry_in)
    if outcome.permanent_error:
        job = get_current_job()
        if job is not None:
            job.retries_left = 0  # a 400 is not retried
        raise DeliveryFailed(f"{batch_key}: {outcome.permanent_error}")
    return outcome.as_dict()


def notifications_sweep() -> dict[str, int]:
    return services.notifications_sweep()
