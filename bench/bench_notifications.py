"""Notification pipeline benchmarks (issue 5).

1. `fanout_to_push`: one `notification_queue` call for N recipients (100,000 at
   BENCH_SCALE=1) → every id delivered at a fake OneSignal (a local HTTP server started
   here), with ONE real `rqworker` process. Reports wall time to the last push and the
   number of HTTP calls (targets: ≤ 15 s, ≤ 51 calls), and the time until the websocket
   frames were sent too.
2. `enqueue_cost`: what the caller (a webhook or API request) pays for 10,000 explicit
   recipients: our call (one batch row + one enqueue; the worker fans out) side by side
   with the naive approach (creating every notification and delivery row in the request).

Sizes: BENCH_SCALE scales N (default 1.0 → 100,000; 0.2 → 20,000). The enqueue-cost
size is always 10,000. Uses the `<db>_bench` database and the REDIS_URL Redis (use a
Redis database of its own: the bench's worker runs whatever waits in the queues).
"""

from __future__ import annotations

import os
import time
import uuid

from bench.common import Result, summarize

RECIPIENT_DOMAIN = "bench-notif.test"


def _scale() -> float:
    return float(os.environ.get("BENCH_SCALE", "1"))


def _ensure_users(n: int) -> list[uuid.UUID]:
    """n candidate users reserved for this benchmark (created once, reused)."""
    from accounts.models import Candidate, Role, User

    existing = list(User.objects.filter(email__endswith=f"@{RECIPIENT_DOMAIN}").values_list("id", flat=True))
    missing = n - len(existing)
    if missing > 0:
        users = [
            User(id=uuid.uuid4(), email=f"u{uuid.uuid4().hex}@{RECIPIENT_DOMAIN}", role=Role.CANDIDATE)
            for _ in range(missing)
        ]
        User.objects.bulk_create(users, batch_size=5000)
        Candidate.objects.bulk_create([Candidate(user=u) for u in users], batch_size=5000)
        existing += [u.id for u in users]
    return existing[:n]


def _delete_batches(batch_ids: list) -> None:
    from django.db import connection

    if not batch_ids:
        return
    ids = [str(b) for b in batch_ids]
    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM notification_deliveries WHERE notification_id IN "
            "(SELECT id FROM notifications WHERE batch_id = ANY(%s::uuid[]))",
            [ids],
        )
        cursor.execute("DELETE FROM notifications WHERE batch_id = ANY(%s::uuid[])", [ids])
        cursor.execute("DELETE FROM notification_batches WHERE id = ANY(%s::uuid[])", [ids])


def _fanout_to_push(n: int) -> list[Result]:
    from django.conf import settings

    from emploiplus.testing import rq_worker
    from notifications.models import NotificationBatch, NotificationDelivery
    from notifications.services import notification_queue
    from notifications.testing import FakeOneSignal

    ids = _ensure_users(n)
    runs = int(os.environ.get("BENCH_NOTIFICATIONS_RUNS", "1"))
    push_times, all_times, calls, request_costs, breakdown = [], [], [], [], []
    with FakeOneSignal(record_bodies=False) as fake:
        settings.ONESIGNAL_API_URL = fake.url
        with rq_worker("notifications", ONESIGNAL_API_URL=fake.url, LOG_LEVEL="WARNING"):
            time.sleep(3)  # let the worker boot (Django setup) before timing
            for _ in range(runs):
                fake.requests.clear()
                fake.id_counts.clear()
                started = time.perf_counter()
                batch = notification_queue(
                    type="job_match",
                    title="Nouvelle offre : Développeur Python",
                    body="Une offre correspond à votre profil.",
                    data={"jobId": str(uuid.uuid4())},
                    user_ids=ids,
                )
                request_costs.append(time.perf_counter() - started)
                deadline = time.monotonic() + 600
                while sum(fake.id_counts.values()) < n and time.monotonic() < deadline:
                    time.sleep(0.02)
                push_times.append(time.perf_counter() - started)
                calls.append(fake.calls)
                while time.monotonic() < deadline:  # websocket frames: the job after the pushes
                    from rq.job import Job

                    from emploiplus import effects

                    job = Job.fetch(f"notif-ws-{batch.id}", connection=effects.queue("notifications").connection)
                    if job.get_status() in ("finished", "failed"):
                        break
                    time.sleep(0.05)
                all_times.append(time.perf_counter() - started)
                breakdown.append(_job_breakdown(batch.id, n))
                assert sum(fake.id_counts.values()) == n and max(fake.id_counts.values()) == 1
                assert NotificationDelivery.objects.filter(notification__batch=batch, status="sent").count() == n
                NotificationBatch.objects.filter(pk=batch.pk).update(status="stored")
                _delete_batches([batch.id])
    size = f"{n} recipients, 1 worker"
    return [
        summarize(
            "notifications_fanout_to_push",
            "last push delivered",
            size,
            push_times,
            http_calls=max(calls),
            **breakdown[-1],
        ),
        summarize("notifications_fanout_to_push", "+ websocket frames sent", size, all_times),
        summarize("notifications_fanout_to_push", "caller cost (cold, N ids)", size, request_costs),
    ]


