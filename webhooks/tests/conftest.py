import pytest

from matching import skills


@pytest.fixture(autouse=True)
def _fresh_skill_cache():
    """The alias map is memoised per process; every test reads the database it sees."""
    skills.invalidate_cache()
    yield
    skills.invalidate_cache()


@pytest.fixture(autouse=True)
def _onesignal(httpserver, settings):
    """Push deliveries the in-process worker may run go to a local OneSignal stand-in."""
    httpserver.expect_request("/notifications", method="POST").respond_with_json({"id": "onesignal-id", "errors": []})
    httpserver.expect_request("/api/v1/notifications", method="POST").respond_with_json(
        {"id": "onesignal-id", "errors": []}
    )
    settings.ONESIGNAL_API_URL = httpserver.url_for("").rstrip("/")
    yield


@pytest.fixture(autouse=True)
def _webhook_work_in_request_thread(settings):
    """In-process requests: run the webhook work in the test's thread (and transaction).
    The daphne tests run the real server, with its thread pool."""
    settings.WEBHOOK_DB_THREADS = 0
    yield
