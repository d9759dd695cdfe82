"""Prometheus metrics: every metric of the project is named here, and only here.

`GET /metrics` (Prometheus text format) answers only with `Authorization: Bearer
<METRICS_TOKEN>`; without METRICS_TOKEN set it is refused (503). docs/grafana-dashboard.json
plots exactly these names (a test checks it).

Two kinds of metrics, because the processes that do the work are not the ones scraped:

- **Web-process metrics** (HTTP, WebSocket, webhook deliveries) live in prometheus_client.
  Under `python -m emploiplus.processes web` the WEB_CONCURRENCY server processes share one
  PROMETHEUS_MULTIPROC_DIR (the web process type creates it), so whichever process answers
  `/metrics` reports the sum over all of them; the live-connections gauge sums live
  processes only. Outside that (tests, `runserver`) they are plain in-process metrics.
- **Cluster metrics** written by the workers, which run elsewhere (one service per queue on
  Render) and serve no HTTP: job outcomes, delivery batches, provider errors. They are Redis
  counters (`HINCRBY` on `<REDIS_KEY_PREFIX>:metrics:<family>`, one per job or batch), read
  at scrape time together with the queue depths (the same figures as /api/queues/health).
  Fail soft: with Redis down a count is skipped, never an error.

Hooks (one line each in the code that does the work): `http_observe` (emploiplus.request_context),
`ws_opened` / `ws_closed` / `ws_received` / `ws_sent` (emploiplus.consumers),
`webhook_delivery` (webhooks.apis), `job_outcome` (emploiplus.workers), `delivery_batch`
(notifications.jobs), `provider_result` (notifications.services.delivery).
"""

from __future__ import annotations

import functools
import hmac
import logging
import os
from collections.abc import Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

log = logging.getLogger(__name__)

# --- web-process metrics (prometheus_client) ---------------------------------------------------
HTTP_REQUESTS = Counter(
    "emploiplus_http_requests_total",
    "HTTP requests answered, by route pattern, method and status code.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "emploiplus_http_request_duration_seconds",
    "Time to answer an HTTP request (server side), by route pattern and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
WS_CONNECTIONS = Gauge(
    "emploiplus_websocket_connections",
    "Open WebSocket connections, by namespace (messages, notifications, presence).",
    ["namespace"],
    multiprocess_mode="livesum",
)
WS_RECEIVED = Counter(
    "emploiplus_websocket_messages_received_total",
    "Frames received from clients, by namespace and event (send_message, typing, …; _invalid otherwise).",
    ["namespace", "event"],
)
WS_SENT = Counter(
    "emploiplus_websocket_messages_sent_total",
    "Frames delivered to clients, by namespace and event (new_message, notification, ack, error, …).",
    ["namespace", "event"],
)
WEBHOOK_DELIVERIES = Counter(
    "emploiplus_webhook_deliveries_total",
    "Inbound webhook deliveries by route and outcome (accepted, duplicate, skipped, invalid_signature, …).",
    ["route", "outcome"],
)

# --- cluster metrics (Redis counters written by the workers) ----------------------------------
# family → (help, label names). Exposed as counters named `<family>_total`.
CLUSTER_COUNTERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "emploiplus_jobs": (
        "RQ job executions by queue, job function and outcome (success, failure, retry).",
        ("queue", "job", "outcome"),
    ),
    "emploiplus_delivery_batches": (
        "Notification delivery batches (one provider call or SMTP session) by channel and outcome "
        "(sent, retry, failed, empty).",
        ("channel", "outcome"),
    ),
    "emploiplus_provider_errors": (
        "Failed provider calls by channel (push, sms: OneSignal; email: SMTP) and kind (transient, permanent).",
        ("channel", "kind"),
    ),
}
QUEUE_STATES = ("waiting", "active", "scheduled", "completed", "failed")
_SEP = "\x1f"


def _multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def _redis():
    from emploiplus.redis import get_redis

    return get_redis()


def _cluster_key(family: str) -> str:
    from emploiplus.redis import key

    return key("metrics", family)


def count(family: str, *labels: str) -> None:
    """+1 on a cluster counter (one Redis round trip); skipped, never raised, when Redis fails."""
    names = CLUSTER_COUNTERS[family][1]
    if len(labels) != len(names):
        raise ValueError(f"{family} takes labels {names}")
    try:
        _redis().hincrby(_cluster_key(family), _SEP.join(str(v) for v in labels), 1)
    except Exception as exc:  # Redis down: the metric is lost, the work is not
        log.debug("metric %s not counted: %s", family, exc)


