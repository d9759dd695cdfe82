"""Matching one new job against N candidates (issue 6), every variant in the same run on the
same data, interleaved:

- `mask form (the matcher)`: what matching.selectors runs for a job with ≤ 8 distinct
  skills — a bitmap scan of idx_match_profiles_skills_gin over the narrow, trigger-kept
  `candidate_match_profiles` (eligible candidates only, skills as integer ids), one
  `int[] @>` per job skill packed into a mask, and one hash join on (mask, experience,
  salary) against the 2^k × 4 pre-scored combinations. Measured consuming the rows in
  PostgreSQL (count(*) around it, as the pipeline's INSERT … SELECT does) and returning
  them to Python (the selector).
- `overlap form`: the form used for jobs with 9–62 skills, on the same job.
- `before: candidates heap + users probe`: the previous matcher (session 1), which read
  `candidates` (text skills, 3× the pages) and probed users.is_active per match.
- `per-row functions + GIN`: match_skill_score, match_matched_skills … per candidate.
- `sequential scoring (no prefilter)`: every eligible candidate scored with the functions.
Every variant's rows are checked equal (count, and every column for the functions form).

Data (generated here with INSERT … SELECT generate_series, in the bench database; rows
are tagged so a rerun at the same size reuses them):
- a vocabulary of 400 skills with skewed popularity (skill k drawn as floor(400·u²), so
  low k are common, like "javascript", and high k rare);
- N candidates with 3–8 skills each, a random level and a target salary (or none);
- one job requiring 4 skills of mid popularity, level mid, salary 40–50 k.

Sizes: 100,000 and 1,000,000 candidates at BENCH_SCALE=1 (targets: ≤ 20 ms and ≤ 150 ms
median). BENCH_SCALE=0.1 runs 10,000 and 100,000.
Samples: BENCH_MATCHING_SAMPLES (default 30) per variant; the sequential variant takes at
most 10 samples at ≥ 1M. `load` is the 1-minute load average when the size finished;
`profiles_mb` / `candidates_mb` the heap sizes the two readers scan.
"""

from __future__ import annotations

import os
import time

from django.db import connection

from bench.common import Result, summarize

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
SIZES = [int(100_000 * SCALE), int(1_000_000 * SCALE)]
SAMPLES = int(os.environ.get("BENCH_MATCHING_SAMPLES", "30"))
VOCABULARY = 400
TAG = "bench-matching"
JOB_SKILLS = ["skill-12", "skill-40", "skill-95", "skill-160"]

GENERATE = """
INSERT INTO users (id, password, is_superuser, email, full_name, avatar_url, role, is_active, is_staff,
                   created_at, updated_at)
SELECT gen_random_uuid(), '!', false, NULL, %(tag)s || '-' || g, '', 'candidate', true, false, now(), now()
FROM generate_series(%(start)s, %(stop)s) AS g;

INSERT INTO candidates (id, skills, experience_level, location, job_title, target_salary_min, target_salary_max,
                        notifications_enabled, is_active, created_at, updated_at)
SELECT u.id,
       ARRAY(SELECT DISTINCT 'skill-' || floor(%(vocab)s * power(random(), 2))::int
             FROM generate_series(1, 3 + (hashtext(u.id::text) & 5)) AS s),
       (ARRAY['entry', 'junior', 'mid', 'senior', 'lead'])[1 + floor(random() * 5)::int],
       'Paris', 'Dev',
       CASE WHEN random() < 0.3 THEN NULL ELSE 25000 + floor(random() * 40000)::int END,
       NULL, random() > 0.05, random() > 0.02, now(), now()
FROM users AS u
LEFT JOIN candidates AS c ON c.id = u.id
WHERE u.full_name LIKE %(tag)s || '-%%' AND c.id IS NULL;
"""


def _count() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM users WHERE full_name LIKE %s", [f"{TAG}-%"])
        return cursor.fetchone()[0]


