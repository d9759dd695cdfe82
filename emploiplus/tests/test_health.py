import json
import urllib.error
import urllib.request

import pytest

from emploiplus.testing import asgi_server


def test_it_answers_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_it_is_ready_when_db_redis_and_migrations_are(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "redis": "ok", "migrations": "ok"}


@pytest.mark.django_db(transaction=True)
def test_it_names_redis_when_redis_is_unreachable():
    with (
        asgi_server(REDIS_URL="redis://127.0.0.1:1/0") as (address, _proc),
        pytest.raises(urllib.error.HTTPError) as excinfo,
    ):
        urllib.request.urlopen(f"http://{address}/readyz", timeout=10)
    assert excinfo.value.code == 503
    body = json.loads(excinfo.value.read())
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"].startswith("redis unreachable")
    assert body["checks"]["database"] == "ok"
