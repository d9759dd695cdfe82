"""Skill normalisation: the one function every write path and the matcher use.

`skill_normalize("ReactJS")` → "react". Steps:
1. fold: Unicode NFKD, accents dropped, case-folded, whitespace collapsed;
   `_` and `-` are spacing variants ("machine-learning" = "machine learning");
2. alias lookup by *comparison key* (the folded text with everything but a–z, 0–9,
   `+` and `#` removed: "React.js", "react js", "REACT-JS" → "reactjs"), first in the
   alias table (`matching.SkillAlias`, editable in the admin), then among the
   canonical names themselves ("Postgre SQL" → key "postgresql" → "postgresql");
3. otherwise the folded text is the stored skill.

The alias map is cached in Redis (shared by every process) and for a few seconds in
process memory; saving or deleting an alias clears both (other processes see the
change within `LOCAL_TTL_SECONDS`). With Redis unreachable the map is read from the
database (and kept in memory as usual): normalisation, and so every write path, keeps
working; an alias change made meanwhile reaches the other processes when their Redis copy
expires (`CACHE_TTL_SECONDS`) — a warning says so.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import unicodedata
from collections.abc import Iterable

import redis
from django.core.cache import cache

log = logging.getLogger(__name__)

CACHE_KEY = "matching:skill_aliases:v1"
CACHE_TTL_SECONDS = 3600
LOCAL_TTL_SECONDS = 10
MAX_SKILL_LENGTH = 100

_SPACING = re.compile(r"[\s_\-]+")
_TRIM = re.compile(r"^[\s,;:'\"`]+|[\s,;:'\"`]+$")
_NOT_KEY = re.compile(r"[^a-z0-9+#]")

_local: dict[str, object] = {"at": 0.0, "map": None}


def fold(raw: str) -> str:
    """Accents dropped, case-folded, spacing variants unified, outer punctuation trimmed."""
    text = unicodedata.normalize("NFKD", str(raw))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = _SPACING.sub(" ", text)
    return _TRIM.sub("", text).strip()


def skill_key(raw: str) -> str:
    """The comparison key of a skill: folded, only a–z 0–9 + # kept ("Node.js" → "nodejs")."""
    return _NOT_KEY.sub("", fold(raw))


def _load_map() -> dict[str, str]:
    from matching.models import SkillAlias

    rows = list(SkillAlias.objects.values_list("alias", "canonical"))
    mapping: dict[str, str] = {}
    # Canonical names are their own aliases ("postgre sql" → "postgresql")…
    for _alias, canonical in rows:
        mapping.setdefault(skill_key(canonical), canonical)
    # …but an explicit alias always wins.
    for alias, canonical in rows:
        mapping[skill_key(alias)] = canonical
    return mapping


def alias_map() -> dict[str, str]:
    """comparison key → canonical skill. Cached (Redis, then a few seconds in memory)."""
    now = time.monotonic()
    cached = _local["map"]
    if cached is not None and now - float(_local["at"]) < LOCAL_TTL_SECONDS:
        return cached  # type: ignore[return-value]
    try:
        mapping = cache.get(CACHE_KEY)
    except (redis.RedisError, OSError):
        mapping = None  # Redis down: the database has the truth
    if mapping is None:
        mapping = _load_map()
        with contextlib.suppress(redis.RedisError, OSError):
            cache.set(CACHE_KEY, mapping, CACHE_TTL_SECONDS)
    _local.update(at=now, map=mapping)
    return mapping


def invalidate_cache() -> None:
    """Forget the alias map everywhere (called when an alias is saved or deleted)."""
    _local.update(at=0.0, map=None)
    try:
        cache.delete(CACHE_KEY)
    except (redis.RedisError, OSError) as exc:
        log.warning(
            "skill aliases: Redis unreachable (%s), other processes may use their cached aliases for up to %d s",
            type(exc).__name__,
            CACHE_TTL_SECONDS,
        )


def skill_normalize(raw: str, *, aliases: dict[str, str] | None = None) -> str:
    """The stored form of one skill ("" for a blank one)."""
    folded = fold(raw)[:MAX_SKILL_LENGTH]
    if not folded:
        return ""
    mapping = alias_map() if aliases is None else aliases
    key = _NOT_KEY.sub("", folded)
    return mapping.get(key) or mapping.get(folded) or folded


def skills_normalize(raw: Iterable[str] | str | None) -> list[str]:
    """Normalised, de-duplicated skills in first-seen order; blanks dropped.

    A string is split on commas (a form field or a CSV column).
    """
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = raw.split(",")
    aliases = alias_map()
    seen: dict[str, None] = {}
    for item in raw:
        if item is None:
            continue
        skill = skill_normalize(str(item), aliases=aliases)
        if skill:
            seen.setdefault(skill, None)
    return list(seen)


def same_skills(a: Iterable[str] | None, b: Iterable[str] | None) -> bool:
    """Set comparison after normalisation (order and duplicates do not matter)."""
    return set(skills_normalize(list(a or []))) == set(skills_normalize(list(b or [])))
