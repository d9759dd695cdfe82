"""Configuration mistakes stop start-up with one clear line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from emploiplus.testing import BASE_DIR, database_url_for_tests

pytestmark = pytest.mark.django_db  # creates the test database the subprocesses connect to


def run(argv: list[str], **env: str | None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "EMPLOIPLUS_"))}
    environment.update(
        DJANGO_SETTINGS_MODULE="emploiplus.settings",
        DEBUG="1",
        # The test database: it exists, unlike (perhaps) the one DATABASE_URL names.
        DATABASE_URL=database_url_for_tests(),
        REDIS_URL=os.environ["REDIS_URL"],
    )
    for key, value in env.items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    return subprocess.run(argv, cwd=BASE_DIR, env=environment, capture_output=True, text=True, timeout=60)


def manage_check(**env: str | None) -> subprocess.CompletedProcess:
    return run([sys.executable, "manage.py", "check"], **env)


def preflight(**env: str | None) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "emploiplus.preflight"], **env)


def assert_one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_it_starts_with_a_valid_configuration():
    result = manage_check()
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("mysql://user@host/db", "must point to PostgreSQL"),
        ("not a url", "must point to PostgreSQL"),
        ("postgres://", "no database name"),
    ],
)
def test_it_refuses_a_malformed_database_url(url, fragment):
    assert_one_line(manage_check(DATABASE_URL=url), "configuration error:", fragment)


def test_it_requires_database_url():
    assert_one_line(manage_check(DATABASE_URL=None), "DATABASE_URL is not set")


def test_it_refuses_more_request_threads_than_pooled_connections():
    assert_one_line(
        manage_check(DB_POOL_MAX_SIZE="10", HTTP_THREADS="16"),
        "HTTP_THREADS (16) + WS_DB_THREADS (4) + 2 exceeds DB_POOL_MAX_SIZE (10)",
    )
    assert manage_check(DB_POOL_MAX_SIZE="10", HTTP_THREADS="4").returncode == 0


TCP_OPTIONS = {
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "5",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}


def test_database_connections_give_up_on_a_network_that_stopped_carrying_them():
    """libpq's TCP keepalives and tcp_user_timeout are on by default: with a web host cut off
    from PostgreSQL (emploiplus/tests/test_several_hosts.py; 45 s by hand), requests answered
    503 `unavailable` after 10–20 s instead of waiting for the network to come back; a
    parameter in DATABASE_URL wins."""
    from django.db import connection

    connection.ensure_connection()
    try:
        used = connection.connection.info.get_parameters()  # what libpq connected with
        assert {name: used.get(name) for name in TCP_OPTIONS} == TCP_OPTIONS
    finally:
        connection.close()
    url = database_url_for_tests()
    url += ("&" if "?" in url else "?") + "tcp_user_timeout=0&keepalives_idle=30"
    code = (
        "import django; django.setup(); from django.conf import settings;"
        "o = settings.DATABASES['default']['OPTIONS'];"
        "print(o['tcp_user_timeout'], o['keepalives_idle'], o['keepalives'])"
    )
    result = run([sys.executable, "-c", code], DATABASE_URL=url)
    assert result.stdout.split() == ["0", "30", "1"], result.stderr


def test_it_requires_a_secret_key_when_debug_is_off():
    assert_one_line(manage_check(DEBUG="0", SECRET_KEY=None), "SECRET_KEY is not set")


def test_it_refuses_a_malformed_redis_url():
    assert_one_line(manage_check(REDIS_URL="http://localhost:6379"), "REDIS_URL is malformed")


def test_it_builds_redis_url_from_the_guides_variables():
    result = run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; print(settings.REDIS_URL)",
        ],
        REDIS_URL=None,
        REDIS_HOST="cache.internal",
        REDIS_PORT="6380",
        REDIS_PASSWORD="p@ss",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "redis://:p%40ss@cache.internal:6380/0"


def test_it_reads_the_guides_onesignal_names_as_fallbacks():
    code = (
        "import django; django.setup(); from django.conf import settings as s;"
        "print(s.ONESIGNAL_APP_ID, s.ONESIGNAL_API_KEY)"
    )
    result = run(
        [sys.executable, "-c", code],
        ONESIGNAL_APP_ID=None,
        ONESIGNAL_API_KEY=None,
        ONE_SIGNAL_APP_ID="app-1",
        ONE_SIGNAL_API_KEY="key-1",
    )
    assert result.stdout.strip() == "app-1 key-1"


def test_it_names_an_unreachable_redis_in_one_line():
    assert_one_line(preflight(REDIS_URL="redis://127.0.0.1:1/0"), "cannot reach Redis")


def test_it_names_an_unreachable_database_in_one_line():
    assert_one_line(preflight(DATABASE_URL="postgres://postgres@127.0.0.1:1/nowhere"), "cannot connect to PostgreSQL")


def test_it_passes_preflight_when_everything_is_reachable():
    result = preflight()
    assert result.returncode == 0, result.stderr
