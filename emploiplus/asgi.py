"""ASGI entry point: HTTP (Django) and WebSocket (Channels) on one server.

    uvicorn emploiplus.asgi:application   (or daphne emploiplus.asgi:application)

Every HTTP path — the REST API, the admin, the signed webhooks — goes to Django, whose
middleware chain and view run as one sync call in a thread pool
(emploiplus.handlers.SyncStackASGIHandler, which says why), except `/socket.io/`: Engine.IO
long-polling (emploiplus.sio.polling), whose GETs wait up to SOCKETIO_PING_INTERVAL and must
not hold a Django thread. WebSockets: `/ws/…/` and `/socket.io/` (emploiplus.routing).
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")

from emploiplus.handlers import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.middleware import WebSocketAuthMiddlewareStack  # noqa: E402
from emploiplus import sentry  # noqa: E402
from emploiplus.routing import websocket_urlpatterns  # noqa: E402
from emploiplus.sio.polling import http_app as socketio_polling  # noqa: E402


async def http(scope, receive, send):
    if scope["path"].startswith("/socket.io/"):
        return await socketio_polling(scope, receive, send)
    return await django_asgi_app(scope, receive, send)


application = ProtocolTypeRouter(
    {
        "http": http,
        "websocket": sentry.wrap_websocket(WebSocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

# Everything imported so far (Django, the apps, their modules: most of a server's heap) lives
# as long as the process. Moved out of the collector's reach, the full collections that a
# busy server runs every few seconds no longer walk it (perf on a server under sequential
# sends: ~15 % of its CPU was in gc_collect_main/visit_*).
gc.freeze()
