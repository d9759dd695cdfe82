"""OneSignal REST client: push and SMS through `POST {ONESIGNAL_API_URL}/notifications`.

One pooled `requests.Session` per process, explicit (connect, read) timeouts, no retries
at this level: the caller (a queue job) decides, from the `SendResult`, whether to retry
(429, 5xx, network errors) or to fail for good (other 4xx).
"""

from __future__ import annotations

import email.utils
import functools
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

OK = "ok"
TRANSIENT = "transient"
PERMANENT = "permanent"


@dataclass
class SendResult:
    kind: str  # OK, TRANSIENT or PERMANENT
    provider_id: str = ""
    failed_ids: dict[str, str] = field(default_factory=dict)  # external id → reason
    error: str = ""
    status_code: int | None = None
    retry_after: float | None = None


@functools.cache
def session() -> requests.Session:
    s = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def build_payload(
    *,
    channel: str,
    external_ids: list[str],
    title: str,
    body: str,
    title_en: str = "",
    body_en: str = "",
    data: dict[str, Any] | None = None,
    idempotency_key: str,
) -> dict[str, Any]:
    """The JSON body of one OneSignal call. OneSignal requires an "en" text: the French
    one stands in when no English text was given."""
    payload: dict[str, Any] = {
        "app_id": settings.ONESIGNAL_APP_ID,
        "include_aliases": {"external_id": external_ids},
        "target_channel": channel,
        "idempotency_key": idempotency_key,
    }
    if channel == "sms":
        text = body or title
        payload["contents"] = {"en": body_en or title_en or text, "fr": text}
        if settings.ONESIGNAL_SMS_FROM:
            payload["sms_from"] = settings.ONESIGNAL_SMS_FROM
    else:
        payload["headings"] = {"en": title_en or title, "fr": title}
        payload["contents"] = {"en": body_en or body or title, "fr": body or title}
        payload["data"] = data or {}
    return payload


def _parse_success(body: Any, external_ids: list[str]) -> SendResult:
    if not isinstance(body, dict):
        return SendResult(PERMANENT, error=f"unexpected response body: {str(body)[:200]}")
    provider_id = str(body.get("id") or "")
    errors = body.get("errors")
    failed: dict[str, str] = {}
    message = ""
    if isinstance(errors, dict):
        invalid = errors.get("invalid_aliases") or {}
        ids = invalid.get("external_id", []) if isinstance(invalid, dict) else invalid
        for external_id in ids or []:
            failed[str(external_id)] = "invalid_alias"
        other = {k: v for k, v in errors.items() if k != "invalid_aliases"}
        message = str(other) if other else ""
    elif isinstance(errors, list) and errors:
        message = "; ".join(str(e) for e in errors)
    elif errors:
        message = str(errors)
    if not provider_id:
        # Nobody received it (e.g. "All included players are not subscribed").
        reason = message or "not_delivered"
        for external_id in external_ids:
            failed.setdefault(external_id, reason)
    return SendResult(OK, provider_id=provider_id, failed_ids=failed, error=message, status_code=200)


def send(payload: dict[str, Any]) -> SendResult:
    """One call; never raises for HTTP or network failures (they come back classified)."""
    if not settings.ONESIGNAL_APP_ID or not settings.ONESIGNAL_API_KEY:
        return SendResult(PERMANENT, error="OneSignal is not configured (ONESIGNAL_APP_ID / ONESIGNAL_API_KEY).")
    timeout = settings.ONESIGNAL_TIMEOUT_SECONDS
    try:
        response = session().post(
            f"{settings.ONESIGNAL_API_URL}/notifications",
            json=payload,
            headers={
                "Authorization": f"Key {settings.ONESIGNAL_API_KEY}",
                "Accept": "application/json",
            },
            timeout=(min(5.0, timeout), timeout),
        )
    except requests.RequestException as exc:  # timeouts, refused connections, resets
        return SendResult(TRANSIENT, error=f"{type(exc).__name__}: {exc}"[:500])
    status = response.status_code
    if status == 429 or status >= 500:
        return SendResult(
            TRANSIENT,
            error=f"HTTP {status}: {response.text[:300]}",
            status_code=status,
            retry_after=_retry_after(response.headers.get("Retry-After")),
        )
    if status >= 400:
        return SendResult(PERMANENT, error=f"HTTP {status}: {response.text[:500]}", status_code=status)
    try:
        body = response.json()
    except ValueError:
        return SendResult(PERMANENT, error=f"HTTP {status}: invalid JSON {response.text[:200]}", status_code=status)
    return _parse_success(body, payload["include_aliases"]["external_id"])
