"""Writes for users, companies and candidates."""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction

from accounts.models import Candidate, Role, User
from accounts.tokens import Claims

# French aliases used by the Emploi+ frontend in user_metadata.
_ROLE_ALIASES = {
    "candidate": Role.CANDIDATE,
    "candidat": Role.CANDIDATE,
    "company": Role.COMPANY,
    "entreprise": Role.COMPANY,
    "recruiter": Role.COMPANY,
    "admin": Role.ADMIN,
}


def role_from_claims(claims: Claims) -> str:
    """CONTRACT §4: app_metadata.role, else user_metadata.role / user_type, else candidate.

    `admin` is honoured only from app_metadata (set by the service role), never from
    user_metadata, which the user can edit.
    """
    app_role = app_role_from_claims(claims)
    if app_role:
        return app_role
    for key in ("role", "user_type"):
        role = _ROLE_ALIASES.get(str(claims.user_metadata.get(key) or "").strip().lower())
        if role and role != Role.ADMIN:
            return role
    return Role.CANDIDATE


def _profile_fields(claims: Claims) -> dict[str, Any]:
    meta = claims.user_metadata
    return {
        "email": claims.email or None,
        "full_name": str(meta.get("full_name") or meta.get("name") or "")[:200],
        "avatar_url": str(meta.get("avatar_url") or meta.get("picture") or "")[:1000],
    }


def app_role_from_claims(claims: Claims) -> str | None:
    """The role the service role set in app_metadata (trusted), if any."""
    return _ROLE_ALIASES.get(str(claims.app_metadata.get("role") or "").strip().lower())


def user_get_or_create_from_claims(*, claims: Claims) -> User:
    """The user for a verified token; the first token of an unknown `sub` creates it.

    Creation: email, full name and avatar from the claims; role from `role_from_claims`;
    candidates get an empty `Candidate` row.

    Existing users: the database role is authoritative, except that a role present in
    `app_metadata` (writable only with the service role) is mirrored into the database —
    so app_metadata can grant admin, and can take it back by naming another role.
    An admin granted by staff in this database (`is_staff`) is never demoted by a token.
    `user_metadata` (user-editable) never changes an existing user's role.
    """
    user = User.objects.filter(pk=claims.sub).first()
    if user is None:
        return _user_create_from_claims(claims=claims)

    app_role = app_role_from_claims(claims)
    if app_role and app_role != user.role and not (user.role == Role.ADMIN and user.is_staff):
        with transaction.atomic():
            user.role = app_role
            user.save(update_fields=["role", "updated_at"])
            if app_role == Role.CANDIDATE:
                Candidate.objects.get_or_create(user=user)
    return user


def _user_create_from_claims(*, claims: Claims) -> User:
    role = role_from_claims(claims)
    fields = _profile_fields(claims)
    try:
        with transaction.atomic():
            user = User.objects.create_user(id=uuid.UUID(claims.sub), role=role, **fields)
            if role == Role.CANDIDATE:
                Candidate.objects.create(user=user)
            return user
    except IntegrityError:
        pass
    # A concurrent first request created it, or the email belongs to another uid.
    user = User.objects.filter(pk=claims.sub).first()
    if user is not None:
        return user
    fields["email"] = None
    with transaction.atomic():
        user, _ = User.objects.get_or_create(id=uuid.UUID(claims.sub), defaults={"role": role, **fields})
        if user.role == Role.CANDIDATE:
            Candidate.objects.get_or_create(user=user)
    return user