# --- hooks: HTTP -------------------------------------------------------------------------------
def http_observe(route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(seconds)


# --- hooks: WebSocket --------------------------------------------------------------------------
def namespace_of(scope: dict[str, Any]) -> str:
    """`/ws/messages/` → `messages` (the Socket.IO transport passes its namespace itself)."""
    parts = [p for p in str(scope.get("path", "")).split("/") if p]
    if len(parts) >= 2 and parts[0] == "ws":
        return parts[1]
    return parts[0] if parts else "_root"


def ws_opened(scope: dict[str, Any]) -> str:
    namespace = namespace_of(scope)
    WS_CONNECTIONS.labels(namespace).inc()
    return namespace


def ws_closed(namespace: str | None) -> None:
    if namespace is not None:
        WS_CONNECTIONS.labels(namespace).dec()


def ws_received(namespace: str | None, event: Any, handled: Iterable[str]) -> None:
    _child(WS_RECEIVED, namespace or "_unknown", event if event in handled else "_invalid").inc()


def ws_sent(namespace: str | None, event: Any) -> None:
    _child(WS_SENT, namespace or "_unknown", str(event)).inc()


@functools.lru_cache(maxsize=4096)
def _child(counter: Counter, namespace: str, event: str) -> Any:
    """`counter.labels(namespace, event)`, kept: the lookup (label validation, a lock, a dict)
    ran for every frame. Namespaces and events are ours (a client's unknown event counts as
    `_invalid`), so the set is small; prometheus_client hands out one child per label set."""
    return counter.labels(namespace, event)


# --- hooks: webhooks, jobs, deliveries ----------------------------------------------------------
def webhook_outcome(status: int, body: dict[str, Any]) -> str:
    if status == 202:
        return "skipped" if body.get("skipped") else "accepted"
    if status == 200:
        return "duplicate" if body.get("duplicate") else "test_ok"
    if status in (401, 503) and isinstance(body.get("error"), str):
        return body["error"]
    return {400: "invalid_payload", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        status, "server_error" if status >= 500 else f"http_{status}"
    )


def webhook_delivery(route: str | None, status: int, body: dict[str, Any]) -> None:
    WEBHOOK_DELIVERIES.labels(route or "<unknown>", webhook_outcome(status, body)).inc()


def job_outcome(queue: str, job: str, outcome: str) -> None:
    count("emploiplus_jobs", queue, job, outcome)


def delivery_batch(batch_key: str, outcome: Any) -> None:
    """After notifications.services.delivery_batch_send (a DeliveryOutcome)."""
    channel = batch_key.split(":", 1)[0]
    if outcome.retry_in is not None:
        result = "retry"
    elif outcome.permanent_error:
        result = "failed"
    elif outcome.sent or outcome.failed or outcome.skipped:
        result = "sent"
    else:
        result = "empty"
    count("emploiplus_delivery_batches", channel, result)


def provider_result(channel: str, kind: str) -> None:
    """After a provider call: counts the failed ones (kind `transient` / `permanent`)."""
    if kind not in ("ok", ""):
        count("emploiplus_provider_errors", channel, kind)


# --- exposition --------------------------------------------------------------------------------
class ClusterCollector:
    """Reads the Redis counters and the queue depths at scrape time."""

    def collect(self):
        try:
            client = _redis()
            with client.pipeline(transaction=False) as pipe:
                for family in CLUSTER_COUNTERS:
                    pipe.hgetall(_cluster_key(family))
                replies = pipe.execute()
        except Exception as exc:
            log.warning("metrics: cluster counters unavailable (%s)", exc)
            replies = [{} for _ in CLUSTER_COUNTERS]
        for (family, (help_text, labels)), reply in zip(CLUSTER_COUNTERS.items(), replies, strict=True):
            metric = CounterMetricFamily(family, help_text, labels=list(labels))
            for field, value in sorted(reply.items()):
                values = field.decode().split(_SEP)
                if len(values) == len(labels):
                    metric.add_metric(values, float(value))
            yield metric
        jobs = GaugeMetricFamily("emploiplus_queue_jobs", "RQ jobs by queue and state.", labels=["queue", "state"])
        workers = GaugeMetricFamily("emploiplus_queue_workers", "RQ workers listening on each queue.", labels=["queue"])
        try:
            from notifications.services import queues_health

            health = queues_health()["queues"]
        except Exception as exc:
            log.warning("metrics: queue depths unavailable (%s)", exc)
            health = {}
        for queue, figures in health.items():
            for state in QUEUE_STATES:
                jobs.add_metric([queue, state], figures[state])
            workers.add_metric([queue], figures["workers"])
        yield jobs
        yield workers


def registry() -> CollectorRegistry:
    """What /metrics exports: the web metrics (summed over the processes' files in
    multiprocess mode) and the cluster collector; not prometheus_client's default process and
    platform collectors (per-process figures that would not add up)."""
    from prometheus_client import multiprocess

    registry = CollectorRegistry()
    directory = _multiprocess_dir()
    if directory:
        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        for collector in (HTTP_REQUESTS, HTTP_DURATION, WS_CONNECTIONS, WS_RECEIVED, WS_SENT, WEBHOOK_DELIVERIES):
            registry.register(collector)
    registry.register(ClusterCollector())
    return registry


def exposition() -> bytes:
    return generate_latest(registry())


def metrics_view(request):
    """GET /metrics: `Authorization: Bearer <METRICS_TOKEN>` (constant-time check)."""
    from django.conf import settings
    from django.http import HttpResponse, JsonResponse

    expected = settings.METRICS_TOKEN
    if not expected:
        return JsonResponse(
            {"detail": "METRICS_TOKEN is not set: /metrics is off.", "code": "not_configured"}, status=503
        )
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        response = JsonResponse({"detail": "Jeton de métriques manquant ou invalide.", "code": "forbidden"}, status=401)
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if request.method != "GET":
        return JsonResponse({"detail": "Méthode non autorisée.", "code": "method_not_allowed"}, status=405)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def mark_process_dead(pid: int) -> None:
    """A web server process exited: drop it from the live gauges (multiprocess mode)."""
    directory = _multiprocess_dir()
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)
