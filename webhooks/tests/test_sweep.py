"""Nothing accepted is lost: a delivery stored while Redis is unreachable, or whose queued job
vanished with Redis, or whose worker died mid-way, is queued again by webhook_sweep."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from emploiplus import effects
from matching.testing import envelope, run_queue, set_profile, signed_post
from notifications.models import Notification
from webhooks import services
from webhooks.models import WebhookEvent, WebhookStatus

pytestmark = pytest.mark.django_db

NOTIFY = "/api/webhooks/jobs/notify"


def record(company):
    return {
        "id": str(uuid.uuid4()),
        "company_id": str(company.pk),
        "title": "Data engineer",
        "required_skills": ["python"],
        "status": "active",
    }


def age(event_id, seconds: int) -> None:
    """Last touched `seconds` ago (the updated_at trigger would stamp now(): off for this write)."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE webhook_events DISABLE TRIGGER trg_webhook_events_updated_at")
        WebhookEvent.objects.filter(pk=event_id).update(updated_at=timezone.now() - timedelta(seconds=seconds))
        cursor.execute("ALTER TABLE webhook_events ENABLE TRIGGER trg_webhook_events_updated_at")


def sweep(capture) -> list[str]:
    """webhook_sweep, its enqueues run (in production it runs in autocommit: at once)."""
    with capture(execute=True):
        return services.webhook_sweep()


@pytest.fixture
def unreachable_queue(settings):
    """Queues on a Redis nobody listens on (port 1): every enqueue fails to connect.
    `unreachable_queue()` brings the real queues back."""
    real = settings.RQ_QUEUES
    settings.RQ_QUEUES = {name: {**cfg, "URL": "redis://127.0.0.1:1/0"} for name, cfg in real.items()}
    effects.reset_for_tests()

    def back() -> None:
        settings.RQ_QUEUES = real
        effects.reset_for_tests()

    yield back
    back()


def test_a_delivery_accepted_while_redis_is_down_is_processed_by_the_sweep(
    client, acme, alice, django_capture_on_commit_callbacks, unreachable_queue
):
    set_profile(alice, skills=["python"], experience_level="mid")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, NOTIFY, envelope(record(acme)))
    assert response.status_code == 202  # stored, acknowledged; the enqueue failed and was logged
    event_id = response.json()["event_id"]
    assert WebhookEvent.objects.get(pk=event_id).status == WebhookStatus.RECEIVED
    unreachable_queue()  # Redis is back

    assert sweep(django_capture_on_commit_callbacks) == []  # too recent: its job may still be on its way
    age(event_id, 61)
    assert sweep(django_capture_on_commit_callbacks) == [event_id]
    assert run_queue() == []
    assert WebhookEvent.objects.get(pk=event_id).status == WebhookStatus.PROCESSED
    assert Notification.objects.filter(user=alice, type="job_match").count() == 1


def test_it_takes_back_events_abandoned_mid_processing_and_leaves_the_rest(
    acme, alice, django_capture_on_commit_callbacks
):
    set_profile(alice, skills=["python"], experience_level="mid")
    with django_capture_on_commit_callbacks(execute=True):
        receipts = [
            services.webhook_receive(source=services.SOURCE_JOBS, body=envelope_bytes(record(acme))) for _ in range(3)
        ]
    abandoned, fresh_processing, done = (r.event.id for r in receipts)
    run_queue()  # processes all three
    WebhookEvent.objects.filter(pk__in=[abandoned, fresh_processing]).update(status=WebhookStatus.PROCESSING)
    age(abandoned, 901)  # a worker died with it 15 minutes ago
    age(done, 3600)  # processed long ago: not touched

    assert sweep(django_capture_on_commit_callbacks) == [str(abandoned)]
    assert WebhookEvent.objects.get(pk=abandoned).status == WebhookStatus.RECEIVED
    assert run_queue() == []
    statuses = dict(WebhookEvent.objects.values_list("id", "status"))
    assert statuses == {
        abandoned: WebhookStatus.PROCESSED,
        fresh_processing: WebhookStatus.PROCESSING,  # maybe still running: left alone
        done: WebhookStatus.PROCESSED,
    }
    # The pipeline is idempotent: alice was notified once per job, not again for the retry.
    assert Notification.objects.filter(user=alice, type="job_match").count() == 3


def envelope_bytes(rec) -> bytes:
    import json

    return json.dumps(envelope(rec)).encode()
