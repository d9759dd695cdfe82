"""Semantic matching on a server with pgvector: embeddings kept by the worker, the hybrid
ranking through the API, hybrid notifications, the evaluation set.

Marked `pgvector`: on a server without the extension these run in a child session against
an embedded PostgreSQL that has it (matching/tests/test_pgvector_suite.py)."""

from __future__ import annotations

import io
import statistics
from datetime import timedelta

import django_rq
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import F

from accounts.models import Candidate
from matching import embeddings, semantic
from matching.models import CandidateEmbedding, CandidateJobMatch, Job, JobEmbedding, SkillEmbedding
from matching.testing import make_job, run_queue, set_profile, signed_post
from notifications.models import Notification

pytestmark = [pytest.mark.pgvector, pytest.mark.django_db]

FRONT_END = {
    "title": "Développeur front-end",
    "description": "Vous développerez les interfaces web de nos applications en JavaScript et TypeScript.",
    "required_skills": ["javascript", "typescript"],
    "experience_level": "mid",
}


def queued_embeds() -> list[tuple]:
    return [tuple(j.args) for j in django_rq.get_queue("notifications").jobs if j.func_name == "matching.jobs.embed"]


@pytest.fixture
def people(alice, bob, charlie):
    """alice writes React but not JavaScript; bob lists the job's skills; charlie is a nurse."""
    set_profile(
        alice,
        headline="Intégratrice React",
        summary="J'intègre des maquettes en composants React, HTML et CSS pour des sites web.",
        skills=["react", "html"],
        experience_level="mid",
    )
    set_profile(bob, headline="Développeur JavaScript", skills=["javascript", "typescript"], experience_level="mid")
    set_profile(
        charlie,
        headline="Infirmière diplômée d'État",
        summary="Soins aux patients hospitalisés, pansements et perfusions.",
        skills=["soins infirmiers"],
        experience_level="mid",
    )
    semantic.embed(kind=semantic.KIND_CANDIDATE, ids=[alice.pk, bob.pk, charlie.pk])
    return alice, bob, charlie


@pytest.fixture
def front_end_job(acme, rita):
    job = make_job(acme, created_by=rita, **FRONT_END)
    semantic.embed(kind=semantic.KIND_JOB, ids=[job.pk])
    return job


def test_it_is_on_with_hnsw_cosine_indexes():
    assert semantic.status().enabled
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('job_embeddings', 'candidate_embeddings') "
            "AND indexdef LIKE '%%hnsw%%' ORDER BY indexname"
        )
        rows = cursor.fetchall()
    assert [r[0] for r in rows] == ["idx_candidate_embeddings_hnsw", "idx_job_embeddings_hnsw"]
    assert all("vector_cosine_ops" in r[1] for r in rows)


def test_it_reads_the_nearest_profiles_from_the_hnsw_index(people, front_end_job):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # 3 rows: make the planner show its index path
        cursor.execute(
            "EXPLAIN SELECT candidate_id FROM candidate_embeddings ORDER BY embedding <=> "
            "(SELECT embedding FROM job_embeddings WHERE job_id = %s) LIMIT 20",
            [str(front_end_job.pk)],
        )
        plan = "\n".join(r[0] for r in cursor.fetchall())
    assert "Index Scan using idx_candidate_embeddings_hnsw" in plan


