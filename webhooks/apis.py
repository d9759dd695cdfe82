"""Signed inbound webhooks (CONTRACT §8): thin DRF views over one function.

`webhook_response(route, headers, body)` verifies the raw bytes (webhooks.signing) and
hands them to the service (store, 202, work in the queue); it returns (status, JSON body).
No user authentication and no per-IP throttle (Supabase calls from a handful of
addresses): the signature is the authentication. The body is never parsed before the
signature is checked over the raw bytes; the service parses those same bytes.

One HTTP path: these views serve the routes under every server (daphne, uvicorn,
runserver, the test client) through Django's stack (`emploiplus.handlers` under ASGI).
Only POST is allowed (405 with `Allow: POST`); bodies over DATA_UPLOAD_MAX_MEMORY_SIZE
are refused 413 before they are read whole (`emploiplus.handlers`, and `read_request_body`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from emploiplus import metrics
from emploiplus.errors import ApplicationError
from webhooks import services
from webhooks.signing import WebhookAuthError, read_request_body, verify_webhook

ROUTE_TEST = "test"
# Route name → service source (None: the signature test).
ROUTES: dict[str, str | None] = {
    "jobs/notify": services.SOURCE_JOBS,
    "matching/update": services.SOURCE_CANDIDATES,
    ROUTE_TEST: None,
}


def webhook_response(route: str, headers: Mapping[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) for a delivery to `route` (a ROUTES key)."""
    try:
        proof = verify_webhook(headers, body)
    except WebhookAuthError as exc:
        return exc.status_code, exc.body
    source = ROUTES[route]
    if source is None:
        return 200, {"ok": True, "mode": proof.mode}
    try:
        receipt = services.webhook_receive(source=source, body=proof.body, webhook_id=proof.webhook_id)
    except ApplicationError as exc:
        return exc.status, {"detail": exc.message, "code": exc.code, **exc.extra}
    return (200 if receipt.duplicate else 202), receipt.body()


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
    http_method_names = ["post"]
    route = ""

    def post(self, request):
        try:
            body = read_request_body(request)
        except WebhookAuthError as exc:
            metrics.webhook_delivery(self.route, exc.status_code, exc.body)
            return Response(exc.body, status=exc.status_code)
        status, payload = webhook_response(self.route, request.headers, body)
        metrics.webhook_delivery(self.route, status, payload)
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
