"""Reads of matching: the SQL matcher (CONTRACT §7), job lists and lookups.

The score is never computed in Python: every query calls the `match_*` SQL functions
of matching migrations 0002/0004/0005, the same ones `v_candidate_job_matches` uses, so the
view, the webhook pipeline and the API agree by construction (tests check it on random
pairs). Job → candidates reads the narrow, trigger-kept `candidate_match_profiles` and has
fast forms (`job_match_query`, see `_MASK_CANDIDATES_FOR_JOB`): the common skills found with
integer-array operators, everything else looked up per combination.

Why the `&&` (overlap) prefilter is exact — and when it is dropped
    A pair with no skill in common scores skill = 0, so at most
    0.5·0 + 0.3·100 + 0.2·100 = 50. With MATCH_MIN_SCORE > 50 (default 60) such a pair
    can never be notified, and `skill_ids && <the job's skill ids>` (answered by the
    GIN index) removes only pairs that could not match anyway. With MATCH_MIN_SCORE ≤ 50 a
    zero-overlap pair *can* qualify, so the prefilter is dropped and every eligible row is
    scored (a sequential scan). `prefilter_is_exact()` is that rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet

from accounts.models import Role, User
from emploiplus import pagination
from emploiplus.errors import ApplicationError, NotFound
from emploiplus.search import search_matches
from matching.models import Job, JobStatus
from matching.skills import skills_normalize

# Highest score a pair with no common skill can reach: 0.5·0 + 0.3·100 + 0.2·100.
MAX_SCORE_WITHOUT_SKILLS = 50.0


def min_score() -> float:
    return float(settings.MATCH_MIN_SCORE)


def prefilter_is_exact(threshold: float | None = None) -> bool:
    """True when no zero-overlap pair can reach the threshold (see the module docstring)."""
    return (min_score() if threshold is None else threshold) > MAX_SCORE_WITHOUT_SKILLS


@dataclass(frozen=True)
class Match:
    candidate_id: UUID
    job_id: UUID
    score: Decimal
    skill_score: Decimal
    experience_score: Decimal
    salary_score: Decimal
    matched_skills: list[str]
    missing_skills: list[str]
    notifications_enabled: bool = True

    def breakdown(self) -> dict[str, Any]:
        return {
            "score": float(self.score),
            "skill_score": float(self.skill_score),
            "experience_score": float(self.experience_score),
            "salary_score": float(self.salary_score),
            "matched_skills": self.matched_skills,
            "missing_skills": self.missing_skills,
        }


# --- job → candidates -----------------------------------------------------------------

# Every form reads `candidate_match_profiles` (matching migration 0007): one narrow row per
# eligible candidate (active, not deleted, account active), skills as integer ids from the
# `skills` dictionary, kept by triggers. No users probe, a third of the pages of `candidates`.
# The job's skills are passed as parameters (names and ids, see job_match_params), so the
# `&&` predicate compares the GIN-indexed column with a constant: a bitmap index scan.

# The per-row function form: match_skill_score / match_matched_skills … on every candidate
# row (the text skills come from `candidates`). Used when the prefilter is not exact
# (sequential scoring) or the job lists more than MAX_OVERLAP_SKILLS distinct skills.
_CANDIDATES_FOR_JOB = """
SELECT c.candidate_id,
       %(job_id)s::uuid AS job_id,
       match_overall_score(p.skill, p.experience, p.salary) AS score,
       round(p.skill, 1) AS skill_score,
       p.experience AS experience_score,
       p.salary AS salary_score,
       match_matched_skills(t.skills, %(skills)s::text[]) AS matched_skills,
       match_missing_skills(t.skills, %(skills)s::text[]) AS missing_skills,
       c.notifications_enabled
FROM candidate_match_profiles AS c
JOIN candidates AS t ON t.id = c.candidate_id
CROSS JOIN LATERAL (
    -- OFFSET 0 keeps this subquery from being flattened into the outer query, so each
    -- part is computed once per candidate (not once in WHERE and again in SELECT).
    SELECT match_skill_score(t.skills, %(skills)s::text[]) AS skill,
           match_experience_score(c.experience_level, %(level)s::text) AS experience,
           match_salary_score(c.target_salary_min, %(salary_min)s::integer, %(salary_max)s::integer) AS salary
    OFFSET 0
) AS p
WHERE match_overall_score(p.skill, p.experience, p.salary) >= %(min_score)s
  {prefilter}
