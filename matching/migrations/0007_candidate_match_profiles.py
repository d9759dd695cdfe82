"""The matcher's narrow table: `candidate_match_profiles` (+ the `skills` dictionary).

The job → candidates matcher used to read `candidates` (301 MB at 1M rows: search
vectors, text skills, location, timestamps…) and probe `users.is_active` for every
candidate above the threshold. It now reads one narrow row per *eligible* candidate:

    candidate_match_profiles(candidate_id, skill_ids int[], experience_level,
                             target_salary_min, notifications_enabled)

Eligible = candidates.is_active AND deleted_at IS NULL AND users.is_active, exactly the
`WHERE` of v_candidate_job_matches. Skills are integer ids from `skills(id, name)` (96 MB
at 1M candidates; `int[] @>` is cheaper than `text[] @>`).

Nothing in the application writes these tables. Statement-level triggers keep them:
- after INSERT / UPDATE on candidates (UPDATE: only rows whose skills, level, salary,
  notifications flag, is_active or deleted_at changed) and after UPDATE of users rows whose
  is_active changed → `candidate_match_profiles_refresh(ids)`, which adds unknown skill
  names to `skills`, deletes the rows that are no longer eligible and upserts the others;
- after DELETE on candidates → delete their rows.
The refresh takes `FOR SHARE` on the users rows first, so a concurrent deactivation of the
account and an update of the candidate cannot leave a row for an inactive account: one
waits for the other and re-reads its committed state.

RLS is enabled with no policy (Supabase exposes new public tables to its API roles by
default; these copy candidates' private fields). Reversing drops everything.
"""

import django.contrib.postgres.fields
import django.contrib.postgres.indexes
import django.db.models.deletion
from django.db import migrations, models

FORWARD = """
CREATE FUNCTION candidate_match_profiles_refresh(ids uuid[]) RETURNS void
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    IF coalesce(cardinality(ids), 0) = 0 THEN
        RETURN;
    END IF;
    -- The account's state can't change under us until we commit (see the docstring).
    PERFORM 1 FROM users AS u WHERE u.id = ANY (ids) ORDER BY u.id FOR SHARE;

    -- Sorted, so two transactions adding the same new names can't deadlock.
    INSERT INTO skills (name)
    SELECT DISTINCT s.name
    FROM candidates AS c CROSS JOIN LATERAL unnest(c.skills) AS s (name)
    WHERE c.id = ANY (ids) AND s.name IS NOT NULL
    ORDER BY s.name
    ON CONFLICT (name) DO NOTHING;

    DELETE FROM candidate_match_profiles AS p
    WHERE p.candidate_id = ANY (ids)
      AND NOT EXISTS (
          SELECT 1 FROM candidates AS c JOIN users AS u ON u.id = c.id
          WHERE c.id = p.candidate_id AND c.is_active AND c.deleted_at IS NULL AND u.is_active
      );

    INSERT INTO candidate_match_profiles AS p
        (candidate_id, skill_ids, experience_level, target_salary_min, notifications_enabled)
    SELECT c.id,
           ARRAY(SELECT k.id FROM unnest(c.skills) AS s (name) JOIN skills AS k ON k.name = s.name ORDER BY k.id),
           c.experience_level, c.target_salary_min, c.notifications_enabled
    FROM candidates AS c JOIN users AS u ON u.id = c.id
    WHERE c.id = ANY (ids) AND c.is_active AND c.deleted_at IS NULL AND u.is_active
    ON CONFLICT (candidate_id) DO UPDATE SET
        skill_ids = EXCLUDED.skill_ids,
        experience_level = EXCLUDED.experience_level,
        target_salary_min = EXCLUDED.target_salary_min,
        notifications_enabled = EXCLUDED.notifications_enabled
    WHERE (p.skill_ids, p.experience_level, p.target_salary_min, p.notifications_enabled)
          IS DISTINCT FROM
          (EXCLUDED.skill_ids, EXCLUDED.experience_level, EXCLUDED.target_salary_min, EXCLUDED.notifications_enabled);
END
$$;

CREATE FUNCTION trg_candidate_match_profiles_inserted() RETURNS trigger
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    PERFORM candidate_match_profiles_refresh(ARRAY(SELECT n.id FROM new_rows AS n));
    RETURN NULL;
END
$$;

CREATE FUNCTION trg_candidate_match_profiles_updated() RETURNS trigger
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    PERFORM candidate_match_profiles_refresh(ARRAY(
        SELECT n.id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE (n.skills, n.experience_level, n.target_salary_min, n.notifications_enabled, n.is_active, n.deleted_at)
              IS DISTINCT FROM
              (o.skills, o.experience_level, o.target_salary_min, o.notifications_enabled, o.is_active, o.deleted_at)
    ));
    RETURN NULL;
END
$$;

CREATE FUNCTION trg_candidate_match_profiles_deleted() RETURNS trigger
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    DELETE FROM candidate_match_profiles AS p USING old_rows AS o WHERE p.candidate_id = o.id;
    RETURN NULL;
END
$$;

CREATE FUNCTION trg_candidate_match_profiles_account() RETURNS trigger
LANGUAGE plpgsql SET search_path = public AS $$
BEGIN
    PERFORM candidate_match_profiles_refresh(ARRAY(
        SELECT n.id FROM new_rows AS n JOIN old_rows AS o ON o.id = n.id
        WHERE n.is_active IS DISTINCT FROM o.is_active
    ));
    RETURN NULL;
END
$$;

CREATE TRIGGER trg_candidates_match_profiles_insert AFTER INSERT ON candidates
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trg_candidate_match_profiles_inserted();
CREATE TRIGGER trg_candidates_match_profiles_update AFTER UPDATE ON candidates
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trg_candidate_match_profiles_updated();
CREATE TRIGGER trg_candidates_match_profiles_delete AFTER DELETE ON candidates
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trg_candidate_match_profiles_deleted();
CREATE TRIGGER trg_users_match_profiles_update AFTER UPDATE ON users
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION trg_candidate_match_profiles_account();

ALTER TABLE skills ENABLE ROW LEVEL SECURITY;
ALTER TABLE candidate_match_profiles ENABLE ROW LEVEL SECURITY;
REVOKE ALL ON FUNCTION candidate_match_profiles_refresh(uuid[]) FROM PUBLIC;

-- The candidates already there.
SELECT candidate_match_profiles_refresh(ARRAY(SELECT c.id FROM candidates AS c));
"""

