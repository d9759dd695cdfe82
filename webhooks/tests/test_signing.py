"""CONTRACT §8 webhook proofs: each mode valid/invalid, raw bytes only, timestamps, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from django.http import JsonResponse
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from webhooks.signing import (
    MODE_HMAC,
    MODE_STANDARD,
    MODE_STATIC,
    WebhookSignatureAuthentication,
    WebhookSignaturePermission,
    webhook_signature_required,
)

SECRET = "test-webhook-secret"
WHSEC_KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(WHSEC_KEY).decode()
# Whitespace and key order exactly as Supabase sends them: re-serialising changes the bytes.
RAW = (
    '{"type":"INSERT","table":"jobs","schema":"public","record":{"id":"j1","title":"Développeuse"},"old_record":null}'
).encode()


class HookApi(APIView):
    authentication_classes = []
    permission_classes = [WebhookSignaturePermission]

    def post(self, request):
        proof = request.webhook_proof
        return Response(
            {
                "mode": proof.mode,
                "webhook_id": proof.webhook_id,
                "secret_index": proof.secret_index,
                "table": request.data["table"],
            },
            status=202,
        )


hook = HookApi.as_view()


class AuthenticatedHookApi(APIView):
    """Default permissions and throttles, only the authentication class swapped."""

    authentication_classes = [WebhookSignatureAuthentication]

    def post(self, request):
        return Response({"mode": request.auth.mode, "user": str(request.user)}, status=202)


authenticated_hook = AuthenticatedHookApi.as_view()


@webhook_signature_required
def plain_hook(request):
    return JsonResponse({"mode": request.webhook_proof.mode}, status=202)


@pytest.fixture(autouse=True)
def _secrets(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [SECRET]


def post(body: bytes = RAW, view=hook, **headers):
    request = APIRequestFactory().post("/hook", data=body, content_type="application/json", **headers)
    response = view(request)
    if hasattr(response, "render"):
        response.render()
    return response, json.loads(response.content)


def hex_sig(body: bytes = RAW, secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def std_headers(body: bytes = RAW, key: bytes = WHSEC_KEY, msg_id="msg_2Kx", ts=None, extra_sigs=()):
    ts = str(int(time.time()) if ts is None else ts)
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": ts,
        "HTTP_WEBHOOK_SIGNATURE": " ".join([*extra_sigs, f"v1,{sig}"]),
    }


def assert_refused(result, error="invalid_signature", status=401):
    response, body = result
    assert response.status_code == status, body
    assert body["error"] == error


# --- mode 1: X-Webhook-Signature -----------------------------------------------------------------
def test_it_accepts_the_hmac_sha256_prefixed_signature():
    response, body = post(HTTP_X_WEBHOOK_SIGNATURE=f"hmac-sha256={hex_sig()}")
    assert response.status_code == 202
    assert body == {"mode": MODE_HMAC, "webhook_id": None, "secret_index": 0, "table": "jobs"}


def test_it_accepts_a_bare_hex_signature():
    response, body = post(HTTP_X_WEBHOOK_SIGNATURE=hex_sig())
    assert response.status_code == 202
    assert body["mode"] == MODE_HMAC


def test_it_refuses_a_wrong_hmac_signature():
    assert_refused(post(HTTP_X_WEBHOOK_SIGNATURE=f"hmac-sha256={hex_sig(secret='not-the-secret')}"))
    assert_refused(post(HTTP_X_WEBHOOK_SIGNATURE="hmac-sha256=zz-not-hex"))
    assert_refused(post(HTTP_X_WEBHOOK_SIGNATURE="hmac-sha256="))


def test_it_refuses_a_signature_over_reserialised_json():
    reserialised = json.dumps(json.loads(RAW)).encode()  # what the Node code signed
    assert reserialised != RAW
    assert_refused(post(HTTP_X_WEBHOOK_SIGNATURE=f"hmac-sha256={hex_sig(reserialised)}"))
    compact = json.dumps(json.loads(RAW), separators=(",", ":")).encode()
    assert_refused(post(HTTP_X_WEBHOOK_SIGNATURE=f"hmac-sha256={hex_sig(compact)}"))


def test_it_refuses_a_tampered_body():
    signature = hex_sig()
    assert_refused(post(RAW.replace(b"jobs", b"posts"), HTTP_X_WEBHOOK_SIGNATURE=signature))


# --- mode 2: Standard Webhooks ----------------------------------------------------------------------
def test_it_accepts_a_standard_webhooks_signature_and_exposes_the_id(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [WHSEC]
    response, body = post(**std_headers())
    assert response.status_code == 202
    assert body == {"mode": MODE_STANDARD, "webhook_id": "msg_2Kx", "secret_index": 0, "table": "jobs"}


def test_it_accepts_one_good_signature_among_several(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [WHSEC]
    other = base64.b64encode(b"x" * 32).decode()
    response, _ = post(**std_headers(extra_sigs=(f"v1,{other}", "v1a,c2lnbmF0dXJl")))
    assert response.status_code == 202


def test_it_refuses_a_wrong_standard_signature(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [WHSEC]
    assert_refused(post(**std_headers(key=b"another key entirely")))
    headers = std_headers()
    headers["HTTP_WEBHOOK_ID"] = "msg_other"  # the id is signed too
    assert_refused(post(**headers))
    assert_refused(post(RAW + b" ", **std_headers()))


def test_it_refuses_a_stale_timestamp(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [WHSEC]
    assert_refused(post(**std_headers(ts=int(time.time()) - 301)))
    assert post(**std_headers(ts=int(time.time()) - 280))[0].status_code == 202


def test_it_refuses_a_future_timestamp(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [WHSEC]
    assert_refused(post(**std_headers(ts=int(time.time()) + 301)))
    assert_refused(post(**std_headers(ts="soon")))


def test_it_refuses_incomplete_standard_headers(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [WHSEC]
    headers = std_headers()
    del headers["HTTP_WEBHOOK_TIMESTAMP"]
    assert_refused(post(**headers))


def test_it_uses_a_plain_secret_as_standard_webhooks_key():
    response, _ = post(**std_headers(key=SECRET.encode()))
    assert response.status_code == 202


# --- mode 3: static secret ----------------------------------------------------------------------------
def test_it_accepts_a_static_bearer_secret():
    response, body = post(HTTP_AUTHORIZATION=f"Bearer {SECRET}")
    assert response.status_code == 202
    assert body["mode"] == MODE_STATIC


def test_it_accepts_a_static_x_webhook_secret():
    response, body = post(HTTP_X_WEBHOOK_SECRET=SECRET)
    assert response.status_code == 202
    assert body["mode"] == MODE_STATIC


def test_it_refuses_a_wrong_static_secret():
    assert_refused(post(HTTP_AUTHORIZATION="Bearer test-webhook-secreT"))
    assert_refused(post(HTTP_X_WEBHOOK_SECRET="test-webhook-secret-and-more"))
    assert_refused(post(HTTP_AUTHORIZATION=f"Basic {SECRET}"), "missing_signature")


# --- rotation, missing proof, configuration --------------------------------------------------------------
def test_it_accepts_every_configured_secret_during_rotation(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = ["new-secret", SECRET, WHSEC]
    assert post(HTTP_X_WEBHOOK_SIGNATURE=hex_sig(secret="new-secret"))[1]["secret_index"] == 0
    assert post(HTTP_X_WEBHOOK_SIGNATURE=hex_sig(secret=SECRET))[1]["secret_index"] == 1
    assert post(**std_headers())[1]["secret_index"] == 2
    assert post(HTTP_X_WEBHOOK_SECRET="new-secret")[1]["secret_index"] == 0
    settings.SUPABASE_WEBHOOK_SECRETS = ["new-secret"]  # old secret retired
    assert_refused(post(HTTP_X_WEBHOOK_SIGNATURE=hex_sig(secret=SECRET)))


def test_it_answers_missing_signature_without_any_proof():
    response, body = post()
    assert response.status_code == 401
    assert body["error"] == "missing_signature"


def test_it_answers_503_when_no_secret_is_configured(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = []
    assert_refused(post(HTTP_X_WEBHOOK_SIGNATURE=hex_sig()), "webhook_secret_not_configured", 503)


def test_it_refuses_bodies_over_one_mebibyte():
    body = b'{"pad": "' + b"x" * (1024 * 1024) + b'"}'
    assert_refused(post(body, HTTP_X_WEBHOOK_SIGNATURE=hex_sig(body)), "payload_too_large", 413)


def test_it_protects_plain_django_views_with_the_decorator():
    assert post(view=plain_hook, HTTP_X_WEBHOOK_SIGNATURE=hex_sig())[0].status_code == 202
    assert_refused(post(view=plain_hook, HTTP_X_WEBHOOK_SIGNATURE=hex_sig(secret="nope")))
    assert_refused(post(view=plain_hook), "missing_signature")


def test_it_works_as_the_authentication_class_of_a_default_view(settings):
    settings.RATE_LIMIT_PER_MINUTE = 2
    for _ in range(4):  # verified webhooks are not subject to the user/IP rate limit
        response, body = post(view=authenticated_hook, HTTP_AUTHORIZATION=f"Bearer {SECRET}")
        assert response.status_code == 202
        assert body == {"mode": MODE_STATIC, "user": "webhook (static-secret)"}
    assert post(view=authenticated_hook, HTTP_X_WEBHOOK_SIGNATURE=hex_sig())[0].status_code == 202


def test_it_answers_401_bodies_from_the_authentication_class():
    assert_refused(post(view=authenticated_hook, HTTP_AUTHORIZATION="Bearer not-the-secret"))
    assert_refused(post(view=authenticated_hook), "missing_signature")