"""

_PREFILTER_CANDIDATES = "AND c.skill_ids && %(skill_ids)s::integer[]"

# `combos` of the fast forms: every (overlap, experience, salary) combination scored once
# with the shared functions — match_skill_score_from_overlap (which match_skill_score ends
# with) and match_overall_score — keeping those ≥ threshold. The parts take 50 or 100 by
# definition (test_it_finds_every_experience_and_salary_part_in_the_fast_forms_combinations).
_SCORE_COMBOS = """
    CROSS JOIN (VALUES (50::numeric), (100::numeric)) AS e (experience)
    CROSS JOIN (VALUES (50::numeric), (100::numeric)) AS s (salary)
    CROSS JOIN LATERAL (
        SELECT match_skill_score_from_overlap({overlap}, %(required)s::integer) AS skill,
               match_overall_score(match_skill_score_from_overlap({overlap}, %(required)s::integer),
                                   e.experience, s.salary) AS score
    ) AS x
    WHERE x.score >= %(min_score)s
"""

# The mask form (the matcher for jobs listing ≤ MAX_MASK_SKILLS distinct skills, i.e.
# nearly all of them), measured in docs/matching.md:
# - one bitmap scan of idx_match_profiles_skills_gin for `skill_ids && job skill ids`
#   visits each candidate sharing a skill once;
# - per row only cheap operators: one `int[] @>` per distinct job skill, packed into a bit
#   mask (bit i = the i-th distinct skill), and the experience and salary parts (inlined
#   SQL functions);
# - everything else is looked up by one hash join on (mask, experience, salary): `combos`
#   enumerates the 2^k masks × 2 × 2 parts once, with the overlap (bits set), the score
#   (shared functions, see _SCORE_COMBOS), and matched / missing skills sorted like
#   match_matched_skills (PostgreSQL's collation). A row whose combination is below the
#   threshold is not in `combos`: the join is the threshold.
_MASK_CANDIDATES_FOR_JOB = (
    """
WITH combos AS MATERIALIZED (
    SELECT m.mask, e.experience, s.salary, x.score, round(x.skill, 1) AS skill_score,
           a.matched_skills, a.missing_skills
    FROM generate_series(0, (1 << %(required)s::integer) - 1) AS m (mask)
    CROSS JOIN LATERAL (
        SELECT count(*) FILTER (WHERE m.mask & (1 << (r.n::integer - 1)) <> 0)::integer AS overlap,
               coalesce(array_agg(r.s ORDER BY r.s) FILTER (WHERE m.mask & (1 << (r.n::integer - 1)) <> 0),
                        '{{}}') AS matched_skills,
               coalesce(array_agg(r.s ORDER BY r.s) FILTER (WHERE m.mask & (1 << (r.n::integer - 1)) = 0),
                        '{{}}') AS missing_skills
        FROM unnest(%(distinct_skills)s::text[]) WITH ORDINALITY AS r (s, n)
    ) AS a"""
    + _SCORE_COMBOS.format(overlap="a.overlap")
    + """)
SELECT c.candidate_id,
       %(job_id)s::uuid AS job_id,
       k.score, k.skill_score, k.experience AS experience_score, k.salary AS salary_score,
       k.matched_skills, k.missing_skills,
       c.notifications_enabled
FROM candidate_match_profiles AS c
JOIN combos AS k ON k.mask = {mask} AND k.experience = {experience} AND k.salary = {salary}
WHERE c.skill_ids && %(skill_ids)s::integer[]
"""
)

# The overlap form, for jobs with MAX_MASK_SKILLS < k ≤ MAX_OVERLAP_SKILLS distinct skills
# (2^k masks would be too many to enumerate): `combos` per (overlap 0…k, experience,
# salary); the rows ≥ threshold are materialised with their mask, and matched / missing
# skills are built once per *distinct* mask that occurs.
_OVERLAP_CANDIDATES_FOR_JOB = (
    """
WITH combos AS MATERIALIZED (
    SELECT o.overlap, e.experience, s.salary, x.score, round(x.skill, 1) AS skill_score
    FROM generate_series(0, %(required)s::integer) AS o (overlap)"""
    + _SCORE_COMBOS.format(overlap="o.overlap")
    + """),
