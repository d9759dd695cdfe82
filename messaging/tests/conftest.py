import asyncio

import pytest
from channels.db import database_sync_to_async
from django.db import connections


@pytest.fixture(autouse=True)
def _close_consumer_db_connections():
    """Consumers query the database from asgiref's executor thread; close its connection
    after each test so the test database can be flushed and dropped."""
    yield
    asyncio.run(database_sync_to_async(connections.close_all)())
