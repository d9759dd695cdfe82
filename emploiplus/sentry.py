"""Error reporting to Sentry (sentry-sdk), on when SENTRY_DSN is set.

`init()` runs at the end of settings.py, so every process type reports: the web servers
(Django and DRF views through the SDK's Django integration), the RQ workers (the SDK's RQ
integration reports a job's exception only when no retry is left, i.e. its final failure;
`emploiplus.workers.Worker` also reports a job that *returned* `Retry` once its retries are
used up) and the WebSocket consumers, which the SDK does not see by itself:
`wrap_websocket()` wraps the websocket application of emploiplus.asgi in the SDK's ASGI
middleware, an exception escaping a consumer is reported by `EventConsumer.dispatch` as it
happens (the app-level middleware only sees it once channels_redis has let the consumer's
pending `receive` go, which can take seconds or until the server kills the task), and an
error a consumer handler catches and logs (`log.exception`) is reported by the logging
integration (ERROR records become events).

Tags: `release` (SENTRY_RELEASE, else Render's RENDER_GIT_COMMIT), `environment`
(SENTRY_ENVIRONMENT: production, or development with DEBUG), `process_type` (web, worker,
cron… from emploiplus.processes).

No personal data by default (SENTRY_SEND_PII=0): no user e-mail, IP or cookies, no request
bodies, no local variables of stack frames; `Authorization`, the WebSocket subprotocol token
(`bearer, <token>`), the webhook secret headers and `token=` query parameters are removed.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN_IN_QUERY = re.compile(r"(?i)((?:^|[?&])(?:token|access_token|apikey|api_key|secret)=)[^&#]*")
_SECRET_HEADERS = {
    "authorization",
    "cookie",
    "sec-websocket-protocol",
    "x-webhook-secret",
    "x-webhook-signature",
    "webhook-signature",
    "x-forwarded-for",
    "x-real-ip",
}
FILTERED = "[Filtered]"


def scrub_query(value: str) -> str:
    return _TOKEN_IN_QUERY.sub(lambda m: m.group(1) + FILTERED, value)


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    """Log lines become breadcrumbs before any handler runs: the servers' "WebSocket
    /ws/…/?token=…" lines must lose their token here too."""
    from emploiplus.logs import redact

    if isinstance(crumb.get("message"), str):
        crumb["message"] = redact(crumb["message"])
    data = crumb.get("data")
    if isinstance(data, dict) and isinstance(data.get("url"), str):
        data["url"] = scrub_query(data["url"])
    return crumb


def _scrub_request(request: dict[str, Any]) -> None:
    if isinstance(request.get("query_string"), str):
        request["query_string"] = scrub_query(request["query_string"])
    if isinstance(request.get("url"), str):
        request["url"] = scrub_query(request["url"])
    headers = request.get("headers")
    if isinstance(headers, dict):
        for name in list(headers):
            if name.lower() in _SECRET_HEADERS:
                headers[name] = FILTERED
    request.pop("cookies", None)
    request.pop("data", None)


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        _scrub_request(request)
    for crumb in (event.get("breadcrumbs") or {}).get("values", []) or []:
        data = crumb.get("data")
        if isinstance(data, dict) and isinstance(data.get("url"), str):
            data["url"] = scrub_query(data["url"])
    return event


def init(
    *,
    dsn: str,
    environment: str,
    release: str,
    send_pii: bool = False,
    traces_sample_rate: float = 0.0,
    process_type: str | None = None,
) -> bool:
    """Start the SDK (idempotent per process). Returns whether it is on."""
    if not dsn:
        return False
    import sentry_sdk
    from sentry_sdk.integrations.django import DjangoIntegration
    from sentry_sdk.integrations.rq import RqIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=environment,
        release=release or None,
        send_default_pii=send_pii,
        include_local_variables=send_pii,
        max_request_body_size="always" if send_pii else "never",
        traces_sample_rate=traces_sample_rate,
        integrations=[DjangoIntegration(), RqIntegration()],
        before_send=before_send,
        before_breadcrumb=before_breadcrumb,
        before_send_transaction=before_send,
    )
    sentry_sdk.set_tag("process_type", process_type or "other")
    return True


def enabled() -> bool:
    try:
        import sentry_sdk
    except ImportError:  # pragma: no cover - a requirement
        return False
    return sentry_sdk.get_client().is_active()


def wrap_websocket(app):
    """The websocket ASGI application, reporting what its consumers raise (when Sentry is on)."""
    if not enabled():
        return app
    from sentry_sdk.integrations.asgi import SentryAsgiMiddleware

    return SentryAsgiMiddleware(app, mechanism_type="websocket")


def capture_exception() -> None:
    """Report the exception being handled (when Sentry is on)."""
    if enabled():
        import sentry_sdk

        sentry_sdk.capture_exception()


def capture_message(message: str, *, level: str = "error", **tags: str) -> None:
    if not enabled():
        return
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        for name, value in tags.items():
            scope.set_tag(name, value)
        sentry_sdk.capture_message(message, level=level)
