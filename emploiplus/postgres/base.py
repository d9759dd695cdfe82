"""Django's PostgreSQL backend, with a pool check that survives a restarted server.

With `OPTIONS["pool"]` Django builds a psycopg_pool `ConnectionPool` whose `check` (with
CONN_HEALTH_CHECKS) runs each time a connection leaves the pool and replaces a connection
that fails it, so no request gets a connection that died with an earlier server
(`pg_ctl restart`, a failover, an idle timeout on a proxy). The stock check stops there:
the pool then waits (backoff, ~1 s first, doubling) before handing out the next idle
connection, which is as dead as the first after a restart — with a dozen dead connections
a request waits past the pool timeout and fails. `check_pooled_connection` makes the first
dead connection found check *every* idle connection at once (`ConnectionPool.check()`: one
empty query each, dead ones replaced in the background): the request that found it waits
about one backoff step, the next ones get live connections.

**No round trip for a healthy connection.** An idle connection has nothing to read: its
last reply was read to the end. A server that went away (restart, failover, idle timeout,
`pg_terminate_backend`) leaves its FATAL message and EOF on the socket, which a poll sees at
once. So the check polls the socket (`idle_connection_is_suspect`, one `select` with no
timeout) and sends the empty query only when something is waiting there; Django's stock
check sends it every time — one round trip per borrowed connection, on every request and
every consumer call. What neither catches: a peer that vanished without a word (a cut
network path, no FIN); the request's own query then fails or times out, as it would after
the stock check passed a moment too early.

Django passes the pool its own `check` argument, so this backend builds the pool the way
Django 5.2 does (`DatabaseWrapper.pool`) with ours instead.
"""

from __future__ import annotations

import logging
import select

from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as postgresql
from psycopg_pool import ConnectionPool

log = logging.getLogger(__name__)


def idle_connection_is_suspect(conn) -> bool:
    """Whether an idle connection has something to read (the EOF and last words of a server
    that went away), or is closed: then it needs a real check. A healthy idle connection has
    nothing waiting."""
    if conn.closed:
        return True
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def check_pooled_connection(conn) -> None:
    """Raise if `conn` is dead (the pool then replaces it), after weeding out the pool."""
    if not idle_connection_is_suspect(conn):
        return
    try:
        ConnectionPool.check_connection(conn)
    except Exception as exc:
        log.warning("database: a pooled connection is dead (%s), checking the idle ones", type(exc).__name__)
        pool = getattr(conn, "_pool", None)  # psycopg_pool's back reference (Django uses it too)
        if pool is not None:
            pool.check()  # the stock check on each idle connection, never this function
        raise


class DatabaseWrapper(postgresql.DatabaseWrapper):
    @property
    def pool(self):
        pool_options = self.settings_dict["OPTIONS"].get("pool")
        if self.alias == postgresql.NO_DB_ALIAS or not pool_options:
            return None
        if self.alias not in self._connection_pools:
            if self.settings_dict.get("CONN_MAX_AGE", 0) != 0:
                raise ImproperlyConfigured("Pooling doesn't support persistent connections.")
            connect_kwargs = self.get_connection_params()
            connect_kwargs["autocommit"] = True  # as Django: autocommit is set properly later
            pool = ConnectionPool(
                kwargs=connect_kwargs,
                open=False,
                configure=self._configure_connection,
                check=check_pooled_connection,
                **({} if pool_options is True else pool_options),
            )
            self._connection_pools.setdefault(self.alias, pool)
        return self._connection_pools[self.alias]
