"""Test helpers for matching and webhooks: data builders, signed requests, queue runs."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from django.conf import settings

from accounts.models import Candidate, Company, User
from matching.models import Job, JobStatus


def set_profile(user: User, **fields: Any) -> Candidate:
    """Write a candidate's profile directly (fields as stored: skills already normalised)."""
    candidate = Candidate.objects.get(pk=user.pk)
    for name, value in fields.items():
        setattr(candidate, name, value)
    candidate.save()
    return candidate


def make_job(company: Company, *, title: str = "Développeur", status: str = JobStatus.ACTIVE, **fields: Any) -> Job:
    """A job row written directly (no pipeline), like a row inserted behind our back."""
    fields.setdefault("required_skills", [])
    return Job.objects.create(company=company, title=title, status=status, **fields)


def sign(body: bytes, secret: str | None = None) -> str:
    secret = secret or settings.SUPABASE_WEBHOOK_SECRETS[0]
    return "hmac-sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def signed_post(client, url: str, payload: Any = None, *, raw: bytes | None = None, **headers: str):
    """POST `payload` as JSON (or `raw` bytes) with a valid X-Webhook-Signature."""
    body = raw if raw is not None else json.dumps(payload).encode()
    return client.post(
        url, data=body, content_type="application/json", headers={"X-Webhook-Signature": sign(body), **headers}
    )


def envelope(record: dict | None, *, type: str = "INSERT", table: str = "jobs", old_record: dict | None = None):
    return {"type": type, "table": table, "schema": "public", "record": record, "old_record": old_record}


def run_queue(name: str = "notifications", *, max_jobs: int = 200) -> list:
    """Run the jobs waiting on `name` with a real RQ worker in this process (burst).

    In-process so the jobs see the test's transaction; returns the failed jobs.
    """
    import django_rq
    from rq import SimpleWorker

    queue = django_rq.get_queue(name)
    worker = SimpleWorker([queue], connection=queue.connection)
    worker.work(burst=True, max_jobs=max_jobs)
    registry = queue.failed_job_registry
    return [queue.fetch_job(job_id) for job_id in registry.get_job_ids()]