def test_it_embeds_a_profile_once_per_text_change_and_never_for_another_change(
    api, auth, alice, django_capture_on_commit_callbacks
):
    def patch(body):
        with django_capture_on_commit_callbacks(execute=True):
            response = api.patch("/api/me/candidate/", body, format="json", headers=auth(alice))
        assert response.status_code == 200, response.content
        return response.json()

    body = patch({"headline": "Intégratrice React", "summary": "Je construis des interfaces web."})
    assert body["headline"] == "Intégratrice React"
    assert queued_embeds() == [("candidate", [str(alice.pk)])]
    before = embeddings.encoded_texts
    assert run_queue() == []
    assert embeddings.encoded_texts - before == 1 + 0  # the profile's text; no skills yet
    first = CandidateEmbedding.objects.get(pk=alice.pk)
    assert first.model == embeddings.MODEL_ID

    # Not part of the text: nothing queued, nothing embedded.
    patch({"target_salary_min": 42000, "location": "Lyon", "notifications_enabled": False})
    patch({"headline": "Intégratrice React"})  # the same text again
    assert queued_embeds() == []

    # The same job delivered twice (RQ retry, duplicate): the second run embeds nothing.
    semantic.queue_embedding(semantic.KIND_CANDIDATE, [alice.pk])
    semantic.queue_embedding(semantic.KIND_CANDIDATE, [alice.pk])
    before = embeddings.encoded_texts
    with django_capture_on_commit_callbacks(execute=True):
        pass
    run_queue()
    assert embeddings.encoded_texts == before
    assert CandidateEmbedding.objects.get(pk=alice.pk).embedded_at == first.embedded_at

    # Skills are part of the text: one re-embedding, plus a vector for the new skill name.
    patch({"skills": ["ReactJS"]})
    assert queued_embeds() == [("candidate", [str(alice.pk)])]
    before = embeddings.encoded_texts
    run_queue()
    assert embeddings.encoded_texts - before == 2
    second = CandidateEmbedding.objects.get(pk=alice.pk)
    assert second.embedded_at > first.embedded_at and second.source_hash != first.source_hash
    assert SkillEmbedding.objects.filter(name="react").exists()


def test_it_embeds_a_job_when_its_text_changes_only(api, auth, rita, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/jobs/", {**FRONT_END, "status": "draft"}, format="json", headers=auth(rita)).json()
    assert queued_embeds() == [("job", [created["id"]])]
    run_queue()
    first = JobEmbedding.objects.get(pk=created["id"])
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/jobs/{created['id']}/", {"salary_min": 30000}, format="json", headers=auth(rita))
    assert queued_embeds() == []
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(
            f"/api/jobs/{created['id']}/",
            {"description": "Interfaces web en Vue.js."},
            format="json",
            headers=auth(rita),
        )
    assert queued_embeds() == [("job", [created["id"]])]
    run_queue()
    assert JobEmbedding.objects.get(pk=created["id"]).source_hash != first.source_hash


def test_it_embeds_a_profile_whose_webhook_record_changes_its_text_only(
    client, alice, django_capture_on_commit_callbacks
):
    record = {"id": str(alice.pk), "headline": "Data analyst", "summary": "Tableaux de bord et SQL.", "skills": []}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, "/api/webhooks/matching/update", record)
    assert response.status_code == 202, response.content
    assert "skipped" not in response.json()
    with django_capture_on_commit_callbacks(execute=True):
        run_queue()  # the webhook job: profile update (queues the embedding) and the re-match
    assert queued_embeds() == [("candidate", [str(alice.pk)])]
    run_queue()  # the embedding
    assert Candidate.objects.get(pk=alice.pk).headline == "Data analyst"
    assert CandidateEmbedding.objects.filter(pk=alice.pk).exists()
    # The same text again (another delivery key): nothing to do.
    with django_capture_on_commit_callbacks(execute=True):
        again = signed_post(client, "/api/webhooks/matching/update", {**record, "updated_at": "2026-12-01T10:00:00Z"})
    assert again.json()["skipped"] == "no_relevant_change"


