"""The matching pipeline on hand-built data whose matched set and scores are known."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Candidate
from matching import selectors, services
from matching.models import CandidateJobMatch, Job, NotificationStatus
from matching.testing import make_job, run_queue, set_profile
from notifications.models import Notification

pytestmark = pytest.mark.django_db

REQUIRED = ["react", "node.js", "postgresql", "docker"]


@pytest.fixture
def people(make_user, alice, bob, charlie):
    """Candidates with known scores against `job` (mid level, salary 40–50 k, 4 skills)."""
    set_profile(alice, skills=REQUIRED, experience_level="senior", target_salary_min=45000)  # 100.0
    set_profile(bob, skills=["react", "node.js", "postgresql"], experience_level="junior")  # 37.5+15+20 = 72.5
    set_profile(charlie, skills=["react"], experience_level="mid", target_salary_min=30000)  # 12.5+30+20 = 62.5
    dave = make_user("dave")
    set_profile(dave, skills=["python"], experience_level="lead")  # 0+30+20 = 50: no
    erin = make_user("erin")
    set_profile(erin, skills=REQUIRED, experience_level="mid", notifications_enabled=False)  # 100, opted out
    frank = make_user("frank")
    set_profile(frank, skills=REQUIRED, experience_level="mid", is_active=False)  # inactive profile
    gina = make_user("gina")
    set_profile(gina, skills=REQUIRED, experience_level="mid", deleted_at=timezone.now())  # deleted
    hank = make_user("hank", is_active=False)
    set_profile(hank, skills=REQUIRED, experience_level="mid")  # deactivated account
    ivan = make_user("ivan")
    set_profile(ivan, skills=["react", "node.js"], experience_level="entry", target_salary_min=80000)  # 25+15+10 = 50
    return {u.email.split("@")[0]: u for u in (alice, bob, charlie, dave, erin, frank, gina, hank, ivan)}


@pytest.fixture
def job(acme):
    return make_job(
        acme,
        title="Développeur full-stack",
        required_skills=REQUIRED,
        experience_level="mid",
        salary_min=40000,
        salary_max=50000,
        location="Paris",
    )


def notified(type_="job_match"):
    return {n.user.email.split("@")[0]: n for n in Notification.objects.filter(type=type_).select_related("user")}


def test_it_scores_exactly_the_expected_candidates(people, job):
    matches = selectors.candidates_matching_job(job=job)
    got = {str(m.candidate_id): m for m in matches}
    expected = {"alice": "100.0", "erin": "100.0", "bob": "72.5", "charlie": "62.5"}
    assert {people[name].email.split("@")[0]: str(got[str(people[name].pk)].score) for name in expected} == expected
    assert len(matches) == 4
    bob_match = got[str(people["bob"].pk)]
    assert bob_match.matched_skills == ["node.js", "postgresql", "react"]
    assert bob_match.missing_skills == ["docker"]
    assert (bob_match.skill_score, bob_match.experience_score, bob_match.salary_score) == (
        Decimal("75.0"),
        Decimal("50"),
        Decimal("100"),
    )
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)


def test_it_notifies_matched_candidates_once_with_their_score(people, job):
    result = services.job_match_and_notify(job_id=job.pk)
    assert result == {"job_id": str(job.pk), "matched": 4, "notified": 3}

    sent = notified()
    assert set(sent) == {"alice", "bob", "charlie"}  # erin opted out; inactive/deleted never match
    assert sent["bob"].title == "Nouvelle offre : Développeur full-stack — Acme SAS"
    assert sent["bob"].data["jobId"] == str(job.pk)
    assert sent["bob"].data["score"] == 72.5
    assert sent["alice"].data["score"] == 100.0

    rows = {m.candidate_id: m for m in CandidateJobMatch.objects.filter(job=job)}
    assert len(rows) == 4
    assert rows[people["erin"].pk].notified_at is None
    assert rows[people["charlie"].pk].match_score == Decimal("62.5")
    assert all(rows[people[n].pk].notified_at for n in ("alice", "bob", "charlie"))

    job.refresh_from_db()
    assert job.notification_status == NotificationStatus.SENT
    assert job.notification_sent_at is not None
    assert job.matching_candidates_count == 4

    # Again (a duplicate delivery, the sweep, an admin reprocess): nobody is notified twice.
    again = services.job_match_and_notify(job_id=job.pk)
    assert again["notified"] == 0
    assert Notification.objects.filter(type="job_match").count() == 3


def test_it_drops_the_prefilter_when_min_score_lets_zero_overlap_match(people, job, settings):
    assert selectors.prefilter_is_exact()  # default 60 > 50
    settings.MATCH_MIN_SCORE = 50
    assert not selectors.prefilter_is_exact()
    names = {str(m.candidate_id) for m in selectors.candidates_matching_job(job=job)}
    assert str(people["dave"].pk) in names  # no common skill, 50 points
    assert str(people["ivan"].pk) in names
    # Forcing the prefilter would have lost dave: that is why it is dropped.
    forced = {str(m.candidate_id) for m in selectors.candidates_matching_job(job=job, prefilter=True)}
    assert str(people["dave"].pk) not in forced


def test_it_matches_react_on_the_job_with_reactjs_on_the_candidate(
    acme, alice, rita, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.candidate_update_profile(
            candidate=alice.candidate, skills=["ReactJS", "Node", "Postgres"], experience_level="Senior"
        )
    assert Candidate.objects.get(pk=alice.pk).skills == ["react", "node.js", "postgresql"]
    assert run_queue() == []  # the re-match: no job yet
    with django_capture_on_commit_callbacks(execute=True):
        job = services.job_create(user=rita, title="Front React", required_skills=["React", "Node.js"], status="active")
    assert job.required_skills == ["react", "node.js"]
    assert job.notification_status == NotificationStatus.QUEUED
    assert run_queue() == []
    job.refresh_from_db()
    assert job.notification_status == NotificationStatus.SENT
    assert list(notified()) == ["alice"]
    assert notified()["alice"].data["score"] == 100.0


def test_it_sends_one_digest_when_a_profile_change_brings_new_jobs(acme, alice, django_capture_on_commit_callbacks):
    jobs = [make_job(acme, title=f"Poste {i}", required_skills=["python", "django"]) for i in range(3)]
    make_job(acme, title="Brouillon", status="draft", required_skills=["python", "django"])
    make_job(acme, title="Autre", required_skills=["cobol"])
    with django_capture_on_commit_callbacks(execute=True):
        _, changed = services.candidate_update_profile(candidate=alice.candidate, skills=["Python", "Django"])
    assert changed
    assert run_queue() == []
    digests = Notification.objects.filter(user=alice, type="job_matches_digest")
    assert digests.count() == 1
    digest = digests.get()
    assert digest.title == "3 nouvelles offres correspondent à votre profil"
    assert sorted(digest.data["jobIds"]) == sorted(str(j.pk) for j in jobs)
    assert CandidateJobMatch.objects.filter(candidate_id=alice.pk, notified_at__isnull=False).count() == 3

    # Same skills written differently: no relevant change, nothing queued.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        _, changed = services.candidate_update_profile(candidate=alice.candidate, skills=["django", "PYTHON"])
    assert not changed and callbacks == []

    # A real change that adds one more job: a digest of one, old jobs not repeated.
    new = make_job(acme, title="Data", required_skills=["python", "pandas"])
    with django_capture_on_commit_callbacks(execute=True):
        services.candidate_update_profile(candidate=alice.candidate, skills=["python", "django", "pandas"])
    assert run_queue() == []
    latest = Notification.objects.filter(user=alice, type="job_matches_digest").order_by("-created_at").first()
    assert Notification.objects.filter(user=alice, type="job_matches_digest").count() == 2
    assert latest.title == "1 nouvelle offre correspond à votre profil"
    assert latest.data["jobIds"] == [str(new.pk)]


def test_it_sweeps_an_active_job_whose_delivery_was_lost(people, job):
    # The job row exists (inserted while the webhook endpoint was unreachable) but the
    # pipeline never ran; after the grace period the scheduled sweep picks it up.
    fresh = make_job(job.company, title="Trop récent", required_skills=REQUIRED)
    assert services.job_sweep_pending() == []  # both too recent
    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    done = services.job_sweep_pending()
    assert done == [str(job.pk)]
    job.refresh_from_db()
    fresh.refresh_from_db()
    assert job.notification_status == NotificationStatus.SENT
    assert fresh.notification_status == NotificationStatus.PENDING
    assert set(notified()) == {"alice", "bob", "charlie"}
    assert services.job_sweep_pending() == []  # processed once


def test_it_runs_the_sweep_as_a_scheduled_rq_job(people, job):
    import django_rq

    Job.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(minutes=5))
    django_rq.get_queue("notifications", commit_mode="auto").enqueue("matching.jobs.sweep_pending_jobs")
    assert run_queue() == []
    job.refresh_from_db()
    assert job.notification_status == NotificationStatus.SENT
    assert len(notified()) == 3


def test_it_registers_the_sweep_in_the_cron_module():
    import importlib

    from rq import cron

    import emploiplus.cron

    cron._job_data_registry.clear()
    importlib.reload(emploiplus.cron)
    registered = {data["func"].__name__: data for data in cron._job_data_registry}
    cron._job_data_registry.clear()
    assert registered["sweep_pending_jobs"]["interval"] == 60
    assert registered["sweep_pending_jobs"]["queue_name"] == "notifications"
