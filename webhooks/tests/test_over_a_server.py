"""The webhook routes over a real ASGI server (Django's stack, emploiplus.handlers): every
answer of CONTRACT §8, errors included, and every accepted delivery reaches the queue."""

from __future__ import annotations

import http.client
import json
import time
import uuid

import django_rq
import pytest

from emploiplus.testing import asgi_server
from matching.testing import envelope, sign
from webhooks.models import WebhookEvent, WebhookStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def request(address: str, method: str, path: str, body: bytes = b"", *, signed: bool = True, **headers: str):
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    sent = {"Content-Type": "application/json", **({"X-Webhook-Signature": sign(body)} if signed else {}), **headers}
    conn.request(method, path, body=body, headers=sent)
    response = conn.getresponse()
    payload = response.read()
    conn.close()
    return response.status, response.headers, json.loads(payload) if payload else None


def queued_event_ids(timeout: float = 10.0, *, expected: int) -> set[str]:
    """The event ids of the process_event jobs on the queue, once `expected` are there."""
    queue = django_rq.get_queue("notifications")
    deadline = time.monotonic() + timeout
    while True:
        jobs = [queue.fetch_job(job_id) for job_id in queue.get_job_ids()]
        ids = {job.args[0] for job in jobs if job and job.func_name == "webhooks.jobs.process_event"}
        if len(ids) >= expected or time.monotonic() > deadline:
            return ids
        time.sleep(0.05)


def job_record(company, **fields):
    return {
        "id": str(uuid.uuid4()),
        "company_id": str(company.pk),
        "title": "Développeuse Django",
        "required_skills": ["Django"],
        "status": "active",
        "updated_at": "2026-11-29T10:00:00Z",
        **fields,
    }


def test_it_answers_every_case_like_the_views_and_queues_what_it_accepts(acme):
    first, second = job_record(acme), job_record(acme)
    with asgi_server() as (address, _proc):
        # Routing and methods.
        status, headers, body = request(address, "GET", "/api/webhooks/test")
        assert (status, headers.get("Allow"), body["code"]) == (405, "POST", "method_not_allowed")
        assert request(address, "POST", "/api/webhooks/nope", b"{}")[0] == 404
        # Signature.
        status, _, body = request(address, "POST", "/api/webhooks/test", b"{}", signed=False)
        assert (status, body["error"]) == (401, "missing_signature")
        status, _, body = request(address, "POST", "/api/webhooks/test", b"{}", **{"X-Webhook-Signature": "00ff"})
        assert status == 401 and body["error"] == "invalid_signature"
        status, _, body = request(address, "POST", "/api/webhooks/test/", b"{}")  # trailing slash too
        assert (status, body) == (200, {"ok": True, "mode": "hmac-sha256"})
        # Bodies.
        status, _, body = request(address, "POST", "/api/webhooks/jobs/notify", b"{not json")
        assert (status, body["error"]) == (400, "invalid_json")
        status, _, body = request(address, "POST", "/api/webhooks/jobs/notify", json.dumps({"title": ""}).encode())
        assert status == 400 and set(body["errors"]) == {"id", "title"}
        skipped = json.dumps(envelope(job_record(acme), table="companies")).encode()
        status, _, body = request(address, "POST", "/api/webhooks/jobs/notify", skipped)
        assert (status, body["skipped"]) == (202, "table_not_handled:companies")
        # Accepted deliveries, and the same one again.
        answers = [
            request(address, "POST", "/api/webhooks/jobs/notify", json.dumps(envelope(r)).encode())
            for r in (first, second, first)
        ]
        assert [(a[0], a[2]["duplicate"]) for a in answers] == [(202, False), (202, False), (200, True)]
        accepted = {answers[0][2]["event_id"], answers[1][2]["event_id"]}
        # Queued once stored: both, and only them (skipped/duplicate: nothing).
        assert queued_event_ids(expected=2) == accepted
    assert set(WebhookEvent.objects.filter(status=WebhookStatus.RECEIVED).values_list("id", flat=True)) == {
        uuid.UUID(i) for i in accepted
    }
