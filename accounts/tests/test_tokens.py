"""The token battery of issue 3: one test per case, real keys, a real JWKS server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from accounts import jwks
from accounts.tests.conftest import (
    JWKS_PATH,
    b64url,
    claims,
    jwks_hits,
    new_ec_key,
    new_rsa_key,
    serve_jwks,
    unsigned_token,
)
from accounts.tokens import TokenError, averify_token, verify_token
from emploiplus.testing import free_port

SECRET = "test-supabase-jwt-secret-with-at-least-32-bytes"
LEGACY_SECRET = "legacy-node-jwt-secret-0123456789abcdef"


def hs256(payload, secret=SECRET, **header) -> str:
    return jwt.encode(payload, secret, algorithm="HS256", headers=header or None)


def refused(token, code="token_invalid") -> TokenError:
    with pytest.raises(TokenError) as info:
        verify_token(token)
    assert info.value.code == code, info.value.message
    return info.value


@pytest.fixture(autouse=True)
def _secret(settings):
    settings.SUPABASE_JWT_SECRET = SECRET
    settings.SUPABASE_URL = ""
    settings.JWT_SECRET = ""
    settings.JWT_LEEWAY_SECONDS = 30


# --- accepted ---------------------------------------------------------------------------
def test_it_accepts_a_valid_hs256_token():
    sub = str(uuid.uuid4())
    verified = verify_token(hs256(claims(sub, email="ana@example.test")))
    assert verified.sub == sub
    assert verified.email == "ana@example.test"
    assert verified.role_claim == "authenticated"
    assert verified.legacy is False


def test_it_accepts_es256_by_kid(jwks_server, ec_key):
    sub = str(uuid.uuid4())
    assert verify_token(ec_key.sign(claims(sub))).sub == sub
    assert jwks_hits(jwks_server) == 1


def test_it_accepts_rs256_by_kid(jwks_server, rsa_key):
    sub = str(uuid.uuid4())
    assert verify_token(rsa_key.sign(claims(sub))).sub == sub


def test_it_caches_jwks_keys_between_tokens(jwks_server, ec_key, rsa_key):
    for _ in range(5):
        verify_token(ec_key.sign(claims()))
        verify_token(rsa_key.sign(claims()))
    assert jwks_hits(jwks_server) == 1


def test_it_accepts_a_rotated_key_after_one_refresh_and_honours_the_cooldown(jwks_server, settings, ec_key):
    settings.JWKS_REFRESH_COOLDOWN_SECONDS = 1
    verify_token(ec_key.sign(claims()))  # first fetch: only ec-primary known
    new_key = new_ec_key("ec-rotated")
    token = new_key.sign(claims())

    # The new key is not published yet: one refresh, then the kid stays unknown.
    time.sleep(1.05)
    refused(token)
    assert jwks_hits(jwks_server) == 2
    # Published now, but within the cooldown: no new fetch, still refused (no fetch storm).
    serve_jwks(jwks_server, ec_key, new_key)
    for _ in range(3):
        refused(token)
    assert jwks_hits(jwks_server) == 2
    # After the cooldown, one refresh picks it up.
    time.sleep(1.05)
    assert verify_token(token).sub
    assert verify_token(new_key.sign(claims())).sub
    assert jwks_hits(jwks_server) == 3


def test_it_drops_keys_removed_from_the_jwks_on_refresh(jwks_server, settings, ec_key, rsa_key):
    settings.JWKS_REFRESH_COOLDOWN_SECONDS = 0
    verify_token(rsa_key.sign(claims()))
    serve_jwks(jwks_server, ec_key)  # RSA key revoked
    refused(new_ec_key("ec-other").sign(claims()))  # unknown kid → refresh
    refused(rsa_key.sign(claims()))
    assert verify_token(ec_key.sign(claims())).sub


def test_it_keeps_known_keys_when_the_jwks_server_fails(jwks_server, settings, ec_key):
    settings.JWKS_REFRESH_COOLDOWN_SECONDS = 0
    verify_token(ec_key.sign(claims()))
    serve_jwks(jwks_server, status=503)
    refused(new_ec_key().sign(claims()))  # unknown kid → refresh attempted and failed
    assert jwks_hits(jwks_server) == 2
    assert verify_token(ec_key.sign(claims())).sub


def test_it_keeps_known_keys_when_the_jwks_server_answers_garbage(jwks_server, settings, ec_key):
    settings.JWKS_REFRESH_COOLDOWN_SECONDS = 0
    verify_token(ec_key.sign(claims()))
    jwks_server.clear_all_handlers()
    jwks_server.expect_request(JWKS_PATH).respond_with_json({"keys": []})
    refused(new_ec_key().sign(claims()))
    jwks_server.clear_all_handlers()
    jwks_server.expect_request(JWKS_PATH).respond_with_data("<html>proxy error</html>")
    refused(new_ec_key().sign(claims()))
    assert jwks_hits(jwks_server) == 3
    assert verify_token(ec_key.sign(claims())).sub


def test_it_keeps_known_keys_when_the_jwks_server_is_unreachable(jwks_server, settings, ec_key):
    settings.JWKS_REFRESH_COOLDOWN_SECONDS = 0
    verify_token(ec_key.sign(claims()))
    # Same cache, but the issuer's host is gone: point the refresh at a closed port.
    jwks._cache._url = settings.SUPABASE_JWKS_URL = f"http://127.0.0.1:{free_port()}{JWKS_PATH}"
    refused(new_ec_key().sign(claims()))
    assert verify_token(ec_key.sign(claims())).sub


def test_it_accepts_a_token_expired_within_the_leeway():
    now = int(time.time())
    assert verify_token(hs256(claims(iat=now - 3600, exp=now - 10))).sub


# --- refused ----------------------------------------------------------------------------
def test_it_refuses_an_expired_token():
    now = int(time.time())
    error = refused(hs256(claims(iat=now - 7200, exp=now - 3600)), "token_expired")
    assert "expired" in error.message.lower()


def test_it_refuses_a_token_not_yet_valid():
    now = int(time.time())
    refused(hs256(claims(nbf=now + 600)))


def test_it_refuses_a_token_issued_in_the_future():
    now = int(time.time())
    refused(hs256(claims(iat=now + 600, exp=now + 4200)))


def test_it_refuses_a_token_without_exp():
    payload = claims()
    del payload["exp"]
    refused(hs256(payload))


def test_it_refuses_a_wrong_audience():
    error = refused(hs256(claims(aud="service")))
    assert "audience" in error.message


def test_it_refuses_a_token_without_audience():
    payload = claims()
    del payload["aud"]
    refused(hs256(payload))


def test_it_refuses_a_wrong_issuer(settings):
    settings.SUPABASE_URL = "https://abcd.supabase.co"
    assert verify_token(hs256(claims(iss="https://abcd.supabase.co/auth/v1"))).sub
    error = refused(hs256(claims(iss="https://evil.supabase.co/auth/v1")))
    assert "issuer" in error.message


def test_it_refuses_a_missing_issuer_when_supabase_url_is_set(settings):
    settings.SUPABASE_URL = "https://abcd.supabase.co"
    refused(hs256(claims()))


def test_it_refuses_a_wrong_secret():
    refused(hs256(claims(), secret="another-secret-that-is-long-enough-for-hs256"))


def test_it_refuses_alg_none():
    refused(unsigned_token({"alg": "none", "typ": "JWT"}, claims()))
    refused(unsigned_token({"alg": "None", "typ": "JWT"}, claims()))


def test_it_refuses_hs256_signed_with_the_rsa_public_key(jwks_server, rsa_key):
    """Key confusion: the attacker HMACs with the (public) RSA key and claims HS256."""
    pem = rsa_key.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for header in ({"alg": "HS256", "typ": "JWT", "kid": rsa_key.kid}, {"alg": "HS256", "typ": "JWT"}):
        head_payload = f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims()).encode())}"
        signature = hmac.new(pem, head_payload.encode(), hashlib.sha256).digest()
        refused(f"{head_payload}.{b64url(signature)}")


def test_it_refuses_an_algorithm_that_does_not_fit_the_key(jwks_server, ec_key, rsa_key):
    # An RS256 token naming the EC key's kid (signed with the RSA key) and vice versa.
    refused(jwt.encode(claims(), rsa_key.private, algorithm="RS256", headers={"kid": ec_key.kid}))
    refused(jwt.encode(claims(), ec_key.private, algorithm="ES256", headers={"kid": rsa_key.kid}))


def test_it_refuses_a_token_signed_by_another_key_with_a_known_kid(jwks_server, ec_key, rsa_key):
    refused(new_ec_key(ec_key.kid).sign(claims()))
    refused(new_rsa_key(rsa_key.kid).sign(claims()))


def test_it_refuses_other_algorithms(jwks_server, rsa_key):
    refused(jwt.encode(claims(), SECRET + "-long-enough-for-hs384", algorithm="HS384"))
    refused(jwt.encode(claims(), rsa_key.private, algorithm="PS256", headers={"kid": rsa_key.kid}))


def test_it_refuses_asymmetric_tokens_without_a_jwks_url(settings, ec_key):
    settings.SUPABASE_JWKS_URL = ""
    refused(ec_key.sign(claims()))


def test_it_refuses_a_token_without_sub():
    payload = claims()
    del payload["sub"]
    error = refused(hs256(payload))
    assert "sub" in error.message


def test_it_refuses_a_sub_that_is_not_a_user_id():
    refused(hs256(claims(sub="not-a-uuid")))


def test_it_refuses_the_service_role_key():
    # The shape of Supabase's service_role API key…
    now = int(time.time())
    refused(hs256({"iss": "supabase", "ref": "abcd", "role": "service_role", "iat": now, "exp": now + 10**8}))
    # …and even a service_role token that otherwise looks like a user token.
    refused(hs256(claims(role="service_role")))


def test_it_refuses_the_anon_key():
    now = int(time.time())
    refused(hs256({"iss": "supabase", "ref": "abcd", "role": "anon", "iat": now, "exp": now + 10**8}))
    refused(hs256(claims(role="anon")))


def test_it_refuses_anonymous_sign_ins_unless_enabled(settings):
    token = hs256(claims(is_anonymous=True))
    refused(token)
    settings.SUPABASE_ALLOW_ANONYMOUS = True
    assert verify_token(token).is_anonymous is True


def test_it_refuses_a_tampered_payload():
    token = hs256(claims(app_metadata={"role": "candidate"}))
    header, _, signature = token.split(".")
    forged = b64url(json.dumps(claims(app_metadata={"role": "admin"})).encode())
    refused(f"{header}.{forged}.{signature}")


def test_it_refuses_a_garbage_string():
    for garbage in ("garbage", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.%%%.xx", "x" * 20000):
        refused(garbage)


def test_it_refuses_an_empty_token():
    for empty in ("", "   ", None):
        refused(empty, "token_missing")


# --- legacy tokens ------------------------------------------------------------------------
def legacy_token(user_id, role="candidate", secret=LEGACY_SECRET, **extra):
    now = int(time.time())
    return hs256({"id": str(user_id), "role": role, "iat": now, "exp": now + 3600, **extra}, secret=secret)


def test_it_accepts_legacy_tokens_when_jwt_secret_is_set(settings):
    settings.JWT_SECRET = LEGACY_SECRET
    user_id = uuid.uuid4()
    verified = verify_token(legacy_token(user_id, role="company"))
    assert verified.legacy is True
    assert verified.sub == str(user_id)
    assert verified.app_metadata == {}
    assert verified.user_metadata == {"role": "company"}


def test_it_refuses_legacy_tokens_when_jwt_secret_is_unset():
    refused(legacy_token(uuid.uuid4()))
    refused(legacy_token(uuid.uuid4(), secret=SECRET))  # even signed with the Supabase secret


def test_it_refuses_legacy_tokens_signed_with_another_secret(settings):
    settings.JWT_SECRET = LEGACY_SECRET
    refused(legacy_token(uuid.uuid4(), secret=SECRET))


def test_it_refuses_expired_legacy_tokens(settings):
    settings.JWT_SECRET = LEGACY_SECRET
    now = int(time.time())
    refused(legacy_token(uuid.uuid4(), iat=now - 7200, exp=now - 3600), "token_expired")


def test_it_keeps_checking_supabase_tokens_strictly_when_jwt_secret_is_set(settings):
    """A Supabase-shaped token with a bad audience must not slip through the legacy path."""
    settings.JWT_SECRET = SECRET  # even when both secrets are the same
    refused(hs256(claims(aud="other")))


# --- async ---------------------------------------------------------------------------------
async def test_it_fetches_jwks_without_blocking_the_event_loop(httpserver, settings, ec_key):
    """averify_token on a cold cache: the slow JWKS fetch runs off the loop; a ticker keeps ticking."""

    def slow_jwks(request):
        time.sleep(0.5)
        from werkzeug import Response

        return Response(json.dumps({"keys": [ec_key.jwk()]}), content_type="application/json")

    httpserver.clear_all_handlers()
    httpserver.expect_request(JWKS_PATH).respond_with_handler(slow_jwks)
    settings.SUPABASE_JWKS_URL = httpserver.url_for(JWKS_PATH)
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    task = asyncio.ensure_future(ticker())
    try:
        verified = await averify_token(ec_key.sign(claims()))
    finally:
        task.cancel()
    assert verified.sub
    assert ticks >= 10  # the loop ran ~25 ticks during the 0.5 s fetch; a blocked loop runs 0
