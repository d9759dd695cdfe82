"""PostgreSQL layer of accounts: triggers, search vector, row-level security."""

from django.db import migrations

from emploiplus.sql import grant_to_authenticated, search_vector_trigger, updated_at_trigger

IS_ADMIN = """
-- Admin for RLS purposes: app_metadata.role = 'admin' in the JWT (set by the service
-- role, never by the user) or role = 'admin' in our users table. user_metadata is
-- editable by the user and is deliberately ignored (the original code's privilege bug).
-- SECURITY DEFINER so policies can read users without granting it to `authenticated`.
CREATE FUNCTION emploiplus_is_admin() RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT coalesce((auth.jwt() -> 'app_metadata' ->> 'role') = 'admin', false)
        OR EXISTS (SELECT 1 FROM users WHERE id = auth.uid() AND role = 'admin' AND is_active)
$$;
REVOKE ALL ON FUNCTION emploiplus_is_admin() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION emploiplus_is_admin() TO authenticated, service_role;
"""

CANDIDATES_RLS = """
ALTER TABLE candidates ENABLE ROW LEVEL SECURITY;
-- A candidate sees and edits only their own profile; admins see every profile.
CREATE POLICY candidates_select_own ON candidates FOR SELECT TO authenticated
    USING (id = auth.uid() OR emploiplus_is_admin());
CREATE POLICY candidates_update_own ON candidates FOR UPDATE TO authenticated
    USING (id = auth.uid()) WITH CHECK (id = auth.uid());
"""

CANDIDATES_RLS_REVERSE = """
DROP POLICY IF EXISTS candidates_update_own ON candidates;
DROP POLICY IF EXISTS candidates_select_own ON candidates;
ALTER TABLE candidates DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("emploiplus", "0001_sql_foundation"),
        ("accounts", "0001_initial"),
    ]

    operations = [
        updated_at_trigger("users"),
        updated_at_trigger("companies"),
        updated_at_trigger("candidates"),
        search_vector_trigger(
            "candidates",
            [("NEW.job_title", "A"), ("array_to_string(NEW.skills, ' ')", "B"), ("NEW.location", "C")],
            columns=("job_title", "skills", "location"),
        ),
        migrations.RunSQL(IS_ADMIN, "DROP FUNCTION IF EXISTS emploiplus_is_admin();"),
        grant_to_authenticated("candidates", privileges="SELECT, UPDATE"),
        migrations.RunSQL(CANDIDATES_RLS, CANDIDATES_RLS_REVERSE),
    ]
