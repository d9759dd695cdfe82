"""Fixtures shared by every app's tests: personas, API clients, a clean Redis.

Personas (as in healthchecks' tests): alice and bob are candidates, charlie is an
outsider candidate, rita is a recruiter of the company acme, and root is an admin
(staff superuser in the Django admin).
"""

from __future__ import annotations

import os

import pytest

from accounts.models import Candidate, Company, Role, User
from accounts.testing import auth_header

# --- tests that need pgvector (semantic matching, issue 15) --------------------------------
# Marked `@pytest.mark.pgvector`. On a server with the extension (the embedded PostgreSQL of
# `make test`, Supabase…) they run here with the rest. On one without (the Debian
# PostgreSQL of CI) they are taken out of this session and run by
# matching/tests/test_pgvector_suite.py in a child pytest against an embedded PostgreSQL
# that has pgvector; that test fails if any of them fails, errors or is skipped there.
PGVECTOR_DEFERRED = pytest.StashKey[list]()
PGVECTOR_CHILD_ENV = "EMPLOIPLUS_PGVECTOR_CHILD"


def pytest_configure(config):
    config.addinivalue_line("markers", "pgvector: needs PostgreSQL with pgvector (see conftest.py)")


def server_has_pgvector(database_url: str) -> bool:
    import psycopg

    with psycopg.connect(database_url, dbname="postgres", connect_timeout=5) as conn:
        return conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'").fetchone() is not None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    config.stash[PGVECTOR_DEFERRED] = []
    marked = [item for item in items if item.get_closest_marker("pgvector")]
    if not marked or os.environ.get(PGVECTOR_CHILD_ENV) or not os.environ.get("DATABASE_URL"):
        return
    if server_has_pgvector(os.environ["DATABASE_URL"]):
        return
    config.stash[PGVECTOR_DEFERRED] = [item.nodeid for item in marked]
    items[:] = [item for item in items if not item.get_closest_marker("pgvector")]
    config.hook.pytest_deselected(items=marked)


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with an empty Redis database (the one REDIS_URL names)."""
    from emploiplus.redis import get_redis

    get_redis().flushdb()
    yield


@pytest.fixture(autouse=True)
def _reset_jwks_cache():
    from accounts import jwks

    jwks.reset_cache()
    yield


@pytest.fixture
def make_user(db):
    def make(name: str, *, role: str = Role.CANDIDATE, company: Company | None = None, **fields) -> User:
        user = User.objects.create_user(
            email=f"{name}@example.test", full_name=name.capitalize(), role=role, company=company, **fields
        )
        if role == Role.CANDIDATE:
            Candidate.objects.create(user=user)
        return user

    return make


@pytest.fixture
def alice(make_user) -> User:
    return make_user("alice")


@pytest.fixture
def bob(make_user) -> User:
    return make_user("bob")


@pytest.fixture
def charlie(make_user) -> User:
    return make_user("charlie")


@pytest.fixture
def acme(db) -> Company:
    return Company.objects.create(name="Acme SAS", website="https://acme.example")


@pytest.fixture
def rita(make_user, acme) -> User:
    return make_user("rita", role=Role.COMPANY, company=acme)


@pytest.fixture
def root(make_user) -> User:
    return make_user("root", role=Role.ADMIN, is_staff=True, is_superuser=True)


@pytest.fixture
def staff_client(client, root):
    """Django's test client logged in to the admin as root."""
    client.force_login(root)
    return client


@pytest.fixture
def api():
    """DRF test client; authenticate per request with headers=auth(user)."""
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture
def auth():
    return auth_header
