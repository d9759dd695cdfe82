"""WebSocket URL router: the three namespaces of CONTRACT §5."""

from messaging.routing import websocket_urlpatterns as messaging_patterns
from notifications.routing import websocket_urlpatterns as notification_patterns

websocket_urlpatterns = [*messaging_patterns, *notification_patterns]
