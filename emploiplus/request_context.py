"""The first middleware of every HTTP request: request id, log context, HTTP metrics, probes.

- Request id: the caller's `X-Request-ID` when it is a plain token (a proxy's), else a new
  one; bound to the logs of the request (emploiplus.logs), stored in the jobs it enqueues
  (emploiplus.workers.Queue), echoed as the response's `X-Request-ID`.
- Metrics: `emploiplus_http_requests_total{route, method, status}` and the latency histogram,
  with the URL *pattern* as route (`api/jobs/<uuid:job_id>/`), `<unmatched>` for 404s.
- Probes: `/healthz` and `/readyz` are answered here, before the host check of the next
  middleware: a platform's health checker calls them by an internal address that is not in
  ALLOWED_HOSTS (they read nothing from the request).

Under daphne the whole middleware chain runs in one thread (emploiplus.handlers), so the
context variables set here are those the view and its on-commit callbacks see.
"""

from __future__ import annotations

import time

from emploiplus import health, logs, metrics

PROBES = {"/healthz": health.healthz, "/readyz": health.readyz}
STATIC_PREFIX = "/static/"


def _route(request) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.route
    return "<static>" if request.path_info.startswith(STATIC_PREFIX) else "<unmatched>"


class RequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        probe = PROBES.get(request.path_info)
        started = time.perf_counter()
        request_id = logs.request_id_from(request.headers.get("X-Request-ID"))
        tokens = logs.bind(request_id=request_id)
        try:
            response = probe(request) if probe is not None else self.get_response(request)
            route = request.path_info.lstrip("/") if probe is not None else _route(request)
            elapsed = time.perf_counter() - started
            metrics.http_observe(route, request.method, response.status_code, elapsed)
            logs.log_access(request.method, request.path, response.status_code, elapsed)
            response["X-Request-ID"] = request_id
            return response
        finally:
            logs.unbind(tokens)
