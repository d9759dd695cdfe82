"""Real signing keys for the token tests: an HS256 secret (settings), an EC P-256 key and an
RSA key whose public halves a real local HTTP server (pytest-httpserver) serves as JWKS."""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

JWKS_PATH = "/auth/v1/.well-known/jwks.json"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @property
    def public(self):
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg == "ES256" else RSAAlgorithm
        jwk = algorithm.to_jwk(self.public, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, payload: dict[str, Any], **header: Any) -> str:
        return jwt.encode(payload, self.private, algorithm=self.alg, headers={"kid": self.kid, **header})


def new_ec_key(kid: str | None = None) -> SigningKey:
    return SigningKey(kid or f"ec-{uuid.uuid4().hex[:8]}", "ES256", ec.generate_private_key(ec.SECP256R1()))


def new_rsa_key(kid: str | None = None) -> SigningKey:
    return SigningKey(
        kid or f"rsa-{uuid.uuid4().hex[:8]}", "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )


@pytest.fixture(autouse=True)
def _empty_user_cache():
    from accounts.authentication import user_cache

    user_cache.clear()
    yield
    user_cache.clear()


@pytest.fixture(scope="session")
def ec_key() -> SigningKey:
    return new_ec_key("ec-primary")


@pytest.fixture(scope="session")
def rsa_key() -> SigningKey:
    return new_rsa_key("rsa-primary")


def serve_jwks(httpserver, *keys: SigningKey, status: int = 200) -> None:
    """(Re)configure the local JWKS endpoint to serve `keys` (or fail with `status`)."""
    httpserver.clear_all_handlers()
    if status != 200:
        httpserver.expect_request(JWKS_PATH).respond_with_data("unavailable", status=status)
    else:
        httpserver.expect_request(JWKS_PATH).respond_with_json({"keys": [k.jwk() for k in keys]})


def jwks_hits(httpserver) -> int:
    return sum(1 for request, _ in httpserver.log if request.path == JWKS_PATH)


@pytest.fixture
def jwks_server(httpserver, settings, ec_key, rsa_key):
    """A real JWKS endpoint serving the EC and RSA keys; SUPABASE_JWKS_URL points at it."""
    serve_jwks(httpserver, ec_key, rsa_key)
    httpserver.clear_log()
    settings.SUPABASE_JWKS_URL = httpserver.url_for(JWKS_PATH)
    return httpserver


def claims(sub: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The payload of a Supabase access token (valid for an hour unless overridden)."""
    now = int(time.time())
    payload = {
        "sub": sub or str(uuid.uuid4()),
        "aud": "authenticated",
        "role": "authenticated",
        "email": "someone@example.test",
        "iat": now,
        "exp": now + 3600,
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
        "is_anonymous": False,
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned_token(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"") -> str:
    return ".".join([b64url(json.dumps(header).encode()), b64url(json.dumps(payload).encode()), b64url(signature)])
