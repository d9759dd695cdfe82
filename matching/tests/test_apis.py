"""REST: jobs CRUD with ownership, list filters and search, matches, candidate profile."""

import uuid

import django_rq
import pytest

from accounts.models import Candidate, Company, Role
from matching.models import Job, NotificationStatus
from matching.testing import make_job, run_queue, set_profile
from notifications.models import Notification

pytestmark = pytest.mark.django_db


@pytest.fixture
def globex(db):
    return Company.objects.create(name="Globex")


@pytest.fixture
def gus(make_user, globex):
    return make_user("gus", role=Role.COMPANY, company=globex)


def test_it_lets_a_company_user_publish_a_job_that_runs_the_pipeline(
    api, auth, rita, alice, django_capture_on_commit_callbacks
):
    set_profile(alice, skills=["react", "node.js"], experience_level="mid")
    with django_capture_on_commit_callbacks(execute=True):
        response = api.post(
            "/api/jobs/",
            {"title": "Dév React", "required_skills": ["ReactJS", "Node"], "status": "active", "job_type": "CDI"},
            format="json",
            headers=auth(rita),
        )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["required_skills"] == ["react", "node.js"]
    assert body["company_name"] == "Acme SAS"
    assert body["notification_status"] == "queued"
    assert run_queue() == []
    job = Job.objects.get(pk=body["id"])
    assert job.created_by_id == rita.pk
    assert job.notification_status == NotificationStatus.SENT
    notification = Notification.objects.get(user=alice)
    assert notification.data["jobId"] == body["id"]


def test_it_runs_the_pipeline_when_a_draft_is_activated_only(
    api, auth, rita, alice, django_capture_on_commit_callbacks
):
    set_profile(alice, skills=["python"], experience_level="mid")
    with django_capture_on_commit_callbacks(execute=True):
        draft = api.post(
            "/api/jobs/", {"title": "Data", "required_skills": ["Python"]}, format="json", headers=auth(rita)
        ).json()
    assert draft["status"] == "draft"
    assert run_queue() == []
    assert Notification.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/jobs/{draft['id']}/", {"status": "active"}, format="json", headers=auth(rita))
    assert response.status_code == 200
    assert run_queue() == []
    assert Notification.objects.filter(user=alice, type="job_match").count() == 1
    # Editing the active job does not notify again (it only re-embeds its text, where
    # semantic matching is on).
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/jobs/{draft['id']}/", {"title": "Data engineer"}, format="json", headers=auth(rita))
    queued = [j.func_name for j in django_rq.get_queue("notifications").jobs]
    assert [name for name in queued if name != "matching.jobs.embed"] == []


def test_it_keeps_other_companies_and_candidates_out_of_writes(api, auth, rita, gus, alice, acme):
    job = make_job(acme, title="Acme job")
    assert api.post("/api/jobs/", {"title": "x"}, format="json", headers=auth(alice)).status_code == 403
    assert api.patch(f"/api/jobs/{job.pk}/", {"title": "x"}, format="json", headers=auth(gus)).status_code == 403
    assert api.delete(f"/api/jobs/{job.pk}/", headers=auth(gus)).status_code == 403
    assert api.patch(f"/api/jobs/{job.pk}/", {"title": "y"}, format="json").status_code == 401
    job.refresh_from_db()
    assert job.title == "Acme job"
    assert api.delete(f"/api/jobs/{job.pk}/", headers=auth(rita)).status_code == 204
    job.refresh_from_db()
    assert job.deleted_at is not None
    assert api.get(f"/api/jobs/{job.pk}/").status_code == 404


def test_it_hides_drafts_from_everyone_but_their_company(api, auth, rita, gus, alice, acme):
    draft = make_job(acme, title="Secret", status="draft")
    assert api.get(f"/api/jobs/{draft.pk}/", headers=auth(alice)).status_code == 404
    assert api.get(f"/api/jobs/{draft.pk}/", headers=auth(gus)).status_code == 404
    assert api.get(f"/api/jobs/{draft.pk}/", headers=auth(rita)).json()["title"] == "Secret"
    assert api.get(f"/api/jobs/{uuid.uuid4()}/").status_code == 404
    assert [j["title"] for j in api.get("/api/jobs/", headers=auth(alice)).json()["results"]] == []
    mine = api.get("/api/jobs/", {"company_id": str(rita.company_id)}, headers=auth(rita)).json()
    assert [j["title"] for j in mine["results"]] == ["Secret"]


def test_it_validates_job_input(api, auth, rita):
    response = api.post(
        "/api/jobs/",
        {"title": "", "job_type": "CDX", "salary_min": 50000, "salary_max": 40000},
        format="json",
        headers=auth(rita),
    )
    assert response.status_code == 400
    assert {"title", "job_type"} <= set(response.json()["errors"])
    response = api.post(
        "/api/jobs/", {"title": "Dev", "salary_min": 50000, "salary_max": 40000}, format="json", headers=auth(rita)
    )
    assert response.status_code == 400
    assert "salary_min" in response.json()["errors"]


