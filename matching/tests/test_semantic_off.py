"""Profile text fields, and semantic matching switched off (no pgvector, or SEMANTIC_MATCHING=off):
everything else keeps working, lists fall back to the rules and say why, /readyz reports it."""

from __future__ import annotations

import django_rq
import pytest

from accounts.models import Candidate
from conftest import server_has_pgvector
from emploiplus.testing import database_url_for_tests
from matching import semantic
from matching.testing import make_job, run_queue, set_profile, signed_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def semantic_off(settings, db):
    """Off for real on a server without pgvector; by SEMANTIC_MATCHING=off on one with it."""
    if server_has_pgvector(database_url_for_tests()):
        settings.SEMANTIC_MATCHING = "off"
        expected = "disabled by SEMANTIC_MATCHING=off"
    else:
        expected = "the PostgreSQL server has no pgvector extension"
    semantic.reset_status_cache()
    yield expected
    semantic.reset_status_cache()


def test_it_reports_semantic_matching_off_in_readyz_without_failing_it(client, semantic_off):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["semantic_matching"]["enabled"] is False
    assert body["semantic_matching"]["reason"].startswith(semantic_off)


def test_it_falls_back_to_the_rules_and_says_why(api, auth, rita, alice, acme, semantic_off):
    set_profile(alice, skills=["python"], experience_level="mid")
    job = make_job(acme, required_skills=["python"], experience_level="mid")
    body = api.get(f"/api/jobs/{job.pk}/matches/?rank=hybrid", headers=auth(rita)).json()
    assert [r["candidate_id"] for r in body["results"]] == [str(alice.pk)]
    assert body["rank"] == "rules" and body["semantic"]["reason"].startswith(semantic_off)
    for url in ("/api/me/matches/?rank=hybrid", "/api/me/recommended-jobs/"):
        mine = api.get(url, headers=auth(alice)).json()
        assert [r["job"]["id"] for r in mine["results"]] == [str(job.pk)], url
        assert mine["rank"] == "rules" and mine["semantic"]["enabled"] is False
    # Asking for the rules changes nothing in the answer's shape.
    assert "rank" not in api.get(f"/api/jobs/{job.pk}/matches/", headers=auth(rita)).json()


def test_it_queues_no_embedding_when_off(api, auth, alice, semantic_off, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch("/api/me/candidate/", {"headline": "Data analyst"}, format="json", headers=auth(alice))
    assert response.status_code == 200
    assert django_rq.get_queue("notifications").count == 0
    assert semantic.embed(kind=semantic.KIND_CANDIDATE, ids=[alice.pk]).embedded == 0


def test_it_refuses_an_unknown_ranking(api, auth, rita, alice, acme):
    job = make_job(acme)
    response = api.get(f"/api/jobs/{job.pk}/matches/?rank=magic", headers=auth(rita))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid" and "rank" in response.json()["errors"]
    assert api.get("/api/me/matches/?rank=best", headers=auth(alice)).status_code == 400


def test_it_stores_a_profile_headline_and_summary(api, auth, alice):
    response = api.patch(
        "/api/me/candidate/",
        {"headline": "  Intégratrice React ", "summary": "J'intègre des maquettes.\nEn React."},
        format="json",
        headers=auth(alice),
    )
    assert response.status_code == 200, response.content
    assert response.json()["headline"] == "Intégratrice React"
    candidate = Candidate.objects.get(pk=alice.pk)
    assert (candidate.headline, candidate.summary) == ("Intégratrice React", "J'intègre des maquettes.\nEn React.")
    assert api.get("/api/me/candidate/", headers=auth(alice)).json()["summary"] == candidate.summary
    assert (
        api.patch("/api/me/candidate/", {"headline": None}, format="json", headers=auth(alice)).json()["headline"] == ""
    )


def test_it_refuses_profile_text_over_the_limits(api, auth, alice):
    too_long = api.patch("/api/me/candidate/", {"summary": "x" * 2001}, format="json", headers=auth(alice))
    assert too_long.status_code == 400
    assert "summary" in too_long.json()["errors"]
    assert (
        api.patch("/api/me/candidate/", {"headline": "x" * 201}, format="json", headers=auth(alice)).status_code == 400
    )
    assert api.patch("/api/me/candidate/", {"headline": ["a"]}, format="json", headers=auth(alice)).status_code == 400
    assert Candidate.objects.get(pk=alice.pk).summary == ""


def test_it_takes_profile_text_from_the_webhook_record(client, alice, django_capture_on_commit_callbacks):
    record = {"id": str(alice.pk), "headline": "Aide-soignante", "summary": "Trois ans en EHPAD."}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, "/api/webhooks/matching/update", record)
    assert response.status_code == 202 and "skipped" not in response.json()
    with django_capture_on_commit_callbacks(execute=True):
        assert run_queue() == []
    candidate = Candidate.objects.get(pk=alice.pk)
    assert (candidate.headline, candidate.summary) == ("Aide-soignante", "Trois ans en EHPAD.")
    # A record over the limit fails the event with the reason (no retry, nothing stored).
    from webhooks.models import WebhookEvent

    with django_capture_on_commit_callbacks(execute=True):
        refused = signed_post(
            client,
            "/api/webhooks/matching/update",
            {"id": str(alice.pk), "summary": "y" * 2001, "updated_at": "2026-12-01T11:00:00Z"},
        )
    assert refused.status_code == 202, refused.content
    run_queue()
    failed = WebhookEvent.objects.get(payload__record__summary="y" * 2001)
    assert failed.status == "failed" and "summary" in failed.error
    assert Candidate.objects.get(pk=alice.pk).summary == "Trois ans en EHPAD."


def test_it_edits_profile_text_in_the_admin(staff_client, alice):
    page = staff_client.get(f"/admin/accounts/candidate/{alice.pk}/change/")
    assert page.status_code == 200
    assert b'name="headline"' in page.content and b'name="summary"' in page.content


def test_it_stops_on_a_bad_semantic_setting_with_one_line():
    from emploiplus.tests.test_configuration import manage_check

    for env in (
        {"SEMANTIC_MATCHING": "maybe"},
        {"MATCH_HYBRID_RULES_WEIGHT": "0", "MATCH_HYBRID_SEMANTIC_WEIGHT": "0"},
    ):
        result = manage_check(**env)
        assert result.returncode != 0, env
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "configuration error" in lines[0], result.stderr
