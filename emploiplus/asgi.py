"""ASGI entry point: HTTP (Django) and WebSocket (Channels) on one server.

    uvicorn emploiplus.asgi:application   (or daphne emploiplus.asgi:application)

Every HTTP path — the REST API, the admin, the signed webhooks — goes to Django, whose
middleware chain and view run as one sync call in a thread pool
(emploiplus.handlers.SyncStackASGIHandler, which says why).
"""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")

from emploiplus.handlers import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.middleware import WebSocketAuthMiddlewareStack  # noqa: E402
from emploiplus import sentry  # noqa: E402
from emploiplus.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": sentry.wrap_websocket(WebSocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
