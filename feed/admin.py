"""Admin of the feed: posts with moderation (hide/unhide) and pinning, likes, comments, shares."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone

from feed.models import Comment, Post, PostLike, PostShare


class DeletedFilter(admin.SimpleListFilter):
    title = "supprimé"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return (("no", "Non"), ("yes", "Oui"))

    def queryset(self, request, queryset):
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        return queryset


@admin.register(Post)
class PostAdmin(admin.ModelAdmin):
    list_display = (
        "__str__",
        "user",
        "is_pinned",
        "is_hidden",
        "likes_count",
        "comments_count",
        "shares_count",
        "created_at",
        "deleted_at",
    )
    list_filter = ("is_pinned", "is_hidden", DeletedFilter, "created_at")
    search_fields = ("title", "content", "user__email", "user__full_name")
    list_select_related = ("user",)
    raw_id_fields = ("user",)
    date_hierarchy = "created_at"
    readonly_fields = ("likes_count", "comments_count", "shares_count", "created_at", "updated_at")
    actions = ("hide", "unhide", "pin", "unpin", "soft_delete")
    show_full_result_count = False  # no COUNT(*) over a million posts on every page

    def _update(self, request, queryset: QuerySet, message: str, **fields) -> None:
        # One UPDATE per post through save(), so the updated_at trigger and Django agree.
        count = 0
        for post in queryset:
            for name, value in fields.items():
                setattr(post, name, value)
            post.save(update_fields=[*fields, "updated_at"])
            count += 1
        self.message_user(request, f"{count} publication(s) {message}.", messages.SUCCESS)

    @admin.action(description="Masquer (modération)")
    def hide(self, request, queryset):
        self._update(request, queryset, "masquée(s)", is_hidden=True)

    @admin.action(description="Rendre visible")
    def unhide(self, request, queryset):
        self._update(request, queryset, "rendue(s) visible(s)", is_hidden=False)

    @admin.action(description="Épingler")
    def pin(self, request, queryset):
        self._update(request, queryset, "épinglée(s)", is_pinned=True)

    @admin.action(description="Désépingler")
    def unpin(self, request, queryset):
        self._update(request, queryset, "désépinglée(s)", is_pinned=False)

    @admin.action(description="Supprimer (suppression douce)")
    def soft_delete(self, request, queryset):
        self._update(request, queryset.filter(deleted_at__isnull=True), "supprimée(s)", deleted_at=timezone.now())


@admin.register(PostLike)
class PostLikeAdmin(admin.ModelAdmin):
    list_display = ("post", "user", "created_at")
    list_select_related = ("post", "user")
    search_fields = ("user__email", "post__title")
    raw_id_fields = ("post", "user")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(Comment)
class CommentAdmin(admin.ModelAdmin):
    list_display = ("__str__", "post", "user", "created_at", "deleted_at")
    list_filter = (DeletedFilter, "created_at")
    list_select_related = ("post", "user")
    search_fields = ("content", "user__email", "post__title")
    raw_id_fields = ("post", "user")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(PostShare)
class PostShareAdmin(admin.ModelAdmin):
    list_display = ("post", "user", "comment", "created_at")
    list_select_related = ("post", "user")
    search_fields = ("user__email", "comment", "post__title")
    raw_id_fields = ("post", "user")
    date_hierarchy = "created_at"
    show_full_result_count = False
