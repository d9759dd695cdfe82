"""The process types of a deployment and the one command that starts each of them.

    python -m emploiplus.processes web                  # HTTP + WebSocket on PORT
    python -m emploiplus.processes worker notifications # a pool of RQ workers on one queue
    python -m emploiplus.processes worker               # one RQ worker on every queue (small setups, make run)
    python -m emploiplus.processes cron                 # the periodic jobs of emploiplus.cron
    python -m emploiplus.processes release              # migrations, before a new version starts
    python -m emploiplus.processes show [TYPE…]         # print what a type runs, changing nothing

This is the single source of truth for process commands: render.yaml, the Procfile, the
Dockerfile and `make run` (emploiplus.devstack) all call `python -m emploiplus.processes
<type>`; the argv of each type is built here from the settings (tests/test_processes.py
checks the files agree with PROCESS_TYPES).

- `web`: binds PORT on HOST (0.0.0.0; `--host` to change) once and starts WEB_CONCURRENCY
  ASGI server processes on that one socket (emploiplus.servers: the kernel hands each new
  connection to one of them). They share one PROMETHEUS_MULTIPROC_DIR, so /metrics counts for
  all of them. SIGTERM/SIGINT is passed on to every server; those still running after
  WEB_SHUTDOWN_SECONDS are killed. A server that dies is started again (its live gauges are
  dropped first). Exit status 0 after a requested stop.
- `worker QUEUE`: `manage.py rqworker-pool QUEUE --num-workers QUEUE_CONCURRENCY_<QUEUE>`; each
  worker of the pool also runs RQ's scheduler for the queue (scheduled retries). SIGTERM: each
  worker finishes its current job, then exits (a job cut by SIGKILL is retried: see docs/deploy.md).
- `cron`: RQ's cron scheduler with the jobs of emploiplus.cron, in this process (what
  `manage.py rqcron emploiplus.cron` does, minus its plain-text banner, so LOG_FORMAT=json
  output stays JSON); it only enqueues, the workers run the jobs.
- `release`: `manage.py migrate --noinput`.

The ASGI server is chosen in one place, `ASGI_SERVER` (emploiplus.servers): uvicorn by
default, daphne supported.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from emploiplus import servers

BASE_DIR = Path(__file__).resolve().parent.parent
MANAGE = str(BASE_DIR / "manage.py")


def web_server_argv(sock: socket.socket, *, python: str = sys.executable) -> list[str]:
    """One ASGI server process on `sock`: the server ASGI_SERVER names (emploiplus.servers, the
    one place it is chosen: uvicorn by default, daphne), with no access log of its own —
    emploiplus.request_context logs every request through logging (JSON with LOG_FORMAT=json,
    request and user ids). uvicorn's is off already; daphne's `-v 0` drops its stdout stream
    (the log levels come from settings.LOGGING)."""
    argv = servers.server_argv(sock, python=python)
    if "daphne" in argv:
        at = argv.index("daphne") + 1
        argv = [*argv[:at], "-v", "0", *argv[at:]]
    return argv


WEB_SERVER = web_server_argv

ALL_QUEUES = ("notifications", "emails", "sms")


@dataclass(frozen=True)
class ProcessType:
    name: str
    args: tuple[str, ...]
    help: str

    @property
    def command(self) -> str:
        """The command line the deployment files use."""
        return " ".join(["python", "-m", "emploiplus.processes", *self.args])


# Every process type a deployment runs (Procfile names; Render services).
PROCESS_TYPES: dict[str, ProcessType] = {
    "web": ProcessType("web", ("web",), "HTTP + WebSocket (WEB_CONCURRENCY servers on PORT)"),
    **{
        f"worker-{q}": ProcessType(
            f"worker-{q}", ("worker", q), f"RQ workers of the {q} queue (QUEUE_CONCURRENCY_{q.upper()})"
        )
        for q in ALL_QUEUES
    },
    "cron": ProcessType("cron", ("cron",), "periodic jobs (emploiplus.cron)"),
    "release": ProcessType("release", ("release",), "database migrations (run before a new version starts)"),
}


log = logging.getLogger("emploiplus.processes")


def say(message: str) -> None:
    log.info(message)


def fail(message: str, code: int = 2) -> None:
    """One clear line, no traceback."""
    sys.stderr.write(f"configuration error: {message}\n")
    sys.exit(code)


def load_settings():
    """Django settings, or exit with the configuration error as one line."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        from django.conf import settings

        settings.WEB_CONCURRENCY  # noqa: B018 - forces the settings module to load
    except ImproperlyConfigured as exc:
        fail(str(exc))
    return settings


def _manage(*args: str, python: str = sys.executable) -> list[str]:
    return [python, MANAGE, *args]


def worker_argv(queues: list[str], *, python: str = sys.executable) -> list[str]:
    settings = load_settings()
    unknown = [q for q in queues if q not in settings.RQ_QUEUES]
    if unknown:
        fail(f"unknown queue(s) {', '.join(unknown)}: the queues are {', '.join(settings.RQ_QUEUES)}")
    if len(queues) == 1:
        size = settings.QUEUE_CONCURRENCY[queues[0]]
        return _manage("rqworker-pool", queues[0], "--num-workers", str(size), python=python)
    # Every queue in one worker (development, or a deployment too small for pools).
    return _manage("rqworker", *(queues or ALL_QUEUES), "--with-scheduler", python=python)


