from django.urls import path, re_path

from notifications import apis

urlpatterns = [
    path("notifications/", apis.NotificationListApi.as_view(), name="notification-list"),
    path("notifications/read-all/", apis.NotificationReadAllApi.as_view(), name="notification-read-all"),
    path("notifications/unread-count/", apis.NotificationUnreadCountApi.as_view(), name="notification-unread-count"),
    path("notifications/<str:notification_id>/read/", apis.NotificationReadApi.as_view(), name="notification-read"),
    # The contract's route has no trailing slash; the slash form is accepted too.
    # CONTRACT §6 spells it without the trailing slash; accept both in one route.
    re_path(r"^queues/health/?$", apis.QueuesHealthApi.as_view(), name="queues-health"),
]
