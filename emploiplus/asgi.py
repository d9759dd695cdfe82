"""ASGI entry point: HTTP (Django) and WebSocket (Channels) on one server.

daphne -b 127.0.0.1 -p 8000 emploiplus.asgi:application

Signed webhooks (`/api/webhooks/…`) skip Django's HTTP stack: a Channels HTTP consumer
acknowledges them (webhooks.apis, which says why); every other path goes to Django, whose
middleware chain and view run as one sync call in a thread pool
(emploiplus.handlers.SyncStackASGIHandler, which says why).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")

from emploiplus.handlers import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from accounts.middleware import WebSocketAuthMiddlewareStack  # noqa: E402
from emploiplus.routing import websocket_urlpatterns  # noqa: E402
from webhooks.apis import WebhookConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                re_path(r"^api/webhooks/", WebhookConsumer.as_asgi()),
                re_path(r"", django_asgi_app),
            ]
        ),
        "websocket": WebSocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
