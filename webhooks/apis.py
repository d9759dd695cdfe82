"""Signed inbound webhooks (CONTRACT §8): two thin HTTP adapters over one function.

`webhook_response(route, headers, body)` verifies the raw bytes (webhooks.signing) and
hands them to the service (store, 202, work in the queue); it returns (status, JSON body).
No user authentication and no per-IP throttle (Supabase calls from a handful of
addresses): the signature is the authentication. The body is never parsed before the
signature is checked over the raw bytes; the service parses those same bytes.

- **In the ASGI server** (daphne, `make run`) emploiplus.asgi routes `/api/webhooks/` to
  `WebhookConsumer`, a Channels AsyncHttpConsumer. Django's HTTP stack costs ~2.5 ms of CPU
  per request under ASGI (each middleware hook is a hop to a per-request thread created
  for the request); a delivery needs none of it. The consumer runs the verification and
  the INSERT in a fixed pool of WEBHOOK_DB_THREADS threads (default 2) whose database
  connections are reused and health-checked, and queues the processing jobs after the
  answer, in batches (services.BatchedEnqueuer). bench/bench_webhooks.py measures both paths.
- **Everywhere else** (Django's test client, a WSGI server, the OpenAPI schema) the DRF
  views below serve the same routes with the same answers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.http import AsyncHttpConsumer
from django.conf import settings
from django.utils.datastructures import CaseInsensitiveMapping
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from emploiplus.errors import ApplicationError
from emploiplus.handlers import as_a_request
from webhooks import services
from webhooks.signing import WebhookAuthError, payload_too_large, read_request_body, verify_webhook

logger = logging.getLogger(__name__)

ROUTE_TEST = "test"
# URL tail (after /api/webhooks/, trailing slash optional) → service source (None: test).
ROUTES: dict[str, str | None] = {
    "jobs/notify": services.SOURCE_JOBS,
    "matching/update": services.SOURCE_CANDIDATES,
    ROUTE_TEST: None,
}
PREFIX = "/api/webhooks/"


def webhook_response(
    route: str, headers: Mapping[str, str], body: bytes, *, batched: bool = False
) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for a delivery to `route` (a ROUTES key). Runs the database work:
    call it from a worker thread, never from the event loop. `batched`: the processing job
    is queued after the answer, in batches (services.BatchedEnqueuer)."""
    try:
        proof = verify_webhook(headers, body)
    except WebhookAuthError as exc:
        return exc.status_code, exc.body
    source = ROUTES[route]
    if source is None:
        return 200, {"ok": True, "mode": proof.mode}
    try:
        receipt = services.webhook_receive(source=source, body=proof.body, webhook_id=proof.webhook_id, batched=batched)
    except ApplicationError as exc:
        return exc.status, {"detail": exc.message, "code": exc.code, **exc.extra}
    return (200 if receipt.duplicate else 202), receipt.body()


# --- ASGI path ------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """The consumer's own threads (WEBHOOK_DB_THREADS, default 2): deliveries keep flowing
    while slow REST requests hold the HTTP pool."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=settings.WEBHOOK_DB_THREADS, thread_name_prefix="webhooks-db")
    return _POOL


def _route_of(path: str) -> str | None:
    if not path.startswith(PREFIX):
        return None
    tail = path[len(PREFIX) :]
    tail = tail[:-1] if tail.endswith("/") else tail
    return tail if tail in ROUTES else None


def _headers(scope: dict[str, Any]) -> CaseInsensitiveMapping:
    """The request headers by name, case-insensitive; a repeated header's values joined with
    "," as Django's ASGIRequest does."""
    values: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        values.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return CaseInsensitiveMapping({name: ",".join(parts) for name, parts in values.items()})


class WebhookConsumer(AsyncHttpConsumer):
    """/api/webhooks/* in the ASGI server. Same answers as the DRF views; 404 for an unknown
    route, 405 for another method than POST, 413 past DATA_UPLOAD_MAX_MEMORY_SIZE (checked
    on Content-Length before reading, and on the bytes read, so chunked bodies too)."""

    # No channel-layer channel per request (AsyncConsumer opens one when a layer is set).
    channel_layer_alias = "webhooks:no-channel-layer"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.route: str | None = None
        self.headers: Mapping[str, str] = {}
        self.received = 0
        self.answered = False

    async def dispatch(self, message: dict[str, Any]) -> None:
        # AsyncConsumer.dispatch runs close_old_connections() through sync_to_async before
        # every message (~5 % of a delivery's CPU); this consumer never uses a connection in
        # that thread — its database work runs in _pool() through as_a_request, which does it.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def respond(self, status: int, payload: dict[str, Any], *, extra_headers=()) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [(b"content-type", b"application/json"), *extra_headers]
        await self.send_response(status, body, headers=headers)
        self.answered = True

    async def refuse_early(self, status: int, payload: dict[str, Any], **kwargs) -> None:
        await self.respond(status, payload, **kwargs)
        await self.disconnect()
        raise StopConsumer()

    async def http_request(self, message: dict[str, Any]) -> None:
        if self.answered:
            return
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if self.route is None:  # first message: route, method, declared size
            route = _route_of(self.scope["path"])
            if route is None:
                await self.refuse_early(404, {"detail": "Route de webhook inconnue.", "code": "not_found"})
            if self.scope["method"] != "POST":
                await self.refuse_early(
                    405,
                    {"detail": "Méthode non autorisée.", "code": "method_not_allowed"},
                    extra_headers=[(b"allow", b"POST")],
                )
            self.route = route
            self.headers = _headers(self.scope)
            try:
                declared = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                declared = 0
            if limit is not None and declared > limit:
                exc = payload_too_large()
                await self.refuse_early(exc.status_code, exc.body)
        chunk = message.get("body", b"")
        self.received += len(chunk)
        if limit is not None and self.received > limit:
            exc = payload_too_large()
            await self.refuse_early(exc.status_code, exc.body)
        await super().http_request(message)

    async def handle(self, body: bytes) -> None:
        try:
            # Plain run_in_executor: nothing in here needs async_to_sync (cheaper than sync_to_async).
            status, payload = await asyncio.get_running_loop().run_in_executor(
                _pool(), as_a_request, lambda: webhook_response(self.route, self.headers, body, batched=True)
            )
        except Exception:
            logger.exception("webhook %s: unexpected error", self.route)
            status, payload = 500, {"detail": "Erreur interne du serveur.", "code": "server_error"}
        await self.respond(status, payload)


