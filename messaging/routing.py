"""WebSocket routes of messaging (CONTRACT §5)."""

from django.urls import path

from messaging.consumers import MessagesConsumer, PresenceConsumer

websocket_urlpatterns = [
    path("ws/messages/", MessagesConsumer.as_asgi()),
    path("ws/presence/", PresenceConsumer.as_asgi()),
]
