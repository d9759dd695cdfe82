"""Matching one new job against N candidates (issue 6), every variant in the same run on the
same data, interleaved:

- `GIN && + overlap operators (the matcher)`: what matching.selectors runs — one bitmap
  scan of idx_candidates_skills_gin for `skills && job skills`, the overlap counted with one
  containment operator per job skill, match_skill_score_from_overlap + the inlined
  match_* functions, users probed only for rows ≥ threshold, matched/missing skills once
  per distinct overlap mask. Measured consuming the rows in PostgreSQL (count(*) around
  it, as the pipeline's INSERT … SELECT does) and returning them to Python (the selector).
- `GIN && + PL/pgSQL functions (before)`: the previous matcher (per-row match_skill_score,
  match_matched_skills, match_missing_skills). Its rows are checked equal, every column, to
  the matcher's at every size.
- `per-skill GIN probes + GROUP BY (not used)`: one probe per job skill, overlap = count(*)
  per candidate, HAVING the minimum overlap the threshold allows.
- `sequential scoring (no prefilter)`: every eligible candidate scored with the functions.

Data (generated here with INSERT … SELECT generate_series, in the bench database; rows
are tagged so a rerun at the same size reuses them):
- a vocabulary of 400 skills with skewed popularity (skill k drawn as floor(400·u²), so
  low k are common, like "javascript", and high k rare);
- N candidates with 3–8 skills each, a random level and a target salary (or none);
- one job requiring 4 skills of mid popularity, level mid, salary 40–50 k.

Sizes: 100,000 and 1,000,000 candidates at BENCH_SCALE=1 (targets: ≤ 20 ms and ≤ 150 ms
median). BENCH_SCALE=0.1 runs 10,000 and 100,000.
Samples: BENCH_MATCHING_SAMPLES (default 30) per variant; the sequential variant takes at
most 10 samples at ≥ 1M. `load` is the 1-minute load average when the size finished.
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


# The brief's first idea, measured and not used: one GIN probe per required skill
# (`skills @> ARRAY[s]`), GROUP BY candidate for the overlap count, HAVING the minimum
# overlap the threshold allows. Rows are consumed in the database (count only).
PER_SKILL_PROBES = """
WITH req AS MATERIALIZED (
    SELECT DISTINCT s FROM unnest(%(skills)s::text[]) AS s WHERE s IS NOT NULL
),
hits AS (
    SELECT c.id, c.experience_level, c.target_salary_min, count(*)::integer AS overlap
    FROM req AS r
    JOIN candidates AS c ON c.skills @> ARRAY[r.s]
    WHERE c.is_active AND c.deleted_at IS NULL
    GROUP BY c.id
    HAVING count(*) >= (
        SELECT min(o) FROM generate_series(1, %(required)s) AS o
        WHERE match_overall_score(match_skill_score_from_overlap(o, %(required)s), 100, 100) >= %(min_score)s
    )
)
SELECT count(*) FROM hits AS h
CROSS JOIN LATERAL (
    SELECT match_skill_score_from_overlap(h.overlap, %(required)s) AS skill,
           match_experience_score(h.experience_level, %(level)s::text) AS experience,
           match_salary_score(h.target_salary_min, %(salary_min)s::integer, %(salary_max)s::integer) AS salary
    OFFSET 0
) AS p
CROSS JOIN LATERAL (SELECT u.is_active FROM users AS u WHERE u.id = h.id OFFSET 0) AS u
WHERE match_overall_score(p.skill, p.experience, p.salary) >= %(min_score)s AND u.is_active
"""


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
        functions_sql = selectors.candidates_for_job_sql(prefilter=True)  # without skills: the per-row functions
        sequential_sql = selectors.candidates_for_job_sql(prefilter=False)

        def counted(sql, params=params):
            def call():
                with selectors.matching_cursor() as cursor:
                    cursor.execute(f"SELECT count(*) FROM ({sql}) AS m", params)
                    return cursor.fetchone()[0]

            return call

        def fetched(sql, params=params):
            def call():
                with selectors.matching_cursor() as cursor:
                    cursor.execute(sql + " ORDER BY score DESC, c.id", params)
                    return cursor.fetchall()

            return call

        def probes(params=params):
            with selectors.matching_cursor() as cursor:
                cursor.execute(PER_SKILL_PROBES, params)
                return cursor.fetchone()[0]

        variants = {
            "GIN && + overlap operators (the matcher), in database": counted(fast_sql),
            "GIN && + overlap operators (the matcher), rows to Python": lambda: selectors.candidates_matching_job(
                job=job
            ),
            "GIN && + PL/pgSQL functions (before), in database": counted(functions_sql),
            "GIN && + PL/pgSQL functions (before), rows to Python": fetched(functions_sql),
            "per-skill GIN probes + GROUP BY (not used), in database": probes,
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
        }
        for name, samples in timings.items():
            results.append(summarize("matching.job_to_candidates", name, size, samples, **extra))
    return results
