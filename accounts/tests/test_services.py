"""Users from tokens: creation, profile fields, role resolution (CONTRACT §4)."""

from __future__ import annotations

import uuid

import pytest

from accounts.models import Candidate, Role, User
from accounts.services import user_get_or_create_from_claims
from accounts.tests.conftest import claims as payload
from accounts.tokens import Claims

pytestmark = pytest.mark.django_db


def claims_for(sub=None, *, app=None, user=None, email="new@example.test", legacy=False) -> Claims:
    raw = payload(sub, email=email, app_metadata=app or {}, user_metadata=user or {})
    return Claims(
        sub=raw["sub"],
        email=email,
        role_claim="authenticated",
        app_metadata=raw["app_metadata"],
        user_metadata=raw["user_metadata"],
        exp=raw["exp"],
        legacy=legacy,
        raw=raw,
    )


def test_it_creates_an_unknown_sub_with_profile_and_empty_candidate_row():
    sub = str(uuid.uuid4())
    user = user_get_or_create_from_claims(
        claims=claims_for(
            sub,
            email="Nadia@Example.TEST",
            user={"full_name": "Nadia B.", "avatar_url": "https://cdn.example/n.png"},
        )
    )
    stored = User.objects.get(pk=sub)
    assert stored == user
    assert stored.email == "Nadia@example.test"
    assert stored.full_name == "Nadia B."
    assert stored.avatar_url == "https://cdn.example/n.png"
    assert stored.role == Role.CANDIDATE
    assert stored.is_staff is False
    assert not stored.has_usable_password()
    candidate = Candidate.objects.get(pk=sub)
    assert candidate.skills == []
    assert candidate.notifications_enabled is True


def test_it_returns_the_same_user_on_the_next_token():
    sub = str(uuid.uuid4())
    first = user_get_or_create_from_claims(claims=claims_for(sub))
    second = user_get_or_create_from_claims(claims=claims_for(sub, user={"role": "entreprise"}))
    assert first.pk == second.pk
    assert User.objects.filter(pk=sub).count() == 1
    assert second.role == Role.CANDIDATE  # user_metadata does not change an existing role


@pytest.mark.parametrize(
    ("metadata", "role"),
    [
        ({"role": "candidat"}, Role.CANDIDATE),
        ({"role": "entreprise"}, Role.COMPANY),
        ({"user_type": "entreprise"}, Role.COMPANY),
        ({"user_type": "Candidat"}, Role.CANDIDATE),
        ({"role": "company"}, Role.COMPANY),
        ({}, Role.CANDIDATE),
        ({"role": "superhero"}, Role.CANDIDATE),
    ],
)
def test_it_maps_user_metadata_roles_and_french_aliases(metadata, role):
    user = user_get_or_create_from_claims(claims=claims_for(user=metadata))
    assert user.role == role
    assert Candidate.objects.filter(pk=user.pk).exists() is (role == Role.CANDIDATE)


def test_it_does_not_make_an_admin_from_user_metadata():
    for metadata in ({"role": "admin"}, {"user_type": "admin"}, {"role": "ADMIN"}):
        user = user_get_or_create_from_claims(claims=claims_for(user=metadata))
        assert User.objects.get(pk=user.pk).role == Role.CANDIDATE


def test_it_makes_an_admin_from_app_metadata():
    user = user_get_or_create_from_claims(claims=claims_for(app={"role": "admin"}))
    stored = User.objects.get(pk=user.pk)
    assert stored.role == Role.ADMIN
    assert stored.is_staff is False  # admin site access stays a database decision
    assert not Candidate.objects.filter(pk=user.pk).exists()


def test_it_prefers_app_metadata_over_user_metadata():
    user = user_get_or_create_from_claims(claims=claims_for(app={"role": "company"}, user={"role": "candidat"}))
    assert user.role == Role.COMPANY


def test_it_promotes_an_existing_user_when_app_metadata_says_admin(alice):
    user = user_get_or_create_from_claims(claims=claims_for(alice.pk, email=alice.email, app={"role": "admin"}))
    assert user.role == Role.ADMIN
    alice.refresh_from_db()
    assert alice.role == Role.ADMIN


def test_it_never_promotes_an_existing_user_from_user_metadata(alice):
    user_get_or_create_from_claims(claims=claims_for(alice.pk, email=alice.email, user={"role": "admin"}))
    alice.refresh_from_db()
    assert alice.role == Role.CANDIDATE


def test_it_demotes_an_admin_when_app_metadata_names_another_role(make_user):
    former = make_user("former", role=Role.ADMIN)
    user_get_or_create_from_claims(claims=claims_for(former.pk, email=former.email, app={"role": "candidate"}))
    former.refresh_from_db()
    assert former.role == Role.CANDIDATE
    assert Candidate.objects.filter(pk=former.pk).exists()


def test_it_keeps_a_staff_admin_whatever_the_token_says(root):
    user_get_or_create_from_claims(claims=claims_for(root.pk, email=root.email, app={"role": "candidate"}))
    root.refresh_from_db()
    assert root.role == Role.ADMIN


def test_it_keeps_the_database_admin_when_app_metadata_is_silent(root):
    user = user_get_or_create_from_claims(claims=claims_for(root.pk, email=root.email))
    assert user.role == Role.ADMIN


def test_it_never_makes_an_admin_from_a_legacy_token():
    legacy = Claims(
        sub=str(uuid.uuid4()), email="", role_claim="authenticated", user_metadata={"role": "admin"}, legacy=True
    )
    assert user_get_or_create_from_claims(claims=legacy).role == Role.CANDIDATE


def test_it_creates_the_user_without_email_when_the_email_belongs_to_another_uid(alice):
    sub = str(uuid.uuid4())
    user = user_get_or_create_from_claims(claims=claims_for(sub, email=alice.email))
    stored = User.objects.get(pk=sub)
    assert stored.email is None
    assert user.pk == stored.pk
    assert User.objects.get(pk=alice.pk).email == alice.email
