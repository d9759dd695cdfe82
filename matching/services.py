"""Writes and side effects of matching: jobs, candidate profiles, the matching pipeline.

One pipeline, three entrances (CONTRACT §6–8):
- `job_match_and_notify(job_id)` — a job became active: score every candidate in SQL,
  upsert `candidate_job_matches`, mark new matches notified atomically and queue one
  notification per candidate (batched by identical score). Run by the RQ job
  `matching.jobs.process_job` (API create/activate, the sweep) and by the webhook job.
- `candidate_rematch(candidate_id)` — a profile changed: active jobs that now match and
  were never notified to this candidate → one digest notification.
- `job_sweep_pending()` — active jobs whose pipeline never ran (lost webhook deliveries,
  lost enqueues, dead workers); `candidate_sweep_rematch()` — the same for re-matches.

"Never notify twice" is enforced by the database, not by the caller: a match is
notified by `UPDATE … SET notified_at = now() WHERE notified_at IS NULL RETURNING`,
so two concurrent runs (a duplicate delivery, the sweep, an admin "reprocess") cannot
both see the same row as new. The job row is also locked for the run.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import HEADLINE_MAX_LENGTH, LEVEL_RANK, SUMMARY_MAX_LENGTH, Candidate, Company, Role, User
from emploiplus import effects
from emploiplus.errors import ApplicationError, Forbidden
from matching import selectors, semantic
from matching.models import Job, JobStatus, JobType, NotificationStatus
from matching.skills import fold, skills_normalize
from notifications.services import notification_queue

logger = logging.getLogger(__name__)

MATERIALIZED_VIEWS = ("mv_job_stats", "mv_candidate_stats")

# Fields of a candidate profile whose change can change the set of matching jobs.
MATCHING_PROFILE_FIELDS = ("skills", "experience_level", "location", "target_salary_min", "target_salary_max")
JOB_WRITABLE_FIELDS = (
    "title",
    "description",
    "location",
    "job_type",
    "required_skills",
    "experience_level",
    "salary_min",
    "salary_max",
    "status",
)
CANDIDATE_WRITABLE_FIELDS = (*MATCHING_PROFILE_FIELDS, "job_title", "headline", "summary", "notifications_enabled")

NOTIFICATION_TYPE_JOB = "job_match"
NOTIFICATION_TYPE_DIGEST = "job_matches_digest"


def stats_refresh() -> dict[str, float]:
    """REFRESH … CONCURRENTLY each statistics view; readers are never blocked.

    Returns the seconds each refresh took.
    """
    timings = {}
    with connection.cursor() as cursor:
        for view in MATERIALIZED_VIEWS:
            started = time.perf_counter()
            cursor.execute(f"REFRESH MATERIALIZED VIEW CONCURRENTLY {view}")
            timings[view] = round(time.perf_counter() - started, 4)
    return timings


# --- value normalisation (every write path) -------------------------------------------


def normalize_level(value: Any) -> str | None:
    """'Senior' → 'senior'; '' / None → None; unknown → ApplicationError."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    level = fold(str(value))
    aliases = {"debutant": "entry", "junior": "junior", "confirme": "mid", "intermediate": "mid", "expert": "lead"}
    level = aliases.get(level, level)
    if level not in LEVEL_RANK:
        raise ApplicationError(
            "invalid", f"Niveau d'expérience inconnu : {value}.", extra={"errors": {"experience_level": [str(value)]}}
        )
    return level


# --- notifications (the notifications app's entry point) ------------------------------


def _job_title_line(job: Job) -> str:
    return f"Nouvelle offre : {job.title} — {job.company.name}"


def _digest_title(count: int) -> str:
    if count == 1:
        return "1 nouvelle offre correspond à votre profil"
    return f"{count} nouvelles offres correspondent à votre profil"


# --- matches: upsert and notify -------------------------------------------------------

