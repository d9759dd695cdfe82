"""Semantic matching (issue 15): stored embeddings, the worker that keeps them, the hybrid ranking.

Writes (worker side)
    A job's text (title, description, required skills) or a profile's (headline, job
    title, summary, skills) changes → the write path calls `job_text_changed` /
    `candidate_text_changed`, which queue `matching.jobs.embed(kind, ids)` on commit
    (`emploiplus.effects.enqueue`) only when one of those fields really changed. The
    worker (`embed`) loads the rows, composes their texts, skips those whose
    `source_hash` (sha256 of model + text) is unchanged, runs the others through the model
    in one batch and upserts the vectors in one statement; new skill names get their own
    vectors (explanations). Nothing in a request waits for the model. A lost job is
    caught by `embed_sweep` (cron): rows missing a vector or changed since it was computed.
    `embed_backfill` (manage.py semantic_backfill) does everything, in batches.

Reads (API side)
    `job_ranked_candidates` / `candidate_ranked_jobs`: the CONTRACT §7 matches (the
    matcher of matching.selectors, unchanged) ∪ the nearest profiles / jobs by cosine
    (HNSW index) whose semantic_score reaches SEMANTIC_MIN_SCORE, each with its §7 score
    (the same SQL functions), its semantic_score and
        hybrid = (w_rules · score + w_semantic · semantic_score) / (w_rules + w_semantic)
    ranked in SQL, plus what explains it (matched / missing skills, and for a missing
    required skill the closest skill of the profile by embedding).

Availability: only where the database has pgvector (see matching.semantic_sql).
`status()` says whether it is on and why not; everything here is a no-op (writes) or a
clear `semantic_unavailable` answer (reads) when it is off.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from matching import embeddings, selectors

logger = logging.getLogger(__name__)

KIND_JOB, KIND_CANDIDATE = "job", "candidate"
# Fields whose change changes the embedded text (and only those).
JOB_TEXT_FIELDS = ("title", "description", "required_skills")
CANDIDATE_TEXT_FIELDS = ("headline", "job_title", "summary", "skills")
# A missing required skill is explained by a profile skill at least this close (cosine).
RELATED_SKILL_MIN_COSINE = 0.45
EMBED_BATCH = 128


# --- availability ---------------------------------------------------------------------


@dataclass(frozen=True)
class Status:
    enabled: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"enabled": self.enabled, "model": embeddings.MODEL_ID}
        if not self.enabled:
            body["reason"] = self.reason
        return body


_status_cache: dict[str, tuple[float, Status]] = {}
STATUS_TTL_SECONDS = 30.0


def reset_status_cache() -> None:
    _status_cache.clear()


def _probe() -> Status:
    if settings.SEMANTIC_MATCHING == "off":
        return Status(False, "disabled by SEMANTIC_MATCHING=off")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'vector'),
                   EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'vector'),
                   to_regclass('candidate_embeddings') IS NOT NULL AND to_regclass('job_embeddings') IS NOT NULL
                   AND to_regclass('skill_embeddings') IS NOT NULL
            """
        )
        available, installed, tables = cursor.fetchone()
    if not available:
        return Status(False, "the PostgreSQL server has no pgvector extension (vector); see docs/matching.md")
    if not installed:
        return Status(
            False,
            "pgvector is available but not installed: a superuser runs CREATE EXTENSION vector, "
            "then `python manage.py semantic_setup`",
        )
    if not tables:
        return Status(False, "the embedding tables are missing: run `python manage.py semantic_setup`")
    return Status(True)


def status() -> Status:
    """Is semantic matching on for this database, and if not, why (cached 30 s per process)."""
    key = f"{connection.settings_dict.get('HOST')}/{connection.settings_dict.get('NAME')}/{settings.SEMANTIC_MATCHING}"
    cached = _status_cache.get(key)
    now = time.monotonic()
    if cached and now - cached[0] < STATUS_TTL_SECONDS:
        return cached[1]
    result = _probe()
    _status_cache[key] = (now, result)
    return result


def enabled() -> bool:
    return status().enabled


