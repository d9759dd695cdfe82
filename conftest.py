"""Fixtures shared by every app's tests: personas, API clients, a clean Redis.

Personas (as in healthchecks' tests): alice and bob are candidates, charlie is an
outsider candidate, rita is a recruiter of the company acme, and root is an admin
(staff superuser in the Django admin).
"""

from __future__ import annotations

import pytest

from accounts.models import Candidate, Company, Role, User
from accounts.testing import auth_header


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