# Upsert the scored rows of one job (scope=job_id, other=candidate_id) or of one candidate
# (scope=candidate_id, other=job_id). Matches in scope that no longer qualify and were
# never notified go away; notified ones stay as the record of what was sent.
_UPSERT_MATCHES = """
WITH scored AS ({select}),
upserted AS (
    INSERT INTO candidate_job_matches AS m
        (id, candidate_id, job_id, match_score, skill_score, experience_score, salary_score,
         matched_skills, missing_skills, created_at, updated_at)
    SELECT gen_random_uuid(), s.candidate_id, s.job_id, s.score, s.skill_score, s.experience_score,
           s.salary_score, s.matched_skills, s.missing_skills, now(), now()
    FROM scored AS s
    ON CONFLICT (candidate_id, job_id) DO UPDATE SET
        match_score = EXCLUDED.match_score, skill_score = EXCLUDED.skill_score,
        experience_score = EXCLUDED.experience_score, salary_score = EXCLUDED.salary_score,
        matched_skills = EXCLUDED.matched_skills, missing_skills = EXCLUDED.missing_skills
    RETURNING m.{other}
),
stale AS (
    DELETE FROM candidate_job_matches AS d
    WHERE d.{scope} = %({scope})s::uuid AND d.notified_at IS NULL
      AND NOT EXISTS (SELECT 1 FROM scored AS s WHERE s.{other} = d.{other})
)
SELECT count(*) FROM upserted
"""

# Claim the not-yet-notified matches of eligible candidates: the row-level `notified_at
# IS NULL` re-check after a concurrent commit is what makes a second run see nothing.
_CLAIM_JOB_MATCHES = """
UPDATE candidate_job_matches AS m SET notified_at = now()
FROM candidates AS c, users AS u
WHERE m.job_id = %(job_id)s::uuid AND m.notified_at IS NULL AND m.match_score >= %(min_score)s
  AND c.id = m.candidate_id AND u.id = c.id
  AND c.notifications_enabled AND c.is_active AND c.deleted_at IS NULL AND u.is_active
RETURNING m.candidate_id, m.match_score
"""


def job_match_and_notify(*, job_id: UUID | str) -> dict[str, Any]:
    """The pipeline for one job (idempotent; safe to run concurrently for the same job)."""
    with transaction.atomic():
        job = Job.objects.select_for_update(of=("self",)).select_related("company").filter(pk=job_id).first()
        if job is None:
            raise ApplicationError("unknown_job", f"Offre inconnue : {job_id}.", status=404)
        if job.status != JobStatus.ACTIVE or job.deleted_at is not None:
            return {"job_id": str(job.id), "skipped": "job_not_active"}
        select, params = selectors.job_match_query(job)
        with selectors.matching_cursor() as cursor:
            cursor.execute(_UPSERT_MATCHES.format(select=select, scope="job_id", other="candidate_id"), params)
            (matched,) = cursor.fetchone()
            cursor.execute(_CLAIM_JOB_MATCHES, params)
            claimed = cursor.fetchall()
        # MATCH_HYBRID_NOTIFY: profiles the skill rules missed, claimed the same way (issue 15).
        claimed += semantic.job_claim_hybrid(job=job)
        by_score: dict[Decimal, list[str]] = defaultdict(list)
        for candidate_id, score in claimed:
            by_score[score].append(str(candidate_id))
        # One notification per candidate; candidates with the same score share one queue
        # call (same title, body and data), which the notifications app fans out.
        for score, user_ids in sorted(by_score.items(), reverse=True):
            notification_queue(
                type=NOTIFICATION_TYPE_JOB,
                title=_job_title_line(job),
                body=f"{job.location or 'Lieu non précisé'} · {job.job_type} · correspondance {score} %",
                title_en=f"New job: {job.title} — {job.company.name}",
                body_en=f"{job.location or 'Location not specified'} · {job.job_type} · {score} % match",
                data={
                    "type": NOTIFICATION_TYPE_JOB,
                    "jobId": str(job.id),
                    "companyId": str(job.company_id),
                    "score": float(score),
                },
                user_ids=user_ids,
            )
        now = timezone.now()
        Job.objects.filter(pk=job.pk).update(
            notification_status=NotificationStatus.SENT,
            notification_sent_at=now,
            matching_candidates_count=matched,
            updated_at=now,
        )
    result = {"job_id": str(job.id), "matched": matched, "notified": len(claimed)}
    logger.info("job matching done: %s", result)
    return result


def job_mark_failed(*, job_id: UUID | str) -> None:
    Job.objects.filter(pk=job_id).exclude(notification_status=NotificationStatus.SENT).update(
        notification_status=NotificationStatus.FAILED
    )


