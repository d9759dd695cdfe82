"""Inbound webhooks: store first, acknowledge, process in the queue (CONTRACT §8).

`webhook_receive` runs in the request: parse the (already verified) raw body, decide
whether the event concerns us, store a `webhook_events` row under its delivery key and
enqueue `webhooks.jobs.process_event` on commit. It does no matching work, so the
acknowledgement stays fast. `webhook_process` runs in the worker and hands the record
to the matching services — the same ones the REST API uses.

Delivery key (unique): `webhook-id:<id>` when the caller sent a Standard Webhooks id,
else `<table>:<record id>:<type>:<updated_at>`. The same delivery again is answered
200 `duplicate: true` and changes nothing; a concurrent duplicate loses the INSERT
race on the unique index and gets the same answer.

Bodies: Supabase's `{type, table, schema, record, old_record}` or a bare record (then
the table is implied by the endpoint — `jobs` or `candidates` — and the type is INSERT
for jobs/notify, UPDATE for matching/update). A bare job record without `status` is
taken as active (the guide's example payload has none).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Candidate
from emploiplus import effects
from emploiplus.errors import ApplicationError
from matching import semantic
from matching import services as matching
from webhooks.models import WebhookEvent, WebhookStatus

logger = logging.getLogger(__name__)

SOURCE_JOBS = "jobs.notify"
SOURCE_CANDIDATES = "matching.update"
SOURCE_TABLES = {SOURCE_JOBS: "jobs", SOURCE_CANDIDATES: "candidates"}
BARE_RECORD_TYPE = {SOURCE_JOBS: "INSERT", SOURCE_CANDIDATES: "UPDATE"}
MAX_KEY_LENGTH = 300


@dataclass
class Receipt:
    event: WebhookEvent
    duplicate: bool = False
    skipped: str | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"accepted": True, "event_id": str(self.event.id), "duplicate": self.duplicate}
        if self.skipped:
            body["skipped"] = self.skipped
        if self.duplicate:
            body["status"] = self.event.status
        return body


@dataclass
class Envelope:
    type: str
    table: str
    schema: str
    record: dict[str, Any] | None
    old_record: dict[str, Any] | None
    bare: bool = False
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def record_id(self) -> str:
        for rec in (self.record, self.old_record):
            if isinstance(rec, dict) and rec.get("id"):
                return str(rec["id"])
        return ""


def _invalid(errors: dict[str, list[str]]) -> ApplicationError:
    return ApplicationError("invalid", "Données invalides.", extra={"errors": errors, "error": "invalid_payload"})


def parse_body(*, source: str, body: bytes) -> Envelope:
    """JSON → Envelope; ApplicationError 400 for bad JSON or a body that is not an object."""
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise ApplicationError(
            "invalid_json", f"Corps JSON invalide : {exc}.", extra={"error": "invalid_json"}
        ) from exc
    if not isinstance(payload, dict):
        raise ApplicationError("invalid_json", "Le corps doit être un objet JSON.", extra={"error": "invalid_json"})
    is_envelope = "table" in payload and "type" in payload and ("record" in payload or "old_record" in payload)
    if is_envelope:
        record = payload.get("record")
        old_record = payload.get("old_record")
        errors = {}
        if record is not None and not isinstance(record, dict):
            errors["record"] = ["doit être un objet ou null"]
        if old_record is not None and not isinstance(old_record, dict):
            errors["old_record"] = ["doit être un objet ou null"]
        if errors:
            raise _invalid(errors)
        return Envelope(
            type=str(payload.get("type") or "").upper(),
            table=str(payload.get("table") or ""),
            schema=str(payload.get("schema") or "public"),
            record=record,
            old_record=old_record,
        )
    record = dict(payload)
    if source == SOURCE_JOBS:
        record.setdefault("status", "active")
    return Envelope(
        type=BARE_RECORD_TYPE[source],
        table=SOURCE_TABLES[source],
        schema="public",
        record=record,
        old_record=None,
        bare=True,
    )


def _validate_record(source: str, record: dict[str, Any] | None) -> None:
    errors: dict[str, list[str]] = {}
    record = record or {}
    raw_id = record.get("id")
    if raw_id in (None, ""):
        errors["id"] = ["Ce champ est obligatoire."]
    else:
        try:
            uuid.UUID(str(raw_id))
        except ValueError:
            errors["id"] = [f"« {raw_id} » n'est pas un UUID valide."]
    if source == SOURCE_JOBS:
        title = record.get("title")
        if not isinstance(title, str) or not title.strip():
            errors["title"] = ["Ce champ est obligatoire."]
        skills = record.get("required_skills")
        if skills is not None and not (isinstance(skills, list) and all(isinstance(s, str) for s in skills)):
            errors["required_skills"] = ["Liste de chaînes attendue."]
    else:
        skills = record.get("skills")
        if skills is not None and not (isinstance(skills, list) and all(isinstance(s, str) for s in skills)):
            errors["skills"] = ["Liste de chaînes attendue."]
    if errors:
        raise _invalid(errors)


def _skip_reason(source: str, env: Envelope) -> str | None:
    """Why an event needs no processing (None: process it). Raises 400 for a bad record."""
    if env.table != SOURCE_TABLES[source]:
        return f"table_not_handled:{env.table or '?'}"
    if env.type == "DELETE":
        return "delete_event"
    if env.type not in ("INSERT", "UPDATE"):
        return f"event_type_not_handled:{env.type or '?'}"
    _validate_record(source, env.record)
    record = env.record or {}
    if source == SOURCE_JOBS:
        if record.get("deleted_at"):
            return "job_deleted"
        if str(record.get("status") or "").lower() != "active":
            return "job_not_active"
        old = env.old_record
        if (
            env.type == "UPDATE"
            and old
            and str(old.get("status") or "").lower() == "active"
            and not old.get("deleted_at")
        ):
            return "job_already_active"
        return None
    # matching.update: did skills / level / location / salary really change?
    reference: Any = env.old_record
    if not reference:
        reference = Candidate.objects.filter(pk=record["id"]).first()
    if (
        reference is not None
        and not matching.profile_changed(reference, record, present=set(record))
        and not semantic.text_changed(  # headline, summary, job title: stored, and embedded
            semantic.KIND_CANDIDATE,
            _normalised_text(reference) if isinstance(reference, dict) else reference,
            _normalised_text(record),
            present=set(record),
        )
    ):
        return "no_relevant_change"
    return None


def _normalised_text(record: dict[str, Any]) -> dict[str, Any]:
    """The record's embedded fields as they would be stored (skills normalised, text trimmed)."""
    from matching.skills import skills_normalize

    values = dict(record)
    if isinstance(values.get("skills"), list):
        values["skills"] = skills_normalize(values["skills"])
    for name in ("headline", "job_title", "summary"):
        if isinstance(values.get(name), str):
            values[name] = values[name].strip()
    return values