def setup() -> Status:
    """Create the extension (if allowed) and the tables now (manage.py semantic_setup)."""
    from matching.semantic_sql import SCHEMA_SQL

    with connection.cursor() as cursor:
        cursor.execute(SCHEMA_SQL)
    reset_status_cache()
    return status()


# --- write path hooks (called by matching.services, the admin, the webhook job) ---------


def _values(source: Any, names: Sequence[str]) -> tuple[Any, ...]:
    def get(name: str) -> Any:
        value = source.get(name) if isinstance(source, dict) else getattr(source, name, None)
        if isinstance(value, list | tuple):
            # Skills: a set (the embedded text lists them sorted); empty = missing.
            return tuple(sorted(v for v in value if v)) or ""
        return value or ""

    return tuple(get(n) for n in names)


def text_changed(kind: str, before: Any, after: Any, *, present: Iterable[str] | None = None) -> bool:
    """Did a field of the embedded text change? `present` limits it to the fields a partial
    record carried (webhook). Skills are compared as sets of stored (normalised) names."""
    names = JOB_TEXT_FIELDS if kind == KIND_JOB else CANDIDATE_TEXT_FIELDS
    if present is not None:
        names = tuple(n for n in names if n in set(present))
    if before is None:
        return True
    return _values(before, names) != _values(after, names)


def queue_embedding(kind: str, ids: Sequence[UUID | str]) -> None:
    """Queue `matching.jobs.embed(kind, ids)` on commit (no-op when semantic matching is off)."""
    if not ids or not enabled():
        return
    from emploiplus import effects

    effects.enqueue(
        "matching.jobs.embed",
        kind,
        [str(i) for i in ids],
        queue="notifications",
        description=f"embed {len(ids)} {kind}(s)",
    )


def job_text_changed(*, before: Any, job: Any) -> bool:
    """Hook of every job write path: queue the re-embedding iff title/description/skills changed."""
    if text_changed(KIND_JOB, before, job):
        queue_embedding(KIND_JOB, [job.pk])
        return True
    return False


def candidate_text_changed(*, before: Any, candidate: Any) -> bool:
    """Hook of every profile write path: queue the re-embedding iff its text or skills changed."""
    if text_changed(KIND_CANDIDATE, before, candidate):
        queue_embedding(KIND_CANDIDATE, [candidate.pk])
        return True
    return False


def snapshot(kind: str, source: Any) -> dict[str, Any]:
    """The embedded fields of a row before a write (to compare after it)."""
    names = JOB_TEXT_FIELDS if kind == KIND_JOB else CANDIDATE_TEXT_FIELDS
    return dict(zip(names, _values(source, names), strict=True))


# --- the worker: compute and store ----------------------------------------------------

_SOURCES = {
    KIND_JOB: (
        "job_embeddings",
        "job_id",
        "SELECT id, title, description, required_skills, updated_at FROM jobs WHERE id = ANY (%s::uuid[])",
    ),
    KIND_CANDIDATE: (
        "candidate_embeddings",
        "candidate_id",
        "SELECT id, headline, job_title, summary, skills, updated_at FROM candidates WHERE id = ANY (%s::uuid[])",
    ),
}


def _text(kind: str, row: tuple) -> tuple[str, list[str]]:
    if kind == KIND_JOB:
        _id, title, description, skills, _updated = row
        return embeddings.job_text(title=title, description=description, required_skills=skills), list(skills or [])
    _id, headline, job_title, summary, skills, _updated = row
    text = embeddings.candidate_text(headline=headline, job_title=job_title, summary=summary, skills=skills)
    return text, list(skills or [])


@dataclass
class EmbedResult:
    embedded: int = 0
    unchanged: int = 0
    missing: int = 0
    skills_embedded: int = 0
    seconds: float = 0.0

    def add(self, other: EmbedResult) -> None:
        self.embedded += other.embedded
        self.unchanged += other.unchanged
        self.missing += other.missing
        self.skills_embedded += other.skills_embedded
        self.seconds += other.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "embedded": self.embedded,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "skills_embedded": self.skills_embedded,
            "seconds": round(self.seconds, 3),
        }


