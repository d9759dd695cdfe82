"""Role and ownership permissions for DRF views."""

from __future__ import annotations

from rest_framework.permissions import BasePermission

from accounts.models import Role


class _RolePermission(BasePermission):
    roles: tuple[str, ...] = ()
    message = {"detail": "Rôle insuffisant pour cette action.", "code": "forbidden"}

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and (user.role in self.roles or user.role == Role.ADMIN))


class IsCandidate(_RolePermission):
    roles = (Role.CANDIDATE,)


class IsCompany(_RolePermission):
    roles = (Role.COMPANY,)


class IsAdmin(_RolePermission):
    roles = (Role.ADMIN,)


class IsOwner(BasePermission):
    """Object permission: `obj.<owner_field>` is the caller (admins pass)."""

    owner_field = "user_id"
    message = {"detail": "Vous n'êtes pas propriétaire de cette ressource.", "code": "forbidden"}

    def has_object_permission(self, request, view, obj) -> bool:
        if request.user.role == Role.ADMIN:
            return True
        field = getattr(view, "owner_field", self.owner_field)
        return getattr(obj, field, None) == request.user.pk