fit AS MATERIALIZED (
    SELECT c.candidate_id, c.notifications_enabled, {mask} AS mask,
           k.score, k.skill_score, k.experience AS experience_score, k.salary AS salary_score
    FROM candidate_match_profiles AS c
    JOIN combos AS k ON k.overlap = {overlap} AND k.experience = {experience} AND k.salary = {salary}
    WHERE c.skill_ids && %(skill_ids)s::integer[]
),
fit_masks AS MATERIALIZED (
    SELECT m.mask,
           ARRAY(SELECT r.s FROM unnest(%(distinct_skills)s::text[]) WITH ORDINALITY AS r (s, n)
                 WHERE m.mask & (1::bigint << (r.n::integer - 1)) <> 0 ORDER BY r.s) AS matched_skills,
           ARRAY(SELECT r.s FROM unnest(%(distinct_skills)s::text[]) WITH ORDINALITY AS r (s, n)
                 WHERE m.mask & (1::bigint << (r.n::integer - 1)) = 0 ORDER BY r.s) AS missing_skills
    FROM (SELECT DISTINCT mask FROM fit) AS m
)
SELECT c.candidate_id,
       %(job_id)s::uuid AS job_id,
       c.score, c.skill_score, c.experience_score, c.salary_score,
       k.matched_skills, k.missing_skills,
       c.notifications_enabled
FROM fit AS c
JOIN fit_masks AS k ON k.mask = c.mask
"""
)
_EXPERIENCE = "match_experience_score(c.experience_level, %(level)s::text)"
_SALARY = "match_salary_score(c.target_salary_min, %(salary_min)s::integer, %(salary_max)s::integer)"

# Jobs with up to this many distinct skills use the mask form (2^k × 4 combinations).
MAX_MASK_SKILLS = 8
# Bits of a bigint mask: jobs listing more distinct skills use the per-row functions.
MAX_OVERLAP_SKILLS = 62

FORM_MASK, FORM_OVERLAP, FORM_FUNCTIONS = "mask", "overlap", "functions"


def distinct_skills(skills: list[str] | None) -> list[str]:
    """The job's distinct, non-NULL skills in first-seen order (the functions' `total`).

    Text equality in PostgreSQL (deterministic collation) is byte equality, so Python's
    de-duplication counts exactly what match_skill_score counts."""
    return list(dict.fromkeys(s for s in (skills or []) if s is not None))


def job_match_form(skills: list[str] | None, *, prefilter: bool) -> str:
    """Which query text matches a job with these required skills (see the forms above)."""
    count = len(distinct_skills(skills))
    if not prefilter or skills is None or count > MAX_OVERLAP_SKILLS:
        return FORM_FUNCTIONS
    return FORM_MASK if count <= MAX_MASK_SKILLS else FORM_OVERLAP


def candidates_for_job_sql(*, prefilter: bool, skills: list[str] | None = None, form: str | None = None) -> str:
    """The job → candidates query text.

    With `skills` (the job's required skills) and the prefilter, a fast form (one
    containment operator per distinct skill, so the text depends on their number);
    otherwise the per-row function form (sequential scoring when `prefilter` is False).
    `form` forces a form the job's skills allow (tests and benchmarks compare them).
    Parameters: job_match_params(job)."""
    form = form or job_match_form(skills, prefilter=prefilter)
    if form == FORM_FUNCTIONS:
        return _CANDIDATES_FOR_JOB.format(prefilter=_PREFILTER_CANDIDATES if prefilter else "")
    width = "integer" if form == FORM_MASK else "bigint"
    terms = [f"(c.skill_ids @> ARRAY[%(k{i})s::integer])" for i in range(len(distinct_skills(skills)))]
    overlap = " + ".join(f"{t}::integer" for t in terms) or "0"
    mask = " | ".join(f"({t}::integer::{width} << {i})" for i, t in enumerate(terms)) or f"0::{width}"
    template = _MASK_CANDIDATES_FOR_JOB if form == FORM_MASK else _OVERLAP_CANDIDATES_FOR_JOB
    return template.format(overlap=f"({overlap})", mask=f"({mask})", experience=_EXPERIENCE, salary=_SALARY)


def skill_ids(names: list[str]) -> dict[str, int]:
    """name → id in the `skills` dictionary, for the names some candidate has (ever) had."""
    if not names:
        return {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, id FROM skills WHERE name = ANY (%s::text[])", [names])
        return dict(cursor.fetchall())


def job_match_params(job: Job, *, threshold: float | None = None) -> dict[str, Any]:
    skills = distinct_skills(job.required_skills)
    ids = skill_ids(skills)
    params: dict[str, Any] = {
        "job_id": str(job.id),
        "skills": list(job.required_skills or []),
        "distinct_skills": skills,
        # A name no candidate has is in no profile: it counts in `required`, never matches.
        "skill_ids": sorted(ids.values()),
        "required": len(skills),
        "level": job.experience_level or None,
        "salary_min": job.salary_min,
        "salary_max": job.salary_max,
        "min_score": min_score() if threshold is None else threshold,
    }
    if len(skills) <= MAX_OVERLAP_SKILLS:
        params.update({f"k{i}": ids.get(skill, 0) for i, skill in enumerate(skills)})  # ids start at 1
    return params


def job_match_query(
    job: Job, *, threshold: float | None = None, prefilter: bool | None = None
) -> tuple[str, dict[str, Any]]:
    """(sql, params) matching `job`: a fast form when the prefilter is exact."""
    threshold = min_score() if threshold is None else threshold
    if prefilter is None:
        prefilter = prefilter_is_exact(threshold)
    sql = candidates_for_job_sql(prefilter=prefilter, skills=list(job.required_skills or []))
    return sql, job_match_params(job, threshold=threshold)


@contextmanager
def matching_cursor() -> Iterator[Any]:
    """A cursor in a transaction with JIT off (the matcher's cost estimate crosses
    jit_above_cost at ~1M candidates, and compiling (~50 ms) costs more than it saves)
    and work_mem for the materialised matches."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        # The matcher materialises the rows ≥ threshold (~100 bytes each): at 1M candidates
        # (~37k matches) they overflow the default 4MB into temp files.
        cursor.execute("SET LOCAL work_mem = '32MB'")
        yield cursor