def delivery_key(env: Envelope, webhook_id: str | None) -> str:
    if webhook_id:
        key = f"webhook-id:{webhook_id}"
    else:
        updated_at = ""
        for rec in (env.record, env.old_record):
            if isinstance(rec, dict) and rec.get("updated_at"):
                updated_at = str(rec["updated_at"])
                break
        key = f"{env.table}:{env.record_id}:{env.type}:{updated_at}"
    if len(key) > MAX_KEY_LENGTH:
        key = key[:200] + ":sha256:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def webhook_receive(*, source: str, body: bytes, webhook_id: str | None = None) -> Receipt:
    """Store a verified delivery (once) and queue its processing; see the module docstring."""
    env = parse_body(source=source, body=body)
    skipped = _skip_reason(source, env)
    key = delivery_key(env, webhook_id)
    payload = {
        "type": env.type,
        "table": env.table,
        "schema": env.schema,
        "record": env.record,
        "old_record": env.old_record,
    }
    event = WebhookEvent(
        delivery_key=key,
        source=source,
        event_type=env.type[:20],
        table_name=env.table[:100],
        payload=payload,
        status=WebhookStatus.SKIPPED if skipped else WebhookStatus.RECEIVED,
        processed_at=timezone.now() if skipped else None,
        result={"skipped": skipped} if skipped else {},
    )
    # One statement, no explicit transaction (in autocommit it is its own, committed when it
    # returns: one round trip). ON CONFLICT DO NOTHING: a concurrent insert of the same key
    # makes this one wait for it, then return no row (it committed) or insert (it rolled
    # back) — no exception path.
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_EVENT, _insert_params(event))
        inserted = cursor.fetchone()
    if inserted is None:
        existing = WebhookEvent.objects.get(delivery_key=key)
        return Receipt(existing, duplicate=True, skipped=(existing.result or {}).get("skipped"))
    if not skipped:
        enqueue_processing(event_ids=[event.id])
    return Receipt(event, skipped=skipped)


