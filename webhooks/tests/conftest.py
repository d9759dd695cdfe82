import pytest

# The skill-cache reset and the local OneSignal stand-in are matching's fixtures.
from matching.tests.conftest import _fresh_skill_cache, _onesignal  # noqa: F401


@pytest.fixture(autouse=True)
def _webhook_work_in_request_thread(settings):
    """In-process requests: run the webhook work in the test's thread (and transaction).
    The daphne tests run the real server, with its thread pool."""
    settings.WEBHOOK_DB_THREADS = 0
    yield
