"""Signed inbound webhooks (CONTRACT §8). Thin: verify, hand the raw bytes to the service.

No user authentication and no per-IP throttle (Supabase calls from a handful of
addresses); the signature is the authentication. The body is never parsed before the
signature is checked over the raw bytes; the service parses those same bytes.

Why plain async Django views rather than DRF views: under ASGI, Django runs every sync
view in a new thread per request (ThreadSensitiveContext), so each delivery would open a
new PostgreSQL connection (or, with CONN_MAX_AGE > 0, leave one behind per thread). These
views run the verification and the INSERT in a small fixed pool of threads instead
(WEBHOOK_DB_THREADS, default 4), whose connections are reused and health-checked. That is
what lets the endpoint acknowledge hundreds of deliveries per second (bench/bench_webhooks.py).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from emploiplus.errors import ApplicationError
from webhooks import services
from webhooks.signing import WebhookAuthError, verify_webhook_request

_POOL = ThreadPoolExecutor(
    max_workers=max(1, int(os.environ.get("WEBHOOK_DB_THREADS", "4"))), thread_name_prefix="webhooks-db"
)


def _pool_enabled() -> bool:
    """WEBHOOK_DB_THREADS=0 (setting or env) runs the work like any Django sync view instead:
    in the request's thread-sensitive context. In-process tests use that, so the work sees
    the test's transaction; the real server (and the daphne tests and benchmark) use the pool."""
    value = getattr(settings, "WEBHOOK_DB_THREADS", None)
    if value is None:
        value = os.environ.get("WEBHOOK_DB_THREADS", "4")
    return int(value) > 0


def _in_pool_thread(fn: Callable[[], JsonResponse]) -> JsonResponse:
    # These threads live as long as the process: apply CONN_MAX_AGE / health checks the
    # way Django does at the start and end of a request.
    close_old_connections()
    try:
        return fn()
    finally:
        close_old_connections()


async def _run(fn: Callable[[], JsonResponse]) -> JsonResponse:
    if not _pool_enabled():
        return await sync_to_async(fn, thread_sensitive=True)()
    return await asyncio.get_running_loop().run_in_executor(_POOL, _in_pool_thread, fn)


def _method_not_allowed() -> JsonResponse:
    response = JsonResponse({"detail": "Méthode non autorisée.", "code": "method_not_allowed"}, status=405)
    response["Allow"] = "POST"
    return response


def _error(exc: ApplicationError) -> JsonResponse:
    return JsonResponse({"detail": exc.message, "code": exc.code, **exc.extra}, status=exc.status)


def _receive(request: HttpRequest, source: str) -> JsonResponse:
    try:
        proof = verify_webhook_request(request)
    except WebhookAuthError as exc:
        return JsonResponse(exc.body, status=exc.status_code)
    try:
        receipt = services.webhook_receive(source=source, body=proof.body, webhook_id=proof.webhook_id)
    except ApplicationError as exc:
        return _error(exc)
    return JsonResponse(receipt.body(), status=200 if receipt.duplicate else 202)


def _event_view(source: str, doc: str) -> Callable[..., Any]:
    @csrf_exempt
    async def view(request: HttpRequest) -> JsonResponse:
        if request.method != "POST":
            return _method_not_allowed()
        return await _run(lambda: _receive(request, source))

    view.__doc__ = doc
    return view


job_notify_webhook = _event_view(
    services.SOURCE_JOBS, "A job row was inserted (or activated): match candidates and notify them."
)
matching_update_webhook = _event_view(
    services.SOURCE_CANDIDATES, "A candidate row was updated: find the jobs that now match, one digest."
)


@csrf_exempt
async def test_webhook(request: HttpRequest) -> JsonResponse:
    """Signature check only: lets an operator test their secret and headers."""
    if request.method != "POST":
        return _method_not_allowed()

    def check() -> JsonResponse:
        try:
            proof = verify_webhook_request(request)
        except WebhookAuthError as exc:
            return JsonResponse(exc.body, status=exc.status_code)
        return JsonResponse({"ok": True, "mode": proof.mode})

    # No database work: verify in the event loop's thread pool anyway (HMAC of up to 1 MiB).
    return await _run(check)
