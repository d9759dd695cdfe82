"""Admin of conversations and messages: searchable, filterable, deleted messages visible."""

from django.contrib import admin

from messaging.models import Conversation, ConversationParticipant, Message


class DeletedFilter(admin.SimpleListFilter):
    title = "supprimé"
    parameter_name = "deleted"

    def lookups(self, request, model_admin):
        return [("yes", "Supprimés"), ("no", "Non supprimés")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(deleted_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(deleted_at__isnull=True)
        return queryset


class ParticipantInline(admin.TabularInline):
    model = ConversationParticipant
    extra = 0
    raw_id_fields = ["user"]
    readonly_fields = ["joined_at"]


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "title", "is_group", "last_message_at", "created_at"]
    list_filter = [
        "is_group",
        ("created_at", admin.DateFieldListFilter),
        ("last_message_at", admin.DateFieldListFilter),
    ]
    search_fields = ["id", "title", "memberships__user__email", "memberships__user__id"]
    date_hierarchy = "created_at"
    readonly_fields = ["direct_key", "last_message", "last_message_at", "created_at", "updated_at"]
    raw_id_fields = ["created_by"]
    inlines = [ParticipantInline]
    show_full_result_count = False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "conversation_id", "sender", "short_content", "created_at", "read_at", "deleted_at"]
    list_filter = [DeletedFilter, ("created_at", admin.DateFieldListFilter)]
    search_fields = ["content", "sender__email", "=conversation__id", "=id"]
    list_select_related = ["sender"]
    date_hierarchy = "created_at"
    raw_id_fields = ["conversation", "sender", "recipient"]
    readonly_fields = ["client_message_id", "created_at", "updated_at"]
    show_full_result_count = False

    @admin.display(description="contenu")
    def short_content(self, obj: Message) -> str:
        return obj.content[:80]


@admin.register(ConversationParticipant)
class ConversationParticipantAdmin(admin.ModelAdmin):
    list_display = ["conversation_id", "user", "joined_at", "last_read_at"]
    search_fields = ["user__email", "=user__id", "=conversation__id"]
    list_select_related = ["user"]
    raw_id_fields = ["conversation", "user"]
