import asyncio
import copy

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.db import connections

# redis-py 8 reads with a 5 s socket timeout by default, the same 5 s channels_redis
# blocks in BZPOPMIN: an idle consumer's receive() then dies with TimeoutError. Until
# settings.CHANNEL_LAYERS sets a longer socket_timeout (reported), tests run the layer
# with one, in this process and in the daphne processes they start.
LAYER_SOCKET_TIMEOUT = 30


def _needs_timeout(host) -> bool:
    return isinstance(host, str) and "socket_timeout" not in host


def redis_url_for_servers() -> str:
    url = django_settings.REDIS_URL
    hosts = django_settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"]
    if not any(_needs_timeout(h) for h in hosts):
        return url
    return f"{url}{'&' if '?' in url else '?'}socket_timeout={LAYER_SOCKET_TIMEOUT}"


@pytest.fixture(autouse=True)
def _channel_layer_read_timeout(settings):
    layers = copy.deepcopy(settings.CHANNEL_LAYERS)
    config = layers["default"]["CONFIG"]
    config["hosts"] = [
        {"address": h, "socket_timeout": LAYER_SOCKET_TIMEOUT} if _needs_timeout(h) else h for h in config["hosts"]
    ]
    settings.CHANNEL_LAYERS = layers


@pytest.fixture(autouse=True)
def _close_consumer_db_connections():
    """Consumers query the database from asgiref's executor thread; close its connection
    after each test so the test database can be flushed and dropped."""
    yield
    asyncio.run(database_sync_to_async(connections.close_all)())