def _rows_to_matches(cursor) -> list[Match]:
    return [Match(*row) for row in cursor.fetchall()]


def candidates_matching_job(
    *,
    job: Job,
    threshold: float | None = None,
    prefilter: bool | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Match]:
    """Active, not deleted candidates scoring ≥ threshold for `job`, best first.

    `prefilter=None` uses the GIN `&&` prefilter exactly when it cannot lose a match.
    Opted-out candidates are included (flag `notifications_enabled`): they match, they
    are just not notified.
    """
    threshold = min_score() if threshold is None else threshold
    if prefilter is None:
        prefilter = prefilter_is_exact(threshold)
    if job.status != JobStatus.ACTIVE or job.deleted_at is not None:
        return []
    sql, params = job_match_query(job, threshold=threshold, prefilter=prefilter)
    sql += " ORDER BY score DESC, candidate_id"
    if limit is not None:
        sql += " LIMIT %(limit)s OFFSET %(offset)s"
        params.update(limit=limit, offset=offset)
    with matching_cursor() as cursor:
        cursor.execute(sql, params)
        return _rows_to_matches(cursor)


# --- candidate → jobs -----------------------------------------------------------------

_JOBS_FOR_CANDIDATE = """
SELECT %(candidate_id)s::uuid AS candidate_id,
       j.id AS job_id,
       match_overall_score(p.skill, p.experience, p.salary) AS score,
       round(p.skill, 1) AS skill_score,
       p.experience AS experience_score,
       p.salary AS salary_score,
       match_matched_skills(%(skills)s::text[], j.required_skills) AS matched_skills,
       match_missing_skills(%(skills)s::text[], j.required_skills) AS missing_skills,
       %(notifications_enabled)s AS notifications_enabled
FROM jobs AS j
CROSS JOIN LATERAL (
    SELECT match_skill_score(%(skills)s::text[], j.required_skills) AS skill,
           match_experience_score(%(level)s::text, j.experience_level) AS experience,
           match_salary_score(%(salary_min)s::integer, j.salary_min, j.salary_max) AS salary
    OFFSET 0
) AS p
WHERE j.status = 'active' AND j.deleted_at IS NULL
  {prefilter}
  AND match_overall_score(p.skill, p.experience, p.salary) >= %(min_score)s
"""

_PREFILTER_JOBS = "AND j.required_skills && %(skills)s::text[]"


