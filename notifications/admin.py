"""Admin: notifications, their per-channel deliveries (failed ones easy to find), batches.

Queue-level views (jobs, failed jobs, requeue) are django-rq's dashboard at /admin/rq/.
"""

from __future__ import annotations

from django.contrib import admin

from notifications.models import Notification, NotificationBatch, NotificationDelivery


class DeliveryInline(admin.TabularInline):
    model = NotificationDelivery
    extra = 0
    can_delete = False
    fields = ("channel", "status", "attempts", "last_error", "provider_id", "batch_key", "sent_at")
    readonly_fields = fields


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("title", "type", "user", "created_at", "read_at")
    list_filter = ("type", ("read_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("title", "body", "user__email", "=id", "=batch__id")
    raw_id_fields = ("user", "batch")
    date_hierarchy = "created_at"
    inlines = [DeliveryInline]
    list_select_related = ("user",)


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(admin.ModelAdmin):
    list_display = ("notification", "channel", "status", "attempts", "short_error", "batch_key", "updated_at")
    list_filter = ("status", "channel")
    search_fields = ("=notification__id", "notification__user__email", "batch_key", "provider_id", "last_error")
    raw_id_fields = ("notification",)
    readonly_fields = ("created_at", "updated_at")
    list_select_related = ("notification",)

    @admin.display(description="dernière erreur")
    def short_error(self, obj: NotificationDelivery) -> str:
        return obj.last_error[:80]


@admin.register(NotificationBatch)
class NotificationBatchAdmin(admin.ModelAdmin):
    list_display = ("title", "type", "role", "status", "requested_count", "recipients_count", "created_at", "stored_at")
    list_filter = ("status", "type")
    search_fields = ("=id", "title")
    readonly_fields = ("created_at", "stored_at", "requested_count", "recipients_count", "status")
