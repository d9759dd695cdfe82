"""Jobs, candidate ↔ job matches and the skill alias table."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q
from pgvector.django import HnswIndex, VectorField

from accounts.models import Candidate, Company, ExperienceLevel
from emploiplus.models import TimestampedModel


class JobType(models.TextChoices):
    CDI = "CDI", "CDI"
    CDD = "CDD", "CDD"
    STAGE = "stage", "Stage"
    ALTERNANCE = "alternance", "Alternance"
    FREELANCE = "freelance", "Freelance"
    INTERIM = "interim", "Intérim"


class JobStatus(models.TextChoices):
    DRAFT = "draft", "Brouillon"
    ACTIVE = "active", "Active"
    CLOSED = "closed", "Fermée"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "En attente"
    QUEUED = "queued", "En file"
    SENT = "sent", "Envoyée"
    FAILED = "failed", "Échec"


class Job(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="jobs")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs_created"
    )
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    location = models.CharField(max_length=200, blank=True, default="")
    job_type = models.CharField(max_length=16, choices=JobType.choices, default=JobType.CDI)
    required_skills = ArrayField(models.TextField(), default=list, blank=True, help_text="Normalised skill names")
    experience_level = models.CharField(max_length=16, choices=ExperienceLevel.choices, null=True, blank=True)
    salary_min = models.PositiveIntegerField(null=True, blank=True)
    salary_max = models.PositiveIntegerField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.DRAFT)
    deleted_at = models.DateTimeField(null=True, blank=True)
    notification_status = models.CharField(
        max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    notification_sent_at = models.DateTimeField(null=True, blank=True)
    matching_candidates_count = models.PositiveIntegerField(default=0)
    # Maintained by the jobs_search_vector trigger (matching migration 0002).
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        db_table = "jobs"
        verbose_name = "offre d'emploi"
        verbose_name_plural = "offres d'emploi"
        constraints = [
            models.CheckConstraint(condition=Q(job_type__in=JobType.values), name="jobs_job_type_valid"),
            models.CheckConstraint(condition=Q(status__in=JobStatus.values), name="jobs_status_valid"),
            models.CheckConstraint(
                condition=Q(notification_status__in=NotificationStatus.values),
                name="jobs_notification_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(experience_level__isnull=True) | Q(experience_level__in=ExperienceLevel.values),
                name="jobs_experience_level_valid",
            ),
            models.CheckConstraint(
                condition=Q(salary_min__isnull=True)
                | Q(salary_max__isnull=True)
                | Q(salary_min__lte=models.F("salary_max")),
                name="jobs_salary_range_valid",
            ),
        ]
        indexes = [
            GinIndex(fields=["required_skills"], name="idx_jobs_required_skills_gin"),
            GinIndex(fields=["search_vector"], name="idx_jobs_search_gin"),
            models.Index(
                fields=["-created_at", "-id"],
                name="idx_jobs_active_created",
                condition=Q(status="active", deleted_at__isnull=True),
            ),
            models.Index(
                fields=["created_at"],
                name="idx_jobs_pending_notification",
                condition=Q(status="active", notification_status="pending", deleted_at__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return self.title


class CandidateJobMatch(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    candidate = models.ForeignKey(Candidate, on_delete=models.CASCADE, related_name="matches")
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="matches")
    match_score = models.DecimalField(max_digits=4, decimal_places=1)
    # Issue 15: set on rows the hybrid notification threshold added (MATCH_HYBRID_NOTIFY).
    semantic_score = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    hybrid_score = models.DecimalField(max_digits=4, decimal_places=1, null=True, blank=True)
    skill_score = models.DecimalField(max_digits=4, decimal_places=1, default=0)
    experience_score = models.DecimalField(max_digits=4, decimal_places=1, default=0)
    salary_score = models.DecimalField(max_digits=4, decimal_places=1, default=0)
    matched_skills = ArrayField(models.TextField(), default=list, blank=True)
    missing_skills = ArrayField(models.TextField(), default=list, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "candidate_job_matches"
        verbose_name = "correspondance candidat / offre"
        constraints = [
            models.UniqueConstraint(fields=["candidate", "job"], name="candidate_job_matches_unique_pair"),
            models.CheckConstraint(
                condition=Q(match_score__gte=0) & Q(match_score__lte=100), name="candidate_job_matches_score_range"
            ),
        ]
        indexes = [models.Index(fields=["job", "-match_score"], name="idx_matches_job_score")]

    def __str__(self) -> str:
        return f"{self.candidate_id} × {self.job_id}: {self.match_score}"


class SkillAlias(TimestampedModel):
    """`alias` (already reduced to its comparison key) → `canonical` skill name."""

    alias = models.CharField(max_length=100, unique=True)
    canonical = models.CharField(max_length=100)

    class Meta:
        db_table = "skill_aliases"
        verbose_name = "alias de compétence"
        verbose_name_plural = "alias de compétences"
        ordering = ["canonical", "alias"]

    def __str__(self) -> str:
        return f"{self.alias} → {self.canonical}"

    def save(self, *args, **kwargs):
        # Stored reduced, so "React.JS" typed in the admin is the key "reactjs".
        from matching.skills import fold, skill_key

        self.alias = skill_key(self.alias)
        self.canonical = fold(self.canonical)
        super().save(*args, **kwargs)


class Skill(models.Model):
    """Every normalised skill name ever stored on a candidate, with a small integer id.

    Filled by the `candidate_match_profiles_refresh` trigger function (migration 0007); the
    matcher compares these ids instead of the names. Rows are never deleted, so an id keeps
    its meaning."""

    id = models.AutoField(primary_key=True)
    name = models.TextField(unique=True)

    class Meta:
        db_table = "skills"
        verbose_name = "compétence (dictionnaire)"
        verbose_name_plural = "compétences (dictionnaire)"
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CandidateMatchProfile(models.Model):
    """What the job → candidates matcher reads: one narrow row per *eligible* candidate.

    Eligible = candidate active and not deleted, account (users.is_active) active. Kept by
    statement-level triggers on `candidates` and `users` (migration 0007), never written by
    the application: 96 MB at 1M candidates instead of 301 MB for `candidates`, skills as
    integer ids (`skill_ids`, from `Skill`), and no users probe per candidate. See docs/matching.md."""

    candidate = models.OneToOneField(
        Candidate, primary_key=True, on_delete=models.DO_NOTHING, related_name="match_profile"
    )
    skill_ids = ArrayField(models.IntegerField(), default=list)
    experience_level = models.CharField(max_length=16, null=True, blank=True)
    target_salary_min = models.PositiveIntegerField(null=True, blank=True)
    notifications_enabled = models.BooleanField(default=True)

    class Meta:
        db_table = "candidate_match_profiles"
        verbose_name = "profil de correspondance"
        indexes = [GinIndex(fields=["skill_ids"], name="idx_match_profiles_skills_gin")]

    def __str__(self) -> str:
        return str(self.candidate_id)


# --- semantic matching (issue 15) -------------------------------------------------------
# These tables exist only on a server with the pgvector extension (matching migration 0009
# creates them conditionally; `matching.semantic.status()` says whether they are there).
# Written by the worker (matching.semantic), read by the hybrid ranking. See docs/matching.md.

EMBEDDING_DIMENSIONS = 512


class JobEmbedding(models.Model):
    """A job's embedding (title + description + skills), cosine-indexed with HNSW."""

    # DO_NOTHING: the table may not exist (no pgvector); its own FK cascades in the database.
    job = models.OneToOneField(Job, primary_key=True, on_delete=models.DO_NOTHING, related_name="embedding")
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    # sha256 of (model, embedded text): the worker re-embeds only when it changes.
    source_hash = models.CharField(max_length=64)
    # jobs.updated_at when last checked: newer rows are looked at again by the sweep.
    source_updated_at = models.DateTimeField()
    model = models.CharField(max_length=64)
    embedded_at = models.DateTimeField()

    class Meta:
        db_table = "job_embeddings"
        verbose_name = "embedding d'offre"
        indexes = [
            HnswIndex(
                name="idx_job_embeddings_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.job_id} ({self.model})"


class CandidateEmbedding(models.Model):
    """A profile's embedding (headline + job title + summary + skills), cosine-indexed with HNSW."""

    candidate = models.OneToOneField(Candidate, primary_key=True, on_delete=models.DO_NOTHING, related_name="embedding")
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    source_hash = models.CharField(max_length=64)
    source_updated_at = models.DateTimeField()
    model = models.CharField(max_length=64)
    embedded_at = models.DateTimeField()

    class Meta:
        db_table = "candidate_embeddings"
        verbose_name = "embedding de profil"
        indexes = [
            HnswIndex(
                name="idx_candidate_embeddings_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.candidate_id} ({self.model})"


class SkillEmbedding(models.Model):
    """One vector per normalised skill name: explains which skills drove a semantic match."""

    name = models.TextField(primary_key=True)
    embedding = VectorField(dimensions=EMBEDDING_DIMENSIONS)
    model = models.CharField(max_length=64)

    class Meta:
        db_table = "skill_embeddings"
        verbose_name = "embedding de compétence"

    def __str__(self) -> str:
        return self.name
