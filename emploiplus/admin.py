"""Admin pages over the read-only SQL views (nothing can be added, changed or deleted)."""

from django.contrib import admin

from emploiplus.models import CandidateJobScore, CandidateStats, JobStats, NewsfeedEntry, SearchEntry


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(NewsfeedEntry)
class NewsfeedEntryAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "author_full_name",
        "company_name",
        "is_pinned",
        "likes_count",
        "comments_count",
        "created_at",
    )
    list_filter = ("is_pinned", "author_role")
    search_fields = ("title", "content", "author_full_name", "company_name")
    date_hierarchy = "created_at"


@admin.register(CandidateJobScore)
class CandidateJobScoreAdmin(ReadOnlyAdmin):
    list_display = ("candidate_id", "job_title", "company_name", "match_score", "skill_score", "experience_score")
    search_fields = ("=candidate__user__email", "job_title", "company_name")
    list_filter = ("notifications_enabled",)
    # Unfiltered, this view is candidates × active jobs: never count it.
    show_full_result_count = False


@admin.register(SearchEntry)
class SearchEntryAdmin(ReadOnlyAdmin):
    list_display = ("kind", "title", "created_at")
    list_filter = ("kind",)
    search_fields = ("title",)


@admin.register(JobStats)
class JobStatsAdmin(ReadOnlyAdmin):
    list_display = ("job", "matches_count", "notified_count", "avg_match_score", "max_match_score", "last_match_at")
    list_select_related = ("job",)


@admin.register(CandidateStats)
class CandidateStatsAdmin(ReadOnlyAdmin):
    list_display = ("candidate_id", "matches_count", "notified_count", "avg_match_score", "last_match_at")
