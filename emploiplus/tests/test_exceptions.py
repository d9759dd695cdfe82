"""Error bodies of the REST API."""

import json

import pytest

pytestmark = pytest.mark.django_db


def test_it_answers_413_in_json_for_a_body_over_one_mebibyte(api, auth, alice):
    body = json.dumps({"content": "x" * (1024 * 1024 + 10)})
    response = api.post("/api/posts/", body, content_type="application/json", headers=auth(alice))
    assert response.status_code == 413
    assert response.json() == {
        "detail": "Corps de requête trop volumineux (1 Mio au plus).",
        "code": "payload_too_large",
    }


def test_it_answers_400_with_field_errors(api, auth, alice):
    response = api.post("/api/posts/", {}, format="json", headers=auth(alice))
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid"
    assert "content" in body["errors"]


def test_it_answers_400_for_malformed_json(api, auth, alice):
    response = api.post("/api/posts/", "{not json", content_type="application/json", headers=auth(alice))
    assert response.status_code == 400
    assert response.json()["code"] == "parse_error"


def test_it_answers_400_for_json_nested_too_deep(api, auth, alice, client):
    """json raises RecursionError (not ValueError) at a few thousand levels: a 400, not a 500."""
    body = "[" * 50_000 + "]" * 50_000
    response = api.post("/api/posts/", body, content_type="application/json", headers=auth(alice))
    assert (response.status_code, response.json()["code"]) == (400, "parse_error")
    from matching.testing import sign

    raw = body.encode()
    response = client.post(
        "/api/webhooks/jobs/notify", raw, content_type="application/json", headers={"X-Webhook-Signature": sign(raw)}
    )
    assert (response.status_code, response.json()["error"]) == (400, "invalid_json")


def test_it_answers_404_in_json_for_an_unknown_id(api, auth, alice):
    response = api.get("/api/posts/00000000-0000-4000-8000-000000000000/", headers=auth(alice))
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "code"}


def test_it_answers_404_in_json_for_an_unknown_api_route_and_a_page_elsewhere(client):
    response = client.get("/api/no-such-route/")
    assert (response.status_code, response.json()) == (404, {"detail": "Ressource introuvable.", "code": "not_found"})
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_outside_drf_a_database_outage_is_a_503_not_a_500(rf):
    """Django's handler500 (emploiplus.exceptions.server_error) runs while the exception is
    being handled: a database error there is the outage answer (the admin, Django's pages)."""
    from django.db import OperationalError

    from emploiplus.exceptions import server_error

    for path, content_type in (("/api/anything/", "application/json"), ("/admin/", "text/plain; charset=utf-8")):
        try:
            raise OperationalError("connection refused")
        except OperationalError:
            response = server_error(rf.get(path))
        assert (response.status_code, response["Retry-After"], response["Content-Type"]) == (503, "5", content_type)
    try:
        raise ZeroDivisionError
    except ZeroDivisionError:
        assert server_error(rf.get("/api/anything/")).status_code == 500  # a bug stays a 500
