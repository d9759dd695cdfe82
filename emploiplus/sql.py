"""Builders for the SQL that several apps' migrations repeat (one definition each)."""

from __future__ import annotations

from django.db import migrations


def updated_at_trigger(table: str, *, when: str | None = None) -> migrations.RunSQL:
    """`BEFORE UPDATE` trigger calling update_updated_at_column() on `table`.

    `when` is an optional trigger condition (e.g. to not move `updated_at` when only
    counters change).
    """
    condition = f"\n    WHEN ({when})" if when else ""
    return migrations.RunSQL(
        sql=f"""
CREATE TRIGGER trg_{table}_updated_at
    BEFORE UPDATE ON {table}
    FOR EACH ROW{condition}
    EXECUTE FUNCTION update_updated_at_column();
""",
        reverse_sql=f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table};",
    )


def grant_to_authenticated(*tables: str, privileges: str = "SELECT") -> migrations.RunSQL:
    """Table privileges for Supabase's `authenticated` role (RLS then filters rows).

    `service_role` gets everything (it bypasses RLS, as on Supabase); `anon` nothing.
    """
    names = ", ".join(tables)
    return migrations.RunSQL(
        sql=f"GRANT {privileges} ON {names} TO authenticated;\nGRANT ALL ON {names} TO service_role;",
        reverse_sql=f"REVOKE ALL ON {names} FROM authenticated, service_role;",
    )


def search_vector_trigger(
    table: str, weighted_sources: list[tuple[str, str]], *, columns: tuple[str, ...] = ()
) -> migrations.RunSQL:
    """`BEFORE INSERT OR UPDATE [OF columns]` trigger keeping `<table>.search_vector` current.

    `weighted_sources` are (SQL expression over NEW, weight) pairs. Text is unaccented
    with f_unaccent() before the French configuration stems it, so queries typed with
    or without accents match (CONTRACT §3, French full-text search). Give `columns`
    (those the sources read) so that updates of other columns — counters, flags — do
    not recompute the vector.
    """
    update_of = f"UPDATE OF {', '.join(columns)}" if columns else "UPDATE"
    parts = " ||\n        ".join(
        f"setweight(to_tsvector('french', f_unaccent(coalesce({expr}, ''))), '{weight}')"
        for expr, weight in weighted_sources
    )
    return migrations.RunSQL(
        sql=f"""
CREATE FUNCTION {table}_search_vector_update() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_vector :=
        {parts};
    RETURN NEW;
END
$$;

CREATE TRIGGER trg_{table}_search_vector
    BEFORE INSERT OR {update_of} ON {table}
    FOR EACH ROW EXECUTE FUNCTION {table}_search_vector_update();

-- Fill the column for rows that existed before the trigger.
UPDATE {table} SET search_vector = NULL;
""",
        reverse_sql=f"""
DROP TRIGGER IF EXISTS trg_{table}_search_vector ON {table};
DROP FUNCTION IF EXISTS {table}_search_vector_update();
""",
    )
