"""The soak machinery (`python -m bench soak`, bench/bench_soak.py) on a real stack: two web
processes, a worker, the cron scheduler, a fake OneSignal, real PostgreSQL and Redis — a
few seconds at a low rate instead of minutes. Figures are the bench's; this checks that
every operation is accounted for and that the report carries what the issue asks."""

from __future__ import annotations

import shutil

import pytest

from bench import bench_soak


def test_it_folds_ids_out_of_redis_key_patterns():
    assert bench_soak.key_pattern("p:asgi:group:user.5279ba85-dedb-4a92-9056-d1399f31662e") == "p:asgi:group:user.*"
    assert bench_soak.key_pattern("rq:job:notif-deliver-push-d58aa8850499146bca448ee8e2a8c96ef-0") == (
        "rq:job:notif-deliver-push-*-*"
    )
    assert bench_soak.key_pattern("p:asgi:specific.a1b2c3!") == "p:asgi:specific.*"
    assert bench_soak.key_pattern("p:metrics:emploiplus_jobs") == "p:metrics:emploiplus_jobs"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_soaks_a_real_stack_and_accounts_for_every_operation():
    report = bench_soak.soak(seconds=6, warmup=2, rate=0.5, drain=30)
    shutil.rmtree(report["logs"])  # the processes' logs (counted in report["log_errors"])

    assert report["http_5xx"] == 0, report["unexpected_examples"]
    assert report["unexpected_status"] == 0, report["unexpected_examples"]
    assert report["transport_errors"] == {}, report["transport_examples"]
    assert report["lost"] == 0, (report["messages"], report["webhooks"], report["feed"])
    assert report["failed_jobs_new"] == 0
    assert report["drain_seconds"] >= 0
    # Every kind of operation ran, and what was acknowledged was counted at the other end.
    assert set(report["fired"]) == set(bench_soak.MIX)
    messages = report["messages"]
    assert messages["sent"] > 0 and messages["acked"] == messages["sent"] and messages["not_delivered"] == 0
    webhooks = report["webhooks"]
    assert webhooks["accepted"] > 0
    assert webhooks["expected_notifications"] == webhooks["accepted"] * bench_soak.PER_GROUP
    assert webhooks["pushes_received"] == webhooks["frames_received"] == webhooks["expected_notifications"]
    assert webhooks["push_delivery_rows"] == {"sent": webhooks["expected_notifications"]}
    assert webhooks["pushes_twice"] == 0 and webhooks["pushes_unexpected"] == 0
    assert report["feed"]["likes_wrong"] == 0 and report["feed"]["likes_count_wrong"] == 0
    # Memory of each process, Redis before and after.
    assert set(report["memory"]) == {"web-a", "web-b", "worker", "cron"}
    for process in report["memory"].values():
        assert process["start_mib"] > 0 and process["end_mib"] > 0 and "growth_mib" in process
    assert report["memory"]["web-a"]["requests"] > 0 and report["memory"]["web-b"]["requests"] > 0
    for moment in ("before", "after_drain", "after_stop"):
        snapshot = report["redis"][moment]
        assert {"dbsize", "used_memory", "db_key_bytes", "keys_by_pattern", "keys_without_ttl_by_pattern"} <= set(
            snapshot
        )
    # Clients gone, processes stopped: no presence or channel-layer group is left behind.
    left = report["redis"]["after_stop"]["keys_by_pattern"]
    assert not [p for p in left if ":presence:" in p or ":asgi:" in p], left
    rows = bench_soak.rows(report)
    assert rows[-1].benchmark == "soak totals" and rows[-1].extra["lost"] == 0
