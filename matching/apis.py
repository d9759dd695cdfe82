"""REST for jobs and matches (CONTRACT §6). Thin: serializers in, one service/selector call, out."""

from __future__ import annotations

import uuid

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import HEADLINE_MAX_LENGTH, SUMMARY_MAX_LENGTH, Candidate, Company, ExperienceLevel, Role
from accounts.permissions import IsCandidate
from emploiplus import pagination
from emploiplus.errors import ApplicationError, Forbidden, NotFound
from emploiplus.pagination import parse_limit
from emploiplus.schema import page_of
from matching import selectors, semantic, semantic_apis, services
from matching.models import JobStatus, JobType

MAX_LIMIT = 100


def _limit(request, default: int = 20) -> int:
    return parse_limit(request.query_params.get("limit"), default=default, maximum=MAX_LIMIT)


def _csv_param(request, name: str) -> list[str]:
    values = []
    for raw in request.query_params.getlist(name):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values


class SkillListField(serializers.ListField):
    child = serializers.CharField(max_length=100, allow_blank=True)

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 50)
        super().__init__(**kwargs)


class JobOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    company_id = serializers.UUIDField()
    company_name = serializers.CharField(source="company.name")
    title = serializers.CharField()
    description = serializers.CharField()
    location = serializers.CharField()
    job_type = serializers.CharField()
    required_skills = serializers.ListField(child=serializers.CharField())
    experience_level = serializers.CharField(allow_null=True)
    salary_min = serializers.IntegerField(allow_null=True)
    salary_max = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    notification_status = serializers.CharField()
    notification_sent_at = serializers.DateTimeField(allow_null=True)
    matching_candidates_count = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class JobInputSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, max_length=20000)
    location = serializers.CharField(required=False, allow_blank=True, max_length=200)
    job_type = serializers.ChoiceField(choices=JobType.choices, required=False)
    required_skills = SkillListField(required=False)
    experience_level = serializers.ChoiceField(choices=ExperienceLevel.choices, required=False, allow_null=True)
    salary_min = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10_000_000)
    salary_max = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10_000_000)
    status = serializers.ChoiceField(choices=JobStatus.choices, required=False)
    company_id = serializers.UUIDField(required=False, help_text="Admins only: the publishing company.")