REVERSE = """
DROP TRIGGER IF EXISTS trg_users_match_profiles_update ON users;
DROP TRIGGER IF EXISTS trg_candidates_match_profiles_delete ON candidates;
DROP TRIGGER IF EXISTS trg_candidates_match_profiles_update ON candidates;
DROP TRIGGER IF EXISTS trg_candidates_match_profiles_insert ON candidates;
DROP FUNCTION IF EXISTS trg_candidate_match_profiles_account();
DROP FUNCTION IF EXISTS trg_candidate_match_profiles_deleted();
DROP FUNCTION IF EXISTS trg_candidate_match_profiles_updated();
DROP FUNCTION IF EXISTS trg_candidate_match_profiles_inserted();
DROP FUNCTION IF EXISTS candidate_match_profiles_refresh(uuid[]);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_sql"),
        ("matching", "0006_users_active_id_index"),
    ]

    operations = [
        migrations.CreateModel(
            name="Skill",
            fields=[
                ("id", models.AutoField(primary_key=True, serialize=False)),
                ("name", models.TextField(unique=True)),
            ],
            options={
                "verbose_name": "compétence (dictionnaire)",
                "verbose_name_plural": "compétences (dictionnaire)",
                "db_table": "skills",
                "ordering": ["name"],
            },
        ),
        migrations.CreateModel(
            name="CandidateMatchProfile",
            fields=[
                (
                    "candidate",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        primary_key=True,
                        related_name="match_profile",
                        serialize=False,
                        to="accounts.candidate",
                    ),
                ),
                (
                    "skill_ids",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.IntegerField(), default=list, size=None
                    ),
                ),
                ("experience_level", models.CharField(blank=True, max_length=16, null=True)),
                ("target_salary_min", models.PositiveIntegerField(blank=True, null=True)),
                ("notifications_enabled", models.BooleanField(default=True)),
            ],
            options={
                "verbose_name": "profil de correspondance",
                "db_table": "candidate_match_profiles",
                "indexes": [
                    django.contrib.postgres.indexes.GinIndex(fields=["skill_ids"], name="idx_match_profiles_skills_gin")
                ],
            },
        ),
        migrations.RunSQL(FORWARD, REVERSE),
    ]