def embed(*, kind: str, ids: Sequence[UUID | str]) -> EmbedResult:
    """Bring the stored vectors of these jobs / profiles up to date (worker side, idempotent).

    Rows whose text hash is unchanged are not sent through the model (their
    `source_updated_at` moves, so the sweep stops looking at them). Concurrent runs for the
    same row: the upsert keeps one; both computed the same text's vector.
    """
    started = time.perf_counter()
    result = EmbedResult()
    if kind not in _SOURCES:
        raise ValueError(f"unknown kind {kind!r}")
    if not ids or not enabled():
        return result
    table, key, select = _SOURCES[kind]
    ids = [str(i) for i in dict.fromkeys(str(i) for i in ids)]
    with connection.cursor() as cursor:
        cursor.execute(select, [ids])
        rows = cursor.fetchall()
        cursor.execute(f"SELECT {key}, source_hash FROM {table} WHERE {key} = ANY (%s::uuid[])", [ids])
        stored = {str(k): h for k, h in cursor.fetchall()}
    result.missing = len(ids) - len(rows)
    todo: list[tuple[str, str, str, Any]] = []  # (id, text, hash, updated_at)
    touch: list[tuple[str, Any]] = []
    skills: set[str] = set()
    for row in rows:
        text, row_skills = _text(kind, row)
        skills.update(row_skills)
        digest = embeddings.source_hash(text)
        if stored.get(str(row[0])) == digest:
            touch.append((str(row[0]), row[-1]))
        else:
            todo.append((str(row[0]), text, digest, row[-1]))
    vectors = embeddings.encode([t[1] for t in todo]) if todo else []
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        if todo:
            cursor.execute(
                f"""
                INSERT INTO {table} ({key}, embedding, source_hash, source_updated_at, model, embedded_at)
                SELECT u.id, u.embedding::vector, u.hash, u.updated_at, %s, %s
                FROM unnest(%s::uuid[], %s::text[], %s::text[], %s::timestamptz[])
                     AS u (id, embedding, hash, updated_at)
                ON CONFLICT ({key}) DO UPDATE SET
                    embedding = EXCLUDED.embedding, source_hash = EXCLUDED.source_hash,
                    source_updated_at = EXCLUDED.source_updated_at, model = EXCLUDED.model,
                    embedded_at = EXCLUDED.embedded_at
                """,
                [
                    embeddings.MODEL_ID,
                    now,
                    [t[0] for t in todo],
                    [embeddings.to_pg(v) for v in vectors],
                    [t[2] for t in todo],
                    [t[3] for t in todo],
                ],
            )
        if touch:
            cursor.execute(
                f"""
                UPDATE {table} AS e SET source_updated_at = u.updated_at
                FROM unnest(%s::uuid[], %s::timestamptz[]) AS u (id, updated_at)
                WHERE e.{key} = u.id AND e.source_updated_at IS DISTINCT FROM u.updated_at
                """,
                [[t[0] for t in touch], [t[1] for t in touch]],
            )
    result.embedded = len(todo)
    result.unchanged = len(touch)
    result.skills_embedded = embed_skills(skills)
    result.seconds = time.perf_counter() - started
    return result


def embed_skills(names: Iterable[str]) -> int:
    """Vectors for the skill names that have none yet (for this model). Returns how many."""
    names = sorted({n for n in names if n})
    if not names:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM skill_embeddings WHERE name = ANY (%s::text[]) AND model = %s",
            [names, embeddings.MODEL_ID],
        )
        have = {r[0] for r in cursor.fetchall()}
        todo = [n for n in names if n not in have]
        if not todo:
            return 0
        vectors = embeddings.encode(todo)
        cursor.execute(
            """
            INSERT INTO skill_embeddings (name, embedding, model)
            SELECT u.name, u.embedding::vector, %s FROM unnest(%s::text[], %s::text[]) AS u (name, embedding)
            ON CONFLICT (name) DO UPDATE SET embedding = EXCLUDED.embedding, model = EXCLUDED.model
            """,
            [embeddings.MODEL_ID, todo, [embeddings.to_pg(v) for v in vectors]],
        )
    return len(todo)


