"""The OpenAPI description and its browsable page are public and complete."""

import pytest

pytestmark = pytest.mark.django_db


def test_it_serves_the_openapi_schema_without_a_token(client):
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["components"]["securitySchemes"]["SupabaseJWT"]["scheme"] == "bearer"
    for path in ("/api/me/", "/api/feed/", "/api/jobs/", "/api/conversations/", "/api/notifications/"):
        assert path in schema["paths"], path
    # The signed webhooks too, without the user-token security requirement (none global either).
    assert "security" not in schema
    webhook_paths = [p for p in schema["paths"] if p.startswith("/api/webhooks/")]
    assert len(webhook_paths) == 3, webhook_paths
    for path in webhook_paths:
        operation = schema["paths"][path]["post"]
        assert operation.get("security", []) in ([], [{}]), (path, operation["security"])
        assert any(p["name"] == "X-Webhook-Signature" for p in operation["parameters"])


def test_it_serves_the_docs_page(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_it_describes_every_view_without_schema_warnings():
    import subprocess
    import sys

    from emploiplus.testing import BASE_DIR, subprocess_env

    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn", "--file", "/dev/null"],
        cwd=BASE_DIR,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
