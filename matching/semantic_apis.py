"""REST for the hybrid ranking (issue 15): `?rank=hybrid` on the match lists, recommended jobs.

Thin, like matching/apis.py: parse, call one matching.semantic selector, shape. Every list
answers `{"results", "next_cursor", "rank", "semantic"}`: `rank` is the ranking actually
used, `semantic` the feature's state ({"enabled": false, "reason"} on a server without
pgvector: the list is then the CONTRACT §7 ranking, never an error — fail soft).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import Candidate
from accounts.permissions import IsCandidate
from emploiplus import pagination
from emploiplus.errors import ApplicationError, NotFound
from matching import semantic
from matching.models import Job

RANK_RULES, RANK_HYBRID = "rules", "hybrid"
RANKS = (RANK_RULES, RANK_HYBRID)

RANK_PARAMETER = OpenApiParameter(
    "rank",
    str,
    enum=list(RANKS),
    description="rules: CONTRACT §7 score (default). hybrid: §7 score and semantic_score combined "
    "(MATCH_HYBRID_*_WEIGHT), with the profiles / jobs only the semantic side found.",
)


def parse_rank(request, default: str = RANK_RULES) -> str:
    rank = request.query_params.get("rank", default) or default
    if rank not in RANKS:
        raise ApplicationError(
            "invalid",
            "Paramètre rank invalide.",
            extra={"errors": {"rank": [f"« {rank[:40]} » : valeurs possibles {', '.join(RANKS)}."]}},
        )
    return rank


class RelatedSkillSerializer(serializers.Serializer):
    required = serializers.CharField(help_text="A required skill the profile does not list")
    closest = serializers.CharField(help_text="The profile's skill closest to it (embeddings)")
    similarity = serializers.FloatField(help_text="Cosine similarity of the two skills")


class HybridBreakdownSerializer(serializers.Serializer):
    score = serializers.FloatField(help_text="CONTRACT §7 score")
    skill_score = serializers.FloatField()
    experience_score = serializers.FloatField()
    salary_score = serializers.FloatField()
    matched_skills = serializers.ListField(child=serializers.CharField())
    missing_skills = serializers.ListField(child=serializers.CharField())
    semantic_score = serializers.FloatField(
        allow_null=True, help_text="0–100 from the cosine of the two texts (null: no vector yet)"
    )
    hybrid_score = serializers.FloatField()
    found_by = serializers.ListField(child=serializers.ChoiceField(choices=["skills", "semantic"]))
    related_skills = RelatedSkillSerializer(many=True)


SEMANTIC_STATE = inline_serializer(
    "SemanticState",
    {
        "enabled": serializers.BooleanField(),
        "model": serializers.CharField(),
        "reason": serializers.CharField(required=False),
        "pending": serializers.BooleanField(required=False, help_text="The vector is still being computed"),
    },
)


def hybrid_page_of(name: str, item: serializers.Serializer) -> serializers.Serializer:
    return inline_serializer(
        name,
        {
            "results": item,
            "next_cursor": serializers.CharField(allow_null=True),
            "rank": serializers.ChoiceField(choices=list(RANKS)),
            "semantic": SEMANTIC_STATE,
        },
    )


def _state(kind: str, pk: Any) -> dict[str, Any]:
    state = semantic.status().as_dict()
    if state["enabled"] and not semantic.has_embedding(kind, pk):
        state["pending"] = True
    return state


def job_hybrid_page(request, *, job: Job, limit: int) -> Response:
    """GET /api/jobs/{id}/matches/?rank=hybrid (the caller's permission already checked)."""
    state = _state(semantic.KIND_JOB, job.pk)
    list_name, bound = "job-matches-hybrid", str(job.pk)
    offset = pagination.offset_from_cursor(list_name, request.query_params.get("cursor"), bound=bound)
    rows = semantic.job_ranked_candidates(job=job, limit=limit + 1, offset=offset)
    page, next_cursor = pagination.offset_page(rows, list_name=list_name, offset=offset, limit=limit, bound=bound)
    people = {c.pk: c for c in Candidate.objects.select_related("user").filter(pk__in=[r.candidate_id for r in page])}
    semantic.explain(
        page,
        profile_skills={pk: list(c.skills or []) for pk, c in people.items()},
        job_skills={job.pk: list(job.required_skills or [])},
    )
    results = []
    for r in page:
        c = people[r.candidate_id]
        results.append(
            {
                "candidate_id": str(r.candidate_id),
                "full_name": c.user.full_name,
                "job_title": c.job_title,
                "headline": c.headline,
                "location": c.location,
                "experience_level": c.experience_level,
                "skills": c.skills,
                **HybridBreakdownSerializer(r.breakdown()).data,
            }
        )
    return Response({"results": results, "next_cursor": next_cursor, "rank": RANK_HYBRID, "semantic": state})


def candidate_hybrid_page(request, *, candidate: Candidate, limit: int, job_serializer: type) -> Response:
    """GET /api/me/matches/?rank=hybrid and GET /api/me/recommended-jobs/."""
    state = _state(semantic.KIND_CANDIDATE, candidate.pk)
    list_name, bound = "my-matches-hybrid", str(candidate.pk)
    offset = pagination.offset_from_cursor(list_name, request.query_params.get("cursor"), bound=bound)
    rows = semantic.candidate_ranked_jobs(candidate=candidate, limit=limit + 1, offset=offset)
    page, next_cursor = pagination.offset_page(rows, list_name=list_name, offset=offset, limit=limit, bound=bound)
    jobs = {j.pk: j for j in Job.objects.select_related("company").filter(pk__in=[r.job_id for r in page])}
    semantic.explain(
        page,
        profile_skills={candidate.pk: list(candidate.skills or [])},
        job_skills={pk: list(j.required_skills or []) for pk, j in jobs.items()},
    )
    results = [
        {"job": job_serializer(jobs[r.job_id]).data, **HybridBreakdownSerializer(r.breakdown()).data} for r in page
    ]
    return Response({"results": results, "next_cursor": next_cursor, "rank": RANK_HYBRID, "semantic": state})


def mark_rules(response: Response, *, asked: str) -> Response:
    """A list ranked by the rules because hybrid was asked for while semantic matching is
    off: say so (`rank`, `semantic` with the reason) instead of failing."""
    if asked == RANK_HYBRID:
        response.data["rank"] = RANK_RULES
        response.data["semantic"] = semantic.status().as_dict()
    return response


class HybridJobSerializer(HybridBreakdownSerializer):
    job = serializers.DictField(help_text="The job, as GET /api/jobs/{id}/ shows it")


class MyRecommendedJobsApi(APIView):
    """GET /api/me/recommended-jobs/: active jobs for the caller, hybrid-ranked and explained.

    Includes jobs whose required skills the profile does not list but whose text is close
    to the profile's (found_by: semantic). Without pgvector: the §7 ranking, `rank: rules`."""

    permission_classes = [IsCandidate]

    @extend_schema(
        operation_id="me_recommended_jobs",
        responses=hybrid_page_of("RecommendedJobPage", HybridJobSerializer(many=True)),
    )
    def get(self, request):
        from matching.apis import JobOutputSerializer, MyMatchesApi, _limit

        candidate = Candidate.objects.filter(pk=request.user.pk).first()
        if candidate is None:
            raise NotFound("Profil candidat introuvable.")
        if not semantic.enabled():
            return mark_rules(MyMatchesApi().get(request), asked=RANK_HYBRID)
        return candidate_hybrid_page(
            request, candidate=candidate, limit=_limit(request), job_serializer=JobOutputSerializer
        )