# Rows whose vector is missing, from another model, or older than their last change.
_STALE = {
    KIND_JOB: """
        SELECT j.id FROM jobs AS j LEFT JOIN job_embeddings AS e ON e.job_id = j.id
        WHERE j.deleted_at IS NULL
          AND (e.job_id IS NULL OR e.model <> %(model)s OR j.updated_at > e.source_updated_at)
        ORDER BY j.id LIMIT %(limit)s
    """,
    KIND_CANDIDATE: """
        SELECT c.id FROM candidates AS c LEFT JOIN candidate_embeddings AS e ON e.candidate_id = c.id
        WHERE c.deleted_at IS NULL
          AND (e.candidate_id IS NULL OR e.model <> %(model)s OR c.updated_at > e.source_updated_at)
        ORDER BY c.id LIMIT %(limit)s
    """,
}


def stale_ids(kind: str, *, limit: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(_STALE[kind], {"model": embeddings.MODEL_ID, "limit": limit})
        return [str(r[0]) for r in cursor.fetchall()]


def embed_sweep(*, limit: int = 2000) -> dict[str, Any]:
    """Cron: rows whose embedding job was lost (Redis emptied, dead worker, a write behind our
    back) — up to `limit` per kind per run, in batches."""
    if not enabled():
        return {"skipped": status().reason}
    done: dict[str, Any] = {}
    for kind in (KIND_JOB, KIND_CANDIDATE):
        total = EmbedResult()
        ids = stale_ids(kind, limit=limit)
        for start in range(0, len(ids), EMBED_BATCH):
            total.add(embed(kind=kind, ids=ids[start : start + EMBED_BATCH]))
        done[kind] = total.as_dict()
    if any(d["embedded"] for d in done.values()):
        logger.info("embedding sweep: %s", done)
    return done


def embed_backfill(*, batch_size: int = EMBED_BATCH, progress: Any = None) -> dict[str, EmbedResult]:
    """Every job and profile (manage.py semantic_backfill): batches in primary-key order;
    rows already current cost a hash, not a model call. `progress(kind, done, total)`."""
    results = {}
    for kind, table in ((KIND_JOB, "jobs"), (KIND_CANDIDATE, "candidates")):
        total = EmbedResult()
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table} WHERE deleted_at IS NULL")
            (count,) = cursor.fetchone()
        last = None
        seen = 0
        while True:
            with connection.cursor() as cursor:
                cursor.execute(
                    f"SELECT id FROM {table} WHERE deleted_at IS NULL AND (%s::uuid IS NULL OR id > %s::uuid) "
                    "ORDER BY id LIMIT %s",
                    [last, last, batch_size],
                )
                ids = [str(r[0]) for r in cursor.fetchall()]
            if not ids:
                break
            total.add(embed(kind=kind, ids=ids))
            seen += len(ids)
            last = ids[-1]
            if progress is not None:
                progress(kind, seen, count)
        results[kind] = total
    return results


# --- scores ---------------------------------------------------------------------------


def weights() -> tuple[float, float]:
    return float(settings.MATCH_HYBRID_RULES_WEIGHT), float(settings.MATCH_HYBRID_SEMANTIC_WEIGHT)


def hybrid_score(score: float, semantic_score: float | None) -> float:
    """The hybrid of a §7 score and a semantic_score (both 0–100); §7 alone without a vector."""
    if semantic_score is None:
        return round(float(score), 1)
    w_rules, w_semantic = (Decimal(repr(w)) for w in weights())
    value = (w_rules * Decimal(str(score)) + w_semantic * Decimal(str(semantic_score))) / (w_rules + w_semantic)
    return float(value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))  # as SQL's round(numeric, 1)


def min_cosine() -> float:
    """The cosine whose semantic_score is SEMANTIC_MIN_SCORE (the inverse calibration)."""
    low, high = embeddings.CALIBRATION
    return low + (high - low) * max(0.0, min(100.0, float(settings.SEMANTIC_MIN_SCORE))) / 100.0


