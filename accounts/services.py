"""Writes for users, companies and candidates."""

from __future__ import annotations

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
    app_role = _ROLE_ALIASES.get(str(claims.app_metadata.get("role") or "").lower())
    if app_role:
        return app_role
    for key in ("role", "user_type"):
        role = _ROLE_ALIASES.get(str(claims.user_metadata.get(key) or "").lower())
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


def user_get_or_create_from_claims(*, claims: Claims) -> User:
    """The user for a verified token; the first token of an unknown `sub` creates it.

    An existing user's role is raised to admin when app_metadata says so, and lowered
    from admin when app_metadata no longer does, unless the admin role was granted in
    this database by staff (is_staff). A user_metadata role never makes an admin.
    """
    user = User.objects.filter(pk=claims.sub).first()
    role = role_from_claims(claims)
    if user is None:
        fields = _profile_fields(claims)
        try:
            with transaction.atomic():
                user = User.objects.create_user(id=claims.sub, role=role, **fields)
                if role == Role.CANDIDATE:
                    Candidate.objects.create(user=user)
        except IntegrityError:
            # A concurrent first request created it (or the email belongs to another uid).
            user = User.objects.filter(pk=claims.sub).first()
            if user is None:
                fields["email"] = None
                user = User.objects.create_user(id=claims.sub, role=role, **fields)
                if role == Role.CANDIDATE:
                    Candidate.objects.get_or_create(user=user)
        return user

    app_admin = str(claims.app_metadata.get("role") or "").lower() == "admin"
    if app_admin and user.role != Role.ADMIN:
        user.role = Role.ADMIN
        user.save(update_fields=["role", "updated_at"])
    return user
