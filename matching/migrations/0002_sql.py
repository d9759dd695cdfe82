"""PostgreSQL layer of matching: the one definition of the match score (CONTRACT §7),
`v_candidate_job_matches`, the statistics materialized views and the jobs triggers.

The score is split into small IMMUTABLE SQL functions. PostgreSQL inlines them, so
the matching service (matching.selectors) and the view compute the same numbers with
the same code, and the planner can still use the GIN indexes for the `&&` prefilter.

The guide's view never compiled (it used an alias `comp` it never joined, and
ROUND(double precision, int) does not exist) and returned NULL for zero overlap; its
selection required *all* skills (`@>`) and compared levels as strings. Here: numeric
arithmetic, 0 for no overlap, levels by rank, any overlap (`&&`) as the prefilter.
"""

from django.db import migrations

from emploiplus.sql import search_vector_trigger, updated_at_trigger

SCORE_FUNCTIONS = """
-- entry < junior < mid < senior < lead
CREATE FUNCTION emploiplus_level_rank(level text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE level
        WHEN 'entry' THEN 1 WHEN 'junior' THEN 2 WHEN 'mid' THEN 3
        WHEN 'senior' THEN 4 WHEN 'lead' THEN 5
    END
$$;

-- skill = 100 × |candidate ∩ required| / |required|; 0 when nothing overlaps or the job lists no skill.
CREATE FUNCTION match_skill_score(candidate_skills text[], required_skills text[]) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(cardinality(required_skills), 0) = 0 OR candidate_skills IS NULL THEN 0::numeric
        ELSE 100.0 * (SELECT count(DISTINCT s) FROM unnest(required_skills) AS s WHERE s = ANY (candidate_skills))
                   / (SELECT count(DISTINCT s) FROM unnest(required_skills) AS s)
    END
$$;

-- experience = 100 if the candidate's level ≥ the job's, else 50. A job without a level
-- asks for nothing (100); a candidate without a level is below any stated level (50).
CREATE FUNCTION match_experience_score(candidate_level text, job_level text) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN job_level IS NULL THEN 100
        WHEN candidate_level IS NULL THEN 50
        WHEN emploiplus_level_rank(candidate_level) >= emploiplus_level_rank(job_level) THEN 100
        ELSE 50
    END::numeric
$$;

-- salary = 100 if either side is unknown or target_salary_min ≤ (salary_max, else salary_min), else 50.
CREATE FUNCTION match_salary_score(candidate_salary_min integer, job_salary_min integer, job_salary_max integer)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN candidate_salary_min IS NULL OR coalesce(job_salary_max, job_salary_min) IS NULL THEN 100
        WHEN candidate_salary_min <= coalesce(job_salary_max, job_salary_min) THEN 100
        ELSE 50
    END::numeric
$$;

-- overall = round(0.5·skill + 0.3·experience + 0.2·salary, 1), from the unrounded parts.
CREATE FUNCTION match_overall_score(skill numeric, experience numeric, salary numeric) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT round(0.5 * skill + 0.3 * experience + 0.2 * salary, 1)
$$;

CREATE FUNCTION match_matched_skills(candidate_skills text[], required_skills text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT s ORDER BY s), '{}')
    FROM unnest(required_skills) AS s WHERE s = ANY (coalesce(candidate_skills, '{}'))
$$;

CREATE FUNCTION match_missing_skills(candidate_skills text[], required_skills text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(array_agg(DISTINCT s ORDER BY s), '{}')
    FROM unnest(required_skills) AS s WHERE NOT (s = ANY (coalesce(candidate_skills, '{}')))
$$;
"""

SCORE_FUNCTIONS_REVERSE = """
DROP FUNCTION IF EXISTS match_missing_skills(text[], text[]);
DROP FUNCTION IF EXISTS match_matched_skills(text[], text[]);
DROP FUNCTION IF EXISTS match_overall_score(numeric, numeric, numeric);
DROP FUNCTION IF EXISTS match_salary_score(integer, integer, integer);
DROP FUNCTION IF EXISTS match_experience_score(text, text);
DROP FUNCTION IF EXISTS match_skill_score(text[], text[]);
DROP FUNCTION IF EXISTS emploiplus_level_rank(text);
"""