# semantic_score and hybrid in SQL (the same formulas as cosine_to_score / hybrid_score).
# (greatest/least ignore NULLs: a missing vector must stay NULL, hence the CASE.)
_SEMANTIC_SQL = (
    "CASE WHEN {cos} IS NOT NULL THEN "
    "round((100 * least(1, greatest(0, ({cos} - %(cal_low)s) / (%(cal_high)s - %(cal_low)s))))::numeric, 1) END"
)
_HYBRID_SQL = (
    "round(((%(w_rules)s * {score} + %(w_semantic)s * coalesce({semantic}, {score})) "
    "/ (%(w_rules)s + %(w_semantic)s))::numeric, 1)"
)


def _score_params() -> dict[str, Any]:
    w_rules, w_semantic = weights()
    low, high = embeddings.CALIBRATION
    return {
        "w_rules": w_rules,
        "w_semantic": w_semantic,
        "cal_low": low,
        "cal_high": high,
        "min_cosine": min_cosine(),
        "neighbours": int(settings.SEMANTIC_NEIGHBOURS),
    }


@dataclass
class Ranked:
    """One hybrid result: the §7 breakdown, the semantic score, the hybrid, the explanation."""

    candidate_id: UUID
    job_id: UUID
    score: float
    skill_score: float
    experience_score: float
    salary_score: float
    matched_skills: list[str]
    missing_skills: list[str]
    notifications_enabled: bool
    cosine: float | None
    semantic_score: float | None
    hybrid_score: float
    found_by: list[str]
    related_skills: list[dict[str, Any]] = field(default_factory=list)

    def breakdown(self) -> dict[str, Any]:
        return {
            "score": self.score,
            "skill_score": self.skill_score,
            "experience_score": self.experience_score,
            "salary_score": self.salary_score,
            "matched_skills": self.matched_skills,
            "missing_skills": self.missing_skills,
            "semantic_score": self.semantic_score,
            "hybrid_score": self.hybrid_score,
            "found_by": self.found_by,
            "related_skills": self.related_skills,
        }


# Job → profiles. `rules` is the §7 matcher (matching.selectors.job_match_query, unchanged);
# `near` reads the HNSW index (ORDER BY distance to the job's vector LIMIT n); the profiles
# only `near` found get their §7 parts from the same SQL functions as the view.
_JOB_HYBRID = """
WITH rules AS MATERIALIZED ({rules}),
near AS MATERIALIZED (
    SELECT e.candidate_id, e.embedding <=> (SELECT embedding FROM job_embeddings WHERE job_id = %(job_id)s::uuid)
           AS distance
    FROM candidate_embeddings AS e
    ORDER BY distance
    LIMIT %(neighbours)s
),
extra AS MATERIALIZED (
    SELECT c.candidate_id, %(job_id)s::uuid AS job_id,
           match_overall_score(p.skill, p.experience, p.salary) AS score,
           round(p.skill, 1) AS skill_score, p.experience AS experience_score, p.salary AS salary_score,
           match_matched_skills(t.skills, %(skills)s::text[]) AS matched_skills,
           match_missing_skills(t.skills, %(skills)s::text[]) AS missing_skills,
           c.notifications_enabled
    FROM near AS n
    JOIN candidate_match_profiles AS c ON c.candidate_id = n.candidate_id
    JOIN candidates AS t ON t.id = n.candidate_id
    CROSS JOIN LATERAL (
        SELECT match_skill_score(t.skills, %(skills)s::text[]) AS skill,
               match_experience_score(c.experience_level, %(level)s::text) AS experience,
               match_salary_score(c.target_salary_min, %(salary_min)s::integer, %(salary_max)s::integer) AS salary
        OFFSET 0
    ) AS p
    WHERE 1 - n.distance >= %(min_cosine)s
      -- NOT IN, not NOT EXISTS: a hashed subplan (the CTE's row estimate is 1, and an anti
      -- join planned on it loops over every rule match for every neighbour). Ids are NOT NULL.
      AND n.candidate_id NOT IN (SELECT r.candidate_id FROM rules AS r)
),
pool AS (
    SELECT r.*, true AS by_rules FROM rules AS r
    UNION ALL
    SELECT x.*, false AS by_rules FROM extra AS x
),
scored AS (
    SELECT pool.*, s.cosine, s.semantic_score
    FROM pool
    LEFT JOIN LATERAL (
        SELECT 1 - (e.embedding <=> (SELECT embedding FROM job_embeddings WHERE job_id = %(job_id)s::uuid)) AS cosine
        FROM candidate_embeddings AS e WHERE e.candidate_id = pool.candidate_id
        OFFSET 0  -- one primary-key probe per pooled profile, never a scan of every vector
    ) AS c0 ON true
    CROSS JOIN LATERAL (SELECT c0.cosine, {semantic} AS semantic_score) AS s
)
SELECT candidate_id, job_id, score, skill_score, experience_score, salary_score, matched_skills, missing_skills,
       notifications_enabled, cosine, semantic_score, {hybrid} AS hybrid_score, by_rules
FROM scored
"""

