"""Supabase access-token verification: the one module DRF, Channels and scripts use.

`verify_token(raw) -> Claims` returns the verified claims or raises `TokenError` with
a code (`token_expired`, `token_invalid`, …). It never trusts the token's header to
choose the key type: HS256 tokens are checked only against the shared secret,
ES256/RS256 only against JWKS keys of the matching type.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jwt
from django.conf import settings

from accounts import jwks


class TokenError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Claims:
    sub: str
    email: str
    role_claim: str
    app_metadata: dict[str, Any] = field(default_factory=dict)
    user_metadata: dict[str, Any] = field(default_factory=dict)
    exp: int | None = None
    is_anonymous: bool = False
    legacy: bool = False
    raw: dict[str, Any] = field(default_factory=dict)


ASYMMETRIC_ALGORITHMS = ("ES256", "RS256")
SERVICE_ROLES = {"service_role", "anon", "supabase_admin"}


def _decode_options(require: list[str]) -> dict[str, Any]:
    return {"require": require, "verify_signature": True, "verify_exp": True, "verify_nbf": True, "verify_iat": True}


def _decode_supabase(token: str, header: dict[str, Any]) -> dict[str, Any]:
    alg = header.get("alg")
    kwargs: dict[str, Any] = {
        "audience": settings.SUPABASE_JWT_AUDIENCE,
        "leeway": settings.JWT_LEEWAY_SECONDS,
        "options": _decode_options(["exp", "sub", "aud"]),
    }
    if settings.SUPABASE_URL:
        kwargs["issuer"] = f"{settings.SUPABASE_URL}/auth/v1"
    if alg == "HS256":
        if not settings.SUPABASE_JWT_SECRET:
            raise TokenError("token_invalid", "HS256 tokens are not accepted (SUPABASE_JWT_SECRET unset).")
        return jwt.decode(token, settings.SUPABASE_JWT_SECRET, algorithms=["HS256"], **kwargs)
    if alg in ASYMMETRIC_ALGORITHMS:
        key = jwks.get_signing_key(header.get("kid"), alg)
        return jwt.decode(token, key, algorithms=[alg], **kwargs)
    raise TokenError("token_invalid", f"Unsupported token algorithm {alg!r}.")


def _decode_legacy(token: str) -> dict[str, Any]:
    return jwt.decode(
        token,
        settings.JWT_SECRET,
        algorithms=["HS256"],
        leeway=settings.JWT_LEEWAY_SECONDS,
        options={"require": ["exp"], "verify_aud": False},
    )


def verify_token(token: str | None) -> Claims:
    if not token or not token.strip():
        raise TokenError("token_missing", "Authentication token missing.")
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise TokenError("token_invalid", "Malformed token.") from exc

    try:
        try:
            payload = _decode_supabase(token, header)
            legacy = False
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError, jwt.InvalidSignatureError):
            # A legacy {id, role} token has no aud/sub; it is accepted only with JWT_SECRET.
            if not settings.JWT_SECRET or header.get("alg") != "HS256":
                raise
            payload = _decode_legacy(token)
            legacy = True
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token_expired", "Token expired.") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("token_invalid", "Token not yet valid.") from exc
    except jwt.InvalidAudienceError as exc:
        raise TokenError("token_invalid", "Token audience is not accepted.") from exc
    except jwt.InvalidIssuerError as exc:
        raise TokenError("token_invalid", "Token issuer is not accepted.") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError("token_invalid", f"Token lacks the {exc.claim!r} claim.") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("token_invalid", "Invalid token.") from exc

    if legacy:
        sub = str(payload.get("id") or payload.get("sub") or "")
        if not sub:
            raise TokenError("token_invalid", "Legacy token lacks 'id'.")
        return Claims(
            sub=sub,
            email=str(payload.get("email") or ""),
            role_claim="authenticated",
            app_metadata={},
            user_metadata={"role": payload.get("role")} if payload.get("role") else {},
            exp=payload.get("exp"),
            legacy=True,
            raw=payload,
        )

    role_claim = str(payload.get("role") or "")
    if role_claim in SERVICE_ROLES:
        raise TokenError("token_invalid", "API keys are not user tokens.")
    is_anonymous = bool(payload.get("is_anonymous"))
    if is_anonymous and not settings.SUPABASE_ALLOW_ANONYMOUS:
        raise TokenError("token_invalid", "Anonymous users are not accepted.")
    sub = str(payload.get("sub") or "")
    if not sub:
        raise TokenError("token_invalid", "Token lacks the 'sub' claim.")
    return Claims(
        sub=sub,
        email=str(payload.get("email") or ""),
        role_claim=role_claim,
        app_metadata=payload.get("app_metadata") or {},
        user_metadata=payload.get("user_metadata") or {},
        exp=payload.get("exp"),
        is_anonymous=is_anonymous,
        raw=payload,
    )
