"""ASGI entry point: HTTP (Django) and WebSocket (Channels) on one server.

daphne -b 127.0.0.1 -p 8000 emploiplus.asgi:application
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.middleware import WebSocketAuthMiddlewareStack  # noqa: E402
from emploiplus.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": WebSocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