MATCHES_VIEW = """
-- One row per (active candidate × active job) with the CONTRACT §7 score.
-- security_invoker: read through the view, RLS of the caller still applies.
CREATE VIEW v_candidate_job_matches WITH (security_invoker = true) AS
SELECT
    c.id::text || ':' || j.id::text AS id,
    c.id AS candidate_id,
    j.id AS job_id,
    j.company_id,
    comp.name AS company_name,
    j.title AS job_title,
    round(p.skill, 1) AS skill_score,
    p.experience AS experience_score,
    p.salary AS salary_score,
    match_overall_score(p.skill, p.experience, p.salary) AS match_score,
    match_matched_skills(c.skills, j.required_skills) AS matched_skills,
    match_missing_skills(c.skills, j.required_skills) AS missing_skills,
    c.notifications_enabled
FROM candidates AS c
JOIN users AS u ON u.id = c.id
CROSS JOIN jobs AS j
JOIN companies AS comp ON comp.id = j.company_id
CROSS JOIN LATERAL (
    SELECT
        match_skill_score(c.skills, j.required_skills) AS skill,
        match_experience_score(c.experience_level, j.experience_level) AS experience,
        match_salary_score(c.target_salary_min, j.salary_min, j.salary_max) AS salary
) AS p
WHERE j.status = 'active' AND j.deleted_at IS NULL
  AND c.is_active AND c.deleted_at IS NULL AND u.is_active;
"""

STATS_VIEWS = """
-- Refreshed CONCURRENTLY by matching.jobs.refresh_materialized_views (scheduled in
-- emploiplus/cron.py); the unique indexes are what make a concurrent refresh possible.
CREATE MATERIALIZED VIEW mv_job_stats AS
SELECT
    j.id AS job_id,
    j.company_id,
    count(m.id) AS matches_count,
    count(m.notified_at) AS notified_count,
    coalesce(round(avg(m.match_score), 1), 0) AS avg_match_score,
    coalesce(max(m.match_score), 0) AS max_match_score,
    max(m.created_at) AS last_match_at
FROM jobs AS j
LEFT JOIN candidate_job_matches AS m ON m.job_id = j.id
WHERE j.deleted_at IS NULL
GROUP BY j.id, j.company_id;
CREATE UNIQUE INDEX mv_job_stats_job_id ON mv_job_stats (job_id);

CREATE MATERIALIZED VIEW mv_candidate_stats AS
SELECT
    c.id AS candidate_id,
    count(m.id) AS matches_count,
    count(m.notified_at) AS notified_count,
    coalesce(round(avg(m.match_score), 1), 0) AS avg_match_score,
    coalesce(max(m.match_score), 0) AS max_match_score,
    max(m.created_at) AS last_match_at
FROM candidates AS c
LEFT JOIN candidate_job_matches AS m ON m.candidate_id = c.id
WHERE c.deleted_at IS NULL
GROUP BY c.id;
CREATE UNIQUE INDEX mv_candidate_stats_candidate_id ON mv_candidate_stats (candidate_id);
"""

STATS_VIEWS_REVERSE = """
DROP MATERIALIZED VIEW IF EXISTS mv_candidate_stats;
DROP MATERIALIZED VIEW IF EXISTS mv_job_stats;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("emploiplus", "0001_sql_foundation"),
        ("accounts", "0002_sql"),
        ("matching", "0001_initial"),
    ]

    operations = [
        updated_at_trigger("jobs"),
        updated_at_trigger("candidate_job_matches"),
        updated_at_trigger("skill_aliases"),
        search_vector_trigger(
            "jobs",
            [
                ("NEW.title", "A"),
                ("NEW.description", "B"),
                ("array_to_string(NEW.required_skills, ' ')", "B"),
                ("NEW.location", "C"),
            ],
            columns=("title", "description", "required_skills", "location"),
        ),
        migrations.RunSQL(SCORE_FUNCTIONS, SCORE_FUNCTIONS_REVERSE),
        migrations.RunSQL(MATCHES_VIEW, "DROP VIEW IF EXISTS v_candidate_job_matches;"),
        migrations.RunSQL(STATS_VIEWS, STATS_VIEWS_REVERSE),
    ]
