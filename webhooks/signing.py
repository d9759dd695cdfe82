"""Inbound webhook authentication (CONTRACT §8).

A caller proves itself with any one of these, checked against every secret configured
in `SUPABASE_WEBHOOK_SECRET` (a comma-separated list, so a new secret can be rolled out
before the old one is removed); every comparison is constant-time (`hmac.compare_digest`)
and every signature is computed over the **raw request bytes**, never over re-serialised
JSON:

1. `X-Webhook-Signature: hmac-sha256=<hex>` (or bare `<hex>`) = HMAC-SHA256(secret, body);
2. Standard Webhooks: `webhook-id`, `webhook-timestamp` (unix seconds, ±5 min) and
   `webhook-signature: v1,<base64> [v1,<base64> …]` = HMAC-SHA256(key, "id.timestamp.body"),
   where key = base64-decoded part of a `whsec_…` secret (or the secret's bytes otherwise);
3. a static secret: `Authorization: Bearer <secret>` or `X-Webhook-Secret: <secret>`
   (Supabase database webhooks can send headers but cannot sign).

Outcomes: a `WebhookProof` (mode, webhook-id for idempotency, timestamp), or a
`WebhookAuthError` that renders as 401 `{"error": "missing_signature"}`, 401
`{"error": "invalid_signature"}`, 503 `{"error": "webhook_secret_not_configured"}` or
413 `{"error": "payload_too_large"}`.

The DRF views of `webhooks.apis` read the raw body (`read_request_body`) and call
`verify_webhook` before anything parses it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions

TIMESTAMP_TOLERANCE_SECONDS = 5 * 60
MAX_SIGNATURE_HEADER = 4096

MODE_HMAC = "hmac-sha256"
MODE_STANDARD = "standard-webhooks"
MODE_STATIC = "static-secret"


@dataclass(frozen=True)
class WebhookProof:
    mode: str  # MODE_HMAC | MODE_STANDARD | MODE_STATIC
    webhook_id: str | None = None  # Standard Webhooks `webhook-id` (idempotency key), else None
    timestamp: int | None = None  # Standard Webhooks `webhook-timestamp`, else None
    secret_index: int = 0  # which configured secret matched (0 = first; rotation diagnostics)
    body: bytes = b""  # the raw bytes that were verified


class WebhookAuthError(exceptions.APIException):
    """Rendered as `{"error": code}` (+ `detail`) with its status by emploiplus.exceptions."""

    def __init__(self, code: str, status: int, detail: str):
        super().__init__(detail=detail, code=code)
        self.status_code = status
        self.error = code

    @property
    def body(self) -> dict[str, str]:
        return {"error": self.error, "detail": str(self.detail)}


def _missing() -> WebhookAuthError:
    return WebhookAuthError("missing_signature", 401, "Webhook signature or secret missing.")


def _invalid(detail: str = "Webhook signature does not match.") -> WebhookAuthError:
    return WebhookAuthError("invalid_signature", 401, detail)


def configured_secrets() -> list[str]:
    return [s for s in getattr(settings, "SUPABASE_WEBHOOK_SECRETS", []) if s]


def _hmac_keys(secret: str) -> list[bytes]:
    """HMAC keys a secret stands for: its bytes, plus the decoded key of a `whsec_` secret."""
    keys = [secret.encode()]
    if secret.startswith("whsec_"):
        with contextlib.suppress(binascii.Error, ValueError):
            keys.append(base64.b64decode(secret[len("whsec_") :], validate=True))
    return keys


def _standard_keys(secret: str) -> list[bytes]:
    keys = _hmac_keys(secret)
    return keys[1:] if len(keys) > 1 else keys  # whsec_: only the decoded key, as the spec says


def _check_hmac(header: str, body: bytes, secrets: list[str]) -> int | None:
    value = header.strip()
    if value.lower().startswith("hmac-sha256=") or value.lower().startswith("sha256="):
        value = value.split("=", 1)[1].strip()
    try:
        presented = bytes.fromhex(value)
    except ValueError:
        return None
    for index, secret in enumerate(secrets):
        for key in _hmac_keys(secret):
            if hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), presented):
                return index
    return None


def _check_standard(webhook_id: str, timestamp: str, header: str, body: bytes, secrets: list[str]) -> int | None:
    signatures: list[bytes] = []
    for part in header.split():
        version, _, value = part.partition(",")
        if version != "v1" or not value:
            continue  # v1a (asymmetric) and unknown versions are not ours to check
        try:
            signatures.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not signatures:
        return None
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    for index, secret in enumerate(secrets):
        for key in _standard_keys(secret):
            expected = hmac.new(key, signed, hashlib.sha256).digest()
            # Check every presented signature (no early exit on the first mismatch).
            if any([hmac.compare_digest(expected, sig) for sig in signatures]):
                return index
    return None


def _check_static(presented: str, secrets: list[str]) -> int | None:
    presented_bytes = presented.strip().encode()
    matched = None
    for index, secret in enumerate(secrets):
        if hmac.compare_digest(presented_bytes, secret.encode()) and matched is None:
            matched = index
    return matched


def payload_too_large() -> WebhookAuthError:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    return WebhookAuthError("payload_too_large", 413, f"Webhook bodies are limited to {limit} bytes.")


def read_request_body(request) -> bytes:
    """A Django/DRF request's raw body, or WebhookAuthError 413 past DATA_UPLOAD_MAX_MEMORY_SIZE."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is not None and length > limit:
        raise payload_too_large()
    try:
        return request.body
    except RequestDataTooBig as exc:
        raise payload_too_large() from exc


