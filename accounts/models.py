"""Users, companies and candidate profiles.

A user's primary key **is** the Supabase auth uid (the JWT `sub`). Roles are stored
here; `admin` is only ever set from `app_metadata` or by staff in this database.
"""

from __future__ import annotations

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q

from emploiplus.models import TimestampedModel


class Role(models.TextChoices):
    CANDIDATE = "candidate", "Candidat"
    COMPANY = "company", "Entreprise"
    ADMIN = "admin", "Administrateur"


class ExperienceLevel(models.TextChoices):
    """Ordered: entry < junior < mid < senior < lead (see `LEVEL_RANK`)."""

    ENTRY = "entry", "Débutant"
    JUNIOR = "junior", "Junior"
    MID = "mid", "Confirmé"
    SENIOR = "senior", "Senior"
    LEAD = "lead", "Lead"


# Length limits of a candidate's free-text profile (admin, API and webhook records).
HEADLINE_MAX_LENGTH = 200
SUMMARY_MAX_LENGTH = 2000

LEVEL_RANK = {level.value: rank for rank, level in enumerate(ExperienceLevel, start=1)}


class Company(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    logo_url = models.URLField(max_length=1000, blank=True, default="")
    website = models.URLField(max_length=1000, blank=True, default="")

    class Meta:
        db_table = "companies"
        verbose_name = "entreprise"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str | None = None, password: str | None = None, **fields):
        email = self.normalize_email(email) if email else None
        user = self.model(email=email, **fields)
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()  # Supabase users never log in with a Django password
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **fields):
        fields.setdefault("role", Role.ADMIN)
        fields.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False, help_text="Supabase auth uid (sub)")
    email = models.EmailField(max_length=320, unique=True, null=True, blank=True)
    full_name = models.CharField(max_length=200, blank=True, default="")
    avatar_url = models.URLField(max_length=1000, blank=True, default="")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.CANDIDATE)
    company = models.ForeignKey(Company, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        db_table = "users"
        verbose_name = "utilisateur"
        constraints = [
            models.CheckConstraint(condition=Q(role__in=Role.values), name="users_role_valid"),
        ]

    def __str__(self) -> str:
        return self.email or str(self.id)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


class Candidate(TimestampedModel):
    user = models.OneToOneField(
        User, primary_key=True, db_column="id", on_delete=models.CASCADE, related_name="candidate"
    )
    skills = ArrayField(models.TextField(), default=list, blank=True, help_text="Normalised skill names")
    experience_level = models.CharField(max_length=16, choices=ExperienceLevel.choices, null=True, blank=True)
    location = models.CharField(max_length=200, blank=True, default="")
    job_title = models.CharField(max_length=200, blank=True, default="")
    # Free French text of the profile (issue 15): embedded with the skills for semantic matching.
    # db_default: rows inserted by other writers (Supabase, raw SQL) get "" too.
    headline = models.CharField(max_length=HEADLINE_MAX_LENGTH, blank=True, default="", db_default="")
    summary = models.CharField(max_length=SUMMARY_MAX_LENGTH, blank=True, default="", db_default="")
    target_salary_min = models.PositiveIntegerField(null=True, blank=True)
    target_salary_max = models.PositiveIntegerField(null=True, blank=True)
    notifications_enabled = models.BooleanField(default=True)
    is_active = models.BooleanField(default=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    # Set with the profile change that queued a re-match, cleared by the re-match: one still
    # set a while later was lost (Redis down at enqueue, dead worker) and the sweep runs it.
    rematch_requested_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Maintained by the candidates_search_vector trigger (accounts migration 0002).
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        db_table = "candidates"
        verbose_name = "candidat"
        constraints = [
            models.CheckConstraint(
                condition=Q(experience_level__isnull=True) | Q(experience_level__in=ExperienceLevel.values),
                name="candidates_experience_level_valid",
            ),
            models.CheckConstraint(
                condition=Q(target_salary_min__isnull=True)
                | Q(target_salary_max__isnull=True)
                | Q(target_salary_min__lte=models.F("target_salary_max")),
                name="candidates_salary_range_valid",
            ),
        ]
        indexes = [
            GinIndex(fields=["skills"], name="idx_candidates_skills_gin"),
            GinIndex(fields=["search_vector"], name="idx_candidates_search_gin"),
            models.Index(
                fields=["rematch_requested_at"],
                condition=Q(rematch_requested_at__isnull=False),
                name="idx_candidates_rematch_due",
            ),
        ]

    def __str__(self) -> str:
        return f"Candidat {self.user}"

    @property
    def id(self):
        return self.user_id