def ensure_candidates(n: int) -> float:
    """Grow (or shrink) the tagged population to exactly n candidates; returns seconds spent."""
    have = _count()
    started = time.perf_counter()
    if have > n:  # a previous run left a bigger population
        with connection.cursor() as cursor:
            doomed = "SELECT id FROM users WHERE full_name LIKE %s AND split_part(full_name, '-', 3)::int > %s"
            cursor.execute(f"DELETE FROM candidates WHERE id IN ({doomed})", [f"{TAG}-%", n])
            cursor.execute(f"DELETE FROM users WHERE id IN ({doomed})", [f"{TAG}-%", n])
        have = _count()
    batch = 200_000
    while have < n:
        stop = min(n, have + batch)
        with connection.cursor() as cursor:
            cursor.execute(GENERATE, {"tag": TAG, "start": have + 1, "stop": stop, "vocab": VOCABULARY})
        have = stop
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE users")  # hint bits + visibility map, as in a settled database
        cursor.execute("VACUUM ANALYZE candidates")
        cursor.execute("VACUUM ANALYZE candidate_match_profiles")
    return time.perf_counter() - started


def _job():
    from accounts.models import Company
    from matching.models import Job

    company, _ = Company.objects.get_or_create(name=f"{TAG} company")
    job, _ = Job.objects.get_or_create(
        company=company,
        title=f"{TAG} job",
        defaults={
            "status": "active",
            "required_skills": JOB_SKILLS,
            "experience_level": "mid",
            "salary_min": 40000,
            "salary_max": 50000,
        },
    )
    return job


# The previous matcher (session 1), kept here to measure what the narrow table changed:
# the same overlap form, reading `candidates` and probing users.is_active per match.
BEFORE = """
WITH combos AS MATERIALIZED (
    SELECT o.overlap, e.experience, s.salary, x.score, round(x.skill, 1) AS skill_score
    FROM generate_series(0, %(required)s::integer) AS o (overlap)
    CROSS JOIN (VALUES (50::numeric), (100::numeric)) AS e (experience)
    CROSS JOIN (VALUES (50::numeric), (100::numeric)) AS s (salary)
    CROSS JOIN LATERAL (
        SELECT match_skill_score_from_overlap(o.overlap, %(required)s::integer) AS skill,
               match_overall_score(match_skill_score_from_overlap(o.overlap, %(required)s::integer),
                                   e.experience, s.salary) AS score
    ) AS x
    WHERE x.score >= %(min_score)s
),
fit AS MATERIALIZED (
    SELECT c.id, c.notifications_enabled, {mask} AS mask,
           k.score, k.skill_score, k.experience AS experience_score, k.salary AS salary_score
    FROM candidates AS c
    JOIN combos AS k ON k.overlap = {overlap}
     AND k.experience = match_experience_score(c.experience_level, %(level)s::text)
     AND k.salary = match_salary_score(c.target_salary_min, %(salary_min)s::integer, %(salary_max)s::integer)
    CROSS JOIN LATERAL (SELECT 1 FROM users AS u WHERE u.id = c.id AND u.is_active OFFSET 0) AS u
    WHERE c.is_active AND c.deleted_at IS NULL
      AND c.skills && %(skills)s::text[]
),
fit_masks AS MATERIALIZED (
    SELECT m.mask,
           ARRAY(SELECT r.s FROM unnest(%(distinct_skills)s::text[]) WITH ORDINALITY AS r (s, n)
                 WHERE m.mask & (1::bigint << (r.n::integer - 1)) <> 0 ORDER BY r.s) AS matched_skills,
           ARRAY(SELECT r.s FROM unnest(%(distinct_skills)s::text[]) WITH ORDINALITY AS r (s, n)
                 WHERE m.mask & (1::bigint << (r.n::integer - 1)) = 0 ORDER BY r.s) AS missing_skills
    FROM (SELECT DISTINCT mask FROM fit) AS m
)
SELECT c.id AS candidate_id, %(job_id)s::uuid AS job_id, c.score, c.skill_score, c.experience_score,
       c.salary_score, k.matched_skills, k.missing_skills, c.notifications_enabled
FROM fit AS c
JOIN fit_masks AS k ON k.mask = c.mask
"""