def _require_secrets() -> list[str]:
    secrets = configured_secrets()
    if not secrets:
        raise WebhookAuthError(
            "webhook_secret_not_configured", 503, "SUPABASE_WEBHOOK_SECRET is not set: webhooks are refused."
        )
    return secrets


def verify_webhook(headers: Mapping[str, str], body: bytes, *, now: float | None = None) -> WebhookProof:
    """The proof that `body` (the raw bytes, already size-checked) was sent by a holder of a
    configured secret, or WebhookAuthError. `headers` must look names up case-insensitively
    (Django's `request.headers`, django.utils.datastructures.CaseInsensitiveMapping)."""
    secrets = _require_secrets()
    sig_header = headers.get("X-Webhook-Signature", "")
    std_id = headers.get("webhook-id", "")
    std_ts = headers.get("webhook-timestamp", "")
    std_sig = headers.get("webhook-signature", "")
    authorization = headers.get("Authorization", "")
    scheme, _, bearer = authorization.strip().partition(" ")
    static = headers.get("X-Webhook-Secret", "") or (bearer if scheme.lower() == "bearer" else "")

    if not (sig_header or std_sig or std_id or std_ts or static.strip()):
        raise _missing()
    if max(len(sig_header), len(std_sig), len(static)) > MAX_SIGNATURE_HEADER:
        raise _invalid()
    failure = _invalid()

    if std_sig or std_id or std_ts:
        if not (std_sig and std_id and std_ts):
            failure = _invalid("Standard Webhooks needs webhook-id, webhook-timestamp and webhook-signature.")
        else:
            try:
                timestamp = int(std_ts)
            except ValueError:
                timestamp = None
            current = time.time() if now is None else now
            if timestamp is None or abs(current - timestamp) > TIMESTAMP_TOLERANCE_SECONDS:
                failure = _invalid("webhook-timestamp is outside the 5 minute tolerance.")
            else:
                index = _check_standard(std_id, std_ts, std_sig, body, secrets)
                if index is not None:
                    return WebhookProof(MODE_STANDARD, std_id, timestamp, index, body)
    if sig_header:
        index = _check_hmac(sig_header, body, secrets)
        if index is not None:
            return WebhookProof(MODE_HMAC, None, None, index, body)
    if static.strip():
        index = _check_static(static, secrets)
        if index is not None:
            return WebhookProof(MODE_STATIC, None, None, index, body)
    raise failure
