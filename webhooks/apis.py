"""Signed inbound webhooks (CONTRACT §8). Thin: verify, hand the raw bytes to the service.

No user authentication and no per-IP throttle (Supabase calls from a handful of
addresses); the signature is the authentication. The body is never parsed by DRF: the
signature is checked over the raw bytes and the service parses those same bytes.
"""

from __future__ import annotations

from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from emploiplus.errors import ApplicationError
from webhooks import services
from webhooks.signing import WebhookAuthError, verify_webhook_request


class _SignedWebhookApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []
    parser_classes: list = []

    def verify(self, request):
        """(proof, None) or (None, error response)."""
        try:
            return verify_webhook_request(request), None
        except WebhookAuthError as exc:
            return None, Response(exc.body, status=exc.status_code)


class _EventWebhookApi(_SignedWebhookApi):
    source = ""

    def post(self, request):
        proof, error = self.verify(request)
        if error is not None:
            return error
        try:
            receipt = services.webhook_receive(source=self.source, body=proof.body, webhook_id=proof.webhook_id)
        except ApplicationError as exc:
            return Response({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status)
        return Response(receipt.body(), status=status.HTTP_200_OK if receipt.duplicate else status.HTTP_202_ACCEPTED)


class JobNotifyWebhookApi(_EventWebhookApi):
    """A job row was inserted (or activated): match candidates and notify them."""

    source = services.SOURCE_JOBS


class MatchingUpdateWebhookApi(_EventWebhookApi):
    """A candidate row was updated: find the jobs that now match, one digest."""

    source = services.SOURCE_CANDIDATES


class TestWebhookApi(_SignedWebhookApi):
    """Signature check only: lets an operator test their secret and headers."""

    def post(self, request):
        proof, error = self.verify(request)
        if error is not None:
            return error
        return Response({"ok": True, "mode": proof.mode})
