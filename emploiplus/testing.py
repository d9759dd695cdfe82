"""Test helpers shared by every app: real server and worker processes.

Tests that start processes must see committed data: mark them
`@pytest.mark.django_db(transaction=True)`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

from django.db import connection

from emploiplus.servers import ASGI_APPLICATION, daphne_argv, listening_socket

BASE_DIR = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url_for_tests() -> str:
    """A DATABASE_URL pointing at the test database pytest-django created."""
    s = connection.settings_dict
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    host = s.get("HOST") or ""
    port = f":{s['PORT']}" if s.get("PORT") else ""
    query = {}
    socket_host = (s.get("OPTIONS") or {}).get("host")
    if socket_host:
        query["host"] = socket_host
    suffix = f"?{urlencode(query)}" if query else ""
    return f"postgresql://{user}{password}@{host}{port}/{s['NAME']}{suffix}"


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url_for_tests(),
        DJANGO_SETTINGS_MODULE="emploiplus.settings_test",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def _wait_http(url: str, timeout: float, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


def stop_process(proc: subprocess.Popen, *, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def daphne_server(**env: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real daphne process on a free port; yields (base URL "127.0.0.1:port", process)."""
    with daphne_servers(1, **env) as (address, procs):
        yield address, procs[0]


@contextlib.contextmanager
def daphne_servers(
    processes: int, *, application: str = ASGI_APPLICATION, **env: str
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """`processes` daphne processes sharing one listening socket on a free port (as
    `make run` with WEB_CONCURRENCY); yields (base URL "127.0.0.1:port", processes)."""
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    procs = []
    try:
        for _ in range(processes):
            procs.append(
                subprocess.Popen(
                    daphne_argv(sock, application=application),
                    cwd=BASE_DIR,
                    env=subprocess_env(**env),
                    start_new_session=True,
                    pass_fds=[sock.fileno()],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE if os.environ.get("EMPLOIPLUS_QUIET_SUBPROCESSES") else None,
                )
            )
        sock.close()  # the children hold it
        for proc in procs:  # every process alive, and the socket answers
            _wait_http(f"http://127.0.0.1:{port}/healthz", 30, proc)
        yield f"127.0.0.1:{port}", procs
    finally:
        sock.close()
        for proc in procs:
            stop_process(proc)


@contextlib.contextmanager
def rq_worker(*queues: str, burst: bool = False, **env: str) -> Iterator[subprocess.Popen]:
    """A real `manage.py rqworker` process (with the scheduler) on `queues`."""
    argv = [sys.executable, str(BASE_DIR / "manage.py"), "rqworker", *(queues or ("notifications", "emails", "sms"))]
    argv.append("--with-scheduler")
    if burst:
        argv.append("--burst")
    proc = subprocess.Popen(argv, cwd=BASE_DIR, env=subprocess_env(**env), start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)
