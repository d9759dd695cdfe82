"""Notification pipeline: one entry point, fan-out, batched delivery, read state.

    from notifications.services import notification_queue

One module per responsibility (docs/notifications.md has the picture):

- `recipients` — validated recipient ids, filters, the SQL resolving a batch's recipients;
- `fanout` — `notification_queue`, storing a batch (one statement), the `notification` frame;
- `dispatch` — queueing the pipeline's jobs (after commit), the dispatcher of inline rows;
- `delivery` — one provider call per delivery batch, outcomes, retries with backoff;
- `read_state` — marking the owner's notifications read;
- `health` — the minute sweep and the queues' health.
"""

from notifications.services.delivery import DeliveryOutcome, delivery_batch_send, idempotency_key
from notifications.services.dispatch import deliveries_dispatch, deliveries_request_dispatch, delivery_job_id
from notifications.services.fanout import (
    batch_size,
    notification_batch_broadcast,
    notification_batch_fanout,
    notification_batch_store,
    notification_frame,
    notification_queue,
)
from notifications.services.health import notifications_sweep, queues_health
from notifications.services.read_state import (
    notification_mark_all_read,
    notification_mark_one_read,
    notification_mark_read,
)
from notifications.services.recipients import pack_user_ids

__all__ = [
    "DeliveryOutcome",
    "batch_size",
    "deliveries_dispatch",
    "deliveries_request_dispatch",
    "delivery_batch_send",
    "delivery_job_id",
    "idempotency_key",
    "notification_batch_broadcast",
    "notification_batch_fanout",
    "notification_batch_store",
    "notification_frame",
    "notification_mark_all_read",
    "notification_mark_one_read",
    "notification_mark_read",
    "notification_queue",
    "notifications_sweep",
    "pack_user_ids",
    "queues_health",
]