_CLAIM_CANDIDATE_MATCHES = """
UPDATE candidate_job_matches AS m SET notified_at = now()
FROM jobs AS j
WHERE m.candidate_id = %(candidate_id)s::uuid AND m.notified_at IS NULL AND m.match_score >= %(min_score)s
  AND j.id = m.job_id AND j.status = 'active' AND j.deleted_at IS NULL
RETURNING m.job_id, m.match_score
"""


def candidate_rematch(*, candidate_id: UUID | str) -> dict[str, Any]:
    """Re-score a candidate against every active job; ONE digest for the never-notified matches."""
    with transaction.atomic():
        candidate = (
            Candidate.objects.select_for_update(of=("self",)).select_related("user").filter(pk=candidate_id).first()
        )
        if candidate is None:
            raise ApplicationError("unknown_candidate", f"Candidat inconnu : {candidate_id}.", status=404)
        if not candidate.is_active or candidate.deleted_at is not None or not candidate.user.is_active:
            if candidate.rematch_requested_at is not None:
                Candidate.objects.filter(pk=candidate.pk).update(rematch_requested_at=None)
            return {"candidate_id": str(candidate_id), "skipped": "candidate_not_active"}
        params = selectors.candidate_match_params(candidate)
        with selectors.matching_cursor() as cursor:
            cursor.execute(
                _UPSERT_MATCHES.format(
                    select=selectors.jobs_for_candidate_sql(prefilter=selectors.prefilter_is_exact()),
                    scope="candidate_id",
                    other="job_id",
                ),
                params,
            )
            (matched,) = cursor.fetchone()
            claimed: list[tuple[UUID, Decimal]] = []
            if candidate.notifications_enabled:
                cursor.execute(_CLAIM_CANDIDATE_MATCHES, params)
                claimed = cursor.fetchall()
        if claimed:
            claimed.sort(key=lambda row: row[1], reverse=True)
            jobs = {j.id: j for j in Job.objects.select_related("company").filter(pk__in=[r[0] for r in claimed])}
            best = jobs[claimed[0][0]]
            count = len(claimed)
            notification_queue(
                type=NOTIFICATION_TYPE_DIGEST,
                title=_digest_title(count),
                body=f"Dont « {best.title} » chez {best.company.name} ({claimed[0][1]} %).",
                title_en=f"{count} new job{'s' if count > 1 else ''} match your profile",
                body_en=f"Including “{best.title}” at {best.company.name} ({claimed[0][1]} %).",
                data={
                    "type": NOTIFICATION_TYPE_DIGEST,
                    "count": count,
                    "jobIds": [str(job_id) for job_id, _ in claimed],
                    "scores": {str(job_id): float(score) for job_id, score in claimed},
                },
                user_ids=[str(candidate.pk)],
            )
        if candidate.rematch_requested_at is not None:
            Candidate.objects.filter(pk=candidate.pk).update(rematch_requested_at=None)
    result = {"candidate_id": str(candidate_id), "matched": matched, "notified_jobs": len(claimed)}
    logger.info("candidate rematch done: %s", result)
    return result


# --- queueing (after commit, emploiplus.effects) ---------------------------------------


def job_queue_matching(*, job: Job) -> None:
    """Mark the job queued and run the pipeline in the worker once this transaction commits.
    A lost enqueue leaves it `queued`: `job_sweep_pending` runs it later."""
    Job.objects.filter(pk=job.pk).update(notification_status=NotificationStatus.QUEUED)
    job.notification_status = NotificationStatus.QUEUED
    effects.enqueue("matching.jobs.process_job", str(job.pk), description=f"match job {job.pk}")


# --- jobs: create / update / delete (API and webhook) ---------------------------------


