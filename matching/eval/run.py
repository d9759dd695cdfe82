"""Load the evaluation set into the database and score rules-only vs hybrid rankings.

Everything goes through the production code: profiles and offers are rows written by
the ORM (so the triggers fill candidate_match_profiles), vectors come from
matching.semantic.embed (the worker's function), rankings from
matching.selectors.candidates_matching_job (CONTRACT §7, what GET /api/jobs/{id}/matches/
lists) and matching.semantic.job_ranked_candidates (`?rank=hybrid`).

Rankings compared per offer, over the top `depth` results:
- `rules (threshold)`: the §7 list as served (score ≥ MATCH_MIN_SCORE, best first);
- `rules (every profile)`: the §7 score of every eligible profile, best first — the best
  any ordering by the rules can do, threshold aside;
- `hybrid`: the hybrid list as served.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from django.db import transaction

from matching.eval.metrics import ndcg_at, recall_at

DATASET = Path(__file__).resolve().parent / "dataset.json"
TAG = "eval-semantic"


def load_dataset() -> dict[str, Any]:
    return json.loads(DATASET.read_text())


@transaction.atomic
def load_into_database(data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Create (or reuse) the offers and profiles of the evaluation set; returns the data."""
    from accounts.models import Candidate, Company, Role, User
    from matching.models import Job
    from matching.skills import skills_normalize

    data = data or load_dataset()
    company, _ = Company.objects.get_or_create(name=f"{TAG} company")
    have = set(User.objects.filter(pk__in=[p["id"] for p in data["profiles"]]).values_list("pk", flat=True))
    users, candidates = [], []
    for p in data["profiles"]:
        if p["id"] in {str(h) for h in have}:
            continue
        users.append(User(id=p["id"], email=f"{p['id']}@{TAG}.test", role=Role.CANDIDATE, full_name=p["headline"]))
        candidates.append(
            Candidate(
                user_id=p["id"],
                headline=p["headline"],
                summary=p["summary"],
                skills=skills_normalize(p["skills"]),
                experience_level=p["experience_level"],
                target_salary_min=p["target_salary_min"],
            )
        )
    User.objects.bulk_create(users)
    Candidate.objects.bulk_create(candidates)
    existing = set(Job.objects.filter(pk__in=[j["id"] for j in data["jobs"]]).values_list("pk", flat=True))
    Job.objects.bulk_create(
        [
            Job(
                id=j["id"],
                company=company,
                title=j["title"],
                description=j["description"],
                required_skills=skills_normalize(j["required_skills"]),
                experience_level=j["experience_level"],
                salary_min=j["salary_min"],
                salary_max=j["salary_max"],
                status="active",
            )
            for j in data["jobs"]
            if j["id"] not in {str(e) for e in existing}
        ]
    )
    return data


def embed_all(data: dict[str, Any]) -> dict[str, Any]:
    from matching import semantic

    started = time.perf_counter()
    jobs = semantic.embed(kind=semantic.KIND_JOB, ids=[j["id"] for j in data["jobs"]])
    profiles = semantic.EmbedResult()
    ids = [p["id"] for p in data["profiles"]]
    for start in range(0, len(ids), semantic.EMBED_BATCH):
        profiles.add(semantic.embed(kind=semantic.KIND_CANDIDATE, ids=ids[start : start + semantic.EMBED_BATCH]))
    return {"jobs": jobs.as_dict(), "profiles": profiles.as_dict(), "seconds": round(time.perf_counter() - started, 3)}


def rankings(data: dict[str, Any], *, depth: int = 50) -> dict[str, dict[str, list[str]]]:
    """{variant: {job id: ranked profile ids}} for the three variants of the module docstring."""
    from matching import selectors, semantic
    from matching.models import Job

    profile_ids = {p["id"] for p in data["profiles"]}
    out: dict[str, dict[str, list[str]]] = {"rules (threshold)": {}, "rules (every profile)": {}, "hybrid": {}}
    for job in Job.objects.filter(pk__in=[j["id"] for j in data["jobs"]]).order_by("pk"):
        key = str(job.pk)

        def keep(rows, attribute="candidate_id") -> list[str]:
            return [str(getattr(r, attribute)) for r in rows if str(getattr(r, attribute)) in profile_ids][:depth]

        out["rules (threshold)"][key] = keep(selectors.candidates_matching_job(job=job))
        out["rules (every profile)"][key] = keep(
            selectors.candidates_matching_job(job=job, threshold=0, prefilter=False)
        )
        out["hybrid"][key] = keep(semantic.job_ranked_candidates(job=job))
    return out


def evaluate(data: dict[str, Any], ranked: dict[str, dict[str, list[str]]]) -> dict[str, dict[str, float]]:
    """Mean NDCG@10 and recall@20 (grade ≥ 2) per variant, over every offer."""
    report = {}
    for variant, per_job in ranked.items():
        ndcg = [ndcg_at(per_job.get(j, []), data["relevance"][j], 10) for j in data["relevance"]]
        recall = [recall_at(per_job.get(j, []), data["relevance"][j], 20) for j in data["relevance"]]
        report[variant] = {
            "ndcg@10": round(statistics.mean(ndcg), 4),
            "recall@20": round(statistics.mean(recall), 4),
            "jobs": len(ndcg),
        }
    return report


def run() -> dict[str, Any]:
    """Load, embed, rank, evaluate (tests and bench/bench_semantic.py)."""
    data = load_into_database()
    timings = embed_all(data)
    report = evaluate(data, rankings(data))
    return {
        "report": report,
        "embedding": timings,
        "size": f"{len(data['jobs'])} offers × {len(data['profiles'])} profiles",
    }