# Profile → jobs: active jobs are few (thousands), the rules side is the §7 function form.
_CANDIDATE_HYBRID = """
WITH rules AS MATERIALIZED ({rules}),
me AS (SELECT embedding FROM candidate_embeddings WHERE candidate_id = %(candidate_id)s::uuid),
near AS MATERIALIZED (
    SELECT e.job_id, e.embedding <=> (SELECT embedding FROM me) AS distance
    FROM job_embeddings AS e
    JOIN jobs AS j ON j.id = e.job_id AND j.status = 'active' AND j.deleted_at IS NULL
    ORDER BY distance
    LIMIT %(neighbours)s
),
extra AS MATERIALIZED (
    SELECT %(candidate_id)s::uuid AS candidate_id, j.id AS job_id,
           match_overall_score(p.skill, p.experience, p.salary) AS score,
           round(p.skill, 1) AS skill_score, p.experience AS experience_score, p.salary AS salary_score,
           match_matched_skills(%(skills)s::text[], j.required_skills) AS matched_skills,
           match_missing_skills(%(skills)s::text[], j.required_skills) AS missing_skills,
           %(notifications_enabled)s AS notifications_enabled
    FROM near AS n
    JOIN jobs AS j ON j.id = n.job_id
    CROSS JOIN LATERAL (
        SELECT match_skill_score(%(skills)s::text[], j.required_skills) AS skill,
               match_experience_score(%(level)s::text, j.experience_level) AS experience,
               match_salary_score(%(salary_min)s::integer, j.salary_min, j.salary_max) AS salary
        OFFSET 0
    ) AS p
    WHERE 1 - n.distance >= %(min_cosine)s
      AND n.job_id NOT IN (SELECT r.job_id FROM rules AS r)
),
pool AS (
    SELECT r.*, true AS by_rules FROM rules AS r
    UNION ALL
    SELECT x.*, false AS by_rules FROM extra AS x
),
scored AS (
    SELECT pool.*, s.cosine, s.semantic_score
    FROM pool
    LEFT JOIN LATERAL (
        SELECT 1 - (e.embedding <=> (SELECT embedding FROM me)) AS cosine
        FROM job_embeddings AS e WHERE e.job_id = pool.job_id
        OFFSET 0
    ) AS c0 ON true
    CROSS JOIN LATERAL (SELECT c0.cosine, {semantic} AS semantic_score) AS s
)
SELECT candidate_id, job_id, score, skill_score, experience_score, salary_score, matched_skills, missing_skills,
       notifications_enabled, cosine, semantic_score, {hybrid} AS hybrid_score, by_rules
FROM scored
"""


def _ranked_sql(template: str, rules: str) -> str:
    semantic = _SEMANTIC_SQL.format(cos="c0.cosine")
    return template.format(
        rules=rules, semantic=semantic, hybrid=_HYBRID_SQL.format(score="score", semantic="semantic_score")
    )


