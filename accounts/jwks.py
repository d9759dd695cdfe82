"""JWKS key cache for ES256/RS256 Supabase tokens.

Keys are fetched from `SUPABASE_JWKS_URL` and cached by `kid`. An unknown `kid` triggers
a refresh at most once per `JWKS_REFRESH_COOLDOWN_SECONDS` (so a flood of forged `kid`s
cannot turn into a flood of requests to Supabase). A successful refresh replaces the key
set (keys Supabase revoked stop working); a failed one — network error, non-2xx, bad
JSON, or a set with no usable key — keeps the keys already known: a JWKS outage does not
become an auth outage.

Lookups of known keys never wait on a fetch: the key dict is read without a lock and
only refreshes serialise on `_fetch_lock`. Async code (the Channels middleware) calls
`arefresh_if_needed(kid)` first, which runs the HTTP request in a worker thread that is
*not* the thread-sensitive executor Django's ORM uses, then verifies with cached keys.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

import jwt
import requests
from asgiref.sync import sync_to_async
from django.conf import settings

log = logging.getLogger(__name__)

FETCH_TIMEOUT_SECONDS = 3.0
MAX_JWKS_BYTES = 256 * 1024
SUPPORTED_ALGORITHMS = ("ES256", "RS256")


@dataclass(frozen=True)
class _Key:
    algorithm: str  # "ES256" (EC P-256) or "RS256" (RSA)
    key: Any  # cryptography public key


def _parse_jwks(document: Any) -> dict[str, _Key]:
    """Usable signing keys of a JWKS document, by kid (others are skipped with a warning)."""
    keys: dict[str, _Key] = {}
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("JWKS document has no 'keys' list")
    for jwk in document["keys"]:
        if not isinstance(jwk, dict):
            continue
        kid, kty = jwk.get("kid"), jwk.get("kty")
        if not kid or kty not in ("EC", "RSA") or jwk.get("use", "sig") != "sig":
            continue
        if kty == "EC" and jwk.get("crv") != "P-256":
            continue
        declared = jwk.get("alg")
        algorithm = "ES256" if kty == "EC" else "RS256"
        if declared and declared != algorithm:
            continue  # e.g. an RSA key meant for PS256/RS512: not accepted here
        if "d" in jwk:
            log.warning("jwks: key %s contains private material; skipped", kid)
            continue
        try:
            keys[str(kid)] = _Key(algorithm, jwt.PyJWK(jwk, algorithm=algorithm).key)
        except (jwt.PyJWTError, ValueError, TypeError):
            log.warning("jwks: skipping unusable key %s", kid)
    return keys


class _KeyCache:
    def __init__(self) -> None:
        self._fetch_lock = threading.Lock()
        self._keys: dict[str, _Key] = {}  # replaced wholesale, never mutated in place
        self._last_fetch = 0.0  # monotonic time of the last fetch attempt (0 = never)
        self._url = ""
        self.fetches = 0  # attempts, for tests and diagnostics

    def reset(self) -> None:
        with self._fetch_lock:
            self._keys, self._last_fetch, self._url, self.fetches = {}, 0.0, "", 0

    def _sync_url(self) -> str:
        url = settings.SUPABASE_JWKS_URL
        if url != self._url:  # settings changed (tests): forget the keys of another issuer
            with self._fetch_lock:
                if url != self._url:
                    self._keys, self._last_fetch, self._url = {}, 0.0, url
        return url

    def known(self, kid: str) -> bool:
        self._sync_url()
        return kid in self._keys

    def refresh_allowed(self) -> bool:
        return not self._last_fetch or time.monotonic() - self._last_fetch >= settings.JWKS_REFRESH_COOLDOWN_SECONDS

    def refresh_if_needed(self, kid: str) -> None:
        """Fetch the JWKS when `kid` is unknown and the cooldown allows (blocking I/O)."""
        url = self._sync_url()
        if not url or kid in self._keys or not self.refresh_allowed():
            return
        with self._fetch_lock:
            # Another thread may have fetched while we waited for the lock.
            if kid in self._keys or not self.refresh_allowed() or url != self._url:
                return
            self._last_fetch = time.monotonic()
            self.fetches += 1
            try:
                response = requests.get(url, timeout=FETCH_TIMEOUT_SECONDS, headers={"Accept": "application/json"})
                response.raise_for_status()
                if len(response.content) > MAX_JWKS_BYTES:
                    raise ValueError("JWKS document too large")
                keys = _parse_jwks(response.json())
                if not keys:
                    raise ValueError("JWKS document has no usable key")
            except (requests.RequestException, ValueError) as exc:
                log.warning(
                    "jwks: refresh from %s failed (%s: %s); keeping %d known key(s)",
                    url,
                    type(exc).__name__,
                    exc,
                    len(self._keys),
                )
                return
            self._keys = keys

    async def arefresh_if_needed(self, kid: str | None) -> None:
        """Async callers: do the (rare) fetch in a thread of its own, not on the event loop."""
        if kid and settings.SUPABASE_JWKS_URL and not self.known(kid) and self.refresh_allowed():
            await sync_to_async(self.refresh_if_needed, thread_sensitive=False)(kid)

    def get(self, kid: str | None, alg: str, *, fetch: bool = True) -> Any:
        from accounts.tokens import TokenError

        url = self._sync_url()
        if not url:
            raise TokenError("token_invalid", f"{alg} tokens are not accepted (SUPABASE_JWKS_URL unset).")
        if not kid or not isinstance(kid, str):
            raise TokenError("token_invalid", "Token header lacks 'kid'.")
        entry = self._keys.get(kid)
        if entry is None and fetch:
            self.refresh_if_needed(kid)
            entry = self._keys.get(kid)
        if entry is None:
            raise TokenError("token_invalid", "Unknown signing key.")
        if entry.algorithm != alg:
            raise TokenError("token_invalid", "Token algorithm does not fit its key.")
        return entry.key


_cache = _KeyCache()
get_signing_key = _cache.get
reset_cache = _cache.reset
arefresh_if_needed = _cache.arefresh_if_needed


def fetch_count() -> int:
    return _cache.fetches
