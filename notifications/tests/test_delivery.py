"""End to end with real processes: real Redis, real `rqworker` subprocesses, a real local
HTTP server as OneSignal (notifications.testing.FakeOneSignal) and a real SMTP server."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from emploiplus import effects
from notifications import services
from notifications.models import Notification, NotificationDelivery
from notifications.services import notification_queue
from notifications.testing import FakeOneSignal
from notifications.tests.helpers import (
    WsClient,
    bulk_candidates,
    kill_worker_hard,
    pending_deliveries,
    rq_state,
    wait_until,
    worker,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture
def onesignal(settings):
    with FakeOneSignal() as fake:
        settings.ONESIGNAL_API_URL = fake.url
        yield fake


def _statuses(batch) -> dict[str, int]:
    rows = NotificationDelivery.objects.filter(notification__batch=batch).values_list("status", flat=True)
    out: dict[str, int] = {}
    for status in rows:
        out[status] = out.get(status, 0) + 1
    return out


async def test_it_pushes_5000_recipients_in_three_calls_and_frames_connected_users(
    onesignal, make_user, close_async_db_connections
):
    ids = await sync_to_async(bulk_candidates)(4998)
    alice = await sync_to_async(make_user)("alice")
    bob = await sync_to_async(make_user)("bob")
    charlie = await sync_to_async(make_user)("charlie")  # connected, not a recipient
    recipients = [*ids, alice.id, bob.id]
    tabs = [await WsClient(alice).connect(), await WsClient(alice).connect(), await WsClient(bob).connect()]
    outsider = await WsClient(charlie).connect()
    try:
        batch = await sync_to_async(notification_queue)(
            type="job_match",
            title="Nouvelle offre : Développeur Django",
            body="Une offre correspond à votre profil.",
            title_en="New job: Django developer",
            data={"jobId": "j-1"},
            user_ids=recipients,
        )
        with worker(onesignal.url):
            try:
                frames = [await tab.recv(timeout=120) for tab in tabs]
            except TimeoutError:
                pytest.fail(f"no notification frame in 120 s; RQ: {await sync_to_async(rq_state)()}")
            done = await sync_to_async(wait_until)(
                lambda: onesignal.calls >= 3 and pending_deliveries() == 0, timeout=120
            )
            assert done, (onesignal.calls, await sync_to_async(pending_deliveries)(), await sync_to_async(rq_state)())
        assert await outsider.nothing()
    finally:
        for client in [*tabs, outsider]:
            await client.close()

    # Three calls: 2000 + 2000 + 1000 ids, every recipient exactly once.
    assert onesignal.calls == 3
    bodies = onesignal.delivered_calls()
    assert sorted(len(b["include_aliases"]["external_id"]) for b in bodies) == [1000, 2000, 2000]
    assert sorted(onesignal.id_counts) == sorted(str(i) for i in recipients)
    assert set(onesignal.id_counts.values()) == {1}
    for request in onesignal.requests:
        assert request["headers"]["Authorization"] == "Key test-onesignal-key"
        body = request["json"]
        assert body["app_id"] == "00000000-0000-4000-8000-000000000000"
        assert body["target_channel"] == "push"
        assert body["headings"] == {"fr": "Nouvelle offre : Développeur Django", "en": "New job: Django developer"}
        assert body["contents"] == {
            "fr": "Une offre correspond à votre profil.",
            "en": "Une offre correspond à votre profil.",  # no English body given: French stands in
        }
        assert body["data"] == {"jobId": "j-1", "type": "job_match"}
        assert uuid.UUID(body["idempotency_key"])
    assert len({r["json"]["idempotency_key"] for r in onesignal.requests}) == 3

    # Rows: one notification per user, one push delivery each, all sent with the provider id.
    assert await sync_to_async(Notification.objects.filter(batch_id=batch.id).count)() == 5000
    assert await sync_to_async(_statuses)(batch) == {"sent": 5000}
    # WebSocket: each of alice's tabs and bob got their own notification frame.
    alice_row = await sync_to_async(Notification.objects.get)(batch_id=batch.id, user=alice)
    for frame in frames[:2]:
        assert frame["event"] == "notification"
        assert frame["data"]["id"] == str(alice_row.id)
        assert frame["data"]["type"] == "job_match"
        assert frame["data"]["title"] == "Nouvelle offre : Développeur Django"
        assert frame["data"]["data"] == {"jobId": "j-1"}
        assert frame["data"]["createdAt"].endswith("Z")
    assert frames[2]["data"]["id"] != str(alice_row.id)


def test_it_retries_429_then_500_and_sends_once_with_the_same_idempotency_key(onesignal, alice, bob):
    onesignal.script = [
        (429, {"Retry-After": "1"}, {"errors": ["Rate limit exceeded"]}),
        (500, {}, {"errors": ["Internal server error"]}),
    ]
    batch = notification_queue(type="message", title="Nouveau message", body="Salut", user_ids=[alice.id, bob.id])
    with worker(onesignal.url):
        assert wait_until(lambda: pending_deliveries() == 0, timeout=60)
    assert onesignal.calls == 3
    keys = {r["json"]["idempotency_key"] for r in onesignal.requests}
    assert len(keys) == 1
    assert onesignal.id_counts == {str(alice.id): 1, str(bob.id): 1}
    # The retries were spaced out: never sooner than Retry-After, then backing off.
    times = [r["at"] for r in onesignal.requests]
    assert times[1] - times[0] >= 1.0
    assert times[2] - times[1] >= 1.0
    rows = NotificationDelivery.objects.filter(notification__batch=batch)
    assert {(r.status, r.attempts) for r in rows} == {("sent", 3)}


def test_it_fails_a_400_without_retry_and_keeps_it_visible(onesignal, alice, settings):
    onesignal.script = [(400, {}, {"errors": ["Invalid app_id"]})]
    batch = notification_queue(type="message", title="Nouveau message", body="Salut", user_ids=[alice.id])
    with worker(onesignal.url):
        failed = FailedJobRegistry(queue=effects.queue("notifications"))
        assert wait_until(lambda: failed.count == 1, timeout=60)
        health = services.queues_health()
    assert onesignal.calls == 1  # no retry
    delivery = NotificationDelivery.objects.get(notification__batch=batch)
    assert delivery.status == "failed"
    assert "HTTP 400" in delivery.last_error and "Invalid app_id" in delivery.last_error
    job_id = failed.get_job_ids()[0]
    assert job_id == services.delivery_job_id(delivery.batch_key)
    assert health["queues"]["notifications"]["failed"] == 1
    assert health["queues"]["notifications"]["workers"] == 1


def test_it_pushes_everyone_exactly_once_when_a_worker_is_killed_mid_batch(onesignal, settings):
    ids = bulk_candidates(4500)  # 3 push batches
    in_flight = threading.Event()
    release = threading.Event()
    seen = []

    def block_second_call(payload):
        seen.append(payload["idempotency_key"])
        if len(seen) == 2:  # the worker is now waiting for OneSignal's answer
            in_flight.set()
            release.wait(30)

    onesignal.on_request = block_second_call
    batch = notification_queue(type="job_match", title="Offre", body="Une offre pour vous", user_ids=ids)
    with worker(onesignal.url) as first:
        assert in_flight.wait(60)
        assert len(kill_worker_hard(first)) >= 2  # worker, work-horse (and scheduler) die mid-request
    release.set()
    onesignal.on_request = None
    assert _statuses(batch) == {"sent": 2000, "pending": 2500}

    with worker(onesignal.url):
        # The killed job is abandoned once its heartbeat expires (90 s); the sweep then
        # retries it. Fast-forward that clock rather than wait.
        report = services.notifications_sweep(as_of=time.time() + 120)
        assert report["abandoned"] == 1
        assert wait_until(lambda: pending_deliveries() == 0, timeout=60)
        connection.close()

    assert _statuses(batch) == {"sent": 4500}
    assert sorted(onesignal.id_counts) == sorted(str(i) for i in ids)
    assert set(onesignal.id_counts.values()) == {1}  # nobody pushed twice
    # The interrupted batch was sent again with its own idempotency key (deduplicated).
    assert onesignal.calls == 4 and len({r["json"]["idempotency_key"] for r in onesignal.requests}) == 3


def test_it_coalesces_many_small_calls_into_one_push(onesignal, make_user):
    users = [make_user(f"u{i}") for i in range(30)]
    for user in users:  # e.g. matching notifying each candidate separately
        notification_queue(type="job_match", title="Offre", body="Pour vous", user_ids=[user.id])
    with worker(onesignal.url):
        assert wait_until(lambda: pending_deliveries() == 0, timeout=60)
    assert onesignal.calls == 1
    assert sorted(onesignal.delivered_calls()[0]["include_aliases"]["external_id"]) == sorted(str(u.id) for u in users)


def test_it_records_invalid_aliases_per_recipient(onesignal, alice, bob):
    onesignal.invalid = {str(bob.id)}
    batch = notification_queue(type="message", title="Bonjour", body="", user_ids=[alice.id, bob.id])
    with worker(onesignal.url):
        assert wait_until(lambda: pending_deliveries() == 0, timeout=60)
    rows = {r.notification.user_id: r for r in NotificationDelivery.objects.filter(notification__batch=batch)}
    assert rows[alice.id].status == "sent" and rows[alice.id].provider_id
    assert rows[bob.id].status == "failed" and rows[bob.id].last_error == "invalid_alias"


def test_it_gives_disabled_users_nothing(onesignal, make_user):
    keen = bulk_candidates(30, prefix="keen")
    muted = bulk_candidates(30, prefix="muted", notifications_enabled=False)
    batch = notification_queue(type="job_match", title="Offre", body="", user_ids=[*keen, *muted])
    with worker(onesignal.url):
        assert wait_until(lambda: pending_deliveries() == 0 and onesignal.calls == 1, timeout=60)
    assert sorted(onesignal.id_counts) == sorted(str(i) for i in keen)
    assert set(Notification.objects.filter(batch=batch).values_list("user_id", flat=True)) == set(keen)


def test_it_sends_sms_through_onesignal(onesignal, alice, settings):
    batch = notification_queue(
        type="job_match", title="Offre", body="Une offre vous attend", user_ids=[alice.id], channels=("sms",)
    )
    with worker(onesignal.url, "notifications", "sms", ONESIGNAL_SMS_FROM="+33600000000"):
        assert wait_until(lambda: pending_deliveries() == 0, timeout=60)
    body = onesignal.requests[0]["json"]
    assert body["target_channel"] == "sms"
    assert body["sms_from"] == "+33600000000"
    assert body["include_aliases"] == {"external_id": [str(alice.id)]}
    assert body["contents"]["fr"] == "Une offre vous attend"
    assert NotificationDelivery.objects.get(notification__batch=batch).status == "sent"


def test_it_sends_the_email_batch_through_a_real_smtp_server(onesignal, make_user):
    from aiosmtpd.controller import Controller

    from emploiplus.testing import free_port

    received = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
            received.append(envelope)
            return "250 OK"

    users = [make_user(f"mail{i}") for i in range(3)]
    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        batch = notification_queue(
            type="job_match",
            title="Nouvelle offre : Data analyst",
            body="Une offre correspond à votre profil.",
            user_ids=[u.id for u in users],
            channels=("email",),
        )
        with worker(onesignal.url, "notifications", "emails", EMAIL_URL=f"smtp://127.0.0.1:{port}"):
            assert wait_until(lambda: pending_deliveries() == 0, timeout=60)
    finally:
        controller.stop()
    assert sorted(e.rcpt_tos[0] for e in received) == sorted(u.email for u in users)
    import email

    message = email.message_from_bytes(received[0].content)
    assert "Nouvelle offre : Data analyst" in str(
        email.header.make_header(email.header.decode_header(message["Subject"]))
    )
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk() if not p.is_multipart()}
    assert "Une offre correspond à votre profil." in parts["text/plain"]
    assert "Bonjour" in parts["text/plain"]
    assert "text/html" in parts
    assert {r.status for r in NotificationDelivery.objects.filter(notification__batch=batch)} == {"sent"}
    assert onesignal.calls == 0


def test_it_reports_queue_health_matching_what_ran(onesignal, alice, bob):
    onesignal.script = [(400, {}, {"errors": ["bad"]})]
    notification_queue(type="a", title="Un", body="", user_ids=[alice.id])  # dispatcher + failing push
    health = services.queues_health()
    assert health["healthy"] is False  # nobody serves the queues yet
    assert health["queues"]["notifications"] == {
        "waiting": 1,
        "active": 0,
        "scheduled": 0,
        "completed": 0,
        "failed": 0,
        "workers": 0,
    }
    with worker(onesignal.url):
        failed = FailedJobRegistry(queue=effects.queue("notifications"))
        assert wait_until(lambda: failed.count == 1, timeout=60)
        notification_queue(type="b", title="Deux", body="", user_ids=[bob.id])  # dispatcher + push OK
        finished = FinishedJobRegistry(queue=effects.queue("notifications"))
        assert wait_until(lambda: finished.count == 3 and pending_deliveries() == 0, timeout=60)
        health = services.queues_health()
    assert health["healthy"] is True
    assert health["queues"]["notifications"] == {
        "waiting": 0,
        "active": 0,
        "scheduled": 0,
        "completed": 3,
        "failed": 1,
        "workers": 1,
    }
    assert health["queues"]["emails"]["workers"] == 1 and health["queues"]["sms"]["workers"] == 1
