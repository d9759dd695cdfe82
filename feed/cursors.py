"""Opaque, tamper-proof list cursors: signed (django.core.signing, salted per list) JSON.

A cursor that was altered, forged, or made for another list is a 400 `invalid_cursor`.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

from emploiplus.errors import ApplicationError


def encode(salt: str, payload: dict[str, Any]) -> str:
    return signing.dumps(payload, salt=f"emploiplus.cursor.{salt}", compress=True)


def decode(salt: str, token: str) -> dict[str, Any]:
    if len(token) > 500:
        raise ApplicationError("invalid_cursor", "Curseur invalide.")
    try:
        payload = signing.loads(token, salt=f"emploiplus.cursor.{salt}")
    except (signing.BadSignature, ValueError, TypeError) as exc:
        raise ApplicationError("invalid_cursor", "Curseur invalide.") from exc
    if not isinstance(payload, dict):
        raise ApplicationError("invalid_cursor", "Curseur invalide.")
    return payload


def parse_limit(raw: str | None, *, default: int = 20, maximum: int = 50) -> int:
    """`?limit=` as an int in [1, maximum]; anything else is a 400 `invalid_limit`."""
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError) as exc:
        raise ApplicationError("invalid_limit", f"`limit` doit être un entier entre 1 et {maximum}.") from exc
    if not 1 <= value <= maximum:
        raise ApplicationError("invalid_limit", f"`limit` doit être un entier entre 1 et {maximum}.")
    return value
