"""Migrations apply on an empty database and reverse to zero; models and migrations agree."""

from __future__ import annotations

import subprocess
import sys
import uuid

import psycopg
import pytest
from django.db import connection

from emploiplus.testing import BASE_DIR, subprocess_env

# Every app, in an order where each app is unapplied before the apps it depends on.
APPS_REVERSE_ORDER = ["webhooks", "notifications", "messaging", "feed", "matching", "admin", "accounts", "emploiplus"]

OUR_OBJECTS_SQL = """
SELECT 'table ' || tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'django_%%'
    AND tablename NOT LIKE 'auth_%%'
UNION ALL SELECT 'view ' || viewname FROM pg_views WHERE schemaname = 'public'
UNION ALL SELECT 'matview ' || matviewname FROM pg_matviews WHERE schemaname = 'public'
UNION ALL SELECT 'function ' || p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname IN ('public', 'auth')
UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'auth'
"""


def _manage(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), *args],
        cwd=BASE_DIR,
        env=subprocess_env(DATABASE_URL=db_url),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture
def scratch_database(django_db_blocker):
    """An empty database next to the test database, dropped afterwards."""
    name = f"emploiplus_scratch_{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        params = connection.get_connection_params()
        url = subprocess_env()["DATABASE_URL"]
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    head, _, query = url.partition("?")
    scratch_url = head.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    try:
        yield scratch_url, {**params, "dbname": name}
    finally:
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _our_objects(params) -> set[str]:
    with psycopg.connect(**params) as conn:
        return {row[0] for row in conn.execute(OUR_OBJECTS_SQL)}


def test_it_applies_every_migration_and_reverses_to_zero(scratch_database):
    url, params = scratch_database
    assert _our_objects(params) == set()

    applied = _manage(url, "migrate", "--noinput")
    assert applied.returncode == 0, applied.stderr
    objects = _our_objects(params)
    for expected in (
        "table users",
        "table jobs",
        "table messages",
        "view v_newsfeed_feed",
        "view v_candidate_job_matches",
        "view v_search_optimized",
        "matview mv_job_stats",
        "matview mv_candidate_stats",
        "function update_updated_at_column",
        "function uid",
        "function jwt",
        "schema auth",
    ):
        assert expected in objects

    for app in APPS_REVERSE_ORDER:
        reversed_ = _manage(url, "migrate", app, "zero", "--noinput")
        assert reversed_.returncode == 0, f"{app}: {reversed_.stderr}"
    assert _our_objects(params) == set()

    again = _manage(url, "migrate", "--noinput")
    assert again.returncode == 0, again.stderr


def test_it_has_a_migration_for_every_model_change():
    result = subprocess.run(
        [sys.executable, str(BASE_DIR / "manage.py"), "makemigrations", "--check", "--dry-run"],
        cwd=BASE_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No changes detected" in result.stdout