_INSERT_EVENT = """
INSERT INTO webhook_events (id, delivery_key, source, event_type, table_name, payload, status, attempts,
                            received_at, processed_at, error, result, updated_at)
VALUES (%(id)s, %(delivery_key)s, %(source)s, %(event_type)s, %(table_name)s, %(payload)s::jsonb, %(status)s, 0,
        now(), %(processed_at)s, '', %(result)s::jsonb, now())
ON CONFLICT (delivery_key) DO NOTHING
RETURNING id
"""


def _insert_params(event: WebhookEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "delivery_key": event.delivery_key,
        "source": event.source,
        "event_type": event.event_type,
        "table_name": event.table_name,
        "payload": json.dumps(event.payload),
        "status": event.status,
        "processed_at": event.processed_at,
        "result": json.dumps(event.result),
    }


def _processing_job(event_id: uuid.UUID | str) -> effects.Job:
    return effects.Job("webhooks.jobs.process_event", (str(event_id),), "notifications", None, f"webhook {event_id}")


def enqueue_processing(*, event_ids: list[uuid.UUID | str]) -> None:
    """Queue `webhooks.jobs.process_event` once the event rows are committed (at once in
    autocommit: a delivery's INSERT is its own transaction). If Redis is unreachable the
    delivery is still acknowledged — the event stays `received` and `webhook_sweep` queues
    it when the queue is back."""
    effects.enqueue_many(_processing_job(event_id) for event_id in event_ids)


def _claim(event_id: uuid.UUID | str) -> WebhookEvent | None:
    """Move a received/failed event to processing; None if someone else has it or it is done."""
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_id).first()
        if event is None or event.status not in (WebhookStatus.RECEIVED, WebhookStatus.FAILED):
            return None
        event.status = WebhookStatus.PROCESSING
        event.attempts += 1
        event.save(update_fields=["status", "attempts", "updated_at"])
        return event


def _finish(event: WebhookEvent, status: str, *, result: dict[str, Any] | None = None, error: str = "") -> None:
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=status, result=result or {}, error=error[:5000], processed_at=timezone.now(), updated_at=timezone.now()
    )


def webhook_process(*, event_id: uuid.UUID | str) -> dict[str, Any]:
    """Run a stored event through the matching services (worker side).

    Domain failures (unknown company / candidate, invalid values) mark the event failed
    with the reason and are not retried; unexpected errors mark it failed and re-raise,
    so RQ retries it (the pipeline is idempotent).
    """
    event = _claim(event_id)
    if event is None:
        return {"event_id": str(event_id), "skipped": "not_claimable"}
    try:
        if event.source == SOURCE_JOBS:
            result = _process_job_event(event)
        elif event.source == SOURCE_CANDIDATES:
            result = _process_candidate_event(event)
        else:
            raise ApplicationError("unknown_source", f"Source inconnue : {event.source}.")
    except ApplicationError as exc:
        _finish(event, WebhookStatus.FAILED, result={"code": exc.code}, error=f"{exc.code}: {exc.message}")
        return {"event_id": str(event.id), "failed": exc.code}
    except Exception as exc:
        _finish(event, WebhookStatus.FAILED, result={"code": "exception"}, error=repr(exc))
        raise
    _finish(event, WebhookStatus.PROCESSED, result=result)
    return {"event_id": str(event.id), **result}


