"""JWKS key cache for ES256/RS256 Supabase tokens.

Keys are fetched from `SUPABASE_JWKS_URL`, cached by `kid`, refreshed when an unknown
`kid` shows up (at most once per `JWKS_REFRESH_COOLDOWN_SECONDS`), and a failed refresh
keeps the keys already known: a JWKS outage does not become an auth outage.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import jwt
import requests
from django.conf import settings

log = logging.getLogger(__name__)

_KTY_FOR_ALG = {"ES256": "EC", "RS256": "RSA"}


class _KeyCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[str, Any]] = {}  # kid → (kty, key)
        self._last_fetch = 0.0
        self._url = ""

    def reset(self) -> None:
        with self._lock:
            self._keys = {}
            self._last_fetch = 0.0
            self._url = ""

    def _fetch(self, url: str) -> None:
        response = requests.get(url, timeout=5)
        response.raise_for_status()
        keys: dict[str, tuple[str, Any]] = {}
        for jwk in response.json().get("keys", []):
            kid, kty = jwk.get("kid"), jwk.get("kty")
            if not kid or kty not in ("EC", "RSA"):
                continue
            try:
                keys[kid] = (kty, jwt.PyJWK(jwk).key)
            except jwt.PyJWTError:
                log.warning("jwks: skipping unusable key %s", kid)
        self._keys.update(keys)

    def get(self, kid: str | None, alg: str) -> Any:
        from accounts.tokens import TokenError

        url = settings.SUPABASE_JWKS_URL
        if not url:
            raise TokenError("token_invalid", f"{alg} tokens are not accepted (SUPABASE_JWKS_URL unset).")
        if not kid:
            raise TokenError("token_invalid", "Token header lacks 'kid'.")
        with self._lock:
            if url != self._url:  # settings changed (tests): forget keys of another issuer
                self._keys, self._last_fetch, self._url = {}, 0.0, url
            if kid not in self._keys:
                now = time.monotonic()
                if not self._last_fetch or now - self._last_fetch >= settings.JWKS_REFRESH_COOLDOWN_SECONDS:
                    self._last_fetch = now
                    try:
                        self._fetch(url)
                    except (requests.RequestException, ValueError) as exc:
                        log.warning(
                            "jwks: refresh failed (%s); keeping %d known key(s)", type(exc).__name__, len(self._keys)
                        )
            entry = self._keys.get(kid)
        if entry is None:
            raise TokenError("token_invalid", "Unknown signing key.")
        kty, key = entry
        if _KTY_FOR_ALG[alg] != kty:
            raise TokenError("token_invalid", "Token algorithm does not fit its key.")
        return key


_cache = _KeyCache()
get_signing_key = _cache.get
reset_cache = _cache.reset
