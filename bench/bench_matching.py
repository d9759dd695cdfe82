"""Matching one new job against N candidates (issue 6): the SQL matcher with the GIN
`&&` prefilter vs sequential scoring (no prefilter: every active candidate scored), same
run, same data, same query otherwise.

Also measured, to show where the time goes:
- `GIN prefilter, in database only`: the same query wrapped in count(*) — no rows sent to
  Python (the pipeline's upsert consumes the rows inside PostgreSQL this way);
- `inline skill expressions`: NOT what the service runs — the skill parts written out per
  job as plain operators (`'react' = ANY(c.skills)` …) instead of the PL/pgSQL match_*
  functions. Its rows are checked equal to the service's on every size; it shows what
  giving up the single SQL definition would buy.

Data (generated here with INSERT … SELECT generate_series, in the bench database; rows
are tagged so a rerun at the same size reuses them):
- a vocabulary of 400 skills with skewed popularity (skill k drawn as floor(400·u²), so
  low k are common, like "javascript", and high k rare);
- N candidates with 3–8 skills each, a random level and a target salary (or none);
- one job requiring 4 skills of mid popularity, level mid, salary 40–50 k.

Sizes: 100,000 and 1,000,000 candidates at BENCH_SCALE=1 (targets: ≤ 20 ms and ≤ 150 ms
median for the prefiltered query). BENCH_SCALE=0.1 runs 10,000 and 100,000.
Samples: BENCH_MATCHING_SAMPLES (default 30) per variant, interleaved so machine noise
hits both alike; the sequential variant takes at most 10 samples at ≥ 1M.
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


def inline_sql(job) -> tuple[str, dict]:
    """The job → candidates query with the skill functions expanded into operators."""
    from matching import selectors

    with connection.cursor() as cursor:  # distinct, sorted by PostgreSQL's own collation
        cursor.execute(
            "SELECT ARRAY(SELECT DISTINCT s FROM unnest(%s::text[]) AS s WHERE s IS NOT NULL ORDER BY s)",
            [list(job.required_skills)],
        )
        skills = cursor.fetchone()[0]
    params = selectors.job_match_params(job)
    has = []
    for i, skill in enumerate(skills):
        params[f"s{i}"] = skill
        has.append(f"(%(s{i})s::text = ANY (c.skills))")
    hits = " + ".join(f"{h}::int" for h in has) or "0"
    matched = ", ".join(f"CASE WHEN {h} THEN %(s{i})s::text END" for i, h in enumerate(has))
    missing = ", ".join(f"CASE WHEN NOT {h} THEN %(s{i})s::text END" for i, h in enumerate(has))
    total = len(skills)
    skill_expr = (
        f"CASE WHEN c.skills IS NULL OR {total} = 0 THEN 0::numeric "
        f"ELSE 100.0 * ({hits})::bigint / {max(total, 1)}::bigint END"
    )
    sql = f"""
SELECT c.id AS candidate_id, %(job_id)s::uuid AS job_id,
       match_overall_score(p.skill, p.experience, p.salary) AS score,
       round(p.skill, 1), p.experience, p.salary,
       array_remove(ARRAY[{matched}]::text[], NULL), array_remove(ARRAY[{missing}]::text[], NULL),
       c.notifications_enabled
FROM candidates AS c
CROSS JOIN LATERAL (
    SELECT {skill_expr} AS skill,
           match_experience_score(c.experience_level, %(level)s::text) AS experience,
           match_salary_score(c.target_salary_min, %(salary_min)s::integer, %(salary_max)s::integer) AS salary
    OFFSET 0
) AS p
WHERE c.is_active AND c.deleted_at IS NULL AND c.skills && %(skills)s::text[]
  AND match_overall_score(p.skill, p.experience, p.salary) >= %(min_score)s
  AND EXISTS (SELECT 1 FROM users AS u WHERE u.id = c.id AND u.is_active)
ORDER BY score DESC, c.id
"""
    return sql, params


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
        params = selectors.job_match_params(job)
        count_sql = f"SELECT count(*) FROM ({selectors.candidates_for_job_sql(prefilter=True)}) AS m"
        inline, inline_params = inline_sql(job)

        def in_database(count_sql=count_sql, params=params):
            with selectors.matching_cursor() as cursor:
                cursor.execute(count_sql, params)
                return cursor.fetchone()[0]

        def inlined(inline=inline, inline_params=inline_params):
            with selectors.matching_cursor() as cursor:
                cursor.execute(inline, inline_params)
                return cursor.fetchall()

        variants = {
            "GIN && prefilter": lambda: selectors.candidates_matching_job(job=job, prefilter=True),
            "sequential scoring": lambda: selectors.candidates_matching_job(job=job, prefilter=False),
            "GIN prefilter, in database only": in_database,
            "inline skill expressions (not used)": inlined,
        }
        # Warm-up, and the same answer everywhere.
        reference = selectors.candidates_matching_job(job=job, prefilter=True)
        assert len(variants["sequential scoring"]()) == len(reference)  # the prefilter loses nothing at 60
        assert in_database() == len(reference)
        assert [tuple(r) for r in inlined()] == [tuple(m.__dict__.values()) for m in reference]
        timings: dict[str, list[float]] = {name: [] for name in variants}
        seq_samples = SAMPLES if n < 1_000_000 else min(SAMPLES, 10)
        for i in range(SAMPLES):  # interleaved: machine noise hits every variant alike
            for name, fn in variants.items():
                if name == "sequential scoring" and i >= seq_samples:
                    continue
                started = time.perf_counter()
                fn()
                timings[name].append(time.perf_counter() - started)
        extra = {"matches": len(reference), "overlapping": overlapping, "generated_s": round(generated_s, 1)}
        for name, samples in timings.items():
            results.append(summarize("matching.job_to_candidates", name, size, samples, **extra))
    return results