def _process_job_event(event: WebhookEvent) -> dict[str, Any]:
    record = event.payload.get("record") or {}
    job, previous_status = matching.job_upsert_from_record(record=record)
    if job.status != "active" or job.deleted_at is not None:
        return {"job_id": str(job.id), "skipped": "job_not_active"}
    return {"created": previous_status is None, **matching.job_match_and_notify(job_id=job.id)}


def _process_candidate_event(event: WebhookEvent) -> dict[str, Any]:
    record = event.payload.get("record") or {}
    candidate = Candidate.objects.filter(pk=record.get("id")).first()
    if candidate is None:
        raise ApplicationError("unknown_candidate", f"Candidat inconnu : {record.get('id')}.")
    fields = {name: record[name] for name in matching.CANDIDATE_WRITABLE_FIELDS if name in record}
    _candidate, changed = matching.candidate_update_profile(candidate=candidate, queue_rematch=False, **fields)
    return {"profile_changed": changed, **matching.candidate_rematch(candidate_id=candidate.pk)}


def webhook_reprocess(*, event_ids: list[uuid.UUID | str]) -> int:
    """Admin action: put events back to received and queue them again. Returns how many."""
    with transaction.atomic():
        ids = list(
            WebhookEvent.objects.select_for_update()
            .filter(pk__in=event_ids)
            .exclude(status=WebhookStatus.SKIPPED)
            .values_list("pk", flat=True)
        )
        WebhookEvent.objects.filter(pk__in=ids).update(
            status=WebhookStatus.RECEIVED, error="", updated_at=timezone.now()
        )
        enqueue_processing(event_ids=ids)
    return len(ids)


def webhook_sweep(*, older_than_seconds: int | None = None, stuck_after_seconds: int | None = None) -> list[str]:
    """Scheduled (emploiplus/cron.py): stored events whose processing was lost.

    `received` for more than `older_than_seconds` (WEBHOOK_SWEEP_AFTER_SECONDS, 60 s): the
    enqueue failed (Redis down) or the queued job was lost with Redis' memory. `processing`
    for more than `stuck_after_seconds` (WEBHOOK_STUCK_AFTER_SECONDS, 900 s): the worker died
    mid-way; it goes back to `received` (the pipeline is idempotent). Both are queued
    again; a job that finds its event already taken or done does nothing. Returns the ids.
    """
    older = settings.WEBHOOK_SWEEP_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    stuck = settings.WEBHOOK_STUCK_AFTER_SECONDS if stuck_after_seconds is None else stuck_after_seconds
    now = timezone.now()
    events = WebhookEvent.objects.order_by("updated_at")
    with transaction.atomic():
        abandoned = list(
            events.select_for_update(skip_locked=True)
            .filter(status=WebhookStatus.PROCESSING, updated_at__lt=now - timedelta(seconds=stuck))
            .values_list("pk", flat=True)[:500]
        )
        WebhookEvent.objects.filter(pk__in=abandoned).update(status=WebhookStatus.RECEIVED, updated_at=now)
    lost = list(
        events.filter(status=WebhookStatus.RECEIVED, updated_at__lt=now - timedelta(seconds=older))
        .exclude(pk__in=abandoned)
        .values_list("pk", flat=True)[:500]
    )
    ids = [str(pk) for pk in [*abandoned, *lost]]
    enqueue_processing(event_ids=ids)
    if ids:
        logger.warning("webhook sweep: queued %d lost event(s) again (%d abandoned mid-way)", len(ids), len(abandoned))
    return ids
