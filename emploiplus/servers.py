"""The ASGI server processes, N on one listening socket (WEB_CONCURRENCY).

One Python process runs on one core. To use more, the parent binds the socket once and
starts N server processes with `--fd` (each adopts the inherited socket; the kernel hands
every new connection to one of them). Channels' Redis layer and the RQ queues are shared, so
the processes need nothing else in common. Used by `make run` (emploiplus.devstack), the
deployment entry point, and the tests' / benchmarks' servers (emploiplus.testing).

The server is chosen here, once: `ASGI_SERVER` = `uvicorn` (default: uvloop event loop,
httptools HTTP parser; `python -m bench http messaging` measures it against daphne) or
`daphne` (Channels' reference server, which `manage.py runserver` uses; supported and tested).

This module must not import Django settings: the dev stack uses it before Django is set up.
"""

from __future__ import annotations

import os
import socket
import sys

ASGI_APPLICATION = "emploiplus.asgi:application"
SERVERS = ("uvicorn", "daphne")
DEFAULT_SERVER = "uvicorn"
# Seconds a stopping server gives open connections (and the requests in flight) to finish.
GRACEFUL_SHUTDOWN_SECONDS = 10


def configured_server() -> str:
    server = os.environ.get("ASGI_SERVER", "") or DEFAULT_SERVER
    if server not in SERVERS:
        raise SystemExit(f"ASGI_SERVER must be one of {', '.join(SERVERS)} (got {server!r})")
    return server


def listening_socket(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A bound, listening TCP socket that child processes can inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def server_argv(
    sock: socket.socket,
    *,
    server: str | None = None,
    python: str = sys.executable,
    application: str = ASGI_APPLICATION,
) -> list[str]:
    """The command of one server process serving `application` on `sock` (start it with
    `pass_fds=[sock.fileno()]`)."""
    server = server or configured_server()
    fd = str(sock.fileno())
    if server == "daphne":
        return [python, "-m", "daphne", "--fd", fd, application]
    return [python, "-m", "emploiplus.servers", "--fd", fd, application]


def run_uvicorn(fd: int, application: str) -> None:
    """uvicorn on an inherited TCP socket. Not `uvicorn --fd`: uvicorn takes that descriptor
    for a Unix socket (`socket.fromfd(fd, AF_UNIX, …)`), so asyncio never sets TCP_NODELAY
    on the connections it accepts, and every response written in two parts (headers, then
    body: Django's) waits ~40 ms for the client's delayed ACK. Measured: 44 ms per /healthz
    with `--fd`, under 2 ms like this."""
    import signal

    import django
    import uvicorn

    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal it caught
    # under the handlers that were there before it started: with the defaults the process
    # would die by the signal, skipping the atexit cleanups (presence release, jobs still
    # waiting in emploiplus.effects). A no-op handler lets it return and exit 0 instead.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    # settings.LOGGING before uvicorn logs or warns anything (LOG_FORMAT=json: JSON lines only).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")
    django.setup()
    sock = socket.socket(fileno=fd)  # family and type read from the descriptor
    config = uvicorn.Config(
        application,
        loop="uvloop",
        http="httptools",
        # websockets' Sans-I/O protocol, not its legacy asyncio one: no reader, keepalive and
        # closing tasks per connection, frames handed to the app from data_received. Paired
        # runs (3 × 400 sequential messages, 2 processes, a Python client): 7 % less CPU per
        # message on the sending process, 11 % on the receiving one, median 4.23 against 4.38 ms;
        # 39.7 KiB of memory per held connection against 47.5 (python -m bench messaging).
        ws="websockets-sansio",
        # Frames are small JSON: permessage-deflate cost ~5 % of a server's CPU under
        # `python -m bench messaging` (py-spy) for little saved; socket.io's own server
        # (the peer) has it off by default too.
        ws_per_message_deflate=False,
        lifespan="off",
        access_log=False,
        log_config=None,  # settings.LOGGING formats uvicorn's lines too (LOG_FORMAT=json)
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m emploiplus.servers", description="uvicorn on an inherited socket")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("application", nargs="?", default=ASGI_APPLICATION)
    args = parser.parse_args()
    sys.path.insert(0, os.getcwd())
    run_uvicorn(args.fd, args.application)
