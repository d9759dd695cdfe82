"""Channels middleware: WebSocket handshake authentication and Origin check.

The token may come as the `?token=` query parameter, an `Authorization: Bearer` header
(non-browser clients), or the subprotocol pair `Sec-WebSocket-Protocol: bearer, <token>`
(browsers; the consumer echoes `bearer`). The outcome lands in the scope:
`scope["user"]` (a User or None), `scope["claims"]`, `scope["auth_error"]` (code) and
`scope["subprotocol"]`. The consumer base class accepts and then closes
unauthenticated connections with 4401 (CONTRACT §5).

Origin: a browser's `Origin` must be in CORS_ALLOWED_ORIGINS (or an allowed host in
DEBUG); a client that sends no Origin is not a browser and must bring a token.
Refused origins get the handshake denied (HTTP 403).
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import jwt
from channels.db import database_sync_to_async
from django.conf import settings

from accounts import jwks
from accounts.services import user_get_or_create_from_claims
from accounts.tokens import ASYMMETRIC_ALGORITHMS, TokenError, verify_token
from emploiplus import logs


def _headers(scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers", [])}


def token_from_scope(scope) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo)."""
    headers = _headers(scope)
    protocols = [str(p).strip() for p in scope.get("subprotocols") or []]
    if not protocols:
        protocols = [p.strip() for p in headers.get("sec-websocket-protocol", "").split(",") if p.strip()]
    if len(protocols) >= 2 and protocols[0].lower() == "bearer":
        return protocols[1], protocols[0]
    auth = headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip(), None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], None
    return None, None


def origin_allowed(origin: str) -> bool:
    allowed = {o.rstrip("/").lower() for o in settings.CORS_ALLOWED_ORIGINS}
    if origin.rstrip("/").lower() in allowed:
        return True
    if settings.DEBUG:
        host = (urlsplit(origin).hostname or "").lower()
        return host in {"localhost", "127.0.0.1", "[::1]", "::1"}
    return False


@database_sync_to_async
def _verify_and_load(token: str):
    claims = verify_token(token, fetch_keys=False)
    user = user_get_or_create_from_claims(claims=claims)
    if not user.is_active:
        raise TokenError("user_inactive", "Compte désactivé.")
    return user, claims


async def authenticate_token(token: str):
    """Verify and load the user without blocking the event loop.

    A JWKS fetch (unknown `kid`, rare) runs in a thread of its own so it never occupies
    the ORM's thread-sensitive executor; the signature check and the user query then run
    together in that executor.
    """
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError, TypeError):
        header = {}
    if header.get("alg") in ASYMMETRIC_ALGORITHMS and isinstance(header.get("kid"), str):
        await jwks.arefresh_if_needed(header["kid"])
    return await _verify_and_load(token)


class WebSocketAuthMiddleware:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            return await self.inner(scope, receive, send)
        scope = dict(scope)
        origin = _headers(scope).get("origin")
        if origin is not None and not origin_allowed(origin):
            # Deny the handshake before the consumer ever runs.
            await receive()  # websocket.connect
            await send({"type": "websocket.close", "code": 4403})
            return None
        token, subprotocol = token_from_scope(scope)
        scope.update(user=None, claims=None, auth_error="token_missing", subprotocol=subprotocol)
        if token:
            try:
                scope["user"], scope["claims"] = await authenticate_token(token)
                scope["auth_error"] = None
                logs.bind_user(scope["user"].pk)
            except TokenError as exc:
                scope["auth_error"] = exc.code
        return await self.inner(scope, receive, send)


def WebSocketAuthMiddlewareStack(inner):  # noqa: N802 - mirrors channels' AuthMiddlewareStack
    return WebSocketAuthMiddleware(inner)
