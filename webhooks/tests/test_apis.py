"""POST /api/webhooks/…: verification, body shapes, idempotency, processing by the queue."""

import json
import threading
import uuid

import pytest
from django.db import connection

from accounts.models import Candidate
from matching.models import CandidateJobMatch, Job, NotificationStatus
from matching.testing import envelope, make_job, run_queue, set_profile, sign, signed_post
from notifications.models import Notification
from webhooks.models import WebhookEvent, WebhookStatus

pytestmark = pytest.mark.django_db

NOTIFY = "/api/webhooks/jobs/notify"
UPDATE = "/api/webhooks/matching/update"
TEST = "/api/webhooks/test"


@pytest.fixture
def candidates(alice, bob, charlie):
    set_profile(alice, skills=["react", "node.js"], experience_level="senior")  # 100
    set_profile(bob, skills=["react"], experience_level="junior")  # 25+15+20 = 60
    set_profile(charlie, skills=["python"], experience_level="lead")  # 50: no
    return alice, bob, charlie


def job_record(company, **fields):
    record = {
        "id": str(uuid.uuid4()),
        "company_id": str(company.pk),
        "title": "Senior React Developer",
        "location": "Paris",
        "required_skills": ["React", "Node.js"],
        "experience_level": "Senior",
        "job_type": "CDI",
        "status": "active",
        "updated_at": "2026-11-28T10:00:00+00:00",
    }
    record.update(fields)
    return record


def job_notifications():
    return {n.user_id: n for n in Notification.objects.filter(type="job_match")}


def test_it_answers_the_test_endpoint_only_when_signed(client):
    assert signed_post(client, TEST, {}).json()["ok"] is True
    response = client.post(TEST, data=b"{}", content_type="application/json")
    assert response.status_code == 401
    assert response.json()["error"] == "missing_signature"
    bad = client.post(TEST, data=b"{}", content_type="application/json", headers={"X-Webhook-Signature": "00ff"})
    assert bad.status_code == 401
    assert bad.json()["error"] == "invalid_signature"


def test_it_refuses_unsigned_and_badly_signed_deliveries_and_stores_nothing(client, acme):
    body = json.dumps(envelope(job_record(acme))).encode()
    assert client.post(NOTIFY, data=body, content_type="application/json").status_code == 401
    tampered = body.replace(b"Paris", b"Lyon ")
    response = client.post(
        NOTIFY, data=tampered, content_type="application/json", headers={"X-Webhook-Signature": sign(body)}
    )
    assert response.status_code == 401
    assert response.json() == {"error": "invalid_signature", "detail": response.json()["detail"]}
    assert WebhookEvent.objects.count() == 0


def test_it_answers_503_without_a_configured_secret(client, settings, acme):
    settings.SUPABASE_WEBHOOK_SECRETS = []
    response = client.post(NOTIFY, data=b"{}", content_type="application/json", headers={"X-Webhook-Signature": "ab"})
    assert response.status_code == 503


def test_it_signs_over_the_raw_bytes_not_reserialised_json(client, acme):
    # Odd spacing and key order: re-serialising would change the bytes and the HMAC.
    raw = (f'{{ "title" : "Dév",   "id":"{uuid.uuid4()}", "company_id" : "{acme.pk}" }}').encode()
    response = signed_post(client, NOTIFY, raw=raw)
    assert response.status_code == 202, response.content


def test_it_stores_a_job_insert_answers_202_and_the_queue_notifies(
    client, acme, candidates, django_capture_on_commit_callbacks
):
    alice, bob, _charlie = candidates
    record = job_record(acme)
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, NOTIFY, envelope(record))
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] is True and body["duplicate"] is False
    event = WebhookEvent.objects.get(pk=body["event_id"])
    assert event.status == WebhookStatus.RECEIVED
    assert event.delivery_key == f"jobs:{record['id']}:INSERT:{record['updated_at']}"

    assert run_queue() == []
    event.refresh_from_db()
    assert event.status == WebhookStatus.PROCESSED, event.error
    assert event.result["notified"] == 2
    job = Job.objects.get(pk=record["id"])  # the webhook upserted the row
    assert job.required_skills == ["react", "node.js"]
    assert job.experience_level == "senior"
    assert job.notification_status == NotificationStatus.SENT
    assert job.matching_candidates_count == 2
    sent = job_notifications()
    assert set(sent) == {alice.pk, bob.pk}
    assert sent[bob.pk].data["score"] == 60.0
    assert sent[alice.pk].title == "Nouvelle offre : Senior React Developer — Acme SAS"


