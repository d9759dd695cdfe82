"""Webhook ingest (issue 6): signed deliveries per second and latency against real daphne.

The endpoint only verifies, stores a `webhook_events` row and enqueues the processing job
(acknowledge fast, work in the queue), so this measures the acknowledgement path: HMAC
over the raw bytes, one INSERT, one Redis enqueue. No worker runs during the measurement;
the queued jobs and stored events are removed afterwards.

Variants, same client, same run:
- `signature only` — POST /api/webhooks/test (the floor: HTTP + HMAC);
- `new delivery (202)` — a new job INSERT envelope each time (stored + enqueued), answered
  by the DRF view through Django's stack (emploiplus.handlers.SyncStackASGIHandler), the one
  HTTP path of every route since issue 11;
- `duplicate delivery (200)` — an already stored delivery (unique-key conflict path);
- `… 2 processes` — two server processes on one socket (`WEB_CONCURRENCY=2`), the
  deployment shape for a machine with more than one core (target ≥ 500/s), on uvicorn (the
  default) and on daphne;
- `before: …` — the same deliveries served by a checkout of BENCH_WEBHOOKS_BEFORE (default:
  the last commit with the Channels `WebhookConsumer` path and its batched enqueue);
- `naive: Django's stock ASGI handler` — the DRF view through Django's own ASGI handler.

Load: CONCURRENCY client threads (default 8), each with its own keep-alive connection,
REQUESTS deliveries per variant (default 4,000 × BENCH_SCALE). Targets: ≥ 500/s, p99 ≤ 50 ms.
The client runs on the same machine; `server_cpu_ms` (CPU the daphne process used per
request) and `one_core_bound_per_second` tell the server's own cost from machine load.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import uuid

from bench.common import Result, checkout, cpu_seconds, http_load, summarize

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
CONCURRENCY = int(os.environ.get("BENCH_WEBHOOK_CONCURRENCY", "8"))
REQUESTS = max(200, int(int(os.environ.get("BENCH_WEBHOOK_REQUESTS", "4000")) * SCALE))
SECRET = "bench-webhook-secret"  # noqa: S105 - a bench-only secret passed to the daphne it starts


def _signed(body: bytes) -> dict[str, str]:
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Webhook-Signature": f"hmac-sha256={signature}"}


def _delivery(company_id: str) -> bytes:
    record = {
        "id": str(uuid.uuid4()),
        "company_id": company_id,
        "title": "Développeur React",
        "required_skills": ["React", "Node.js", "PostgreSQL"],
        "experience_level": "mid",
        "status": "active",
        "updated_at": "2026-11-28T10:00:00Z",
    }
    return json.dumps(
        {"type": "INSERT", "table": "jobs", "schema": "public", "record": record, "old_record": None}
    ).encode()


def _load(address: str, path: str, bodies: list[bytes], expect: int) -> tuple[list[float], float]:
    """POST every body once, signed, with CONCURRENCY keep-alive clients; (latencies, wall seconds)."""
    requests = [("POST", path, body, _signed(body)) for body in bodies]
    return http_load(address, requests, concurrency=CONCURRENCY, expect=expect)


DJANGO_PATH_ASGI = "bench.stock_django_asgi:application"
# The last commit whose /api/webhooks/ went to webhooks.apis.WebhookConsumer (session 2).
BEFORE = os.environ.get("BENCH_WEBHOOKS_BEFORE", "3170fc7")


def run() -> list[Result]:
    from accounts.models import Company
    from emploiplus import effects
    from emploiplus.testing import asgi_servers
    from webhooks.models import WebhookEvent

    company, _ = Company.objects.get_or_create(name="bench-webhooks company")
    queue = effects.queue("notifications")
    results = []
    size = f"{REQUESTS:,} requests, {CONCURRENCY} clients"
    env = {"SUPABASE_WEBHOOK_SECRET": SECRET, "DEBUG": "0"}
    before = WebhookEvent.objects.count()
    sent = 0

    def measure(address, procs, name, path, bodies, expect):
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        latencies, wall = _load(address, path, bodies, expect)
        cpu_ms = (sum(cpu_seconds(p.pid) for p in procs) - cpu_before) * 1000 / len(latencies)
        results.append(
            summarize(
                "webhooks.ingest",
                name,
                size,
                latencies,
                per_second=round(len(latencies) / wall, 1),
                # CPU the daphne process(es) spent per request, and the rate one free core would allow.
                server_cpu_ms=round(cpu_ms, 2),
                one_core_bound_per_second=round(1000 / cpu_ms, 0) if cpu_ms > 0 else None,
                load=round(os.getloadavg()[0], 1),
            )
        )

    def deliveries():
        return [_delivery(str(company.pk)) for _ in range(REQUESTS)]

    try:
        with asgi_servers(1, **env) as (address, procs):
            _load(address, "/api/webhooks/test", [b"{}"] * 50, 200)  # warm-up
            measure(address, procs, "signature only (/test)", "/api/webhooks/test", [b"{}"] * REQUESTS, 200)
            stored = deliveries()
            measure(address, procs, "new delivery (202)", "/api/webhooks/jobs/notify", stored, 202)
            measure(address, procs, "duplicate delivery (200)", "/api/webhooks/jobs/notify", stored, 200)
            sent += len(stored)
        for server in ("uvicorn", "daphne"):
            with asgi_servers(2, server=server, **env) as (address, procs):
                _load(address, "/api/webhooks/test", [b"{}"] * 100, 200)
                stored = deliveries()
                name = f"new delivery (202), 2 processes, {server}"
                measure(address, procs, name, "/api/webhooks/jobs/notify", stored, 202)
                sent += len(stored)
        with checkout(BEFORE) as source:
            for processes in (1, 2):
                with asgi_servers(processes, server="daphne", source=source, **env) as (address, procs):
                    _load(address, "/api/webhooks/test", [b"{}"] * 100, 200)
                    stored = deliveries()
                    name = f"before ({BEFORE}: daphne + WebhookConsumer), {processes} process(es)"
                    measure(address, procs, name, "/api/webhooks/jobs/notify", stored, 202)
                    sent += len(stored)
        with asgi_servers(1, application=DJANGO_PATH_ASGI, **env) as (address, procs):
            _load(address, "/api/webhooks/test", [b"{}"] * 50, 200)
            stored = deliveries()
            name = "naive: Django's stock ASGI handler, new delivery (202)"
            measure(address, procs, name, "/api/webhooks/jobs/notify", stored, 202)
            sent += len(stored)
        assert WebhookEvent.objects.count() - before == sent
    finally:
        WebhookEvent.objects.filter(source="jobs.notify", payload__record__company_id=str(company.pk)).delete()
        queue.empty()
    return results
