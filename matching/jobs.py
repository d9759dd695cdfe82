"""RQ jobs of matching (thin: take ids, call one service). All run on the `notifications` queue."""

from __future__ import annotations

from typing import Any

from matching import services


def refresh_materialized_views() -> dict[str, float]:
    return services.stats_refresh()


def process_job(job_id: str) -> dict[str, Any]:
    """The matching pipeline for a job created/activated through the API or found by the sweep."""
    try:
        return services.job_match_and_notify(job_id=job_id)
    except Exception:
        services.job_mark_failed(job_id=job_id)
        raise


def rematch_candidate(candidate_id: str) -> dict[str, Any]:
    return services.candidate_rematch(candidate_id=candidate_id)


def sweep_pending_jobs() -> dict[str, list[str]]:
    """Scheduled (emploiplus/cron.py): active jobs whose pipeline never ran, candidates whose
    re-match never ran."""
    return {"jobs": services.job_sweep_pending(), "candidates": services.candidate_sweep_rematch()}


def embed(kind: str, ids: list[str]) -> dict[str, Any]:
    """Bring the embeddings of these jobs / profiles up to date (queued by their write paths)."""
    from matching import semantic

    return semantic.embed(kind=kind, ids=ids).as_dict()


def sweep_embeddings() -> dict[str, Any]:
    """Scheduled (emploiplus/cron.py): embeddings whose job was lost, or written behind our back."""
    from matching import semantic

    return semantic.embed_sweep()
