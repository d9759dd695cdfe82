"""DRF exception handler: every error body is `{"detail": ..., "code": ...}`.

Validation errors keep DRF's field errors under `errors` so clients can show them
next to the fields (`{"detail", "code": "invalid", "errors": {"field": [...]}}`).

Authentication: 401 (with `WWW-Authenticate`, set by DRF from the authentication class)
carries `token_missing`, `token_invalid`, `token_expired` or `user_inactive`; 403
carries `forbidden`; 429 carries `throttled`, `retry_after` and the `Retry-After` header.
Webhook signature failures keep CONTRACT §8's own shape `{"error": ...}`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from emploiplus.errors import ApplicationError


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    if isinstance(codes, str):
        return codes
    return getattr(exc, "default_code", "error")


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        body = {"detail": exc.message, "code": exc.code, **exc.extra}
        return Response(body, status=exc.status)

    if isinstance(exc, RequestDataTooBig):
        return Response(
            {"detail": "Corps de requête trop volumineux (1 Mio au plus).", "code": "payload_too_large"},
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )

    from webhooks.signing import WebhookAuthError

    if isinstance(exc, WebhookAuthError):
        return Response(exc.body, status=exc.status_code)

    response = drf_exception_handler(exc, context)
    if response is None:
        return None

    if isinstance(exc, exceptions.ValidationError):
        response.data = {"detail": "Données invalides.", "code": "invalid", "errors": exc.detail}
        return response
    if isinstance(exc, exceptions.APIException):
        detail = exc.detail
        code = _code_of(exc)
        if isinstance(detail, dict) and "detail" in detail:
            code = str(detail.get("code") or code)
            detail = detail["detail"]
        if response.status_code == status.HTTP_403_FORBIDDEN and code == "permission_denied":
            code = "forbidden"
        if response.status_code == status.HTTP_401_UNAUTHORIZED and code == "not_authenticated":
            code = "token_missing"
        response.data = {"detail": str(detail), "code": code}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            response.data["retry_after"] = int(exc.wait)
    return response
