"""Log records with their context, as human lines (default) or one JSON object per line.

`LOG_FORMAT=json` (settings) switches the console handler to `JsonFormatter`: every record
becomes one line `{"time", "level", "logger", "message", "request_id", "user_id", "job_id",
"exc_info"?, …}`. The context comes from three context variables, set by:

- `emploiplus.request_context.RequestMiddleware`: the request id (the caller's `X-Request-ID`
  when it looks like one, else a new one; echoed in the response);
- the DRF authentication and the WebSocket handshake (`bind_user`): the user id;
- the RQ worker (`emploiplus.workers.Worker`): the job id, and the request id of the request
  that enqueued the job (`emploiplus.workers.Queue` stores it in the job's meta), so a
  request's lines and its jobs' lines share one id.

Routine work is quiet: `RoutineFilter` turns RQ's per-job INFO lines about periodic jobs
(`emploiplus.cron`, marked `meta={"routine": True}`) and the cron scheduler's "Enqueued job"
lines into DEBUG (shown with LOG_LEVEL=DEBUG, dropped otherwise). What such a job found is
logged by the worker: DEBUG when it found nothing, INFO with its report when it recovered
something.

This module must not import Django models: `settings.LOGGING` names its classes.
"""

from __future__ import annotations

import logging
import re
import uuid
from contextvars import ContextVar, Token
from typing import Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("emploiplus_request_id", default=None)
user_id_var: ContextVar[str | None] = ContextVar("emploiplus_user_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("emploiplus_job_id", default=None)
# True while a worker handles a periodic (routine) job: its RQ chatter is DEBUG.
routine_var: ContextVar[bool] = ContextVar("emploiplus_routine_job", default=False)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
# A token in a URL (`/ws/messages/?token=…`, which servers log as they accept the socket).
_SECRET_IN_URL = re.compile(r"(?i)([?&](?:token|access_token|apikey|api_key|secret)=)[^&#\s\"']+")


def redact(text: str) -> str:
    """`text` with the values of token-like URL parameters replaced by [Filtered]."""
    return _SECRET_IN_URL.sub(lambda m: m.group(1) + "[Filtered]", text)


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(header: str | None) -> str:
    """The caller's request id (a proxy's `X-Request-ID`) when it is a plain token, else a new one:
    nothing a client sends reaches the logs unchecked."""
    if header and _REQUEST_ID.match(header):
        return header
    return new_request_id()


def job_meta() -> dict[str, str] | None:
    """The meta of a job created now: the current request's id, if any (emploiplus.effects
    takes it when a job is registered, in the request's thread; emploiplus.workers.Queue
    stamps jobs created any other way)."""
    request_id = request_id_var.get()
    return {"request_id": request_id} if request_id else None


def bind_user(user_id: Any) -> None:
    """The authenticated user of the current request / connection, for the logs."""
    user_id_var.set(str(user_id) if user_id is not None else None)


def bind(*, request_id: str | None = None, user_id: str | None = None, job_id: str | None = None) -> list[Token]:
    """Set the context for what follows; give the result to `unbind` to restore the previous one."""
    return [request_id_var.set(request_id), user_id_var.set(user_id), job_id_var.set(job_id)]


def unbind(tokens: list[Token]) -> None:
    for var, token in zip((request_id_var, user_id_var, job_id_var), tokens, strict=True):
        var.reset(token)


def context() -> dict[str, str | None]:
    return {"request_id": request_id_var.get(), "user_id": user_id_var.get(), "job_id": job_id_var.get()}


access_log = logging.getLogger("emploiplus.access")
QUIET_PATHS = ("/healthz", "/readyz", "/metrics")  # polled every few seconds: DEBUG


def log_access(method: str, path: str, status: int, seconds: float) -> None:
    """One line per HTTP request (the ASGI server's own access log is off: see
    emploiplus.processes). The path has no query string (tokens may travel there)."""
    level = logging.DEBUG if path in QUIET_PATHS else logging.INFO
    if access_log.isEnabledFor(level):
        ms = round(seconds * 1000, 1)
        access_log.log(
            level,
            "%s %s %s %sms",
            method,
            path,
            status,
            ms,
            extra={"method": method, "path": path, "status": status, "duration_ms": ms},
        )


class ContextFilter(logging.Filter):
    """Adds request_id / user_id / job_id to every record (None when unknown), and removes
    tokens from URLs in the message (the servers log WebSocket paths with `?token=`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in context().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        message = record.getMessage()
        if "=" in message:
            clean = redact(message)
            if clean != message:
                record.msg, record.args = clean, ()
        return True


class RoutineFilter(logging.Filter):
    """RQ's INFO lines about routine jobs become DEBUG: kept when the root logger shows DEBUG
    (LOG_LEVEL=DEBUG), dropped otherwise. Put on the handler (RQ's loggers have their own
    level, so a logger-level check has already passed)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not record.name.startswith("rq."):
            return True
        routine = routine_var.get() or (record.name == "rq.cron" and str(record.msg).startswith("Enqueued job"))
        if not routine:
            return True
        if not logging.getLogger().isEnabledFor(logging.DEBUG):
            return False
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return True


class JsonFormatter(_JsonFormatter):
    """One JSON object per line; context fields that are unknown are left out."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"})
        super().__init__("{asctime}{levelname}{name}{message}", style="{", **kwargs)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging API
        from datetime import UTC, datetime

        return datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in log_data.items() if value is not None}
