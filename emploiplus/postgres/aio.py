"""PostgreSQL from the event loop, for the real-time hot path (a message sent over a socket).

Django's ORM is sync: a consumer reaches it through `emploiplus.effects.run_sync`, which
costs a hop to a database thread and back, Django's connection bookkeeping before and after,
and a pooled connection borrowed and checked each time. For the one statement that every
message pays (`messaging.services.amessage_send`), that overhead was larger than the
statement itself. `fetchone(sql, params)` runs it on a psycopg `AsyncConnection` of a
small pool owned by the running event loop instead:

- **A few connections per event loop** (`WS_DB_LOOP_CONNECTIONS` at most, opened on demand
  with Django's own connection parameters, so tests reach their test database). A server
  process has one loop; a test's loop gets its own, closed when the loop shuts down its async
  generators (`asyncio.run`, asgiref, pytest-asyncio and uvicorn all do). Not psycopg_pool's
  `AsyncConnectionPool`: its worker tasks are cancelled by that same shutdown (all tasks
  first, then async generators), after which its `close()` raises and leaves the connections
  open; a list of idle connections and a semaphore need no task at all.
- **Prepared**: the statements are prepared on each connection (`prepare=True`), so the
  server parses and plans them once per connection, not once per message; Django's
  client-side binding sends the full text every time. This needs a session-level
  connection: PgBouncer in transaction mode (Supabase's pooler on 6543) is not supported,
  as docs/deploy.md already requires for Django's pool.
- **Checked without a round trip**: a connection leaving the pool is checked the way
  `emploiplus.postgres.base.check_pooled_connection` checks Django's (a poll of its socket;
  an empty query only when something is waiting on it, e.g. the EOF of a restarted server),
  so a connection that died with an earlier server is replaced before use, not failed.
- **Errors read as Django's**: a psycopg `OperationalError` / `InterfaceError` (server down,
  statement timeout, pool timeout) is raised as Django's, so the consumers answer
  `unavailable` exactly as for the ORM path (`emploiplus.realtime.unexpected_error_body`);
  `IntegrityError` and `DataError` too, and a deadlock or serialization failure as `Conflict`
  (an `OperationalError`: run it again).

Autocommit only: each statement commits on its own (no transaction spans two calls), which
is what `_SEND_SQL` is written for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DataError, IntegrityError, InterfaceError, OperationalError, connections
from psycopg.pq import TransactionStatus

from emploiplus.postgres.base import idle_connection_is_suspect

log = logging.getLogger(__name__)


def _connection_kwargs() -> dict[str, Any]:
    params = dict(connections[DEFAULT_DB_ALIAS].get_connection_params())
    # Django's sync cursor class and adapters context are for its own connections, and its
    # prepare_threshold=None (client-side binding) would turn `prepare=True` off.
    for key in ("cursor_factory", "context", "pool", "prepare_threshold"):
        params.pop(key, None)
    params["autocommit"] = True
    return params


class LoopConnections:
    """At most `size` connections of one event loop; idle ones are kept for reuse."""

    def __init__(self, size: int) -> None:
        self.kwargs = _connection_kwargs()
        self.idle: list[psycopg.AsyncConnection] = []
        self.slots = asyncio.Semaphore(size)

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection]:
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
            finally:
                await self._give_back(conn)
        finally:
            self.slots.release()

    async def _take(self) -> psycopg.AsyncConnection:
        while self.idle:
            conn = self.idle.pop()
            if not idle_connection_is_suspect(conn):
                return conn
            try:  # something waits on it: most likely a server that went away
                await conn.execute("")
                return conn
            except psycopg.Error:
                log.warning("database: a loop connection is dead, replacing it")
                await conn.close()
        return await psycopg.AsyncConnection.connect(**self.kwargs)

    async def _give_back(self, conn: psycopg.AsyncConnection) -> None:
        if conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            await conn.close()  # broken, or left mid-transaction by an error: not reusable
        else:
            self.idle.append(conn)

    async def close(self) -> None:
        idle, self.idle = self.idle, []
        for conn in idle:
            await conn.close()


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
    """Run one prepared statement in autocommit on the loop's connections; its first row."""
    return await _run(sql, params, many=False)


async def fetchall(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
    """Run one prepared statement in autocommit on the loop's connections; all its rows."""
    return await _run(sql, params, many=True)


async def _run(sql: str, params: dict[str, Any], *, many: bool) -> Any:
    try:
        async with (await loop_connections()).connection() as conn:
            cursor = await conn.execute(sql, params, prepare=True)
            return await (cursor.fetchall() if many else cursor.fetchone())
    except psycopg.errors.TransactionRollback as exc:
        raise Conflict(str(exc)) from exc
    except psycopg.OperationalError as exc:
        raise OperationalError(str(exc)) from exc
    except psycopg.InterfaceError as exc:
        raise InterfaceError(str(exc)) from exc
    except psycopg.IntegrityError as exc:
        raise IntegrityError(str(exc)) from exc
    except psycopg.DataError as exc:
        raise DataError(str(exc)) from exc
