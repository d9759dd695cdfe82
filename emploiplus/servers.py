"""Several daphne processes on one listening socket (WEB_CONCURRENCY).

One daphne process runs Python on one core. To use more, the parent binds the socket once
and starts N daphne processes with `--fd` (each adopts the inherited socket; the kernel
hands every new connection to one of them). Channels' Redis layer and the RQ queues are
shared, so the processes need nothing else in common. Used by `make run`
(emploiplus.devstack) and by the tests' / benchmarks' daphne servers.
"""

from __future__ import annotations

import socket
import sys


def listening_socket(host: str, port: int, *, backlog: int = 1024) -> socket.socket:
    """A bound, listening TCP socket that child processes can inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


ASGI_APPLICATION = "emploiplus.asgi:application"


def daphne_argv(sock: socket.socket, *, python: str = sys.executable, application: str = ASGI_APPLICATION) -> list[str]:
    """The command of one daphne process serving `application` on `sock` (start it with
    `pass_fds=[sock.fileno()]`)."""
    return [python, "-m", "daphne", "--fd", str(sock.fileno()), application]