def _clean_job_fields(fields: dict[str, Any]) -> dict[str, Any]:
    cleaned = {k: v for k, v in fields.items() if k in JOB_WRITABLE_FIELDS}
    if "required_skills" in cleaned:
        cleaned["required_skills"] = skills_normalize(cleaned["required_skills"])
    if "experience_level" in cleaned:
        cleaned["experience_level"] = normalize_level(cleaned["experience_level"])
    if isinstance(cleaned.get("job_type"), str):
        by_fold = {fold(value): value for value in JobType.values}
        cleaned["job_type"] = by_fold.get(fold(cleaned["job_type"]), cleaned["job_type"])
    if isinstance(cleaned.get("status"), str):
        cleaned["status"] = cleaned["status"].strip().lower()
    smin = cleaned.get("salary_min")
    smax = cleaned.get("salary_max")
    if smin is not None and smax is not None and smin > smax:
        raise ApplicationError(
            "invalid",
            "salary_min doit être ≤ salary_max.",
            extra={"errors": {"salary_min": ["doit être inférieur ou égal à salary_max"]}},
        )
    return cleaned


def _becomes_active(job: Job, previous_status: str | None) -> bool:
    return job.status == JobStatus.ACTIVE and job.deleted_at is None and previous_status != JobStatus.ACTIVE


@transaction.atomic
def job_create(*, user: User, company: Company | None = None, **fields: Any) -> Job:
    """A company user publishes (or drafts) a job; an active job goes through the pipeline."""
    if user.role == Role.COMPANY:
        if user.company_id is None:
            raise Forbidden("Votre compte n'est rattaché à aucune entreprise.")
        company = user.company
    elif user.role != Role.ADMIN:
        raise Forbidden("Seules les entreprises publient des offres.")
    if company is None:
        raise ApplicationError("invalid", "company_id est requis.", extra={"errors": {"company_id": ["requis"]}})
    job = Job(company=company, created_by=user, **_clean_job_fields(fields))
    job.full_clean(exclude=["search_vector", "created_by", "company"])
    job.save()
    semantic.job_text_changed(before=None, job=job)
    if job.status == JobStatus.ACTIVE:
        job_queue_matching(job=job)
    return job


@transaction.atomic
def job_update(*, job: Job, user: User, **fields: Any) -> Job:
    """PATCH: activating a job (draft/closed → active) runs the pipeline; editing an active one does not."""
    job = Job.objects.select_for_update().get(pk=job.pk)
    if not selectors.job_can_edit(job=job, user=user):
        raise Forbidden("Seule l'entreprise qui publie l'offre peut la modifier.")
    previous_status = job.status
    before = semantic.snapshot(semantic.KIND_JOB, job)
    for name, value in _clean_job_fields(fields).items():
        setattr(job, name, value)
    job.full_clean(exclude=["search_vector", "created_by", "company"])
    job.save()
    semantic.job_text_changed(before=before, job=job)
    if _becomes_active(job, previous_status):
        job_queue_matching(job=job)
    return job


@transaction.atomic
def job_delete(*, job: Job, user: User) -> None:
    """Soft delete: the job disappears from lists and matching; sent notifications stay."""
    if not selectors.job_can_edit(job=job, user=user):
        raise Forbidden("Seule l'entreprise qui publie l'offre peut la supprimer.")
    Job.objects.filter(pk=job.pk).update(deleted_at=timezone.now(), status=JobStatus.CLOSED)


def _record_value(record: dict[str, Any], name: str, default: Any = None) -> Any:
    value = record.get(name, default)
    return default if value is None and default is not None else value


@transaction.atomic
def job_upsert_from_record(*, record: dict[str, Any]) -> tuple[Job, str | None]:
    """Create or update our jobs row from a webhook record; (job, previous status or None).

    Django owns the `jobs` table; a webhook describing a row we do not have (or an older
    version of one we have) brings our copy up to date, then the caller runs the pipeline.
    Raises ApplicationError for an unknown company or invalid values (event → failed).
    """
    company_id = record.get("company_id")
    if not company_id or not Company.objects.filter(pk=company_id).exists():
        raise ApplicationError("unknown_company", f"Entreprise inconnue : {company_id}.")
    job = Job.objects.select_for_update().filter(pk=record["id"]).first()
    previous_status = job.status if job else None
    before = semantic.snapshot(semantic.KIND_JOB, job) if job else None
    if job is None:
        job = Job(id=record["id"])
    elif str(job.company_id) != str(company_id):
        raise ApplicationError("company_mismatch", "L'offre appartient à une autre entreprise.")
    job.company_id = company_id
    fields = {name: record[name] for name in JOB_WRITABLE_FIELDS if name in record}
    for name in ("description", "location"):
        if name in fields and fields[name] is None:
            fields[name] = ""
    for name, value in _clean_job_fields(fields).items():
        setattr(job, name, value)
    created_by = record.get("created_by")
    if created_by and job.created_by_id is None and User.objects.filter(pk=created_by).exists():
        job.created_by_id = created_by
    if "deleted_at" in record:
        job.deleted_at = record["deleted_at"]
    try:
        job.full_clean(exclude=["search_vector", "created_by", "company", "id"])
    except Exception as exc:  # django ValidationError: report as a domain error
        raise ApplicationError("invalid_record", f"Enregistrement invalide : {exc}") from exc
    job.save()
    semantic.job_text_changed(before=before, job=job)
    return job, previous_status


