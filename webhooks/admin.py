from django.contrib import admin, messages

from webhooks import services
from webhooks.models import WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ("received_at", "source", "event_type", "table_name", "status", "attempts", "short_error")
    list_filter = ("status", "source", "event_type", ("received_at", admin.DateFieldListFilter))
    search_fields = ("delivery_key", "error", "table_name")
    date_hierarchy = "received_at"
    ordering = ("-received_at",)
    readonly_fields = [f.name for f in WebhookEvent._meta.fields]
    actions = ["reprocess"]

    @admin.display(description="erreur")
    def short_error(self, obj: WebhookEvent) -> str:
        return obj.error[:80]

    @admin.action(description="Retraiter les événements sélectionnés")
    def reprocess(self, request, queryset):
        count = services.webhook_reprocess(event_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} événement(s) remis en file.", messages.SUCCESS)

    def has_add_permission(self, request) -> bool:
        return False
