"""DRF exception handler: every error body is `{"detail": ..., "code": ...}`.

Validation errors keep DRF's field errors under `errors` so clients can show them
next to the fields (`{"detail", "code": "invalid", "errors": {"field": [...]}}`).

Authentication: 401 (with `WWW-Authenticate`, set by DRF from the authentication class)
carries `token_missing`, `token_invalid`, `token_expired` or `user_inactive`; 403
carries `forbidden`; 429 carries `throttled`, `retry_after` and the `Retry-After` header.
Webhook signature failures keep CONTRACT §8's own shape `{"error": ...}`.

The database unreachable (connection refused, a connection lost mid-request, no pooled
connection within DB_POOL_TIMEOUT_SECONDS, a statement timeout): 503 with `Retry-After`,
`{"detail", "code": "unavailable", "retry_after"}` on the API, `{"error": "unavailable",
"detail"}` on the webhooks (a sender that retries can), never a 500. Views outside DRF
(the admin, Django's own pages) get the same 503 through `server_error`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, JsonResponse
from django.views.defaults import page_not_found
from django.views.defaults import server_error as django_server_error
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from emploiplus.errors import ApplicationError

log = logging.getLogger(__name__)

PAYLOAD_TOO_LARGE = {"detail": "Corps de requête trop volumineux (1 Mio au plus).", "code": "payload_too_large"}
# Database errors that say "not now" rather than "wrong request": OperationalError covers a
# refused or lost connection, a pool timeout (psycopg_pool.PoolTimeout), a statement timeout,
# a server shutting down; InterfaceError a connection already closed.
UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
UNAVAILABLE_RETRY_AFTER = 5
UNAVAILABLE_DETAIL = "Service momentanément indisponible (base de données), réessayez dans quelques secondes."


def payload_too_large_response(path: str) -> JsonResponse:
    """The 413 a route would give, for a body refused before any view ran (emploiplus.handlers):
    the webhooks' `{"error", "detail"}` under /api/webhooks/, the API's `{"detail", "code"}`
    elsewhere."""
    if path.startswith("/api/webhooks/"):
        from webhooks.signing import payload_too_large

        return JsonResponse(payload_too_large().body, status=413)
    return JsonResponse(PAYLOAD_TOO_LARGE, status=413)


def unavailable_body(path: str, exc: BaseException) -> dict[str, Any]:
    """The body of the 503 for a database that cannot answer now (module docstring); logs it."""
    log.warning("database unavailable on %s: %s: %s", path, type(exc).__name__, str(exc).strip()[:300])
    if path.startswith("/api/webhooks/"):
        return {"error": "unavailable", "detail": UNAVAILABLE_DETAIL}
    return {"detail": UNAVAILABLE_DETAIL, "code": "unavailable", "retry_after": UNAVAILABLE_RETRY_AFTER}


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
        return Response(PAYLOAD_TOO_LARGE, status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)

    if isinstance(exc, UNAVAILABLE_ERRORS):
        body = unavailable_body(getattr(context.get("request"), "path", ""), exc)
        return Response(body, status=503, headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)})

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


def not_found(request, exception=None):
    """Django's 404 for paths no route matches: JSON under /api/ (clients parse it), Django's
    page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Ressource introuvable.", "code": "not_found"}, status=404)
    return page_not_found(request, exception)


def server_error(request):
    """An unexpected error outside DRF (or DRF's re-raised one): JSON under /api/. The
    database unavailable: 503 + Retry-After (JSON under /api/, a short page elsewhere)."""
    exc = sys.exc_info()[1]  # Django calls handler500 while handling the exception
    if isinstance(exc, UNAVAILABLE_ERRORS):
        body = unavailable_body(request.path, exc)
        if request.path.startswith("/api/"):
            response = JsonResponse(body, status=503)
        else:
            response = HttpResponse(UNAVAILABLE_DETAIL, status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
        return response
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Erreur interne du serveur.", "code": "server_error"}, status=500)
    return django_server_error(request)
