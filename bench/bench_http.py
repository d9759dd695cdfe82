"""Django behind daphne: the cost of a plain REST request with Django's stock ASGI handler
and with emploiplus.handlers.SyncStackASGIHandler (what `make run` serves), same run.

Routes (GET, anonymous — no token work in the numbers):
- `/healthz` — a view that returns a constant: the floor of the HTTP stack;
- `/api/jobs/?limit=20` — a DRF list view: one query, 20 serialised rows (the bench
  company's jobs, created here if missing).

Load: BENCH_HTTP_CONCURRENCY keep-alive clients (default 8) on the same machine,
BENCH_HTTP_REQUESTS per variant (default 4,000 × BENCH_SCALE), one daphne process each.
`server_cpu_ms` is the CPU the daphne process used per request.
"""

from __future__ import annotations

import os

from bench.common import Result, cpu_seconds, http_load, summarize

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
CONCURRENCY = int(os.environ.get("BENCH_HTTP_CONCURRENCY", "8"))
REQUESTS = max(200, int(int(os.environ.get("BENCH_HTTP_REQUESTS", "4000")) * SCALE))
HANDLERS = {
    "SyncStackASGIHandler (make run)": "emploiplus.asgi:application",
    "Django's stock ASGIHandler": "bench.stock_django_asgi:application",
}
ROUTES = ["/healthz", "/api/jobs/?limit=20"]


def _get_load(address: str, path: str, count: int) -> tuple[list[float], float]:
    return http_load(address, [("GET", path, None, {})] * count, concurrency=CONCURRENCY, expect=200)


def _jobs() -> int:
    from accounts.models import Company
    from matching.models import Job

    company, _ = Company.objects.get_or_create(name="bench-http company")
    have = Job.objects.filter(company=company).count()
    Job.objects.bulk_create(
        Job(company=company, title=f"Offre {i}", status="active", required_skills=["python", "django"])
        for i in range(have, 50)
    )
    return Job.objects.filter(status="active", deleted_at__isnull=True).count()


def run() -> list[Result]:
    from emploiplus.testing import asgi_servers

    active_jobs = _jobs()
    results = []
    size = f"{REQUESTS:,} requests, {CONCURRENCY} clients, {active_jobs:,} active jobs"
    for name, application in HANDLERS.items():
        # The per-IP rate limit (120/min) would answer 429: lifted for the load generator.
        with asgi_servers(1, application=application, DEBUG="0", RATE_LIMIT_PER_MINUTE="100000000") as (
            address,
            procs,
        ):
            for path in ROUTES:
                _get_load(address, path, 200)  # warm-up
                cpu_before = cpu_seconds(procs[0].pid)
                latencies, wall = _get_load(address, path, REQUESTS)
                cpu_ms = (cpu_seconds(procs[0].pid) - cpu_before) * 1000 / len(latencies)
                results.append(
                    summarize(
                        f"http{path.split('?')[0].replace('/', '.').rstrip('.')}",
                        name,
                        size,
                        latencies,
                        per_second=round(len(latencies) / wall, 1),
                        server_cpu_ms=round(cpu_ms, 2),
                        load=round(os.getloadavg()[0], 1),
                    )
                )
    return results
