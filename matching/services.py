"""Writes and side effects of matching."""

from __future__ import annotations

import time

from django.db import connection

MATERIALIZED_VIEWS = ("mv_job_stats", "mv_candidate_stats")


def stats_refresh() -> dict[str, float]:
    """REFRESH … CONCURRENTLY each statistics view; readers are never blocked.

    Returns the seconds each refresh took.
    """
    timings = {}
    with connection.cursor() as cursor:
        for view in MATERIALIZED_VIEWS:
            started = time.perf_counter()
            cursor.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")
            timings[view] = round(time.perf_counter() - started, 4)
    return timings