def test_it_accepts_a_bare_record(client, acme, candidates, django_capture_on_commit_callbacks):
    record = job_record(acme)
    del record["status"]  # the guide's example has no status: taken as active
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, NOTIFY, record)
    assert response.status_code == 202
    assert run_queue() == []
    assert WebhookEvent.objects.get().status == WebhookStatus.PROCESSED
    assert len(job_notifications()) == 2


def test_it_answers_a_repeated_delivery_as_duplicate_and_notifies_once(
    client, acme, candidates, django_capture_on_commit_callbacks
):
    payload = envelope(job_record(acme))
    with django_capture_on_commit_callbacks(execute=True):
        first = signed_post(client, NOTIFY, payload)
        second = signed_post(client, NOTIFY, payload)
    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["duplicate"] is True
    assert second.json()["event_id"] == first.json()["event_id"]
    assert WebhookEvent.objects.count() == 1
    assert run_queue() == []
    assert len(job_notifications()) == 2


def test_it_uses_the_webhook_id_as_delivery_key(client, acme, django_capture_on_commit_callbacks):
    import base64
    import hashlib
    import hmac
    import time

    body = json.dumps(envelope(job_record(acme))).encode()
    ts = str(int(time.time()))
    mac = hmac.new(b"test-webhook-secret", f"msg_1.{ts}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": ts,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }
    first = client.post(NOTIFY, data=body, content_type="application/json", headers=headers)
    again = client.post(NOTIFY, data=body, content_type="application/json", headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert WebhookEvent.objects.get().delivery_key == "webhook-id:msg_1"


def test_it_does_not_notify_again_for_a_later_update_of_the_same_row(
    client, acme, candidates, django_capture_on_commit_callbacks
):
    record = job_record(acme)
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(client, NOTIFY, envelope(record))
    assert run_queue() == []
    # closed, then re-opened: a different delivery that does make the job active again
    reopened = {**record, "updated_at": "2026-11-28T12:00:00+00:00"}
    old = {**record, "status": "closed"}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, NOTIFY, envelope(reopened, type="UPDATE", old_record=old))
    assert response.status_code == 202 and "skipped" not in response.json()
    assert run_queue() == []
    assert WebhookEvent.objects.filter(status=WebhookStatus.PROCESSED).count() == 2
    assert len(job_notifications()) == 2  # still one per candidate


@pytest.mark.parametrize(
    ("payload_fn", "reason"),
    [
        (lambda r: envelope(None, type="DELETE", old_record=r), "delete_event"),
        (lambda r: envelope(r, table="posts"), "table_not_handled:posts"),
        (lambda r: envelope({**r, "status": "draft"}), "job_not_active"),
        (lambda r: envelope({**r, "title": "Nouveau titre"}, type="UPDATE", old_record=r), "job_already_active"),
        (lambda r: envelope(r, type="TRUNCATE"), "event_type_not_handled:TRUNCATE"),
    ],
)
def test_it_skips_events_that_do_not_announce_a_new_active_job(client, acme, candidates, payload_fn, reason):
    response = signed_post(client, NOTIFY, payload_fn(job_record(acme)))
    assert response.status_code == 202
    assert response.json()["skipped"] == reason
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.SKIPPED
    assert event.result == {"skipped": reason}
    assert run_queue() == []
    assert Notification.objects.count() == 0
    assert Job.objects.count() == 0


def test_it_rejects_malformed_json_and_missing_fields(client, acme):
    bad = signed_post(client, NOTIFY, raw=b'{"id": ')
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_json"
    not_object = signed_post(client, NOTIFY, raw=b"[1, 2]")
    assert not_object.status_code == 400
    missing = signed_post(client, NOTIFY, envelope({"company_id": str(acme.pk), "title": " "}))
    assert missing.status_code == 400
    assert set(missing.json()["errors"]) == {"id", "title"}
    not_uuid = signed_post(client, NOTIFY, {"id": "job-1", "title": "Dev", "company_id": str(acme.pk)})
    assert not_uuid.status_code == 400
    assert list(not_uuid.json()["errors"]) == ["id"]
    assert WebhookEvent.objects.count() == 0


def test_it_refuses_bodies_over_one_mebibyte_with_413(client, acme):
    record = job_record(acme, description="x" * (1024 * 1024))
    response = signed_post(client, NOTIFY, envelope(record))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert WebhookEvent.objects.count() == 0
    # Just under the limit is fine.
    record = job_record(acme, description="x" * (1024 * 1024 - 1000))
    assert signed_post(client, NOTIFY, envelope(record)).status_code == 202


def test_it_records_an_unknown_company_as_failed_not_a_500(client, candidates, django_capture_on_commit_callbacks):
    from accounts.models import Company

    ghost = Company(pk=uuid.uuid4(), name="Ghost")
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, NOTIFY, envelope(job_record(ghost)))
    assert response.status_code == 202
    assert run_queue() == []  # a domain failure is recorded, not retried
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.FAILED
    assert event.error.startswith("unknown_company")
    assert str(ghost.pk) in event.error
    assert Job.objects.count() == 0
    assert Notification.objects.count() == 0


