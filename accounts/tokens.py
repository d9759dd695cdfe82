"""Supabase access-token verification: the one module DRF, Channels and scripts use.

`verify_token(raw) -> Claims` returns the verified claims or raises `TokenError` with a
code (`token_missing`, `token_expired`, `token_invalid`). `averify_token` is the same for
async code: a JWKS fetch (rare: unknown `kid`) runs in a thread, never on the event loop;
the signature check itself is CPU-only and runs wherever the caller runs it (the
Channels middleware runs it in a worker thread together with the user lookup).

Rules (CONTRACT §4):
- the key is chosen by the *server*, never by the token: HS256 is checked only against
  `SUPABASE_JWT_SECRET`, ES256/RS256 only against a JWKS key of that exact type found by
  `kid`, and every `jwt.decode` gets a one-element algorithm list. `alg: none`, HS384,
  PS256… and an HS256 token "signed" with the RSA public key are refused;
- `exp` and `sub` required, `exp`/`nbf`/`iat` checked with `JWT_LEEWAY_SECONDS`,
  `aud` must be `authenticated`, `iss` must be `<SUPABASE_URL>/auth/v1` when SUPABASE_URL
  is set, `sub` must be a UUID (it is the users primary key);
- API keys (`role` anon / service_role / supabase_admin) are not user tokens;
  anonymous sign-ins (`is_anonymous`) only with SUPABASE_ALLOW_ANONYMOUS;
- legacy tokens of the Node backend (`{id, role}`, no `aud`, HS256 with `JWT_SECRET`)
  only when JWT_SECRET is set; their `role` is never trusted for admin.
"""

from __future__ import annotations

import json
import uuid
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
MAX_TOKEN_LENGTH = 16 * 1024


def _issuer() -> str | None:
    return f"{settings.SUPABASE_URL}/auth/v1" if settings.SUPABASE_URL else None


def _unverified_payload(token: str) -> dict[str, Any]:
    try:
        payload = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError, json.JSONDecodeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _is_legacy_shape(payload: dict[str, Any]) -> bool:
    """The Node backend's tokens carry `id` and no `aud`/`sub`; Supabase ones always carry `aud`."""
    return "id" in payload and "aud" not in payload and "sub" not in payload


def _decode_supabase(token: str, alg: str, kid: Any, *, fetch: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "audience": settings.SUPABASE_JWT_AUDIENCE,
        "leeway": settings.JWT_LEEWAY_SECONDS,
        "options": {"require": ["exp", "sub", "aud"], "verify_signature": True},
    }
    issuer = _issuer()
    if issuer:
        kwargs["issuer"] = issuer
        kwargs["options"]["require"].append("iss")
    if alg == "HS256":
        if not settings.SUPABASE_JWT_SECRET:
            raise TokenError("token_invalid", "HS256 tokens are not accepted (SUPABASE_JWT_SECRET unset).")
        return jwt.decode(token, settings.SUPABASE_JWT_SECRET, algorithms=["HS256"], **kwargs)
    if alg in ASYMMETRIC_ALGORITHMS:
        key = jwks.get_signing_key(kid, alg, fetch=fetch)
        return jwt.decode(token, key, algorithms=[alg], **kwargs)
    raise TokenError("token_invalid", f"Unsupported token algorithm {alg!r}.")


def _decode_legacy(token: str, alg: str) -> dict[str, Any]:
    if alg != "HS256":
        raise TokenError("token_invalid", f"Unsupported legacy token algorithm {alg!r}.")
    return jwt.decode(
        token,
        settings.JWT_SECRET,
        algorithms=["HS256"],
        leeway=settings.JWT_LEEWAY_SECONDS,
        options={"require": ["exp"], "verify_aud": False},
    )


def _valid_uuid(value: Any) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError) as exc:
        raise TokenError("token_invalid", "Token subject is not a user id.") from exc


def verify_token(token: str | None, *, fetch_keys: bool = True) -> Claims:
    """Verified claims of a user access token, or TokenError.

    `fetch_keys=False` never touches the network (async callers fetch first with
    `jwks.arefresh_if_needed`).
    """
    if token is None or not token.strip():
        raise TokenError("token_missing", "Authentication token missing.")
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("token_invalid", "Malformed token.")
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise TokenError("token_invalid", "Malformed token.") from exc
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("token_invalid", "Malformed token.")

    legacy = bool(settings.JWT_SECRET) and _is_legacy_shape(_unverified_payload(token))
    try:
        if legacy:
            payload = _decode_legacy(token, alg)
        else:
            payload = _decode_supabase(token, alg, header.get("kid"), fetch=fetch_keys)
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
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise TokenError("token_invalid", "Invalid token.") from exc

    role_claim = str(payload.get("role") or "")
    if role_claim in SERVICE_ROLES:
        raise TokenError("token_invalid", "API keys are not user tokens.")

    if legacy:
        return Claims(
            sub=_valid_uuid(payload.get("id")),
            email=str(payload.get("email") or ""),
            role_claim="authenticated",
            app_metadata={},  # a legacy token can never carry server-side (admin) metadata
            user_metadata={"role": role_claim} if role_claim else {},
            exp=payload.get("exp"),
            legacy=True,
            raw=payload,
        )

    is_anonymous = bool(payload.get("is_anonymous"))
    if is_anonymous and not settings.SUPABASE_ALLOW_ANONYMOUS:
        raise TokenError("token_invalid", "Anonymous users are not accepted.")
    app_metadata = payload.get("app_metadata")
    user_metadata = payload.get("user_metadata")
    return Claims(
        sub=_valid_uuid(payload.get("sub")),
        email=str(payload.get("email") or ""),
        role_claim=role_claim,
        app_metadata=app_metadata if isinstance(app_metadata, dict) else {},
        user_metadata=user_metadata if isinstance(user_metadata, dict) else {},
        exp=payload.get("exp"),
        is_anonymous=is_anonymous,
        raw=payload,
    )


async def averify_token(token: str | None) -> Claims:
    """`verify_token` for async code: fetches an unknown JWKS key off the event loop first.

    The remaining work is a CPU-only signature check (tens of microseconds for HS256,
    ~0.1 ms for ES256); callers that also hit the database run both in one worker thread.
    """
    if token and token.strip():
        try:
            header = jwt.get_unverified_header(token.strip())
        except (jwt.PyJWTError, ValueError, TypeError):
            header = {}
        if header.get("alg") in ASYMMETRIC_ALGORITHMS and isinstance(header.get("kid"), str):
            await jwks.arefresh_if_needed(header["kid"])
    return verify_token(token, fetch_keys=False)
