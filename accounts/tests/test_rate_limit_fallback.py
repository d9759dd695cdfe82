"""Rate limits with Redis unreachable: fail open with a per-process limit (accounts.throttling).

The REST API is pointed at a private redis-server of the test's own, which is stopped: the
shared Redis is never touched. Requests still succeed, the local window still answers 429
beyond RATE_LIMIT_PER_MINUTE, one warning says so, and the shared window takes over again
once Redis is back. The real-process version (a server, a job created over REST) is in
emploiplus/tests/test_faults_redis.py.
"""

from __future__ import annotations

import logging

import pytest
import redis

from accounts import throttling
from emploiplus import effects
from emploiplus.redis import get_redis
from emploiplus.testing import private_redis
from matching import skills
from matching.models import Job, SkillAlias

pytestmark = pytest.mark.django_db

ME = "/api/me/"
JOBS = "/api/jobs/"


def _forget_clients() -> None:
    get_redis.cache_clear()
    throttling._script = None
    throttling.fallback.reset()
    skills._local.update(at=0.0, map=None)
    effects.reset_for_tests()


@pytest.fixture
def redis_down(settings):
    """Every Redis user of this process pointed at a private Redis that is stopped
    (`.start()` brings it back on the same port, empty)."""
    with private_redis() as server:
        settings.REDIS_URL = server.url
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
        settings.RQ_QUEUES = {name: {**cfg, "URL": server.url} for name, cfg in settings.RQ_QUEUES.items()}
        _forget_clients()
        server.stop()
        yield server
    _forget_clients()


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "accounts.throttling" and r.levelno >= logging.WARNING]


def test_the_fixture_really_cuts_redis_off(redis_down):
    with pytest.raises(redis.ConnectionError):
        get_redis().ping()
    with pytest.raises(redis.ConnectionError):
        throttling._redis_hit("user:x", limit=5, window=60)


def test_it_serves_reads_and_writes_with_redis_down_and_warns_once(redis_down, api, auth, rita, caplog):
    caplog.set_level(logging.INFO, logger="accounts.throttling")
    SkillAlias.objects.get_or_create(alias="reactjs", defaults={"canonical": "react"})  # seeded; gone after a flush
    assert api.get(ME, headers=auth(rita)).status_code == 200
    created = api.post(
        JOBS,
        {"title": "Développeuse Django", "required_skills": ["Django", "ReactJS"], "status": "draft"},
        format="json",
        headers=auth(rita),
    )
    assert created.status_code == 201, created.content
    job = Job.objects.get(pk=created.json()["id"])
    assert job.required_skills == ["django", "react"]  # the aliases come from the database
    listed = api.get(JOBS, {"company_id": str(rita.company_id)}, headers=auth(rita))
    assert listed.status_code == 200
    assert [j["id"] for j in listed.json()["results"]] == [str(job.pk)]
    for _ in range(10):
        assert api.get(ME, headers=auth(rita)).status_code == 200
    (warning,) = warnings_of(caplog)  # one warning, not one per request
    assert "Redis unreachable (ConnectionError" in warning and "counting per process" in warning


def test_the_local_limit_answers_429_beyond_the_limit_per_identity(redis_down, api, auth, alice, bob, settings):
    settings.RATE_LIMIT_PER_MINUTE = 5
    statuses = [api.get(ME, headers=auth(alice)).status_code for _ in range(6)]
    assert statuses == [200] * 5 + [429]
    refused = api.get(ME, headers=auth(alice))
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert refused.json()["code"] == "throttled"
    assert api.get(ME, headers=auth(bob)).status_code == 200  # bob's budget is his own
    # Anonymous callers: per IP, locally too.
    anonymous = [api.get(ME, REMOTE_ADDR="10.0.0.9").status_code for _ in range(6)]
    assert anonymous == [401] * 5 + [429]
    assert api.get(ME, REMOTE_ADDR="10.0.0.10").status_code == 401


def test_shared_limits_resume_when_redis_is_back(redis_down, api, auth, alice, settings, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger="accounts.throttling")
    monkeypatch.setattr(throttling, "REDIS_RETRY_SECONDS", 0.0)  # probe Redis again at once
    settings.RATE_LIMIT_PER_MINUTE = 3
    assert [api.get(ME, headers=auth(alice)).status_code for _ in range(3)] == [200] * 3
    assert throttling.fallback.active

    redis_down.start()  # back, empty (no persistence)
    assert api.get(ME, headers=auth(alice)).status_code == 200  # the local count is dropped
    assert not throttling.fallback.active
    bucket = f"{settings.REDIS_KEY_PREFIX}:ratelimit:user:{alice.pk}"
    assert get_redis().zcard(bucket) == 1  # counted in Redis again
    assert [api.get(ME, headers=auth(alice)).status_code for _ in range(3)] == [200, 200, 429]
    assert any("Redis answers again" in r.getMessage() for r in caplog.records if r.name == "accounts.throttling")


def test_while_the_breaker_is_open_requests_do_not_wait_for_redis(redis_down, api, auth, alice, monkeypatch):
    """After one failure, requests count locally without trying Redis until the retry delay."""
    tried = []
    real = throttling._redis_hit

    def counting(*args, **kwargs):
        tried.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(throttling, "_redis_hit", counting)
    assert [api.get(ME, headers=auth(alice)).status_code for _ in range(5)] == [200] * 5
    assert len(tried) == 1


def test_the_local_window_slides_and_is_bounded():
    window = throttling.LocalWindow(max_identities=3)
    assert [window.hit("a", limit=2, window=60)[0] for _ in range(3)] == [True, True, False]
    allowed, wait = window.hit("a", limit=2, window=60)
    assert not allowed and 59 <= wait <= 60
    assert window.hit("b", limit=2, window=0)[0] and window.hit("b", limit=1, window=0)[0]  # a 0 s window forgets
    for name in ("c", "d", "e"):
        window.hit(name, limit=1, window=60)
    assert len(window._hits) <= 3  # a flood of identities cannot grow it without bound
