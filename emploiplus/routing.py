"""WebSocket URL router: the three namespaces of CONTRACT §5 on `/ws/…/`, and Socket.IO."""

from django.urls import re_path

from emploiplus.sio.websocket import SocketIOConsumer
from messaging.routing import websocket_urlpatterns as messaging_patterns
from notifications.routing import websocket_urlpatterns as notification_patterns

websocket_urlpatterns = [
    *messaging_patterns,
    *notification_patterns,
    re_path(r"^socket\.io/$", SocketIOConsumer.as_asgi()),
]
