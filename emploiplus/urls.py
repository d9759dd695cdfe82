from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

from emploiplus import devchat, health, metrics, views

PUBLIC = {"authentication_classes": [], "permission_classes": [AllowAny]}

urlpatterns = [
    path("", views.home, name="home"),
    # DEBUG only (404 otherwise): the Socket.IO demo chat and the client bundle it loads.
    path("dev/chat/", devchat.chat, name="dev-chat"),
    path("dev/socket.io.min.js", devchat.client_bundle, name="dev-socketio-client"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/rq/", include("django_rq.urls")),
    path("admin/", admin.site.urls),
    # The API description is public (CONTRACT §6), no token needed.
    path("api/schema/", SpectacularAPIView.as_view(**PUBLIC), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema", **PUBLIC), name="docs"),
    path("api/", include("accounts.urls")),
    path("api/", include("matching.urls")),
    path("api/", include("feed.urls")),
    path("api/", include("messaging.urls")),
    path("api/", include("notifications.urls")),
    path("api/webhooks/", include("webhooks.urls")),
]

handler404 = "emploiplus.exceptions.not_found"
handler500 = "emploiplus.exceptions.server_error"
