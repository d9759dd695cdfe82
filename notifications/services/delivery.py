"""Sending one delivery batch: one provider call (OneSignal push/SMS) or one SMTP session
(e-mail), the outcome recorded per recipient, transient failures retried with backoff.

The batch key is persisted before the call, so a retried or re-run job sends the same
recipients with the same idempotency key (uuid5 of the key), and rows already marked sent
are skipped.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db.models import Value
from django.utils import timezone

from emploiplus import metrics
from notifications.models import DeliveryStatus, Notification, NotificationDelivery
from notifications.senders import email as email_sender
from notifications.senders import onesignal

BATCH_ERROR_PREFIX = "batch: "  # last_error of rows whose whole batch failed
IDEMPOTENCY_NAMESPACE = uuid.UUID("5b1d6f0e-6a43-4c1e-9d0e-2f9a7c3e8b51")


def idempotency_key(batch_key: str) -> str:
    """Same delivery batch → same key, on every retry and every re-run."""
    return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, batch_key))


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
    base = settings.NOTIFICATIONS_RETRY_BASE_SECONDS
    delay = min(settings.NOTIFICATIONS_RETRY_MAX_SECONDS, base * (2 ** max(0, attempt - 1)))
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
    metrics.provider_result(channel, result.kind)
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
    max_attempts = settings.NOTIFICATIONS_MAX_ATTEMPTS
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
    metrics.provider_result("email", "transient" if result.transient_error else "ok")
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
