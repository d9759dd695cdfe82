"""French full-text search: one query builder for every search box of the API.

Raw user input never reaches `to_tsquery`. `tokenize()` keeps only words (letters and
digits, with inner `.`, `+`, `#` so that "node.js" stays one word), folds case and accents
the way `f_unaccent()` folds the indexed text, and `build_tsquery()` turns each word into
one quoted prefix operand `'word':*` stemmed by the French configuration, ANDed together.
Quotes, `&`, `|`, `!`, `:*`, parentheses or SQL-looking text are therefore just separators.

Reuse (e.g. `GET /api/jobs/?q=`)::

    sql, params = build_tsquery(q)           # SQL expression of type tsquery + its params
    Job.objects.filter(search_matches(q))    # boolean expression on `search_vector`
    .annotate(rank=search_rank(q))           # ts_rank × recency, for ORDER BY
"""

from __future__ import annotations

import re
import unicodedata

from django.db.models import BooleanField, FloatField
from django.db.models.expressions import RawSQL

from emploiplus.errors import ApplicationError

MIN_QUERY_CHARS = 2
MAX_QUERY_CHARS = 200
MAX_WORDS = 8
MIN_WORD_CHARS = 2

# A word: letters/digits, possibly joined by . + # (node.js, c#, c++ keep their shape).
_WORD = re.compile(r"[^\W_]+(?:[.+#]+[^\W_]+)*[+#]*")
# Same folding as the SQL f_unaccent(): ligatures first, then combining marks dropped.
_LIGATURES = str.maketrans({"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE"})


def fold(text: str) -> str:
    """Lower case without accents ("Développeur" → "developpeur")."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_LIGATURES))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()


def clean_query(text: str | None) -> str:
    """Validate a search box value: 2 to 200 characters once trimmed, else a 400."""
    text = (text or "").strip()
    if len(text) > MAX_QUERY_CHARS:
        raise ApplicationError(
            "query_too_long", f"La recherche est limitée à {MAX_QUERY_CHARS} caractères (reçu {len(text)})."
        )
    if len(text) < MIN_QUERY_CHARS:
        raise ApplicationError("query_too_short", f"Saisissez au moins {MIN_QUERY_CHARS} caractères.")
    return text


def tokenize(text: str) -> list[str]:
    """Searchable words of `text`, folded, de-duplicated, at most MAX_WORDS of them."""
    words: list[str] = []
    for word in _WORD.findall(fold(text)):
        if len(word) >= MIN_WORD_CHARS and word not in words:
            words.append(word)
        if len(words) == MAX_WORDS:
            break
    return words


def _truncations(word: str) -> list[str]:
    """Shorter forms of a word being typed that the French stemmer may have indexed.

    The stemmer cuts suffixes, so "développeuse" is indexed as `developp`; while the
    user is at "développeu", the prefix `developpeu:*` cannot reach it. Offering the
    word minus its last one to three characters (never under 5) as exact lexemes does.
    """
    if "." in word or "+" in word or "#" in word or len(word) < 6:
        return []
    return [word[:n] for n in range(len(word) - 1, max(4, len(word) - 4), -1)]


def build_tsquery(text: str) -> tuple[str, list[str]]:
    """`(sql, params)`: a tsquery SQL expression matching every word of `text` as a
    French-stemmed prefix ("dévelop" finds "développeur", "developpeur" finds it too);
    the last word (being typed) may also match one of its short truncations (see
    `_truncations`).

    Raises ApplicationError (400) for input that is too short, too long or holds no
    word of at least two characters. Stop words ("le", "de") are ignored by PostgreSQL.
    """
    words = tokenize(clean_query(text))
    if not words:
        raise ApplicationError("query_too_short", "La recherche doit contenir au moins un mot de deux caractères.")
    # Every operand is built here from a word that cannot contain a quote, a backslash
    # or an operator, so to_tsquery only ever parses `'word':*` and `'a' | 'b'`.
    parts: list[str] = []
    params: list[str] = []
    for position, word in enumerate(words, start=1):
        params.append(f"'{word}':*")
        # Only the word being typed (the last one) may be cut short by the stemmer's view;
        # earlier words are complete, and their truncations would only add noise and cost.
        shorter = _truncations(word) if position == len(words) else []
        if shorter:
            parts.append("(to_tsquery('french', %s) || to_tsquery('simple', %s))")
            params.append(" | ".join(f"'{w}'" for w in shorter))
        else:
            parts.append("to_tsquery('french', %s)")
    return f"({' && '.join(parts)})", params


# Recency multiplier in ]0.5, 1]: fresh documents score up to twice as much as old ones,
# with a 30-day time constant. Bounded below by 0.5 so that relevance stays first: a
# title (weight A, 1.0) match still beats a description (weight B, 0.4) match of any age.
RECENCY_SQL = "(0.5 + 0.5 * exp(-greatest(extract(epoch FROM (now() - {created})), 0) / 2592000.0))"


def rank_sql(vector: str, created: str, tsquery_sql: str) -> str:
    """Score expression: ts_rank(vector, query) × recency(created)."""
    return f"(ts_rank({vector}, {tsquery_sql}) * {RECENCY_SQL.format(created=created)})"


_COLUMN = re.compile(r'^(?:"?[A-Za-z_][A-Za-z0-9_]*"?\.)?"?[A-Za-z_][A-Za-z0-9_]*"?$')


def _column(name: str) -> str:
    """A column reference from code (`search_vector`, `"jobs"."search_vector"`), never input."""
    if not _COLUMN.match(name):
        raise ValueError(f"not a column reference: {name!r}")
    return name


def search_matches(text: str, *, vector: str = "search_vector") -> RawSQL:
    """Boolean expression for QuerySet.filter(): `vector @@ <tsquery of text>`.

    Qualify `vector` (e.g. `'"jobs"."search_vector"'`) when the query joins another
    table with a search_vector column.
    """
    sql, params = build_tsquery(text)
    # Only column names checked by _column() and the builder's constant SQL are interpolated.
    return RawSQL(f"{_column(vector)} @@ {sql}", params, output_field=BooleanField())  # noqa: S611


def search_rank(text: str, *, vector: str = "search_vector", created: str = "created_at") -> RawSQL:
    """Float expression for annotate()/order_by(): ts_rank × recency."""
    sql, params = build_tsquery(text)
    return RawSQL(rank_sql(_column(vector), _column(created), sql), params, output_field=FloatField())  # noqa: S611
