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


def test_it_answers_404_in_json_for_an_unknown_id(api, auth, alice):
    response = api.get("/api/posts/00000000-0000-4000-8000-000000000000/", headers=auth(alice))
    assert response.status_code == 404
    assert set(response.json()) == {"detail", "code"}


def test_it_answers_404_in_json_for_an_unknown_api_route_and_a_page_elsewhere(client):
    response = client.get("/api/no-such-route/")
    assert (response.status_code, response.json()) == (404, {"detail": "Ressource introuvable.", "code": "not_found"})
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")