def test_it_ranks_hybrid_and_finds_the_profile_the_skills_missed(api, auth, rita, people, front_end_job):
    alice, bob, _charlie = people
    rules = api.get(f"/api/jobs/{front_end_job.pk}/matches/", headers=auth(rita)).json()
    assert [r["candidate_id"] for r in rules["results"]] == [str(bob.pk)]

    response = api.get(f"/api/jobs/{front_end_job.pk}/matches/?rank=hybrid", headers=auth(rita))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["rank"] == "hybrid" and body["semantic"]["enabled"] is True
    by_id = {r["candidate_id"]: r for r in body["results"]}
    assert list(by_id) == [str(bob.pk), str(alice.pk)]  # the nurse is not there
    b, a = by_id[str(bob.pk)], by_id[str(alice.pk)]
    assert b["found_by"] == ["skills", "semantic"] and b["score"] == 100.0
    assert a["found_by"] == ["semantic"] and a["score"] < 60 and a["matched_skills"] == []
    assert a["missing_skills"] == ["javascript", "typescript"]
    assert 0 < a["semantic_score"] <= 100 and a["headline"] == "Intégratrice React"
    assert a["hybrid_score"] == semantic.hybrid_score(a["score"], a["semantic_score"])
    assert b["hybrid_score"] >= a["hybrid_score"]
    # What drove it: the profile's skills closest to the missing required ones.
    assert a["related_skills"] and {r["required"] for r in a["related_skills"]} <= {"javascript", "typescript"}
    assert all(r["closest"] in ("react", "html") and 0 < r["similarity"] <= 1 for r in a["related_skills"])

    page = api.get(f"/api/jobs/{front_end_job.pk}/matches/?rank=hybrid&limit=1", headers=auth(rita)).json()
    assert [r["candidate_id"] for r in page["results"]] == [str(bob.pk)]
    rest = api.get(
        f"/api/jobs/{front_end_job.pk}/matches/?rank=hybrid&limit=1&cursor={page['next_cursor']}", headers=auth(rita)
    ).json()
    assert [r["candidate_id"] for r in rest["results"]] == [str(alice.pk)] and rest["next_cursor"] is None


def test_it_recommends_jobs_to_a_candidate_whose_skills_miss_them(api, auth, acme, people, front_end_job):
    alice, _bob, charlie = people
    nursing = make_job(acme, title="Infirmier en service de médecine", required_skills=["diplome d'etat infirmier"])
    semantic.embed(kind=semantic.KIND_JOB, ids=[nursing.pk])
    assert api.get("/api/me/matches/", headers=auth(alice)).json()["results"] == []

    for url in ("/api/me/recommended-jobs/", "/api/me/matches/?rank=hybrid"):
        body = api.get(url, headers=auth(alice)).json()
        assert body["rank"] == "hybrid"
        assert [r["job"]["id"] for r in body["results"]] == [str(front_end_job.pk)], url
        assert body["results"][0]["found_by"] == ["semantic"]
    nurse = api.get("/api/me/recommended-jobs/", headers=auth(charlie)).json()
    assert [r["job"]["id"] for r in nurse["results"]] == [str(nursing.pk)]


def test_it_says_when_a_vector_is_still_being_computed(api, auth, acme, rita, people):
    job = make_job(acme, created_by=rita, **FRONT_END)  # no embedding yet
    body = api.get(f"/api/jobs/{job.pk}/matches/?rank=hybrid", headers=auth(rita)).json()
    assert body["semantic"]["pending"] is True
    assert [r["semantic_score"] for r in body["results"]] == [None]  # bob, by the rules only
    assert body["results"][0]["hybrid_score"] == body["results"][0]["score"]


def test_it_notifies_hybrid_matches_only_when_the_setting_is_on(settings, people, front_end_job):
    from matching import services

    alice, bob, _charlie = people
    services.job_match_and_notify(job_id=front_end_job.pk)
    assert set(Notification.objects.values_list("user_id", flat=True)) == {bob.pk}

    other = make_job(front_end_job.company, **{**FRONT_END, "title": "Développeuse front-end React"})
    settings.MATCH_HYBRID_NOTIFY = True
    settings.MATCH_HYBRID_MIN_SCORE = 20
    result = services.job_match_and_notify(job_id=other.pk)  # embeds the job itself in the worker
    assert result["notified"] == 2
    notified = Notification.objects.filter(data__jobId=str(other.pk))
    assert {n.user_id for n in notified.exclude(user_id=bob.pk)} == {alice.pk}
    row = CandidateJobMatch.objects.get(job=other, candidate_id=alice.pk)
    assert row.notified_at is not None and row.match_score < 60
    assert row.semantic_score > 0 and row.hybrid_score >= 20
    # Run again (duplicate delivery, the sweep): nobody is notified twice.
    assert services.job_match_and_notify(job_id=other.pk)["notified"] == 0