def _to_ranked(row: tuple) -> Ranked:
    (cid, jid, score, skill, exp, sal, matched, missing, notif, cosine, semantic, hybrid, by_rules) = row
    found = ["skills"] if by_rules else []
    if semantic is not None and (not by_rules or float(semantic) >= float(settings.SEMANTIC_MIN_SCORE)):
        found.append("semantic")
    return Ranked(
        candidate_id=cid,
        job_id=jid,
        score=float(score),
        skill_score=float(skill),
        experience_score=float(exp),
        salary_score=float(sal),
        matched_skills=list(matched or []),
        missing_skills=list(missing or []),
        notifications_enabled=bool(notif),
        cosine=None if cosine is None else round(float(cosine), 4),
        semantic_score=None if semantic is None else float(semantic),
        hybrid_score=float(hybrid),
        found_by=found,
    )


def _run_ranked(sql: str, params: dict[str, Any], *, order: str, limit: int | None, offset: int) -> list[Ranked]:
    sql = f"SELECT * FROM ({sql}) AS ranked ORDER BY {order}"
    if limit is not None:
        sql += " LIMIT %(limit)s OFFSET %(offset)s"
        params = {**params, "limit": limit, "offset": offset}
    with selectors.matching_cursor() as cursor:
        # The HNSW scan's breadth (recall; measured in bench/bench_semantic.py). Iterative
        # scans (pgvector ≥ 0.8) keep reading the index when the active-jobs join filters.
        cursor.execute("SELECT set_config('hnsw.ef_search', %s, true)", [str(int(settings.SEMANTIC_EF_SEARCH))])
        cursor.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
        cursor.execute(sql, params)
        return [_to_ranked(row) for row in cursor.fetchall()]


def job_ranked_candidates(*, job: Any, limit: int | None = None, offset: int = 0) -> list[Ranked]:
    """Profiles for `job`, hybrid-ranked (see the module docstring). [] for an inactive job."""
    from matching.models import JobStatus

    if job.status != JobStatus.ACTIVE or job.deleted_at is not None:
        return []
    rules, params = selectors.job_match_query(job)
    params = {**params, **_score_params()}
    return _run_ranked(
        _ranked_sql(_JOB_HYBRID, rules),
        params,
        order="hybrid_score DESC, score DESC, candidate_id",
        limit=limit,
        offset=offset,
    )


def candidate_ranked_jobs(*, candidate: Any, limit: int | None = None, offset: int = 0) -> list[Ranked]:
    """Active jobs for `candidate`, hybrid-ranked. [] for an inactive profile."""
    if not candidate.is_active or candidate.deleted_at is not None:
        return []
    rules = selectors.jobs_for_candidate_sql(prefilter=selectors.prefilter_is_exact())
    params = {**selectors.candidate_match_params(candidate), **_score_params()}
    return _run_ranked(
        _ranked_sql(_CANDIDATE_HYBRID, rules),
        params,
        order="hybrid_score DESC, score DESC, job_id",
        limit=limit,
        offset=offset,
    )


def has_embedding(kind: str, pk: UUID | str) -> bool:
    table, key, _ = _SOURCES[kind]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE {key} = %s", [str(pk)])
        return cursor.fetchone() is not None


# --- explanations ---------------------------------------------------------------------


