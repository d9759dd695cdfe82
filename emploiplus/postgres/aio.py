"""PostgreSQL from the event loop, for the real-time hot path (a message sent over a socket).

Django's ORM is sync: a consumer reaches it through `emploiplus.effects.run_sync`, which
costs a hop to a database thread and back, Django's connection bookkeeping before and after,
and a pooled connection borrowed and checked each time. For the one statement that every
message pays (`messaging.services.amessage_send`), that overhead was larger than the
statement itself. `fetchone(sql, params)` runs it on an asyncpg connection of a small pool
owned by the running event loop instead:

- **asyncpg, not psycopg's AsyncConnection**: the same statement's round trip from an idle
  loop (a sequential conversation: a message, then nothing until the next) is ~0.1 ms
  shorter on asyncpg (`SELECT 1`: 0.14 against 0.24 ms, median of 1,500 with 1 ms between
  them, uvloop; docs/messaging.md, session 26): psycopg's async wait is an Event, a
  reader added and removed, and its generators, around libpq, each time. Django keeps
  psycopg for everything else.
- **The statements are written for Django's cursor** (`%(name)s`, shared with the sync
  path): `Statement` numbers their names once (`$1`, `$2`, … in order of first use).
  asyncpg prepares each statement once per connection (its statement cache), so the server
  parses and plans it once per connection, not once per message. This needs a
  session-level connection: PgBouncer in transaction mode (Supabase's pooler on 6543) is not
  supported, as docs/deploy.md already requires for Django's pool.
- **A few connections per event loop** (`WS_DB_LOOP_CONNECTIONS` at most, opened on demand
  with Django's own connection parameters, so tests reach their test database: host, port,
  user, password, database, `sslmode` and the other `ssl*` settings, `connect_timeout`,
  `application_name`, `options`' `-c name=value` settings (the statement timeout), and libpq's TCP
  keepalives and `tcp_user_timeout`, set on the socket as libpq sets them, so that a
  partition fails a send instead of hanging it). A server process has one loop; a test's loop
  gets its own, closed when the loop shuts down its async generators (`asyncio.run`,
  asgiref, pytest-asyncio and uvicorn all do). Not a pool library's: their worker tasks are
  cancelled by that same shutdown (all tasks first, then async generators), after which
  their `close()` may raise and leave the connections open; a list of idle connections and a
  semaphore need no task at all.
- **Checked without a round trip**: asyncpg reads an idle connection's socket all the time,
  so one that died with an earlier server (its EOF, its last error) is already closed when
  taken, and is replaced before use, not failed.
- **Errors read as Django's**: an outage (no server, a connection lost, a statement timeout,
  an administrator's shutdown, too many connections, the pool's own timeout) is raised as
  Django's `OperationalError`, asyncpg's client-side `InterfaceError` as Django's, so the
  consumers answer `unavailable` exactly as for the ORM path
  (`emploiplus.realtime.unexpected_error_body`); integrity and data errors as Django's, a
  deadlock or serialization failure as `Conflict` (an `OperationalError`: run it again),
  and any other server error as Django's `DatabaseError`.

Autocommit only: each statement commits on its own (no transaction spans two calls), which
is what `_SEND_SQL` is written for.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import shlex
import socket
import weakref
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode

import asyncpg
from django.conf import settings
from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    connections,
)

log = logging.getLogger(__name__)


# libpq parameters asyncpg reads from a connection string (the rest are keyword arguments).
_DSN_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword", "target_session_attrs")
# Set on the socket after connecting (asyncpg has no such parameters): libpq's names → (level, option).
_SOCKET_OPTIONS = {
    "keepalives": (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    "keepalives_idle": (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPIDLE", None)),
    "keepalives_interval": (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPINTVL", None)),
    "keepalives_count": (socket.IPPROTO_TCP, getattr(socket, "TCP_KEEPCNT", None)),
    "tcp_user_timeout": (socket.IPPROTO_TCP, getattr(socket, "TCP_USER_TIMEOUT", None)),
}
# Django's own, for its psycopg connections: nothing to do with asyncpg's.
_DJANGO_ONLY = ("cursor_factory", "context", "pool", "prepare_threshold", "client_encoding", "autocommit")


def connect_arguments(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """asyncpg's `connect()` keyword arguments for Django's psycopg connection parameters,
    and the socket options (libpq's names) to set once connected."""
    params = {key: value for key, value in params.items() if key not in _DJANGO_ONLY}
    kwargs: dict[str, Any] = {
        "host": params.pop("host", None) or None,
        "port": int(params.pop("port", None) or 5432),
        "user": params.pop("user", None) or None,
        "password": params.pop("password", None) or None,
        "database": params.pop("dbname", None) or None,
        "timeout": float(params.pop("connect_timeout", 60) or 60),
    }
    server_settings: dict[str, str] = {}
    if params.get("application_name"):
        server_settings["application_name"] = str(params.pop("application_name"))
    words = iter(shlex.split(str(params.pop("options", "") or "")))
    for word in words:  # PostgreSQL's command-line forms: -c name=value, -cname=value, --name=value
        if word == "-c":
            setting = next(words, "")
        elif word.startswith(("--", "-c")):
            setting = word[2:]
        else:
            raise ValueError(f"database options: only -c name=value or --name=value is understood, not {word!r}")
        name, sep, value = setting.partition("=")
        if not name or not sep:
            raise ValueError(f"database options: {word!r} has no name=value")
        server_settings[name.replace("-", "_")] = value
    if server_settings:
        kwargs["server_settings"] = server_settings
    dsn = {key: str(value) for key in _DSN_PARAMETERS if (value := params.pop(key, None)) not in (None, "")}
    kwargs["dsn"] = "postgresql://" + (f"?{urlencode(dsn)}" if dsn else "")
    sockopts = {key: int(params.pop(key)) for key in list(_SOCKET_OPTIONS) if key in params}
    if params:
        log.warning("database: parameters %s are not used by the event loop's connections", sorted(params))
    return kwargs, sockopts


def set_socket_options(conn: asyncpg.Connection, options: dict[str, int]) -> None:
    """libpq's keepalive and `tcp_user_timeout` parameters on a TCP connection's socket
    (a Unix socket has none)."""
    transport = getattr(conn, "_transport", None)  # asyncpg has no public way to its socket
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    if options.get("keepalives", 1) == 0:
        options = {key: value for key, value in options.items() if key == "tcp_user_timeout"}
    for key, value in options.items():
        level, option = _SOCKET_OPTIONS[key]
        if option is not None:
            sock.setsockopt(level, option, value)


class Statement:
    """A statement written for Django's cursor (`%(name)s`) as asyncpg takes it: each name
    numbered once, in order of first use (`$1`, `$2`, …)."""

    __slots__ = ("names", "sql")

    def __init__(self, sql: str) -> None:
        names: list[str] = []

        def number(match: re.Match) -> str:
            name = match.group(1)
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        self.sql = re.sub(r"%\((\w+)\)s", number, sql)
        if "%" in self.sql:
            raise ValueError("a statement for the event loop's connections has a % that is not a %(name)s")
        self.names = tuple(names)

    def arguments(self, params: dict[str, Any]) -> list[Any]:
        return [params[name] for name in self.names]


@functools.lru_cache(maxsize=64)
def statement(sql: str) -> Statement:
    return Statement(sql)


class LoopConnections:
    """At most `size` connections of one event loop; idle ones are kept for reuse."""

    def __init__(self, size: int) -> None:
        self.kwargs, self.socket_options = connect_arguments(connections[DEFAULT_DB_ALIAS].get_connection_params())
        self.idle: list[asyncpg.Connection] = []
        self.slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[asyncpg.Connection]:
        try:
            if self.slots.locked():  # all in use: wait (wait_for costs a task, only then)
                await asyncio.wait_for(self.slots.acquire(), settings.DB_POOL_TIMEOUT_SECONDS)
            else:
                await self.slots.acquire()
        except TimeoutError:
            raise OperationalError(f"no database connection free within {settings.DB_POOL_TIMEOUT_SECONDS} s") from None
        try:
            conn = await self._take()
            try:
                yield conn
            except asyncio.CancelledError:
                # The caller gave up mid-statement (a batcher's eager call is its caller's):
                # asyncpg is still cancelling it on the server, so the connection is not reused.
                conn.terminate()
                raise
            finally:
                await self._give_back(conn)
        finally:
            self.slots.release()

    async def _take(self) -> asyncpg.Connection:
        while self.idle:
            conn = self.idle.pop()
            if not conn.is_closed():
                return conn
            log.warning("database: a loop connection is dead, replacing it")
        conn = await asyncpg.connect(**self.kwargs)
        try:
            set_socket_options(conn, self.socket_options)
        except BaseException:
            conn.terminate()
            raise
        return conn

    async def _give_back(self, conn: asyncpg.Connection) -> None:
        if conn.is_closed() or conn.is_in_transaction():
            conn.terminate()  # broken, or left mid-transaction by an error: not reusable
        else:
            self.idle.append(conn)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            try:
                await conn.close(timeout=5)
            except Exception:
                conn.terminate()


_loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[LoopConnections, Any]] = weakref.WeakKeyDictionary()


