from django.contrib import admin, messages

from emploiplus.admin import ReadOnlyAdmin
from matching import semantic, services
from matching.models import (
    CandidateEmbedding,
    CandidateJobMatch,
    CandidateMatchProfile,
    Job,
    JobEmbedding,
    Skill,
    SkillAlias,
    SkillEmbedding,
)
from matching.skills import skills_normalize


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = (
        "title",
        "company",
        "status",
        "job_type",
        "notification_status",
        "matching_candidates_count",
        "created_at",
    )
    list_filter = ("status", "notification_status", "job_type", "experience_level")
    search_fields = ("title", "location", "company__name")
    raw_id_fields = ("company", "created_by")
    readonly_fields = ("notification_sent_at", "matching_candidates_count", "created_at", "updated_at")
    date_hierarchy = "created_at"
    actions = ["run_matching"]

    def save_model(self, request, obj, form, change):
        # Same rules as the API: skills stored normalised; activating a job runs the pipeline.
        previous = Job.objects.filter(pk=obj.pk).values_list("status", flat=True).first() if change else None
        stored = Job.objects.filter(pk=obj.pk).first() if change else None
        before = semantic.snapshot(semantic.KIND_JOB, stored) if stored else None
        obj.required_skills = skills_normalize(obj.required_skills or [])
        super().save_model(request, obj, form, change)
        semantic.job_text_changed(before=before, job=obj)
        if obj.status == "active" and obj.deleted_at is None and previous != "active":
            services.job_queue_matching(job=obj)

    @admin.action(description="Relancer le matching et les notifications")
    def run_matching(self, request, queryset):
        for job in queryset:
            services.job_queue_matching(job=job)
        self.message_user(request, f"{queryset.count()} offre(s) remise(s) en file.", messages.SUCCESS)


@admin.register(CandidateJobMatch)
class CandidateJobMatchAdmin(admin.ModelAdmin):
    list_display = ("job", "candidate", "match_score", "notified_at", "created_at")
    list_filter = (("notified_at", admin.EmptyFieldListFilter),)
    search_fields = ("job__title", "candidate__user__email")
    raw_id_fields = ("job", "candidate")
    ordering = ("-created_at",)


@admin.register(SkillAlias)
class SkillAliasAdmin(admin.ModelAdmin):
    """Aliases are stored as comparison keys; saving clears the alias cache everywhere."""

    list_display = ("alias", "canonical", "updated_at")
    search_fields = ("alias", "canonical")
    list_editable = ("canonical",)
    actions = ["renormalize_stored_skills"]

    @admin.action(description="Ré-appliquer les alias aux compétences déjà enregistrées (candidats et offres)")
    def renormalize_stored_skills(self, request, queryset):
        changed = services.skills_renormalize_all()
        self.message_user(
            request,
            f"{changed['candidates']} profil(s) et {changed['jobs']} offre(s) mis à jour.",
            messages.SUCCESS,
        )


@admin.register(Skill)
class SkillAdmin(ReadOnlyAdmin):
    """The skill-name dictionary the matcher's profiles use (filled by a database trigger)."""

    list_display = ("id", "name")
    search_fields = ("name",)
    ordering = ("name",)


@admin.register(CandidateMatchProfile)
class CandidateMatchProfileAdmin(ReadOnlyAdmin):
    """What the matcher reads for each eligible candidate (kept by database triggers)."""

    list_display = ("candidate", "experience_level", "target_salary_min", "notifications_enabled")
    list_filter = ("experience_level", "notifications_enabled")
    search_fields = ("candidate__user__email",)
    raw_id_fields = ("candidate",)


class SemanticTableAdmin(ReadOnlyAdmin):
    """The embedding tables (issue 15): read-only, vectors not loaded; empty with a notice on
    a server without pgvector, where the tables do not exist."""

    def get_queryset(self, request):
        if not semantic.enabled():
            return self.model.objects.none()
        return super().get_queryset(request).defer("embedding")

    def changelist_view(self, request, extra_context=None):
        state = semantic.status()
        if not state.enabled:
            self.message_user(request, f"Correspondance sémantique désactivée : {state.reason}", messages.WARNING)
        return super().changelist_view(request, extra_context)


@admin.register(JobEmbedding)
class JobEmbeddingAdmin(SemanticTableAdmin):
    list_display = ("job", "model", "embedded_at", "source_updated_at")
    search_fields = ("job__title",)
    raw_id_fields = ("job",)
    exclude = ("embedding",)


@admin.register(CandidateEmbedding)
class CandidateEmbeddingAdmin(SemanticTableAdmin):
    list_display = ("candidate", "model", "embedded_at", "source_updated_at")
    search_fields = ("candidate__user__email",)
    raw_id_fields = ("candidate",)
    exclude = ("embedding",)


@admin.register(SkillEmbedding)
class SkillEmbeddingAdmin(SemanticTableAdmin):
    list_display = ("name", "model")
    search_fields = ("name",)
    exclude = ("embedding",)