def _before_sql(skills: list[str]) -> str:
    terms = [f"(c.skills @> ARRAY[%(s{i})s::text])" for i in range(len(skills))]
    return BEFORE.format(
        overlap="(" + " + ".join(f"{t}::integer" for t in terms) + ")",
        mask="(" + " | ".join(f"({t}::integer::bigint << {i})" for i, t in enumerate(terms)) + ")",
    )


def _heap_mb(table: str) -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_relation_size(%s::regclass)", [table])
        return round(cursor.fetchone()[0] / 2**20, 1)


def run() -> list[Result]:
    from matching import selectors

    results: list[Result] = []
    job = _job()
    for n in sorted(SIZES):
        generated_s = ensure_candidates(n)
        size = f"{_count():,} candidates"
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM candidates WHERE skills && %s::text[]", [JOB_SKILLS])
            overlapping = cursor.fetchone()[0]
        fast_sql, params = selectors.job_match_query(job)
        assert selectors.job_match_form(JOB_SKILLS, prefilter=True) == selectors.FORM_MASK
        overlap_sql = selectors.candidates_for_job_sql(prefilter=True, skills=JOB_SKILLS, form=selectors.FORM_OVERLAP)
        functions_sql = selectors.candidates_for_job_sql(prefilter=True)  # without skills: the per-row functions
        sequential_sql = selectors.candidates_for_job_sql(prefilter=False)
        before_sql = _before_sql(selectors.distinct_skills(JOB_SKILLS))
        before_params = {**params, **{f"s{i}": s for i, s in enumerate(selectors.distinct_skills(JOB_SKILLS))}}

        def counted(sql, params=params):
            def call():
                with selectors.matching_cursor() as cursor:
                    cursor.execute(f"SELECT count(*) FROM ({sql}) AS m", params)
                    return cursor.fetchone()[0]

            return call

        def fetched(sql, params=params):
            def call():
                with selectors.matching_cursor() as cursor:
                    cursor.execute(sql + " ORDER BY score DESC, candidate_id", params)
                    return cursor.fetchall()

            return call

        variants = {
            "mask form (the matcher), in database": counted(fast_sql),
            "mask form (the matcher), rows to Python": lambda: selectors.candidates_matching_job(job=job),
            "overlap form (jobs with 9-62 skills), in database": counted(overlap_sql),
            "before: candidates heap + users probe, in database": counted(before_sql, before_params),
            "per-row functions + GIN, in database": counted(functions_sql),
            "sequential scoring (no prefilter), in database": counted(sequential_sql),
        }
        # Warm-up, and the same answer everywhere.
        reference = selectors.candidates_matching_job(job=job)
        expected = [tuple(m.__dict__.values()) for m in reference]
        assert [tuple(r) for r in fetched(functions_sql)()] == expected  # fast form == functions, every column
        for name, fn in variants.items():
            if "in database" in name:
                assert fn() == len(reference), name
        timings: dict[str, list[float]] = {name: [] for name in variants}
        seq_samples = SAMPLES if n < 1_000_000 else min(SAMPLES, 10)
        for i in range(SAMPLES):  # interleaved: machine noise hits every variant alike
            for name, fn in variants.items():
                if name.startswith("sequential") and i >= seq_samples:
                    continue
                started = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - started)
        extra = {
            "matches": len(reference),
            "overlapping": overlapping,
            "generated_s": round(generated_s, 1),
            "load": round(os.getloadavg()[0], 1),
            "profiles_mb": _heap_mb("candidate_match_profiles"),
            "candidates_mb": _heap_mb("candidates"),
        }
        for name, samples in timings.items():
            results.append(summarize("matching.job_to_candidates", name, size, samples, **extra))
    return results