async def _lifetime(conns: LoopConnections) -> AsyncIterator[None]:
    """An async generator whose `finally` closes `conns` when its loop shuts down its async
    generators (the loop keeps only a weak reference: `_loops` holds it)."""
    try:
        yield
    finally:
        await conns.close()


async def loop_connections() -> LoopConnections:
    """The running loop's connections."""
    loop = asyncio.get_running_loop()
    entry = _loops.get(loop)
    if entry is None:
        conns = LoopConnections(settings.WS_DB_LOOP_CONNECTIONS)
        lifetime = _lifetime(conns)
        await lifetime.__anext__()
        entry = _loops[loop] = (conns, lifetime)
    return entry[0]


class Conflict(OperationalError):
    """A deadlock or a serialization failure (SQLSTATE class 40): the statement rolled back
    and may simply be run again."""


async def fetchone(sql: str, params: dict[str, Any]) -> tuple[Any, ...] | None:
    """Run one statement (`%(name)s` parameters) in autocommit on the loop's connections;
    its first row."""
    row = await _run(sql, params, many=False)
    return None if row is None else tuple(row)


async def fetchall(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run one statement (`%(name)s` parameters) in autocommit on the loop's connections;
    all its rows."""
    return [tuple(row) for row in await _run(sql, params, many=True)]


# Server errors that mean "the database is not there for us now": its connection failed
# (class 08), an administrator or a timeout stopped the statement (57: shutdown, cancel,
# statement_timeout), it has no room (53: too many connections, out of memory).
_UNAVAILABLE = (
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
)


async def _run(sql: str, params: dict[str, Any], *, many: bool) -> Any:
    query = statement(sql)
    try:
        async with (await loop_connections()).connection() as conn:
            if many:
                return await conn.fetch(query.sql, *query.arguments(params))
            return await conn.fetchrow(query.sql, *query.arguments(params))
    except asyncpg.TransactionRollbackError as exc:
        raise Conflict(str(exc)) from exc
    except asyncpg.IntegrityConstraintViolationError as exc:
        raise IntegrityError(str(exc)) from exc
    except asyncpg.DataError as exc:
        raise DataError(str(exc)) from exc
    except (*_UNAVAILABLE, OSError, TimeoutError) as exc:  # OSError: no server at the address
        raise OperationalError(str(exc) or type(exc).__name__) from exc
    except asyncpg.InterfaceError as exc:
        raise InterfaceError(str(exc)) from exc
    except asyncpg.PostgresError as exc:
        raise DatabaseError(str(exc)) from exc
