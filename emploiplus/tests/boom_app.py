"""The real ASGI application plus three routes that fail on purpose (Sentry tests only):
`GET /__boom__/` (a Django view raising), `/ws/__boom__/` (a consumer raising in `receive`)
and `/ws/__boom_handler__/` (an EventConsumer handler raising: caught, logged, reported).

    daphne emploiplus.tests.boom_app:application
"""

from django.urls import path, re_path

from emploiplus.asgi import application  # noqa: F401 - what daphne serves
from emploiplus.consumers import EventConsumer
from emploiplus.realtime import Namespace


def boom_view(request):
    raise RuntimeError("boom view")


class BoomNamespace(Namespace):
    handled_events = ("boom",)

    async def on_boom(self, data):
        raise RuntimeError("boom handler")


class BoomConsumer(EventConsumer.for_namespace(BoomNamespace)):
    async def receive(self, text_data=None, bytes_data=None):
        raise RuntimeError("boom consumer")  # outside the handlers' error frames


BoomHandlerConsumer = EventConsumer.for_namespace(BoomNamespace)


# The URL resolvers are built on first use and the websocket router reads the same list
# object emploiplus.asgi was given: adding routes now is enough.
import emploiplus.routing  # noqa: E402
import emploiplus.urls  # noqa: E402

emploiplus.urls.urlpatterns.insert(0, path("__boom__/", boom_view))
emploiplus.routing.websocket_urlpatterns.extend(
    [
        re_path(r"^ws/__boom__/$", BoomConsumer.as_asgi()),
        re_path(r"^ws/__boom_handler__/$", BoomHandlerConsumer.as_asgi()),
    ]
)