def test_it_backfills_everything_with_a_progress_bar_and_is_idempotent(people, front_end_job):
    CandidateEmbedding.objects.all().delete()
    out, err = io.StringIO(), io.StringIO()
    call_command("semantic_backfill", "--batch-size", "2", stdout=out, stderr=err)
    assert "candidates: 3 embedded, 0 unchanged" in out.getvalue()
    assert "jobs: 0 embedded, 1 unchanged" in out.getvalue()
    assert "candidates" in err.getvalue() and "3/3" in err.getvalue()  # tqdm's bar
    out = io.StringIO()
    call_command("semantic_backfill", "--no-progress", stdout=out)
    assert "candidates: 0 embedded, 3 unchanged" in out.getvalue()


def test_it_sweeps_rows_written_behind_the_services_back(people):
    alice, _bob, _charlie = people
    # The vector was computed in an earlier transaction (now() is this test's transaction time).
    CandidateEmbedding.objects.filter(pk=alice.pk).update(
        source_updated_at=F("source_updated_at") - timedelta(seconds=1)
    )
    Candidate.objects.filter(pk=alice.pk).update(summary="Je suis maintenant data analyst.")  # no hook ran
    before = CandidateEmbedding.objects.get(pk=alice.pk).source_hash
    done = semantic.embed_sweep()
    assert done["candidate"]["embedded"] == 1
    assert CandidateEmbedding.objects.get(pk=alice.pk).source_hash != before
    again = semantic.embed_sweep()  # nothing stale is left: no model call
    assert again["candidate"]["embedded"] == 0 and again["job"]["embedded"] == 0


def test_it_reports_semantic_matching_on_in_readyz(client):
    body = client.get("/readyz").json()
    assert body["semantic_matching"] == {"enabled": True, "model": embeddings.MODEL_ID}
    assert call_command("semantic_setup", stdout=io.StringIO()) is None  # idempotent


def test_it_beats_the_rules_on_the_labelled_evaluation_set():
    from matching.eval import run

    result = run.run()
    report = result["report"]
    print("evaluation", result["size"], report)
    rules, every, hybrid = report["rules (threshold)"], report["rules (every profile)"], report["hybrid"]
    assert result["size"] == "52 offers × 260 profiles"
    assert hybrid["ndcg@10"] >= rules["ndcg@10"] + 0.25 and hybrid["ndcg@10"] >= every["ndcg@10"] + 0.25
    assert hybrid["recall@20"] >= rules["recall@20"] + 0.25 and hybrid["recall@20"] >= every["recall@20"] + 0.25


def test_it_keeps_the_calibration_on_the_evaluation_set():
    """semantic_score 0 ≈ the 90th percentile of unrelated pairs, 100 ≈ the median right-occupation pair."""
    from matching.eval import run

    data = run.load_into_database()
    run.embed_all(data)
    grades = {(job, profile): g for job, per in data["relevance"].items() for profile, g in per.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT j.job_id::text, c.candidate_id::text, 1 - (j.embedding <=> c.embedding) "
            "FROM job_embeddings AS j CROSS JOIN candidate_embeddings AS c "
            "WHERE j.job_id = ANY (%s::uuid[]) AND c.candidate_id = ANY (%s::uuid[])",
            [[j["id"] for j in data["jobs"]], [p["id"] for p in data["profiles"]]],
        )
        rows = cursor.fetchall()
    assert len(rows) == 52 * 260
    scores: dict[int, list[float]] = {0: [], 1: [], 2: [], 3: []}
    for job, profile, cosine in rows:
        scores[grades.get((job, profile), 0)].append(embeddings.cosine_to_score(cosine))
    unrelated = sorted(scores[0])
    assert unrelated[int(0.9 * len(unrelated))] <= 5
    assert 90 <= statistics.median(scores[3]) <= 100
    assert statistics.median(scores[0]) < statistics.median(scores[1]) < statistics.median(scores[2])
    assert statistics.median(scores[2]) < statistics.median(scores[3])


def test_it_drops_a_deleted_job_from_recommendations(api, auth, people, front_end_job):
    alice = people[0]
    Job.objects.filter(pk=front_end_job.pk).update(status="closed")
    assert api.get("/api/me/recommended-jobs/", headers=auth(alice)).json()["results"] == []