# --- DRF views (test client, WSGI, OpenAPI) ------------------------------------------------

_SIGNATURE_HEADERS = [
    OpenApiParameter(
        "X-Webhook-Signature", str, OpenApiParameter.HEADER, description="`hmac-sha256=<hex>` over the raw body"
    ),
    OpenApiParameter("webhook-id", str, OpenApiParameter.HEADER, description="Standard Webhooks id (idempotency)"),
    OpenApiParameter("webhook-timestamp", str, OpenApiParameter.HEADER, description="Standard Webhooks, unix s"),
    OpenApiParameter("webhook-signature", str, OpenApiParameter.HEADER, description="Standard Webhooks `v1,<b64>`"),
    OpenApiParameter("X-Webhook-Secret", str, OpenApiParameter.HEADER, description="Static secret (unsigned)"),
]
_ERROR = inline_serializer("WebhookError", {"error": serializers.CharField(), "detail": serializers.CharField()})
_RECEIPT = inline_serializer(
    "WebhookReceipt",
    {
        "accepted": serializers.BooleanField(),
        "event_id": serializers.UUIDField(),
        "duplicate": serializers.BooleanField(),
        "skipped": serializers.CharField(required=False, help_text="Why no processing is needed"),
        "status": serializers.CharField(required=False, help_text="Duplicates: the stored event's status"),
    },
)
_ERRORS = {
    401: OpenApiResponse(_ERROR, description="missing_signature / invalid_signature"),
    413: OpenApiResponse(_ERROR, description="payload_too_large (over 1 MiB)"),
    503: OpenApiResponse(_ERROR, description="webhook_secret_not_configured"),
}


class _WebhookApi(APIView):
    # The signature is the authentication: no user token, no throttle, the raw body.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    route = ""

    def post(self, request):
        try:
            body = read_request_body(request)
        except WebhookAuthError as exc:
            return Response(exc.body, status=exc.status_code)
        status, payload = webhook_response(self.route, request.headers, body)
        return Response(payload, status=status)


_EVENT_SCHEMA = {
    "request": OpenApiTypes.OBJECT,
    "parameters": _SIGNATURE_HEADERS,
    "auth": [],
    "responses": {
        202: OpenApiResponse(_RECEIPT, description="Stored; processed by the queue (or `skipped`)"),
        200: OpenApiResponse(_RECEIPT, description="The same delivery again: nothing done"),
        400: OpenApiResponse(OpenApiTypes.OBJECT, description="invalid_json / invalid_payload with field errors"),
        **_ERRORS,
    },
}


class JobNotifyWebhookApi(_WebhookApi):
    route = "jobs/notify"

    @extend_schema(
        summary="A job row was inserted (or activated): match candidates and notify them.",
        description="Supabase envelope `{type, table, schema, record, old_record}` or a bare job record.",
        **_EVENT_SCHEMA,
    )
    def post(self, request):
        return super().post(request)


class MatchingUpdateWebhookApi(_WebhookApi):
    route = "matching/update"

    @extend_schema(
        summary="A candidate row was updated: find the jobs that now match, one digest.",
        description="Supabase envelope or a bare candidate record; no relevant change → `skipped`.",
        **_EVENT_SCHEMA,
    )
    def post(self, request):
        return super().post(request)


class TestWebhookApi(_WebhookApi):
    route = ROUTE_TEST

    @extend_schema(
        summary="Signature check only: lets an operator test their secret and headers.",
        request=OpenApiTypes.OBJECT,
        parameters=_SIGNATURE_HEADERS,
        auth=[],
        responses={
            200: inline_serializer(
                "WebhookTestResult", {"ok": serializers.BooleanField(), "mode": serializers.CharField()}
            ),
            **_ERRORS,
        },
    )
    def post(self, request):
        return super().post(request)