class JobListApi(APIView):
    """GET: active jobs (q, location, skills, job_type, company_id; cursor). POST: publish (company users)."""

    def get_permissions(self):
        return [AllowAny()] if self.request.method == "GET" else [IsAuthenticated()]

    @extend_schema(operation_id="jobs_list", responses=page_of("JobPage", JobOutputSerializer(many=True)))
    def get(self, request):
        user = request.user if request.user is not None and request.user.is_authenticated else None
        company_id = request.query_params.get("company_id") or None
        if company_id:
            try:
                company_id = str(uuid.UUID(company_id))
            except ValueError as exc:
                raise ApplicationError(
                    "invalid", "company_id invalide.", extra={"errors": {"company_id": ["UUID attendu."]}}
                ) from exc
        jobs, next_cursor = selectors.job_list(
            user=user,
            q=request.query_params.get("q", "")[:200],
            location=request.query_params.get("location", "")[:200],
            skills=_csv_param(request, "skills"),
            job_types=_csv_param(request, "job_type"),
            company_id=company_id,
            cursor=request.query_params.get("cursor") or None,
            limit=_limit(request),
        )
        return Response({"results": JobOutputSerializer(jobs, many=True).data, "next_cursor": next_cursor})

    @extend_schema(request=JobInputSerializer, responses={201: JobOutputSerializer})
    def post(self, request):
        data = JobInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        company_id = fields.pop("company_id", None)
        company = None
        if company_id and request.user.role == Role.ADMIN:
            company = Company.objects.filter(pk=company_id).first()
            if company is None:
                raise NotFound("Entreprise introuvable.")
        job = services.job_create(user=request.user, company=company, **fields)
        job = selectors.job_get_for_user(job_id=job.pk, user=request.user)
        return Response(JobOutputSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailApi(APIView):
    def get_permissions(self):
        return [AllowAny()] if self.request.method == "GET" else [IsAuthenticated()]

    @extend_schema(responses=JobOutputSerializer)
    def get(self, request, job_id):
        job = selectors.job_get_for_user(job_id=job_id, user=request.user)
        return Response(JobOutputSerializer(job).data)

    @extend_schema(request=JobInputSerializer, responses=JobOutputSerializer)
    def patch(self, request, job_id):
        job = selectors.job_get_for_edit(job_id=job_id, user=request.user)
        data = JobInputSerializer(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("company_id", None)
        services.job_update(job=job, user=request.user, **fields)
        return Response(JobOutputSerializer(selectors.job_get_for_user(job_id=job.pk, user=request.user)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, job_id):
        job = selectors.job_get_for_edit(job_id=job_id, user=request.user)
        services.job_delete(job=job, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MatchOutputSerializer(serializers.Serializer):
    score = serializers.FloatField()
    skill_score = serializers.FloatField()
    experience_score = serializers.FloatField()
    salary_score = serializers.FloatField()
    matched_skills = serializers.ListField(child=serializers.CharField())
    missing_skills = serializers.ListField(child=serializers.CharField())


class JobMatchesApi(APIView):
    """Ranked candidates for a job (owning company, admins), computed live in SQL."""

    @extend_schema(
        responses=page_of("JobMatchPage", MatchOutputSerializer(many=True)), parameters=[semantic_apis.RANK_PARAMETER]
    )
    def get(self, request, job_id):
        job = selectors.job_get_for_user(job_id=job_id, user=request.user)
        if not selectors.job_can_edit(job=job, user=request.user):
            raise Forbidden("Réservé à l'entreprise qui publie l'offre.")
        rank = semantic_apis.parse_rank(request)
        if rank == semantic_apis.RANK_HYBRID and semantic.enabled():
            return semantic_apis.job_hybrid_page(request, job=job, limit=_limit(request, 50))
        # The page is cut in SQL (LIMIT/OFFSET on the ranked query): at 1M candidates a job
        # can have tens of thousands of matches, none of which should travel for nothing.
        list_name, bound = "job-matches", str(job.pk)
        offset = pagination.offset_from_cursor(list_name, request.query_params.get("cursor"), bound=bound)
        limit = _limit(request, 50)
        rows = selectors.candidates_matching_job(job=job, limit=limit + 1, offset=offset)
        page, next_cursor = pagination.offset_page(rows, list_name=list_name, offset=offset, limit=limit, bound=bound)
        people = {
            c.pk: c for c in Candidate.objects.select_related("user").filter(pk__in=[m.candidate_id for m in page])
        }
        results = []
        for m in page:
            c = people[m.candidate_id]
            results.append(
                {
                    "candidate_id": str(m.candidate_id),
                    "full_name": c.user.full_name,
                    "job_title": c.job_title,
                    "location": c.location,
                    "experience_level": c.experience_level,
                    "skills": c.skills,
                    **MatchOutputSerializer(m.breakdown()).data,
                }
            )
        return semantic_apis.mark_rules(Response({"results": results, "next_cursor": next_cursor}), asked=rank)


class MyCandidateProfileApi(APIView):
    """PATCH /api/me/candidate/: a candidate edits their profile; a relevant change re-matches."""

    permission_classes = [IsCandidate]

    @extend_schema_serializer(component_name="CandidateProfileInput")
    class InputSerializer(serializers.Serializer):
        skills = SkillListField(required=False)
        experience_level = serializers.ChoiceField(choices=ExperienceLevel.choices, required=False, allow_null=True)
        location = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=200)
        job_title = serializers.CharField(required=False, allow_blank=True, allow_null=True, max_length=200)
        headline = serializers.CharField(
            required=False, allow_blank=True, allow_null=True, max_length=HEADLINE_MAX_LENGTH, trim_whitespace=False
        )
        summary = serializers.CharField(
            required=False, allow_blank=True, allow_null=True, max_length=SUMMARY_MAX_LENGTH, trim_whitespace=False
        )
        target_salary_min = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10_000_000)
        target_salary_max = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10_000_000)
        notifications_enabled = serializers.BooleanField(required=False)

    @extend_schema_serializer(component_name="CandidateProfile")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField(source="pk")
        skills = serializers.ListField(child=serializers.CharField())
        experience_level = serializers.CharField(allow_null=True)
        location = serializers.CharField()
        job_title = serializers.CharField()
        headline = serializers.CharField()
        summary = serializers.CharField()
        target_salary_min = serializers.IntegerField(allow_null=True)
        target_salary_max = serializers.IntegerField(allow_null=True)
        notifications_enabled = serializers.BooleanField()
        updated_at = serializers.DateTimeField()

    def _candidate(self, request) -> Candidate:
        candidate = Candidate.objects.filter(pk=request.user.pk).first()
        if candidate is None:
            raise NotFound("Profil candidat introuvable.")
        return candidate

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        return Response(self.OutputSerializer(self._candidate(request)).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        candidate, changed = services.candidate_update_profile(
            candidate=self._candidate(request), **data.validated_data
        )
        return Response({**self.OutputSerializer(candidate).data, "rematching": changed})


class MyMatchesApi(APIView):
    """GET /api/me/matches/: active jobs matching the caller, best first, with the score breakdown."""

    permission_classes = [IsCandidate]

    @extend_schema(
        responses=page_of("MyMatchPage", MatchOutputSerializer(many=True)), parameters=[semantic_apis.RANK_PARAMETER]
    )
    def get(self, request):
        candidate = Candidate.objects.filter(pk=request.user.pk).first()
        if candidate is None:
            raise NotFound("Profil candidat introuvable.")
        rank = semantic_apis.parse_rank(request)
        if rank == semantic_apis.RANK_HYBRID and semantic.enabled():
            return semantic_apis.candidate_hybrid_page(
                request, candidate=candidate, limit=_limit(request), job_serializer=JobOutputSerializer
            )
        limit = _limit(request)
        list_name, bound = "my-matches", str(candidate.pk)
        offset = pagination.offset_from_cursor(list_name, request.query_params.get("cursor"), bound=bound)
        matches = selectors.jobs_matching_candidate(candidate=candidate)
        page, next_cursor = pagination.offset_page(
            matches[offset : offset + limit + 1], list_name=list_name, offset=offset, limit=limit, bound=bound
        )
        jobs = {
            j.pk: j for j in selectors.Job.objects.select_related("company").filter(pk__in=[m.job_id for m in page])
        }
        results = [
            {"job": JobOutputSerializer(jobs[m.job_id]).data, **MatchOutputSerializer(m.breakdown()).data} for m in page
        ]
        return semantic_apis.mark_rules(Response({"results": results, "next_cursor": next_cursor}), asked=rank)
