"""Admin for users, companies and candidate profiles.

Access to /admin/ is Django's own: a session login by a user whose `is_staff` is true in
this database. Token claims (app_metadata.role = admin included) never grant it.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.db import models

from accounts.models import Candidate, Company, User

URL_FIELDS = {models.URLField: {"assume_scheme": "https"}}


class CandidateAdminForm(forms.ModelForm):
    """Skills typed in the admin are stored normalised, like every other write path."""

    class Meta:
        model = Candidate
        fields = (
            "user",
            "skills",
            "experience_level",
            "location",
            "job_title",
            "headline",
            "summary",
            "target_salary_min",
            "target_salary_max",
            "notifications_enabled",
            "is_active",
            "deleted_at",
        )

    def clean_skills(self) -> list[str]:
        from matching.skills import skills_normalize

        return skills_normalize(self.cleaned_data.get("skills") or [])


class CandidateInline(admin.StackedInline):
    model = Candidate
    form = CandidateAdminForm
    can_delete = False
    extra = 0
    fields = (
        "skills",
        "experience_level",
        "location",
        "job_title",
        "headline",
        "summary",
        "notifications_enabled",
        "is_active",
    )


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    formfield_overrides = URL_FIELDS
    ordering = ("-created_at",)
    list_display = ("email", "full_name", "role", "company", "is_active", "is_staff", "created_at")
    list_filter = ("role", "is_active", "is_staff", "is_superuser", "company")
    list_select_related = ("company",)
    search_fields = ("email", "full_name", "=id")
    readonly_fields = ("id", "created_at", "updated_at", "last_login")
    autocomplete_fields = ("company",)
    inlines = (CandidateInline,)
    fieldsets = (
        (None, {"fields": ("id", "email", "full_name", "avatar_url")}),
        ("Rôle", {"fields": ("role", "company")}),
        ("Droits", {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("last_login", "created_at", "updated_at")}),
    )
    add_fieldsets = (
        (None, {"classes": ("wide",), "fields": ("email", "full_name", "role", "company", "password1", "password2")}),
    )
    filter_horizontal = ("groups", "user_permissions")

    def save_formset(self, request, form, formset, change):
        if formset.model is not Candidate:
            return super().save_formset(request, form, formset, change)
        for candidate in formset.save(commit=False):
            _save_candidate_and_queue_embedding(candidate, candidate.save)
        formset.save_m2m()

    def get_inline_instances(self, request, obj=None):
        # Only candidates have a profile row to edit.
        if obj is None or not hasattr(obj, "candidate"):
            return []
        return super().get_inline_instances(request, obj)


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    formfield_overrides = URL_FIELDS
    list_display = ("name", "website", "created_at")
    search_fields = ("name", "website", "=id")
    ordering = ("name",)
    readonly_fields = ("id", "created_at", "updated_at")


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
    form = CandidateAdminForm
    list_display = ("user", "experience_level", "location", "notifications_enabled", "is_active", "deleted_at")
    list_filter = ("experience_level", "notifications_enabled", "is_active", ("deleted_at", admin.EmptyFieldListFilter))
    list_select_related = ("user",)
    search_fields = ("user__email", "user__full_name", "location", "job_title", "headline", "=user__id")
    readonly_fields = ("created_at", "updated_at")
    raw_id_fields = ("user",)
    fields = (*CandidateAdminForm.Meta.fields, "created_at", "updated_at")

    def save_model(self, request, obj, form, change):
        _save_candidate_and_queue_embedding(
            obj, lambda: super(CandidateAdmin, self).save_model(request, obj, form, change)
        )


def _save_candidate_and_queue_embedding(candidate: Candidate, save) -> None:
    """Admin edits of a profile's text or skills re-embed it, like the API (issue 15)."""
    from matching import semantic

    stored = Candidate.objects.filter(pk=candidate.pk).first()
    before = semantic.snapshot(semantic.KIND_CANDIDATE, stored) if stored else None
    save()
    semantic.candidate_text_changed(before=before, candidate=candidate)
