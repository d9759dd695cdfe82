"""DRF authentication: `Authorization: Bearer <Supabase access token>`.

- no `Authorization` header (or another scheme) → anonymous; `IsAuthenticated` then answers
  401 `{"detail", "code": "token_missing"}`;
- a bad token → 401 with `token_invalid` / `token_expired` (an empty `Bearer` → `token_missing`);
- every 401 carries `WWW-Authenticate: Bearer realm="api"` (with `error="invalid_token"`
  when a token was presented, RFC 6750);
- requests that end up anonymous are counted against the client IP here, because DRF
  would otherwise answer 401 before its throttles ever run (see accounts.throttling).

The user behind a token is kept in a small per-process cache for
`AUTH_USER_CACHE_SECONDS` (default 5; 0 = a primary-key query on every request). It
saves the query *and* the connection health check Django runs before a request's first
query: bench/bench_auth.py measures ~0.13 ms added by auth with the cache against ~0.6 ms
without. Consistency: a `save()`/`delete()` of a user in this process evicts it at once
(signals); changes made elsewhere (another process, `QuerySet.update()`, SQL) are seen
within the TTL. A role in the token's app_metadata that differs from the cached one
always goes to the database.
"""

from __future__ import annotations

import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework import authentication, exceptions

from accounts.models import User
from accounts.services import app_role_from_claims, user_get_or_create_from_claims
from accounts.throttling import check_request, client_ip
from accounts.tokens import Claims, TokenError, verify_token
from emploiplus import logs

DEFAULT_USER_CACHE_SECONDS = 5


class TokenAuthFailed(exceptions.AuthenticationFailed):
    def __init__(self, code: str, message: str):
        super().__init__(detail={"detail": message, "code": code})


class _UserCache:
    """sub → (expires at, field values). Rebuilds a fresh User per hit (no shared state)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, tuple]] = {}
        self._fields = None

    def _field_names(self) -> list[str]:
        if self._fields is None:
            self._fields = [f.attname for f in User._meta.concrete_fields]
        return self._fields

    def get(self, sub: str) -> User | None:
        entry = self._entries.get(sub)
        if entry is None or entry[0] < time.monotonic():
            return None
        return User.from_db("default", self._field_names(), entry[1])

    def put(self, user: User, ttl: float) -> None:
        values = tuple(getattr(user, name) for name in self._field_names())
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[str(user.pk)] = (time.monotonic() + ttl, values)

    def forget(self, sub) -> None:
        self._entries.pop(str(sub), None)

    def clear(self) -> None:
        self._entries.clear()


user_cache = _UserCache()


def _forget_user(sender, instance, **kwargs) -> None:
    user_cache.forget(instance.pk)


post_save.connect(_forget_user, sender=User, dispatch_uid="accounts.user_cache.save")
post_delete.connect(_forget_user, sender=User, dispatch_uid="accounts.user_cache.delete")


def user_for_claims(claims: Claims) -> User:
    """The user behind verified claims (through the short cache when enabled)."""
    ttl = getattr(settings, "AUTH_USER_CACHE_SECONDS", DEFAULT_USER_CACHE_SECONDS)
    if ttl:
        cached = user_cache.get(claims.sub)
        # A role in app_metadata that differs from the stored one must reach the database.
        app_role = app_role_from_claims(claims)
        if cached is not None and (app_role in (None, cached.role) or (cached.is_admin and cached.is_staff)):
            return cached
    user = user_get_or_create_from_claims(claims=claims)
    if ttl:
        user_cache.put(user, ttl)
    return user


class SupabaseJWTAuthentication(authentication.BaseAuthentication):
    keyword = "bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, token = header.strip().partition(" ")
        if not header or scheme.lower() != self.keyword:
            self._count_anonymous(request)
            return None
        try:
            claims = verify_token(token)
            user = user_for_claims(claims)
            if not user.is_active:
                raise TokenError("user_inactive", "Compte désactivé.")
        except TokenError as exc:
            request._request._emploiplus_auth_error = exc.code
            self._count_anonymous(request)
            raise TokenAuthFailed(exc.code, exc.message) from exc
        logs.bind_user(user.pk)
        return user, claims

    @staticmethod
    def _count_anonymous(request) -> None:
        check_request(request, ident=f"ip:{client_ip(request.META)}")

    def authenticate_header(self, request) -> str:
        if getattr(request._request, "_emploiplus_auth_error", None) not in (None, "token_missing"):
            return 'Bearer realm="api", error="invalid_token"'
        return 'Bearer realm="api"'
