"""Webhook → real daphne → real rq worker process → notifications rows."""

import json
import subprocess
import urllib.request
import uuid

import pytest

from emploiplus.testing import asgi_server, rq_worker
from matching.models import Job, NotificationStatus
from matching.testing import envelope, set_profile, sign
from notifications.models import Notification
from webhooks.models import WebhookEvent, WebhookStatus
from webhooks.tests.test_over_a_server import queued_event_ids

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def post(address: str, path: str, payload) -> tuple[int, dict]:
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://{address}{path}",
        data=body,
        headers={"Content-Type": "application/json", "X-Webhook-Signature": sign(body)},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=20) as response:
        return response.status, json.loads(response.read())


def test_it_goes_from_a_signed_delivery_to_stored_notifications(httpserver, acme, alice, bob, charlie):
    set_profile(alice, skills=["react", "node.js"], experience_level="senior")
    set_profile(bob, skills=["react"], experience_level="junior")
    set_profile(charlie, skills=["cobol"])
    record = {
        "id": str(uuid.uuid4()),
        "company_id": str(acme.pk),
        "title": "Senior React Developer",
        "required_skills": ["React", "Node.js"],
        "experience_level": "senior",
        "status": "active",
        "updated_at": "2026-11-28T10:00:00Z",
    }
    env = {"ONESIGNAL_API_URL": httpserver.url_for("").rstrip("/")}
    with asgi_server(**env) as (address, _proc):
        status, body = post(address, "/api/webhooks/jobs/notify", envelope(record))
        assert status == 202 and body["duplicate"] is False
        again_status, again = post(address, "/api/webhooks/jobs/notify", envelope(record))
        assert again_status == 200 and again["duplicate"] is True
        # The processing job is queued after the answer (in a batch): wait for it.
        assert queued_event_ids(expected=1) == {body["event_id"]}
    with rq_worker("notifications", burst=True, **env) as worker:
        try:
            worker.wait(timeout=90)
        except subprocess.TimeoutExpired:
            pytest.fail("the burst worker did not finish within 90 s")

    event = WebhookEvent.objects.get()
    assert event.status == WebhookStatus.PROCESSED, event.error
    job = Job.objects.get(pk=record["id"])
    assert job.notification_status == NotificationStatus.SENT
    rows = {n.user_id: n for n in Notification.objects.filter(type="job_match")}
    assert set(rows) == {alice.pk, bob.pk}
    assert rows[alice.pk].data["score"] == 100.0
    assert rows[bob.pk].data["jobId"] == record["id"]


def test_it_answers_413_for_big_bodies_over_real_daphne_with_and_without_content_length(acme):
    import http.client

    big = json.dumps({"id": str(uuid.uuid4()), "title": "x", "description": "x" * (1024 * 1024 + 10)}).encode()
    with asgi_server() as (address, _proc):
        host, port = address.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=20)
        conn.request(
            "POST",
            "/api/webhooks/jobs/notify",
            body=big,
            headers={"Content-Type": "application/json", "X-Webhook-Signature": sign(big)},
        )
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"] == "payload_too_large"
        conn.close()

        # Chunked: no Content-Length, the size is only known once read.
        conn = http.client.HTTPConnection(host, int(port), timeout=20)
        chunks = (big[i : i + 65536] for i in range(0, len(big), 65536))
        conn.request(
            "POST",
            "/api/webhooks/jobs/notify",
            body=chunks,
            headers={"Content-Type": "application/json", "X-Webhook-Signature": sign(big)},
            encode_chunked=True,
        )
        response = conn.getresponse()
        assert response.status == 413
        conn.close()
    assert WebhookEvent.objects.count() == 0
