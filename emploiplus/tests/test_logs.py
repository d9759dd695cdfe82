"""Logs: one JSON object per line with LOG_FORMAT=json, a request's id carried into the jobs it
enqueues, routine cron work at DEBUG and a sweep that recovered something at INFO."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest

from emploiplus import logs
from emploiplus.testing import BASE_DIR, subprocess_env


def test_it_formats_one_json_object_per_line_with_the_context():
    formatter = logs.JsonFormatter()
    record = logging.LogRecord("emploiplus.x", logging.WARNING, __file__, 1, "two\nlines %s", ("ok",), None)
    tokens = logs.bind(request_id="req-12345678", user_id="u-1")
    try:
        logs.ContextFilter().filter(record)
    finally:
        logs.unbind(tokens)
    line = formatter.format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "WARNING" and data["logger"] == "emploiplus.x" and data["message"] == "two\nlines ok"
    assert data["request_id"] == "req-12345678" and data["user_id"] == "u-1" and "job_id" not in data
    assert data["time"].endswith("+00:00")


def test_it_removes_tokens_from_logged_urls():
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("1.2.3.4:5", "/ws/x/?token=ab.c&y=1"),
        None,
    )
    logs.ContextFilter().filter(record)
    assert record.getMessage() == '1.2.3.4:5 - "WebSocket /ws/x/?token=[Filtered]&y=1" [accepted]'


def test_it_accepts_only_plain_request_ids_from_callers():
    assert logs.request_id_from("abc-123_DEF.456") == "abc-123_DEF.456"
    for bad in (None, "", "short", "x" * 200, "evil\nline", "a b c d e f g h"):
        assert logs.request_id_from(bad) != bad and len(logs.request_id_from(bad)) == 32


@pytest.mark.parametrize(
    ("logger", "message", "routine", "root_level", "kept", "level"),
    [
        ("rq.worker", "Job OK", True, logging.INFO, False, None),
        ("rq.worker", "Job OK", True, logging.DEBUG, True, "DEBUG"),
        ("rq.worker", "Job OK", False, logging.INFO, True, "INFO"),
        ("rq.cron", "Enqueued job sweep_events to queue notifications", False, logging.INFO, False, None),
        ("rq.worker", "job failed", True, logging.INFO, True, "WARNING"),  # only INFO is demoted…
        ("emploiplus.workers", "sweep recovered", True, logging.INFO, True, "INFO"),  # …and only RQ's
    ],
)
def test_it_demotes_routine_rq_chatter_to_debug(logger, message, routine, root_level, kept, level):
    record_level = logging.WARNING if message == "job failed" else logging.INFO
    record = logging.LogRecord(logger, record_level, __file__, 1, message, (), None)
    root = logging.getLogger()
    previous = root.level
    token = logs.routine_var.set(routine)
    root.setLevel(root_level)
    try:
        assert logs.RoutineFilter().filter(record) is kept
    finally:
        root.setLevel(previous)
        logs.routine_var.reset(token)
    if kept:
        assert record.levelname == level


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
def test_it_carries_the_request_id_into_the_jobs_and_their_logs(client, rita, auth):
    import django_rq

    response = client.post(
        "/api/jobs/",
        data={"title": "Développeuse Django", "required_skills": ["python"], "status": "active"},
        content_type="application/json",
        headers={**auth(rita), "X-Request-ID": "req-from-the-proxy-0001"},
    )
    assert response.status_code == 201, response.content
    assert response["X-Request-ID"] == "req-from-the-proxy-0001"
    queue = django_rq.get_queue("notifications")
    jobs = [queue.fetch_job(job_id) for job_id in queue.job_ids]
    assert jobs and all(job.meta.get("request_id") == "req-from-the-proxy-0001" for job in jobs)
    queue.enqueue("emploiplus.tests.jobs_for_tests.quiet_sweep", meta={"routine": True})
    queue.enqueue("emploiplus.tests.jobs_for_tests.busy_sweep", meta={"routine": True})
    result = subprocess.run(
        [sys.executable, "manage.py", "rqworker", "notifications", "--burst"],
        cwd=BASE_DIR,
        env=subprocess_env(LOG_FORMAT="json", LOG_LEVEL="INFO"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    matching = [r for r in records if r["message"].startswith("job matching done")]
    assert matching and matching[0]["request_id"] == "req-from-the-proxy-0001" and matching[0]["job_id"] == jobs[0].id
    text = "\n".join(r["message"] for r in records)
    assert "busy_sweep recovered: {'requeued': 2, 'abandoned': 0}" in text
    assert "quiet_sweep" not in text  # routine and found nothing: DEBUG, not shown at INFO