def job_sweep_pending(*, older_than_seconds: int | None = None, stuck_after_seconds: int | None = None) -> list[str]:
    """Active jobs whose pipeline never ran (lost delivery) or never finished (dead worker).

    pending for more than `older_than_seconds` (default 120 s), or queued for more than
    `stuck_after_seconds` (default 15 min). Returns the ids it ran the pipeline for.
    """
    older = settings.MATCHING_SWEEP_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    stuck = settings.MATCHING_STUCK_AFTER_SECONDS if stuck_after_seconds is None else stuck_after_seconds
    now = timezone.now()
    base = Job.objects.filter(status=JobStatus.ACTIVE, deleted_at__isnull=True)
    pending = base.filter(notification_status=NotificationStatus.PENDING, created_at__lt=now - timedelta(seconds=older))
    queued = base.filter(notification_status=NotificationStatus.QUEUED, updated_at__lt=now - timedelta(seconds=stuck))
    ids = [str(pk) for pk in pending.values_list("pk", flat=True)[:500]]
    ids += [str(pk) for pk in queued.values_list("pk", flat=True)[:500]]
    done = []
    for job_id in ids:
        try:
            job_match_and_notify(job_id=job_id)
            done.append(job_id)
        except Exception:
            logger.exception("sweep: pipeline failed for job %s", job_id)
            job_mark_failed(job_id=job_id)
    return done


def candidate_sweep_rematch(*, older_than_seconds: int | None = None) -> list[str]:
    """Candidates whose re-match was requested more than `older_than_seconds` ago
    (MATCHING_SWEEP_AFTER_SECONDS) and never ran (lost enqueue, dead worker): run it now."""
    older = settings.MATCHING_SWEEP_AFTER_SECONDS if older_than_seconds is None else older_than_seconds
    due = Candidate.objects.filter(rematch_requested_at__lt=timezone.now() - timedelta(seconds=older))
    done = []
    for candidate_id in due.order_by("rematch_requested_at").values_list("pk", flat=True)[:500]:
        try:
            candidate_rematch(candidate_id=candidate_id)
            done.append(str(candidate_id))
        except Exception:
            logger.exception("sweep: re-match failed for candidate %s", candidate_id)
    return done


def skills_renormalize_all(*, batch_size: int = 2000) -> dict[str, int]:
    """Re-apply the normaliser to every stored skill array (after aliases changed).

    Rows whose normalised array differs are updated in batches; nothing is re-matched or
    notified here (the next profile change / job activation uses the new values).
    """
    changed = {"candidates": 0, "jobs": 0}
    for label, model, field in (("candidates", Candidate, "skills"), ("jobs", Job, "required_skills")):
        last = None
        while True:
            qs = model.objects.order_by("pk")
            if last is not None:
                qs = qs.filter(pk__gt=last)
            rows = list(qs.values_list("pk", field)[:batch_size])
            if not rows:
                break
            last = rows[-1][0]
            with transaction.atomic():
                for pk, skills in rows:
                    normalised = skills_normalize(skills or [])
                    if normalised != list(skills or []):
                        model.objects.filter(pk=pk).update(**{field: normalised})
                        changed[label] += 1
    return changed


# --- candidates -----------------------------------------------------------------------


