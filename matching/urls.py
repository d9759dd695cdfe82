from django.urls import path

from matching.apis import JobDetailApi, JobListApi, JobMatchesApi, MyCandidateProfileApi, MyMatchesApi
from matching.semantic_apis import MyRecommendedJobsApi

urlpatterns = [
    path("jobs/", JobListApi.as_view(), name="jobs"),
    path("jobs/<uuid:job_id>/", JobDetailApi.as_view(), name="job-detail"),
    path("jobs/<uuid:job_id>/matches/", JobMatchesApi.as_view(), name="job-matches"),
    path("me/candidate/", MyCandidateProfileApi.as_view(), name="me-candidate"),
    path("me/matches/", MyMatchesApi.as_view(), name="me-matches"),
    path("me/recommended-jobs/", MyRecommendedJobsApi.as_view(), name="me-recommended-jobs"),
]
