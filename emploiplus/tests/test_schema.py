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


def test_every_operation_documents_the_errors_of_the_shared_layers(client):
    """emploiplus.schema.document_error_responses: rate limit, database outage, bad tokens,
    permissions, bad input — with the one error shape; the webhooks keep their own."""
    schema = client.get("/api/schema/", {"format": "json"}).json()
    assert schema["components"]["schemas"]["Error"]["required"] == ["detail", "code"]
    me = schema["paths"]["/api/me/"]["get"]["responses"]
    assert {"200", "401", "403", "429", "503"} <= set(me)
    assert me["503"]["headers"]["Retry-After"]["required"] is True
    assert me["401"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    post = schema["paths"]["/api/posts/"]["post"]["responses"]
    assert {"201", "400", "413", "429", "503"} <= set(post)
    public_read = schema["paths"]["/api/jobs/"]["get"]["responses"]
    assert "403" not in public_read and "401" in public_read  # no token needed; a bad one is refused
    notify = schema["paths"]["/api/webhooks/jobs/notify/"]["post"]["responses"]
    assert "429" not in notify and "WebhookError" in notify["401"]["content"]["application/json"]["schema"]["$ref"]