CRON_CONFIG = "emploiplus.cron"


def run_cron() -> int:
    settings = load_settings()
    os.environ["EMPLOIPLUS_PROCESS_TYPE"] = "cron"
    import django

    django.setup()
    from django_rq.cron import DjangoCronScheduler

    scheduler = DjangoCronScheduler(logging_level=getattr(logging, settings.LOG_LEVEL, logging.INFO))
    scheduler.load_config_from_file(CRON_CONFIG)
    scheduler.start()  # until SIGTERM / SIGINT
    return 0


def release_argv(*, python: str = sys.executable) -> list[str]:
    return _manage("migrate", "--noinput", python=python)


def _exec(argv: list[str], process_type: str) -> None:
    os.environ["EMPLOIPLUS_PROCESS_TYPE"] = process_type
    sys.stdout.flush()
    os.execv(argv[0], argv)


# --- web --------------------------------------------------------------------------------------
class WebSupervisor:
    """WEB_CONCURRENCY server processes on one socket, stopped together."""

    def __init__(self, sock: socket.socket, processes: int, *, shutdown_seconds: float, env: dict[str, str]):
        self.sock = sock
        self.processes = processes
        self.shutdown_seconds = shutdown_seconds
        self.env = env
        self.children: list[subprocess.Popen] = []
        self.stopping = False

    def spawn(self) -> subprocess.Popen:
        argv = WEB_SERVER(self.sock, python=sys.executable)
        child = subprocess.Popen(argv, env=self.env, cwd=BASE_DIR, pass_fds=(self.sock.fileno(),))
        self.children.append(child)
        return child

    def request_stop(self, signum, _frame) -> None:
        if not self.stopping:
            say(f"{signal.Signals(signum).name}: stopping {len(self.children)} server process(es)")
        self.stopping = True

    def run(self) -> int:
        from emploiplus import metrics

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.request_stop)
        for _ in range(self.processes):
            self.spawn()
        last_respawn = 0.0
        while not self.stopping:
            for child in list(self.children):
                if child.poll() is None:
                    continue
                self.children.remove(child)
                metrics.mark_process_dead(child.pid)
                if self.stopping:
                    break
                say(f"server process {child.pid} exited with code {child.returncode}; starting another")
                time.sleep(max(0.0, 1.0 - (time.monotonic() - last_respawn)))  # at most one a second
                last_respawn = time.monotonic()
                self.spawn()
            time.sleep(0.2)
        return self.stop()

    def stop(self) -> int:
        for child in self.children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.shutdown_seconds
        code = 0
        for child in self.children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"server process {child.pid} still running after {self.shutdown_seconds:g} s: killing it")
                child.kill()
                child.wait()
                code = 1
        return code


def run_web(host: str) -> int:
    settings = load_settings()
    from django.utils.log import configure_logging

    configure_logging(settings.LOGGING_CONFIG, settings.LOGGING)  # our lines like the servers'
    try:
        sock = servers.listening_socket(host, settings.PORT)
    except (OSError, ValueError) as exc:
        fail(f"cannot listen on {host}:{settings.PORT} ({exc}); set PORT to a free port")
    env = dict(os.environ, EMPLOIPLUS_PROCESS_TYPE="web")
    own_dir = not env.get("PROMETHEUS_MULTIPROC_DIR")
    metrics_dir = env.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="emploiplus-metrics-")
    if not own_dir:  # a given directory: what a previous run left there is not ours to count
        for leftover in Path(metrics_dir).glob("*.db"):
            leftover.unlink()
    env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # for mark_process_dead here
    say(f"web: {settings.WEB_CONCURRENCY} server process(es) on {host}:{settings.PORT}")
    supervisor = WebSupervisor(sock, settings.WEB_CONCURRENCY, shutdown_seconds=settings.WEB_SHUTDOWN_SECONDS, env=env)
    try:
        return supervisor.run()
    finally:
        sock.close()
        if own_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)


# --- command line -----------------------------------------------------------------------------
def show(names: list[str]) -> int:
    for name in names or list(PROCESS_TYPES):
        if name not in PROCESS_TYPES:
            fail(f"unknown process type {name!r}: {', '.join(PROCESS_TYPES)}")
        process = PROCESS_TYPES[name]
        print(f"{name}: {process.command}    # {process.help}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emploiplus.processes", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="type", required=True)
    web = sub.add_parser("web", help=PROCESS_TYPES["web"].help)
    web.add_argument("--host", default="0.0.0.0", help="address to bind (default 0.0.0.0; make run: 127.0.0.1)")  # noqa: S104
    worker = sub.add_parser("worker", help="RQ workers: a pool on one queue, or one worker on every queue")
    worker.add_argument("queues", nargs="*", metavar="QUEUE")
    sub.add_parser("cron", help=PROCESS_TYPES["cron"].help)
    sub.add_parser("release", help=PROCESS_TYPES["release"].help)
    show_parser = sub.add_parser("show", help="print the process types and their commands")
    show_parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    if args.type == "show":
        return show(args.names)
    if args.type == "web":
        return run_web(args.host)
    if args.type == "worker":
        _exec(worker_argv(args.queues), "worker")
    elif args.type == "cron":
        return run_cron()
    elif args.type == "release":
        _exec(release_argv(), "release")
    return 0  # pragma: no cover - exec does not return


if __name__ == "__main__":
    sys.exit(main())
