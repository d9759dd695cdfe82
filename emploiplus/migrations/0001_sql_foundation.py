"""Database-wide SQL objects every app relies on (mirrors the guide's 001_optimize_supabase.sql).

* Supabase's roles `anon`, `authenticated`, `service_role`, created when absent (plain
  PostgreSQL) and left alone when present (Supabase).
* `auth.uid()` / `auth.jwt()`, created when absent, reading `request.jwt.claims` the
  way PostgREST sets it, so the same RLS policies run on plain PostgreSQL and Supabase.
* `update_updated_at_column()`: the trigger function behind every `updated_at`.
* `f_unaccent(text)`: an IMMUTABLE accent folding used by every `search_vector` and by
  search queries. The `unaccent` extension is not available everywhere (the embedded
  PostgreSQL lacks it) and is only STABLE, so it could not back an index expression.
"""

from django.db import migrations

ROLES = """
DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['anon', 'authenticated', 'service_role'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', r);
        END IF;
    END LOOP;
END
$$;
DO $$
BEGIN
    -- service_role bypasses RLS as on Supabase; needs superuser, skipped otherwise.
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
       AND NOT (SELECT rolbypassrls FROM pg_roles WHERE rolname = 'service_role') THEN
        ALTER ROLE service_role BYPASSRLS;
    END IF;
END
$$;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;
"""

# Roles are cluster-wide and may be shared with other databases (Supabase owns them):
# going back only revokes what this migration granted.
ROLES_REVERSE = "REVOKE USAGE ON SCHEMA public FROM anon, authenticated, service_role;"

AUTH_FUNCTIONS = """
CREATE SCHEMA IF NOT EXISTS auth;
GRANT USAGE ON SCHEMA auth TO anon, authenticated, service_role;

DO $$
BEGIN
    IF to_regprocedure('auth.jwt()') IS NULL THEN
        CREATE FUNCTION auth.jwt() RETURNS jsonb
        LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')
            )::jsonb
        $f$;
        COMMENT ON FUNCTION auth.jwt() IS 'emploiplus: Supabase-compatible shim';
    END IF;
    IF to_regprocedure('auth.uid()') IS NULL THEN
        CREATE FUNCTION auth.uid() RETURNS uuid
        LANGUAGE sql STABLE AS $f$
            SELECT coalesce(
                nullif(current_setting('request.jwt.claim.sub', true), ''),
                nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
            )::uuid
        $f$;
        COMMENT ON FUNCTION auth.uid() IS 'emploiplus: Supabase-compatible shim';
    END IF;
END
$$;
GRANT EXECUTE ON FUNCTION auth.jwt(), auth.uid() TO anon, authenticated, service_role;
"""

AUTH_FUNCTIONS_REVERSE = """
DO $$
BEGIN
    -- Drop only the shims this migration created, never Supabase's own functions.
    IF obj_description(to_regprocedure('auth.uid()'), 'pg_proc') = 'emploiplus: Supabase-compatible shim' THEN
        DROP FUNCTION auth.uid();
    END IF;
    IF obj_description(to_regprocedure('auth.jwt()'), 'pg_proc') = 'emploiplus: Supabase-compatible shim' THEN
        DROP FUNCTION auth.jwt();
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'auth')
       AND NOT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'auth') THEN
        DROP SCHEMA auth;
    END IF;
END
$$;
"""

UPDATED_AT = """
-- The guide's version looped over information_schema with a variable named
-- table_name, which clashed with the column of the same name; each app's migration
-- now creates its own trigger explicitly (emploiplus.sql.updated_at_trigger).
CREATE FUNCTION update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
"""

UNACCENT = """
CREATE FUNCTION f_unaccent(value text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT translate(
        replace(replace(replace(replace(value, 'œ', 'oe'), 'Œ', 'OE'), 'æ', 'ae'), 'Æ', 'AE'),
        'àâäáãåçéèêëíìîïñóòôöõúùûüýÿÀÂÄÁÃÅÇÉÈÊËÍÌÎÏÑÓÒÔÖÕÚÙÛÜÝŸ',
        'aaaaaaceeeeiiiinooooouuuuyyAAAAAACEEEEIIIINOOOOOUUUUYY'
    )
$$;
"""


class Migration(migrations.Migration):
    initial = True
    dependencies: list = []

    operations = [
        migrations.RunSQL(ROLES, ROLES_REVERSE),
        migrations.RunSQL(AUTH_FUNCTIONS, AUTH_FUNCTIONS_REVERSE),
        migrations.RunSQL(UPDATED_AT, "DROP FUNCTION IF EXISTS update_updated_at_column();"),
        migrations.RunSQL(UNACCENT, "DROP FUNCTION IF EXISTS f_unaccent(text);"),
    ]