def candidate_profile_values(source: Any) -> dict[str, Any]:
    """The matching-relevant values of a profile (a Candidate or a record dict), normalised."""

    def get(name: str) -> Any:
        return source.get(name) if isinstance(source, dict) else getattr(source, name, None)

    return {
        "skills": frozenset(skills_normalize(get("skills") or [])),
        "experience_level": normalize_level_lenient(get("experience_level")),
        "location": fold(get("location") or ""),
        "target_salary_min": _int_or_none(get("target_salary_min")),
        "target_salary_max": _int_or_none(get("target_salary_max")),
    }


def normalize_level_lenient(value: Any) -> str | None:
    try:
        return normalize_level(value)
    except ApplicationError:
        return fold(str(value))


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def profile_changed(before: Any, after: Any, *, present: set[str] | None = None) -> bool:
    """Did any matching-relevant field really change (skills compared as normalised sets)?

    `present` limits the comparison to fields the update carried (a partial record).
    """
    a, b = candidate_profile_values(before), candidate_profile_values(after)
    fields = [f for f in MATCHING_PROFILE_FIELDS if present is None or f in present]
    return any(a[f] != b[f] for f in fields)


PROFILE_TEXT_LIMITS = {"job_title": 200, "headline": HEADLINE_MAX_LENGTH, "summary": SUMMARY_MAX_LENGTH}


def _profile_text(name: str, value: Any) -> str:
    """A free-text profile field: None → "", whitespace trimmed, length-limited (else 400)."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ApplicationError("invalid", f"{name} invalide.", extra={"errors": {name: ["Texte attendu."]}})
    value = value.strip()
    limit = PROFILE_TEXT_LIMITS[name]
    if len(value) > limit:
        raise ApplicationError(
            "invalid",
            f"{name} dépasse {limit} caractères.",
            extra={"errors": {name: [f"Au plus {limit} caractères ({len(value)} reçus)."]}},
        )
    return value


@transaction.atomic
def candidate_update_profile(
    *, candidate: Candidate, queue_rematch: bool = True, **fields: Any
) -> tuple[Candidate, bool]:
    """Edit a candidate profile (API or webhook); a relevant change queues the re-match.

    Returns (candidate, changed). `queue_rematch=False` is for callers already in the
    worker that run `candidate_rematch` themselves (the webhook job).
    """
    candidate = Candidate.objects.select_for_update().get(pk=candidate.pk)
    before = candidate_profile_values(candidate)
    text_before = semantic.snapshot(semantic.KIND_CANDIDATE, candidate)
    was_enabled = candidate.notifications_enabled
    updates = {k: v for k, v in fields.items() if k in CANDIDATE_WRITABLE_FIELDS}
    if "skills" in updates:
        updates["skills"] = skills_normalize(updates["skills"])
    if "experience_level" in updates:
        updates["experience_level"] = normalize_level(updates["experience_level"])
    if "location" in updates and updates["location"] is None:
        updates["location"] = ""
    for name in ("job_title", "headline", "summary"):
        if name in updates:
            updates[name] = _profile_text(name, updates[name])
    for name in ("target_salary_min", "target_salary_max"):
        if name in updates and updates[name] not in (None, ""):
            value = _int_or_none(updates[name])
            if value is None or value < 0:
                raise ApplicationError(
                    "invalid", f"{name} invalide.", extra={"errors": {name: ["Entier positif attendu."]}}
                )
            updates[name] = value
        elif name in updates:
            updates[name] = None
    for name, value in updates.items():
        setattr(candidate, name, value)
    tmin, tmax = candidate.target_salary_min, candidate.target_salary_max
    if tmin is not None and tmax is not None and tmin > tmax:
        raise ApplicationError(
            "invalid",
            "target_salary_min doit être ≤ target_salary_max.",
            extra={"errors": {"target_salary_min": ["doit être inférieur ou égal à target_salary_max"]}},
        )
    changed = candidate_profile_values(candidate) != before
    re_enabled = candidate.notifications_enabled and not was_enabled
    rematch = queue_rematch and (changed or re_enabled)
    if rematch:
        candidate.rematch_requested_at = timezone.now()
    candidate.save()
    semantic.candidate_text_changed(before=text_before, candidate=candidate)
    if rematch:
        # A lost enqueue leaves rematch_requested_at set: candidate_sweep_rematch runs it later.
        effects.enqueue(
            "matching.jobs.rematch_candidate", str(candidate.pk), description=f"re-match candidate {candidate.pk}"
        )
    return candidate, changed
