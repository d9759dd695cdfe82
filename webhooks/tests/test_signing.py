"""CONTRACT §8 webhook proofs: each mode valid/invalid, raw bytes only, timestamps, rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import pytest
from rest_framework.test import APIRequestFactory

from webhooks.apis import TestWebhookApi
from webhooks.signing import MODE_HMAC, MODE_STANDARD, MODE_STATIC, WebhookAuthError, read_request_body, verify_webhook

SECRET = "test-webhook-secret"
WHSEC_KEY = b"0123456789abcdef0123456789abcdef"
WHSEC = "whsec_" + base64.b64encode(WHSEC_KEY).decode()
# Whitespace and key order exactly as Supabase sends them: re-serialising changes the bytes.
RAW = (
    '{"type":"INSERT","table":"jobs","schema":"public","record":{"id":"j1","title":"Développeuse"},"old_record":null}'
).encode()


class Answer:
    def __init__(self, status_code: int):
        self.status_code = status_code


def verify(request) -> tuple[Answer, dict]:
    """What the webhook views do first: the raw body, then its proof (or the error answer)."""
    try:
        proof = verify_webhook(request.headers, read_request_body(request))
    except WebhookAuthError as exc:
        return Answer(exc.status_code), exc.body
    return Answer(202), {
        "mode": proof.mode,
        "webhook_id": proof.webhook_id,
        "secret_index": proof.secret_index,
        "table": json.loads(proof.body)["table"],
    }


@pytest.fixture(autouse=True)
def _secrets(settings):
    settings.SUPABASE_WEBHOOK_SECRETS = [SECRET]


def post(body: bytes = RAW, **headers):
    return verify(APIRequestFactory().post("/hook", data=body, content_type="application/json", **headers))


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


def test_it_exempts_verified_webhooks_from_the_user_rate_limit(settings):
    """The webhook views replace the user-token authentication and the throttle: a static
    `Authorization: Bearer <secret>` is a webhook proof, never a (bad) user token."""
    settings.RATE_LIMIT_PER_MINUTE = 2
    view = TestWebhookApi.as_view()
    for _ in range(4):
        request = APIRequestFactory().post("/api/webhooks/test", data=RAW, content_type="application/json")
        request.META["HTTP_AUTHORIZATION"] = f"Bearer {SECRET}"
        response = view(request)
        response.render()
        assert (response.status_code, json.loads(response.content)) == (200, {"ok": True, "mode": MODE_STATIC})
    request = APIRequestFactory().post("/api/webhooks/test", data=RAW, content_type="application/json")
    request.META["HTTP_AUTHORIZATION"] = "Bearer not-the-secret"
    response = view(request)
    response.render()
    assert (response.status_code, json.loads(response.content)["error"]) == (401, "invalid_signature")