def test_it_lists_searches_and_filters_jobs_with_a_cursor(api, acme):
    make_job(acme, title="Développeur Python", location="Paris", required_skills=["python", "django"])
    make_job(acme, title="Développeuse React", location="Lyon", required_skills=["react"], job_type="stage")
    make_job(acme, title="Comptable", location="Évry", required_skills=["comptabilite"], description="Bilans")
    make_job(acme, title="Développeur fermé", status="closed", required_skills=["python"])

    def titles(**params):
        response = api.get("/api/jobs/", params)
        assert response.status_code == 200, response.content
        return sorted(j["title"] for j in response.json()["results"])

    assert titles() == ["Comptable", "Développeur Python", "Développeuse React"]
    assert titles(q="developp") == ["Développeur Python", "Développeuse React"]  # prefix, accents ignored
    assert titles(q="bilan") == ["Comptable"]  # French stemming on the description
    assert titles(q="react dev") == ["Développeuse React"]
    assert titles(q="'); DROP TABLE jobs; --") == []
    assert titles(q="!&|:*") == []
    assert titles(location="evry") == ["Comptable"]
    assert titles(skills="ReactJS,Django") == ["Développeur Python", "Développeuse React"]
    assert titles(job_type="stage") == ["Développeuse React"]

    first = api.get("/api/jobs/", {"limit": 2}).json()
    assert len(first["results"]) == 2 and first["next_cursor"]
    second = api.get("/api/jobs/", {"limit": 2, "cursor": first["next_cursor"]}).json()
    assert len(second["results"]) == 1 and second["next_cursor"] is None
    seen = [j["id"] for j in first["results"] + second["results"]]
    assert len(set(seen)) == 3
    assert api.get("/api/jobs/", {"cursor": "garbage!"}).status_code == 400
    assert api.get("/api/jobs/", {"company_id": "not-a-uuid"}).status_code == 400


def test_it_ranks_a_jobs_candidates_for_its_company_only(api, auth, rita, gus, root, alice, bob, acme):
    set_profile(alice, skills=["react", "node.js"], experience_level="senior")
    set_profile(bob, skills=["react"], experience_level="junior")
    job = make_job(acme, required_skills=["react", "node.js"], experience_level="mid")
    response = api.get(f"/api/jobs/{job.pk}/matches/", headers=auth(rita))
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["candidate_id"], r["score"]) for r in results] == [(str(alice.pk), 100.0), (str(bob.pk), 60.0)]
    assert results[1]["matched_skills"] == ["react"]
    assert results[1]["missing_skills"] == ["node.js"]
    assert results[1]["experience_score"] == 50.0
    assert api.get(f"/api/jobs/{job.pk}/matches/", headers=auth(root)).status_code == 200
    assert api.get(f"/api/jobs/{job.pk}/matches/", headers=auth(gus)).status_code == 403
    assert api.get(f"/api/jobs/{job.pk}/matches/", headers=auth(alice)).status_code == 403


def test_it_pages_a_jobs_ranked_candidates_in_sql(api, auth, rita, alice, bob, charlie, acme):
    set_profile(alice, skills=["react", "node.js"], experience_level="senior")
    set_profile(bob, skills=["react"], experience_level="junior")
    set_profile(charlie, skills=["react", "node.js"], experience_level="junior")
    job = make_job(acme, required_skills=["react", "node.js"], experience_level="mid")
    url = f"/api/jobs/{job.pk}/matches/"

    first = api.get(url, {"limit": 2}, headers=auth(rita)).json()
    assert [(r["candidate_id"], r["score"]) for r in first["results"]] == [
        (str(alice.pk), 100.0),
        (str(charlie.pk), 85.0),
    ]
    second = api.get(url, {"limit": 2, "cursor": first["next_cursor"]}, headers=auth(rita)).json()
    assert [(r["candidate_id"], r["score"]) for r in second["results"]] == [(str(bob.pk), 60.0)]
    assert second["next_cursor"] is None
    assert api.get(url, {"cursor": "garbage!"}, headers=auth(rita)).status_code == 400


def test_it_lets_a_candidate_edit_their_profile_and_rematches(
    api, auth, alice, rita, acme, django_capture_on_commit_callbacks
):
    job = make_job(acme, title="Backend", required_skills=["python", "postgresql"])
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(
            "/api/me/candidate/",
            {"skills": ["Python", "Postgres"], "experience_level": "mid", "target_salary_min": 40000},
            format="json",
            headers=auth(alice),
        )
    assert response.status_code == 200, response.content
    assert response.json()["skills"] == ["python", "postgresql"]
    assert response.json()["rematching"] is True
    assert Candidate.objects.get(pk=alice.pk).skills == ["python", "postgresql"]
    assert run_queue() == []
    digest = Notification.objects.get(user=alice)
    assert digest.title == "1 nouvelle offre correspond à votre profil"
    assert digest.data["jobIds"] == [str(job.pk)]

    matches = api.get("/api/me/matches/", headers=auth(alice)).json()
    assert [(m["job"]["id"], m["score"]) for m in matches["results"]] == [(str(job.pk), 100.0)]
    assert matches["results"][0]["matched_skills"] == ["postgresql", "python"]

    assert (
        api.patch("/api/me/candidate/", {"experience_level": "guru"}, format="json", headers=auth(alice)).status_code
        == 400
    )
    assert api.patch("/api/me/candidate/", {"skills": ["x"]}, format="json", headers=auth(rita)).status_code == 403
    assert api.get("/api/me/matches/", headers=auth(rita)).status_code == 403