def _job_breakdown(batch_id, n: int) -> dict[str, float]:
    """Seconds spent in the fan-out job and in the push jobs (from RQ's job records)."""
    from rq.job import Job

    from emploiplus import effects
    from notifications.services import batch_size

    connection = effects.queue("notifications").connection
    fanout = Job.fetch(f"notif-fanout-{batch_id}", connection=connection)
    pushes = Job.fetch_many(
        [f"notif-deliver-push-{batch_id}-{k}" for k in range((n + batch_size("push") - 1) // batch_size("push"))],
        connection=connection,
    )
    push_s = sum((j.ended_at - j.started_at).total_seconds() for j in pushes if j and j.ended_at and j.started_at)
    return {
        "fanout_job_s": round((fanout.ended_at - fanout.started_at).total_seconds(), 2),
        "push_jobs_s": round(push_s, 2),
    }


def _naive_store(ids: list[uuid.UUID]) -> uuid.UUID:
    """The naive request: every notification and delivery row created in the request."""
    from django.db import transaction

    from notifications.models import Notification, NotificationBatch, NotificationDelivery
    from notifications.services.dispatch import enqueue_deliveries

    with transaction.atomic():
        batch = NotificationBatch.objects.create(
            type="job_match", title="Offre", body="", channels=["push"], status="stored"
        )
        rows = Notification.objects.bulk_create(
            [Notification(user_id=i, batch=batch, type="job_match", title="Offre", body="") for i in ids],
            batch_size=2000,
        )
        NotificationDelivery.objects.bulk_create(
            [
                NotificationDelivery(notification=r, channel="push", batch_key=f"push:{batch.id}:{k // 2000}")
                for k, r in enumerate(rows)
            ],
            batch_size=2000,
        )
        keys = [f"push:{batch.id}:{k}" for k in range((len(rows) + 1999) // 2000)]
        enqueue_deliveries(keys)  # after the commit, through emploiplus.effects
    return batch.id


def _enqueue_cost() -> list[Result]:
    from emploiplus import effects
    from notifications.services import notification_queue

    ids = _ensure_users(10_000)
    ours, naive, batch_ids = [], [], []
    queue = effects.queue("notifications")
    for _ in range(3):  # warm-up
        batch_ids.append(notification_queue(type="job_match", title="Offre", body="", user_ids=ids).id)
    for _ in range(int(os.environ.get("BENCH_NOTIFICATIONS_SAMPLES", "30"))):
        started = time.perf_counter()
        batch = notification_queue(type="job_match", title="Offre", body="", user_ids=ids)
        ours.append(time.perf_counter() - started)
        batch_ids.append(batch.id)
    for _ in range(5):
        started = time.perf_counter()
        batch_ids.append(_naive_store(ids))
        naive.append(time.perf_counter() - started)
    # Nothing of this must be delivered: drop the jobs and rows.
    for batch_id in batch_ids:
        queue.remove(f"notif-fanout-{batch_id}")
        for k in range(5):
            queue.remove(f"notif-deliver-push-{batch_id}-{k}")
    _delete_batches(batch_ids)
    size = "10000 explicit recipients"
    return [
        summarize("notifications_enqueue_cost", "ours: batch row + 1 job", size, ours),
        summarize("notifications_enqueue_cost", "naive: all rows in request", size, naive),
    ]


def run() -> list[Result]:
    n = max(2000, int(100_000 * _scale()))
    results = _enqueue_cost()
    results += _fanout_to_push(n)
    return results
