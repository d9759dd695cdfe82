"""The one list toolkit: every list endpoint pages the same way (CONTRACT §6).

    GET /api/<list>/?limit=20&cursor=<next_cursor of the previous page>
    → {"results": [...], "next_cursor": "<opaque>" | null}

- `parse_limit(raw, default=, maximum=)`: an integer in 1..maximum, else 400 `invalid_limit`
  with the field (`{"detail", "code", "errors": {"limit": [...]}}`); absent → default.
- Cursors are opaque and signed (django.core.signing, SECRET_KEY, salted per list):
  `encode_cursor(list_name, payload)` / `decode_cursor(list_name, token)`. An altered,
  forged, stale (another SECRET_KEY) or foreign (another list's) cursor is a 400
  `invalid_cursor`, never a 500.
- Keyset pages on (a timestamp, the id): `keyset_page(queryset, list_name=, cursor=, limit=,
  at=)` orders by (at, id) — newest first unless `ascending` — filters past the cursor's
  position and returns the page with the next cursor. Stable while rows are added: a walk
  returns every row that existed when it started exactly once.
- Offset pages, for ranked lists computed per request (matches, search):
  `offset_from_cursor` / `offset_page`; the cursor may bind the query (`bound`) so that it
  cannot be replayed against another one.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.core import signing
from django.db.models import F, Q, QuerySet

from emploiplus.errors import ApplicationError

MAX_CURSOR_LENGTH = 1000


@dataclass(frozen=True)
class Page:
    results: list[Any]
    next_cursor: str | None

    def body(self) -> dict[str, Any]:
        return {"results": self.results, "next_cursor": self.next_cursor}


def parse_limit(raw: Any, *, default: int = 20, maximum: int = 50) -> int:
    """`?limit=` as an int in [1, maximum] (absent or empty → `default`); else 400."""
    if raw is None or raw == "":
        return default
    message = f"`limit` doit être un entier entre 1 et {maximum}."
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = 0
    if not 1 <= value <= maximum:
        raise ApplicationError("invalid_limit", message, extra={"errors": {"limit": [message]}})
    return value


def _invalid_cursor() -> ApplicationError:
    return ApplicationError("invalid_cursor", "Curseur invalide.", extra={"errors": {"cursor": ["Curseur invalide."]}})


def _salt(list_name: str) -> str:
    return f"emploiplus.cursor.{list_name}"


def encode_cursor(list_name: str, payload: dict[str, Any]) -> str:
    return signing.dumps(payload, salt=_salt(list_name), compress=True)


def decode_cursor(list_name: str, token: str) -> dict[str, Any]:
    if not isinstance(token, str) or not token or len(token) > MAX_CURSOR_LENGTH:
        raise _invalid_cursor()
    try:
        payload = signing.loads(token, salt=_salt(list_name))
    except (signing.BadSignature, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise _invalid_cursor() from exc
    if not isinstance(payload, dict):
        raise _invalid_cursor()
    return payload


def cursor_datetime(value: Any) -> dt.datetime:
    """An aware datetime from a cursor field, or 400 `invalid_cursor`."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError) as exc:
        raise _invalid_cursor() from exc
    if parsed.tzinfo is None:
        raise _invalid_cursor()
    return parsed


def cursor_uuid(value: Any) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except (TypeError, ValueError, AttributeError) as exc:
        raise _invalid_cursor() from exc


# --- keyset pages ------------------------------------------------------------------------------
def keyset_position(list_name: str, token: str) -> tuple[dt.datetime, uuid.UUID]:
    payload = decode_cursor(list_name, token)
    return cursor_datetime(payload.get("t")), cursor_uuid(payload.get("i"))


def keyset_cursor(list_name: str, at: dt.datetime, pk: Any) -> str:
    return encode_cursor(list_name, {"t": at.isoformat(), "i": str(pk)})


def keyset_after(
    queryset: QuerySet, at_value: dt.datetime, pk: Any, *, at: str = "created_at", ascending: bool = False
) -> QuerySet:
    """Rows strictly past (at_value, pk) in the list's order."""
    op = "gt" if ascending else "lt"
    return queryset.filter(Q(**{f"{at}__{op}": at_value}) | Q(**{at: at_value, f"pk__{op}": pk}))


def keyset_page(
    queryset: QuerySet,
    *,
    list_name: str,
    cursor: str | None,
    limit: int,
    at: str = "created_at",
    ascending: bool = False,
) -> tuple[list[Any], str | None]:
    """One page of `queryset` ordered by (`at`, pk), past `cursor`; (rows, next cursor)."""
    if cursor:
        at_value, pk = keyset_position(list_name, cursor)
        queryset = keyset_after(queryset, at_value, pk, at=at, ascending=ascending)
    order = (F(at).asc(), F("pk").asc()) if ascending else (F(at).desc(), F("pk").desc())
    rows = list(queryset.order_by(*order)[: limit + 1])
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, keyset_cursor(list_name, _value(rows[-1], at), rows[-1].pk)


def _value(row: Any, name: str) -> Any:
    return row[name] if isinstance(row, dict) else getattr(row, name)


# --- offset pages (ranked lists) -------------------------------------------------------------
def offset_from_cursor(list_name: str, cursor: str | None, *, bound: Any = None) -> int:
    """The offset a cursor stands for (0 without one). `bound`: what the cursor was made for
    (a query, a job id); a cursor made for something else is refused."""
    if not cursor:
        return 0
    payload = decode_cursor(list_name, cursor)
    offset = payload.get("o")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 or payload.get("b") != bound:
        raise _invalid_cursor()
    return offset


def offset_cursor(list_name: str, offset: int, *, bound: Any = None) -> str:
    return encode_cursor(list_name, {"o": offset, "b": bound})


def offset_page(
    rows: list[Any], *, list_name: str, offset: int, limit: int, bound: Any = None
) -> tuple[list[Any], str | None]:
    """`rows` fetched with LIMIT limit + 1 OFFSET offset → (page, next cursor)."""
    if len(rows) <= limit:
        return rows, None
    return rows[:limit], offset_cursor(list_name, offset + limit, bound=bound)