def explain(results: list[Ranked], *, profile_skills: dict[Any, list[str]], job_skills: dict[Any, list[str]]) -> None:
    """Fill `related_skills` of each result: for each missing required skill, the profile's
    closest skill by embedding (cosine ≥ RELATED_SKILL_MIN_COSINE), best first. One query."""
    pairs: list[tuple[int, str, str]] = []
    for index, result in enumerate(results):
        mine = [s for s in profile_skills.get(result.candidate_id, []) if s]
        for required in result.missing_skills:
            pairs.extend((index, required, skill) for skill in mine if skill != required)
    if not pairs:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT p.i, p.required, p.skill, 1 - (a.embedding <=> b.embedding) AS cosine
            FROM unnest(%s::int[], %s::text[], %s::text[]) AS p (i, required, skill)
            JOIN skill_embeddings AS a ON a.name = p.required
            JOIN skill_embeddings AS b ON b.name = p.skill
            """,
            [[p[0] for p in pairs], [p[1] for p in pairs], [p[2] for p in pairs]],
        )
        rows = cursor.fetchall()
    best: dict[tuple[int, str], tuple[str, float]] = {}
    for index, required, skill, cosine in rows:
        if cosine >= RELATED_SKILL_MIN_COSINE and cosine > best.get((index, required), ("", -1.0))[1]:
            best[(index, required)] = (skill, cosine)
    for (index, required), (skill, cosine) in sorted(best.items(), key=lambda kv: -kv[1][1]):
        results[index].related_skills.append(
            {"required": required, "closest": skill, "similarity": round(float(cosine), 3)}
        )


# --- hybrid notifications (MATCH_HYBRID_NOTIFY) ---------------------------------------


def hybrid_notifications_on() -> bool:
    return bool(settings.MATCH_HYBRID_NOTIFY) and enabled()


_UPSERT_HYBRID = """
INSERT INTO candidate_job_matches AS m
    (id, candidate_id, job_id, match_score, skill_score, experience_score, salary_score,
     matched_skills, missing_skills, semantic_score, hybrid_score, created_at, updated_at)
SELECT gen_random_uuid(), u.candidate_id, %(job_id)s::uuid, u.score, u.skill_score, u.experience_score,
       u.salary_score, u.matched, u.missing, u.semantic, u.hybrid, now(), now()
FROM jsonb_to_recordset(%(rows)s::jsonb) AS u (
    candidate_id uuid, score numeric, skill_score numeric, experience_score numeric, salary_score numeric,
    matched text[], missing text[], semantic numeric, hybrid numeric)
ON CONFLICT (candidate_id, job_id) DO UPDATE SET
    semantic_score = EXCLUDED.semantic_score, hybrid_score = EXCLUDED.hybrid_score
"""

_CLAIM_HYBRID = """
UPDATE candidate_job_matches AS m SET notified_at = now()
FROM candidates AS c, users AS u
WHERE m.job_id = %(job_id)s::uuid AND m.candidate_id = ANY (%(ids)s::uuid[]) AND m.notified_at IS NULL
  AND c.id = m.candidate_id AND u.id = c.id
  AND c.notifications_enabled AND c.is_active AND c.deleted_at IS NULL AND u.is_active
RETURNING m.candidate_id, m.hybrid_score
"""


def job_claim_hybrid(*, job: Any) -> list[tuple[UUID, Any]]:
    """Inside job_match_and_notify's transaction, after the §7 claim: profiles the skill
    rules did not qualify (§7 < MATCH_MIN_SCORE) whose hybrid score reaches
    MATCH_HYBRID_MIN_SCORE get a match row and are claimed for notification (once, like
    the others). Returns (candidate_id, hybrid_score) of the claimed ones."""
    import json

    if not hybrid_notifications_on():
        return []
    embed(kind=KIND_JOB, ids=[job.pk])  # in the worker: make sure the job's vector is current
    threshold = float(settings.MATCH_HYBRID_MIN_SCORE)
    chosen = [
        r
        for r in job_ranked_candidates(job=job)
        if "skills" not in r.found_by and r.semantic_score is not None and r.hybrid_score >= threshold
    ]
    if not chosen:
        return []
    rows = [
        {
            "candidate_id": str(r.candidate_id),
            "score": r.score,
            "skill_score": r.skill_score,
            "experience_score": r.experience_score,
            "salary_score": r.salary_score,
            "matched": r.matched_skills,
            "missing": r.missing_skills,
            "semantic": r.semantic_score,
            "hybrid": r.hybrid_score,
        }
        for r in chosen
    ]
    with connection.cursor() as cursor:
        cursor.execute(_UPSERT_HYBRID, {"job_id": str(job.pk), "rows": json.dumps(rows)})
        cursor.execute(_CLAIM_HYBRID, {"job_id": str(job.pk), "ids": [str(r.candidate_id) for r in chosen]})
        return cursor.fetchall()
