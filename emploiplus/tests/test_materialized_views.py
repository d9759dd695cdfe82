"""mv_job_stats / mv_candidate_stats refresh concurrently, without blocking readers."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from accounts.models import Candidate
from matching import jobs
from matching.models import CandidateJobMatch, Job

pytestmark = pytest.mark.django_db(transaction=True)


def _connect() -> psycopg.Connection:
    return psycopg.connect(**connection.get_connection_params())


def test_it_refreshes_the_statistics_job(acme, alice, bob):
    job = Job.objects.create(company=acme, title="Data engineer", status="active")
    for user, score in ((alice, 80), (bob, 70)):
        CandidateJobMatch.objects.create(candidate=Candidate.objects.get(pk=user.pk), job=job, match_score=score)

    timings = jobs.refresh_materialized_views()

    assert set(timings) == {"mv_job_stats", "mv_candidate_stats"}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT matches_count, avg_match_score, max_match_score FROM mv_job_stats WHERE job_id = %s", [job.id]
        )
        assert cursor.fetchone() == (2, 75, 80)
        cursor.execute("SELECT matches_count FROM mv_candidate_stats WHERE candidate_id = %s", [alice.pk])
        assert cursor.fetchone() == (1,)


def test_it_lets_readers_in_while_a_concurrent_refresh_is_running(acme):
    Job.objects.create(company=acme, title="Data engineer", status="active")
    jobs.refresh_materialized_views()
    with _connect() as refresher, _connect() as reader:
        refresher.execute("BEGIN")
        refresher.execute("REFRESH MATERIALIZED VIEW CONCURRENTLY mv_job_stats")  # holds its lock until COMMIT
        reader.execute("SET lock_timeout = '2s'")
        assert reader.execute("SELECT count(*) FROM mv_job_stats").fetchone() == (1,)
        refresher.execute("COMMIT")


def test_it_would_block_readers_with_a_plain_refresh(acme):
    """The control case: without CONCURRENTLY, the same reader times out."""
    jobs.refresh_materialized_views()
    with _connect() as refresher, _connect() as reader:
        refresher.execute("BEGIN")
        refresher.execute("REFRESH MATERIALIZED VIEW mv_job_stats")
        reader.execute("SET lock_timeout = '300ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            reader.execute("SELECT count(*) FROM mv_job_stats")
        refresher.execute("ROLLBACK")
