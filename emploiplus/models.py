"""Small shared model pieces."""

from __future__ import annotations

import uuid

import uuid6
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.search import SearchVectorField
from django.db import models


class TimestampedModel(models.Model):
    """created_at / updated_at. The `update_updated_at_column()` trigger moves `updated_at`
    on every UPDATE, including raw SQL ones; `auto_now` keeps Django's view in sync."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()


def time_ordered_uuid() -> uuid.UUID:
    """A version 7 UUID (RFC 9562): the Unix time in milliseconds, then 74 random bits. Rows
    keyed by it are inserted at the right end of their primary key's B-tree, as they come,
    instead of on a random leaf: the page is already in memory and already logged since the
    last checkpoint (a random leaf of a large index is often neither: a read, and a full-page
    image in the WAL of the commit). For tables written in time order (messages).

    The `uuid6` package's, strictly increasing within a process (a second id in the same
    millisecond takes the next one), as a plain `uuid.UUID` (Python has `uuid.uuid7` from 3.14)."""
    return uuid.UUID(int=uuid6.uuid7().int)


# --- Read-only models over the SQL views (created by the apps' 0002_sql migrations) -----
# managed = False: Django never creates, alters or drops these relations; the SQL in the
# migrations is their definition. They live here, in the project app, because each view
# joins several apps' tables.


class ReadOnlyModel(models.Model):
    class Meta:
        abstract = True
        managed = False

    def save(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} is a read-only view")

    def delete(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} is a read-only view")


class NewsfeedEntry(ReadOnlyModel):
    """A visible post with its author and company (`v_newsfeed_feed`)."""

    id = models.UUIDField(primary_key=True)
    user = models.ForeignKey("accounts.User", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    title = models.CharField(max_length=300)
    content = models.TextField()
    image_urls = ArrayField(models.TextField())
    is_pinned = models.BooleanField()
    likes_count = models.IntegerField()
    comments_count = models.IntegerField()
    shares_count = models.IntegerField()
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    author_full_name = models.CharField(max_length=200)
    author_avatar_url = models.CharField(max_length=1000)
    author_role = models.CharField(max_length=16)
    company_id = models.UUIDField(null=True)
    company_name = models.CharField(max_length=200, null=True)
    company_logo_url = models.CharField(max_length=1000, null=True)

    class Meta(ReadOnlyModel.Meta):
        db_table = "v_newsfeed_feed"
        verbose_name = "entrée du fil d'actualité"
        verbose_name_plural = "fil d'actualité (vue)"

    def __str__(self) -> str:
        return self.title or self.content[:60]


class CandidateJobScore(ReadOnlyModel):
    """CONTRACT §7 score of an active candidate for an active job (`v_candidate_job_matches`)."""

    id = models.CharField(max_length=80, primary_key=True)  # "<candidate id>:<job id>"
    candidate = models.ForeignKey(
        "accounts.Candidate", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    job = models.ForeignKey("matching.Job", on_delete=models.DO_NOTHING, related_name="+", db_constraint=False)
    company_id = models.UUIDField()
    company_name = models.CharField(max_length=200)
    job_title = models.CharField(max_length=200)
    skill_score = models.DecimalField(max_digits=4, decimal_places=1)
    experience_score = models.DecimalField(max_digits=4, decimal_places=1)
    salary_score = models.DecimalField(max_digits=4, decimal_places=1)
    match_score = models.DecimalField(max_digits=4, decimal_places=1)
    matched_skills = ArrayField(models.TextField())
    missing_skills = ArrayField(models.TextField())
    notifications_enabled = models.BooleanField()

    class Meta(ReadOnlyModel.Meta):
        db_table = "v_candidate_job_matches"
        verbose_name = "score candidat / offre (vue)"
        verbose_name_plural = "scores candidat / offre (vue)"

    def __str__(self) -> str:
        return f"{self.job_title}: {self.match_score}"


class SearchEntry(ReadOnlyModel):
    """One searchable job, post or candidate (`v_search_optimized`)."""

    id = models.CharField(max_length=50, primary_key=True)  # "<kind>:<object id>"
    kind = models.CharField(max_length=16)
    object_id = models.UUIDField()
    title = models.TextField()
    snippet = models.TextField()
    search_vector = SearchVectorField()
    created_at = models.DateTimeField()

    class Meta(ReadOnlyModel.Meta):
        db_table = "v_search_optimized"
        verbose_name = "entrée de recherche (vue)"
        verbose_name_plural = "index de recherche (vue)"

    def __str__(self) -> str:
        return f"{self.kind}: {self.title}"


class _MatchStats(ReadOnlyModel):
    """Columns shared by the two statistics materialized views."""

    matches_count = models.BigIntegerField()
    notified_count = models.BigIntegerField()
    avg_match_score = models.DecimalField(max_digits=4, decimal_places=1)
    max_match_score = models.DecimalField(max_digits=4, decimal_places=1)
    last_match_at = models.DateTimeField(null=True)

    class Meta(ReadOnlyModel.Meta):
        abstract = True


class JobStats(_MatchStats):
    """`mv_job_stats`, refreshed every 5 minutes."""

    job = models.OneToOneField(
        "matching.Job", primary_key=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )
    company_id = models.UUIDField()

    class Meta(_MatchStats.Meta):
        db_table = "mv_job_stats"
        verbose_name = "statistiques d'offre (vue matérialisée)"
        verbose_name_plural = "statistiques d'offres (vue matérialisée)"

    def __str__(self) -> str:
        return f"{self.job_id}: {self.matches_count} correspondances"


class CandidateStats(_MatchStats):
    """`mv_candidate_stats`, refreshed every 5 minutes."""

    candidate = models.OneToOneField(
        "accounts.Candidate", primary_key=True, on_delete=models.DO_NOTHING, related_name="+", db_constraint=False
    )

    class Meta(_MatchStats.Meta):
        db_table = "mv_candidate_stats"
        verbose_name = "statistiques de candidat (vue matérialisée)"
        verbose_name_plural = "statistiques de candidats (vue matérialisée)"

    def __str__(self) -> str:
        return f"{self.candidate_id}: {self.matches_count} correspondances"
