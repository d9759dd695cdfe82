"""The skill score from an overlap count: `match_skill_score_from_overlap(overlap, required)`.

The fast job → candidates matcher (matching.selectors) does not call an array function per
candidate: it counts, per candidate, how many of the job's distinct required skills it has
with one GIN probe per skill (`candidates.skills @> ARRAY[skill]`, then GROUP BY), and
turns that count into the skill part with this function. `match_skill_score` (the
per-pair form used by v_candidate_job_matches and the other queries) now ends with the
same function, so there is still one definition of the formula:
skill = 100 × overlap / required, 0 when the job requires nothing.

Same values as before: `100.0 * hits::bigint / total::bigint` is the expression of 0004.
Reversing restores 0004's match_skill_score and drops the new function.
"""

from django.db import migrations

FORWARD = """
-- skill = 100 × overlap / required (distinct, non-NULL required skills); 0 when the job
-- requires nothing or the overlap is unknown. LANGUAGE sql without sub-SELECT: inlined.
CREATE FUNCTION match_skill_score_from_overlap(overlap integer, required integer) RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN coalesce(required, 0) = 0 OR overlap IS NULL THEN 0::numeric
        ELSE 100.0 * overlap::bigint / required::bigint
    END
$$;

CREATE OR REPLACE FUNCTION match_skill_score(candidate_skills text[], required_skills text[]) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    s text;
    hits integer := 0;
    total integer := 0;
    seen text[] := '{}';
BEGIN
    IF coalesce(cardinality(required_skills), 0) = 0 OR candidate_skills IS NULL THEN
        RETURN 0::numeric;
    END IF;
    FOREACH s IN ARRAY required_skills LOOP
        CONTINUE WHEN s IS NULL OR s = ANY (seen);
        seen := seen || s;
        total := total + 1;
        IF s = ANY (candidate_skills) THEN
            hits := hits + 1;
        END IF;
    END LOOP;
    RETURN match_skill_score_from_overlap(hits, total);
END
$$;
"""

REVERSE = """
CREATE OR REPLACE FUNCTION match_skill_score(candidate_skills text[], required_skills text[]) RETURNS numeric
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    s text;
    hits integer := 0;
    total integer := 0;
    seen text[] := '{}';
BEGIN
    IF coalesce(cardinality(required_skills), 0) = 0 OR candidate_skills IS NULL THEN
        RETURN 0::numeric;
    END IF;
    FOREACH s IN ARRAY required_skills LOOP
        CONTINUE WHEN s IS NULL OR s = ANY (seen);
        seen := seen || s;
        total := total + 1;
        IF s = ANY (candidate_skills) THEN
            hits := hits + 1;
        END IF;
    END LOOP;
    IF total = 0 THEN
        RETURN 0::numeric;
    END IF;
    RETURN 100.0 * hits::bigint / total::bigint;
END
$$;

DROP FUNCTION IF EXISTS match_skill_score_from_overlap(integer, integer);
"""


class Migration(migrations.Migration):
    dependencies = [("matching", "0004_faster_skill_functions")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
