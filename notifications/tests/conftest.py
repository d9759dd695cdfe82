import pytest
from asgiref.sync import sync_to_async
from django.db import connections


@pytest.fixture
async def close_async_db_connections():
    """Async tests reach the database from sync_to_async's thread; close those
    connections afterwards so the test database can be dropped at the end."""
    yield
    await sync_to_async(connections.close_all)()