def jobs_for_candidate_sql(*, prefilter: bool) -> str:
    return _JOBS_FOR_CANDIDATE.format(prefilter=_PREFILTER_JOBS if prefilter else "")


def candidate_match_params(candidate, *, threshold: float | None = None) -> dict[str, Any]:
    return {
        "candidate_id": str(candidate.pk),
        "skills": list(candidate.skills or []),
        "level": candidate.experience_level or None,
        "salary_min": candidate.target_salary_min,
        "notifications_enabled": bool(candidate.notifications_enabled),
        "min_score": min_score() if threshold is None else threshold,
    }


def jobs_matching_candidate(*, candidate, threshold: float | None = None, prefilter: bool | None = None) -> list[Match]:
    """Active jobs scoring ≥ threshold for `candidate`, best first ([] for an inactive candidate)."""
    threshold = min_score() if threshold is None else threshold
    if prefilter is None:
        prefilter = prefilter_is_exact(threshold)
    if not candidate.is_active or candidate.deleted_at is not None:
        return []
    sql = jobs_for_candidate_sql(prefilter=prefilter) + " ORDER BY score DESC, j.created_at DESC, j.id"
    with matching_cursor() as cursor:
        cursor.execute(sql, candidate_match_params(candidate, threshold=threshold))
        return _rows_to_matches(cursor)


# --- jobs: visibility, lookups, list --------------------------------------------------


def job_can_edit(*, job: Job, user: User | None) -> bool:
    if user is None or not user.is_authenticated:
        return False
    if user.role == Role.ADMIN:
        return True
    return user.role == Role.COMPANY and user.company_id is not None and user.company_id == job.company_id


def job_get_for_user(*, job_id: UUID | str, user: User | None) -> Job:
    """A job the caller may see: active ones for everyone, others for their company / admins."""
    job = Job.objects.select_related("company").filter(pk=job_id, deleted_at__isnull=True).first()
    if job is None:
        raise NotFound("Offre introuvable.")
    if job.status != JobStatus.ACTIVE and not job_can_edit(job=job, user=user):
        raise NotFound("Offre introuvable.")
    return job


def job_get_for_edit(*, job_id: UUID | str, user: User) -> Job:
    job = job_get_for_user(job_id=job_id, user=user)
    if not job_can_edit(job=job, user=user):
        from emploiplus.errors import Forbidden

        raise Forbidden("Seule l'entreprise qui publie l'offre peut la modifier.")
    return job


def job_list(
    *,
    user: User | None,
    q: str = "",
    location: str = "",
    skills: list[str] | None = None,
    job_types: list[str] | None = None,
    company_id: str | None = None,
    cursor: str | None = None,
    limit: int = 20,
) -> tuple[list[Job], str | None]:
    """Active jobs, newest first (keyset on created_at, id), filtered.

    q: French full text on search_vector, every word a prefix, accents ignored.
    location: accent- and case-insensitive substring. skills: any of (normalised).
    job_types: any of. company_id: one company (its users also see its drafts/closed).
    """
    qs: QuerySet[Job] = Job.objects.select_related("company").filter(deleted_at__isnull=True)
    own_company = (
        company_id
        and user is not None
        and (user.role == Role.ADMIN or (user.role == Role.COMPANY and str(user.company_id) == str(company_id)))
    )
    if company_id:
        qs = qs.filter(company_id=company_id)
    if not own_company:
        qs = qs.filter(status=JobStatus.ACTIVE)
    where: list[str] = []
    params: list[Any] = []
    if q:
        # The one French query builder of the API (emploiplus.search): prefixes, accents, safe input.
        try:
            qs = qs.filter(search_matches(q, vector='"jobs"."search_vector"'))
        except ApplicationError as exc:
            if exc.code != "query_too_short":
                raise
            return [], None  # nothing searchable in q (only operators or one letter)
    if location:
        where.append("f_unaccent(lower(jobs.location)) LIKE '%%' || f_unaccent(lower(%s)) || '%%'")
        params.append(location.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))
    if where:
        qs = qs.extra(where=where, params=params)  # noqa: S610 - constant SQL, values as parameters
    normalised = skills_normalize(skills or [])
    if normalised:
        qs = qs.filter(required_skills__overlap=normalised)
    if job_types:
        qs = qs.filter(job_type__in=job_types)
    return pagination.keyset_page(qs, list_name="jobs", cursor=cursor, limit=limit)
