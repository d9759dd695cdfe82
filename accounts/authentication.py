"""DRF authentication: `Authorization: Bearer <Supabase access token>`."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from accounts.services import user_get_or_create_from_claims
from accounts.tokens import TokenError, verify_token


class TokenAuthFailed(exceptions.AuthenticationFailed):
    def __init__(self, code: str, message: str):
        super().__init__(detail={"detail": message, "code": code})


class SupabaseJWTAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword:
            return None
        try:
            claims = verify_token(token)
        except TokenError as exc:
            raise TokenAuthFailed(exc.code, exc.message) from exc
        user = user_get_or_create_from_claims(claims=claims)
        if not user.is_active:
            raise TokenAuthFailed("user_inactive", "Compte désactivé.")
        return user, claims

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api"'
