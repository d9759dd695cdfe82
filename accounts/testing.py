"""Helpers for tests and benchmarks: Supabase-shaped HS256 access tokens."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
from django.conf import settings


def make_token(
    sub: uuid.UUID | str | None = None,
    *,
    email: str | None = None,
    app_role: str | None = None,
    user_role: str | None = None,
    expires_in: int = 3600,
    secret: str | None = None,
    **claims: Any,
) -> str:
    """An access token as Supabase issues it, signed with SUPABASE_JWT_SECRET."""
    now = int(time.time())
    sub = str(sub or uuid.uuid4())
    payload: dict[str, Any] = {
        "sub": sub,
        "aud": "authenticated",
        "role": "authenticated",
        "email": email if email is not None else f"{sub[:8]}@example.test",
        "iat": now,
        "exp": now + expires_in,
        "app_metadata": {"provider": "email", **({"role": app_role} if app_role else {})},
        "user_metadata": {**({"role": user_role} if user_role else {})},
    }
    if settings.SUPABASE_URL:
        payload["iss"] = f"{settings.SUPABASE_URL}/auth/v1"
    payload.update(claims)
    return jwt.encode(payload, secret or settings.SUPABASE_JWT_SECRET, algorithm="HS256")


def token_for(user, **kwargs: Any) -> str:
    app_role = kwargs.pop("app_role", "admin" if getattr(user, "role", "") == "admin" else None)
    return make_token(user.pk, email=user.email or "", app_role=app_role, **kwargs)


def auth_header(user, **kwargs: Any) -> dict[str, str]:
    """Headers for Django's test client: client.get(url, headers=auth_header(alice))."""
    return {"Authorization": f"Bearer {token_for(user, **kwargs)}"}
