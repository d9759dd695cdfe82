"""The per-user and per-IP budgets are shared by every server process (Redis), tested with
two real daphne processes. The limit is lowered to 10/min through the environment so the
test is quick; the in-process test in test_apis.py covers the real 120."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from accounts.testing import token_for
from emploiplus.testing import asgi_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def get(base: str, path: str, token: str | None = None) -> tuple[int, dict, dict]:
    request = urllib.request.Request(f"http://{base}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())  # case-insensitive names


def test_it_counts_requests_across_two_server_processes(alice, bob):
    env = {"RATE_LIMIT_PER_MINUTE": "10"}
    with asgi_server(**env) as (one, _), asgi_server(**env) as (two, _):
        token = token_for(alice)
        statuses = [get(one if i % 2 else two, "/api/me/", token)[0] for i in range(10)]
        assert statuses == [200] * 10
        status, headers, body = get(one, "/api/me/", token)
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= 60
        assert body["code"] == "throttled"
        assert get(two, "/api/me/", token)[0] == 429
        # bob's budget is his own, on either process
        assert get(two, "/api/me/", token_for(bob))[0] == 200

        # Anonymous callers: per IP, across both processes, even though they only get 401s.
        anonymous = [get(one if i % 2 else two, "/api/me/")[0] for i in range(10)]
        assert anonymous == [401] * 10
        status, headers, body = get(two, "/api/me/")
        assert status == 429
        assert int(headers["Retry-After"]) >= 1
        # Health endpoints are never rate-limited.
        assert get(one, "/healthz")[0] == 200
