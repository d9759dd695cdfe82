"""/metrics: refused without the token; traffic in, counters out — in one process, across the
WEB_CONCURRENCY processes of `web`, and from the workers through Redis; the Grafana dashboard
plots exactly these names."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from accounts.testing import token_for
from emploiplus import metrics
from emploiplus.testing import BASE_DIR, free_port, rq_worker, subprocess_env

TOKEN = "test-metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN


@pytest.mark.django_db
def test_it_refuses_metrics_without_the_token(client, settings):
    settings.METRICS_TOKEN = ""
    response = client.get("/metrics")
    assert response.status_code == 503 and response.json()["code"] == "not_configured"
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")


@pytest.mark.django_db
def test_it_counts_requests_by_route_and_status_and_webhooks_by_outcome(client, token, alice, auth):
    before = client.get("/metrics", headers=AUTH).content.decode()
    for _ in range(3):
        assert client.get("/api/me/", headers=auth(alice)).status_code == 200
    assert client.get("/api/me/").status_code == 401
    assert client.get("/no/such/page").status_code == 404
    assert client.post("/api/webhooks/test", data=b"{}", content_type="application/json").status_code == 401
    after = client.get("/metrics", headers=AUTH).content.decode()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("emploiplus_http_requests_total", route="api/me/", method="GET", status="200") == 3
    assert delta("emploiplus_http_requests_total", route="api/me/", method="GET", status="401") == 1
    assert delta("emploiplus_http_requests_total", route="<unmatched>", method="GET", status="404") == 1
    assert delta("emploiplus_http_request_duration_seconds_count", route="api/me/", method="GET") == 4
    assert delta("emploiplus_webhook_deliveries_total", route="test", outcome="missing_signature") == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_counts_jobs_from_the_workers_and_the_queue_depths(client, token):
    import django_rq
    from rq import Retry

    waiting = django_rq.get_queue("emails")
    for i in range(3):
        waiting.enqueue("emploiplus.tests.jobs_for_tests.add", i, 1)
    sms = django_rq.get_queue("sms")
    sms.enqueue("emploiplus.tests.jobs_for_tests.add", 1, 1)
    sms.enqueue("emploiplus.tests.jobs_for_tests.add", 2, 2)
    sms.enqueue("emploiplus.tests.jobs_for_tests.boom", retry=Retry(max=1))
    with rq_worker("sms", burst=True) as worker:
        worker.wait(120)
    text = client.get("/metrics", headers=AUTH).content.decode()
    job = "emploiplus.tests.jobs_for_tests"
    assert value(text, "emploiplus_jobs_total", queue="sms", job=f"{job}.add", outcome="success") == 2
    assert value(text, "emploiplus_jobs_total", queue="sms", job=f"{job}.boom", outcome="retry") == 1
    assert value(text, "emploiplus_jobs_total", queue="sms", job=f"{job}.boom", outcome="failure") == 1
    assert value(text, "emploiplus_queue_jobs", queue="emails", state="waiting") == 3
    assert value(text, "emploiplus_queue_jobs", queue="sms", state="failed") == 1
    assert value(text, "emploiplus_queue_workers", queue="sms") == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_counts_delivery_batches_and_provider_errors(
    client, token, settings, alice, django_capture_on_commit_callbacks
):
    from matching.testing import run_queue
    from notifications.services import notification_queue
    from notifications.testing import FakeOneSignal

    with FakeOneSignal() as fake:
        settings.ONESIGNAL_API_URL = fake.url
        fake.script = [(503, {}, {"errors": ["maintenance"]})]
        with django_capture_on_commit_callbacks(execute=True):
            notification_queue(type="test", title="Bonjour", body="Un test", user_ids=[alice.pk], channels=("push",))
        run_queue("notifications")  # the 503: the batch is to be retried (the retry is scheduled)
    text = client.get("/metrics", headers=AUTH).content.decode()
    assert value(text, "emploiplus_delivery_batches_total", channel="push", outcome="retry") == 1
    assert value(text, "emploiplus_provider_errors_total", channel="push", kind="transient") == 1


# --- across the WEB_CONCURRENCY processes of `web` ----------------------------------------------
def _get(url: str, headers: dict[str, str] | None = None) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=5) as response:
        return response.read()


def _per_process_requests(directory: Path, scratch: Path) -> dict[int, float]:
    """healthz requests counted by each server process, from its own counter file."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        one = scratch / str(pid)
        one.mkdir(exist_ok=True)
        shutil.copy(path, one / path.name)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(one))
        counts[pid] = value(
            generate_latest(registry).decode(),
            "emploiplus_http_requests_total",
            route="healthz",
            method="GET",
            status="200",
        )
    return counts


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_sums_the_metrics_of_every_web_process(alice, tmp_path):
    import websockets

    port = free_port()
    directory = tmp_path / "multiproc"
    directory.mkdir()
    env = subprocess_env(
        PORT=str(port), WEB_CONCURRENCY="2", METRICS_TOKEN=TOKEN, PROMETHEUS_MULTIPROC_DIR=str(directory)
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "emploiplus.processes", "web", "--host", "127.0.0.1"],
        cwd=BASE_DIR,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(OSError):
                _get(f"{base}/readyz")
                break
            time.sleep(0.1)
        sent = 0
        counts: dict[int, float] = {}
        # New connections until both processes have answered some (the kernel picks one per
        # connection); bounded, so a server that never accepts fails the test.
        for _ in range(40):
            for _ in range(10):
                _get(f"{base}/healthz")
                sent += 1
            counts = _per_process_requests(directory, tmp_path)
            if len([c for c in counts.values() if c > 0]) >= 2:
                break
        assert len([c for c in counts.values() if c > 0]) == 2, counts
        text = _get(f"{base}/metrics", AUTH).decode()
        assert value(text, "emploiplus_http_requests_total", route="healthz", method="GET", status="200") == sent
        assert sum(counts.values()) == sent

        async def websocket_traffic() -> tuple[str, str]:
            url = f"ws://127.0.0.1:{port}/ws/notifications/?token={token_for(alice)}"
            async with websockets.connect(url) as ws:
                await ws.send(json.dumps({"event": "mark_read", "data": {"notificationIds": []}, "ref": "a"}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert reply["event"] in ("ack", "error")
                during = _get(f"{base}/metrics", AUTH).decode()
            for _ in range(100):  # the server notices the close asynchronously
                after = _get(f"{base}/metrics", AUTH).decode()
                if value(after, "emploiplus_websocket_connections", namespace="notifications") == 0:
                    break
                await asyncio.sleep(0.1)
            return during, after

        during, after = asyncio.run(websocket_traffic())
        assert value(during, "emploiplus_websocket_connections", namespace="notifications") == 1
        assert value(after, "emploiplus_websocket_connections", namespace="notifications") == 0
        assert (
            value(after, "emploiplus_websocket_messages_received_total", namespace="notifications", event="mark_read")
            == 1
        )
        sent_frames = sum(
            value(after, "emploiplus_websocket_messages_sent_total", namespace="notifications", event=e)
            for e in ("ack", "error")
        )
        assert sent_frames == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(60) == 0
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_the_grafana_dashboard_uses_exactly_the_exported_metric_names():
    dashboard = json.loads((BASE_DIR / "docs" / "grafana-dashboard.json").read_text())
    expressions = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []) if "expr" in target
    ]
    used = set()
    for expr in expressions:
        for name in re.findall(r"\bemploiplus_[a-z_]+\b", expr):
            used.add(re.sub(r"_(bucket|count|sum)$", "", name) if "duration_seconds" in name else name)
    exported = {
        *(m._name + ("_total" if m._type == "counter" else "") for m in (metrics.HTTP_REQUESTS, metrics.WS_RECEIVED,
          metrics.WS_SENT, metrics.WEBHOOK_DELIVERIES)),
        metrics.HTTP_DURATION._name,
        metrics.WS_CONNECTIONS._name,
        *(f"{family}_total" for family in metrics.CLUSTER_COUNTERS),
        "emploiplus_queue_jobs",
        "emploiplus_queue_workers",
    }  # fmt: skip
    assert used == exported