def test_it_rematches_on_a_candidate_update_with_one_digest(client, acme, alice, django_capture_on_commit_callbacks):
    jobs = [make_job(acme, title=f"Poste {i}", required_skills=["python", "django"]) for i in range(3)]
    old = {"id": str(alice.pk), "skills": ["Java"], "experience_level": None, "updated_at": "t1"}
    new = {**old, "skills": ["Python", "Django", "SQL"], "updated_at": "t2"}
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, UPDATE, envelope(new, type="UPDATE", table="candidates", old_record=old))
    assert response.status_code == 202
    assert run_queue() == []
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.PROCESSED, event.error
    assert Candidate.objects.get(pk=alice.pk).skills == ["python", "django", "sql"]
    digest = Notification.objects.get(user=alice)
    assert digest.title == "3 nouvelles offres correspondent à votre profil"
    assert sorted(digest.data["jobIds"]) == sorted(str(j.pk) for j in jobs)
    assert CandidateJobMatch.objects.filter(candidate_id=alice.pk, notified_at__isnull=False).count() == 3


def test_it_skips_a_candidate_update_without_relevant_change(client, alice):
    set_profile(alice, skills=["react", "node.js"])
    old = {"id": str(alice.pk), "skills": ["react", "node.js"], "job_title": "Dev", "updated_at": "t1"}
    # (job_title is not a matching field, but it is embedded text: changing it is relevant
    # where semantic matching is on, see matching/tests/test_semantic.py.)
    new = {**old, "skills": ["Node.js", "ReactJS"], "target_salary_max": None, "updated_at": "t2"}
    response = signed_post(client, UPDATE, envelope(new, type="UPDATE", table="candidates", old_record=old))
    assert response.status_code == 202
    assert response.json()["skipped"] == "no_relevant_change"
    bare = signed_post(client, UPDATE, {"id": str(alice.pk), "skills": ["REACT", "node"]})  # compared to our row
    assert bare.json()["skipped"] == "no_relevant_change"
    assert run_queue() == []
    assert Notification.objects.count() == 0


def test_it_records_an_unknown_candidate_as_failed(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, UPDATE, {"id": str(uuid.uuid4()), "skills": ["python"]})
    assert response.status_code == 202
    assert run_queue() == []
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.FAILED
    assert event.error.startswith("unknown_candidate")


def test_it_reprocesses_from_the_admin(client, root, acme, candidates, django_capture_on_commit_callbacks):
    from accounts.models import Company

    record = job_record(Company(pk=uuid.uuid4(), name="Later"))
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(client, NOTIFY, envelope(record))
    assert run_queue() == []
    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.FAILED
    Company.objects.create(pk=record["company_id"], name="Later")  # the company arrives later
    client.force_login(root)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/webhooks/webhookevent/", {"action": "reprocess", "_selected_action": [str(event.pk)]}, follow=True
        )
    assert response.status_code == 200
    assert run_queue() == []
    event.refresh_from_db()
    assert event.status == WebhookStatus.PROCESSED, event.error
    assert event.attempts == 2
    assert len(job_notifications()) == 2
    listing = client.get("/admin/webhooks/webhookevent/", {"status__exact": "processed", "q": "jobs"})
    assert listing.status_code == 200
    assert str(event.delivery_key) in listing.content.decode()


@pytest.mark.django_db(transaction=True)
def test_it_processes_concurrent_duplicate_deliveries_once(live_server, acme, alice, bob, charlie):
    import urllib.request

    set_profile(alice, skills=["react", "node.js"], experience_level="senior")
    set_profile(bob, skills=["react"], experience_level="junior")
    body = json.dumps(envelope(job_record(acme))).encode()
    statuses: list[int] = []
    barrier = threading.Barrier(6)

    def deliver():
        request = urllib.request.Request(
            live_server.url + NOTIFY,
            data=body,
            headers={"Content-Type": "application/json", "X-Webhook-Signature": sign(body)},
            method="POST",
        )
        barrier.wait(timeout=10)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                statuses.append(response.status)
        finally:
            connection.close()

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(statuses) == [200, 200, 200, 200, 200, 202]
    assert WebhookEvent.objects.count() == 1
    assert run_queue() == []
    # A second, concurrent run of the same pipeline (reprocess racing the first) notifies nobody twice.
    from matching.services import job_match_and_notify

    job_id = WebhookEvent.objects.get().payload["record"]["id"]
    assert job_match_and_notify(job_id=job_id)["notified"] == 0
    assert Notification.objects.filter(type="job_match").count() == 2
