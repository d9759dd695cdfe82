"""The event loop's own PostgreSQL connections (emploiplus/postgres/aio.py), on the real test
database: the statements as Django's cursor writes them, Django's connection parameters as
asyncpg takes them (the socket's keepalives and tcp_user_timeout included), and each kind of
server error read as Django's."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import socket
import uuid

import pytest
from django.db import DatabaseError, DataError, IntegrityError, OperationalError, connections

from emploiplus.postgres import aio


def run(scenario):
    """`scenario()` on a loop of its own; its connections closed with the loop."""

    async def main():
        try:
            return await scenario()
        finally:
            await (await aio.loop_connections()).close()

    return asyncio.run(main())


@contextlib.contextmanager
def database_settings(options: dict | None = None, **changes):
    """Django's default database settings changed for the loop connections opened meanwhile
    (`aio.LoopConnections` reads them when a loop's connections are first made)."""
    settings_dict = connections["default"].settings_dict
    saved = copy.deepcopy(settings_dict)
    settings_dict.update(changes)
    settings_dict["OPTIONS"].update(options or {})
    try:
        yield
    finally:
        settings_dict.clear()
        settings_dict.update(saved)


def test_a_statement_is_numbered_once_per_name_in_order_of_first_use():
    query = aio.Statement("SELECT %(b)s, %(a)s::int + %(b)s, ARRAY[%(a)s]")
    assert query.sql == "SELECT $1, $2::int + $1, ARRAY[$2]"
    assert query.arguments({"a": 1, "b": 2, "unused": 3}) == [2, 1]
    with pytest.raises(ValueError, match="not a %"):
        aio.Statement("SELECT 1 WHERE 'x' LIKE '%x'")
    with pytest.raises(KeyError):
        query.arguments({"a": 1})


def test_django_connection_parameters_become_asyncpg_arguments_and_socket_options():
    kwargs, sockopts = aio.connect_arguments(
        {
            "dbname": "emploiplus",
            "user": "app",
            "password": "s3cret",
            "host": "db.internal",
            "port": 6432,
            "sslmode": "verify-full",
            "sslrootcert": "/etc/ssl/ca.pem",
            "application_name": "web",
            "connect_timeout": 5,
            "options": "-c statement_timeout=3000 -clock_timeout=500 --idle-session-timeout=60000",
            "keepalives": 1,
            "keepalives_idle": 10,
            "tcp_user_timeout": 10000,
            "client_encoding": "UTF8",
            "prepare_threshold": None,
            "cursor_factory": object,
        }
    )
    assert kwargs == {
        "host": "db.internal",
        "port": 6432,
        "user": "app",
        "password": "s3cret",
        "database": "emploiplus",
        "timeout": 5.0,
        "server_settings": {
            "application_name": "web",
            "statement_timeout": "3000",
            "lock_timeout": "500",
            "idle_session_timeout": "60000",
        },
        "dsn": "postgresql://?sslmode=verify-full&sslrootcert=%2Fetc%2Fssl%2Fca.pem",
    }
    assert sockopts == {"keepalives": 1, "keepalives_idle": 10, "tcp_user_timeout": 10000}
    # A Unix socket's directory and no port (the embedded server of `make run`), empty settings.
    kwargs, sockopts = aio.connect_arguments({"host": "/run/pg", "port": "", "sslmode": "", "dbname": "d"})
    assert (kwargs["host"], kwargs["port"], kwargs["dsn"], sockopts) == ("/run/pg", 5432, "postgresql://", {})
    with pytest.raises(ValueError, match="only -c name=value or --name=value"):
        aio.connect_arguments({"options": "-d 5"})
    with pytest.raises(ValueError, match="has no name=value"):
        aio.connect_arguments({"options": "-c statement_timeout=1 -c"})


@pytest.mark.django_db(transaction=True)
def test_a_loop_connection_has_libpq_s_keepalives_and_tcp_user_timeout_on_its_socket():
    """Django's parameters (emploiplus/settings.py) on the loop's TCP connection: a partition
    fails a send after tcp_user_timeout instead of hanging it."""
    params = connections["default"].get_connection_params()
    if str(params.get("host", "")).startswith("/"):
        pytest.skip("a Unix socket has no TCP options")

    async def scenario():
        conns = await aio.loop_connections()
        async with conns.connection() as conn:
            sock = conn._transport.get_extra_info("socket")
            return (
                sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
                sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
            )

    assert run(scenario) == (1, 10, 5, 3, 10_000)


@pytest.mark.django_db(transaction=True)
def test_options_reach_the_server_and_rows_come_back_as_tuples():
    """`options` (the statement timeout of DB_STATEMENT_TIMEOUT_SECONDS) are set on the server
    session; rows are tuples, uuids compare equal to Python's."""
    marker = uuid.uuid4()

    async def scenario():
        return (
            await aio.fetchone("SHOW statement_timeout", {}),
            await aio.fetchone("SELECT %(id)s::uuid, ARRAY[%(id)s::uuid]", {"id": marker}),
            await aio.fetchall("SELECT n FROM generate_series(1, %(n)s) n", {"n": 3}),
            await aio.fetchone("SELECT 1 WHERE false", {}),
        )

    with database_settings(options={"options": "-c statement_timeout=1234"}):
        timeout, row, rows, nothing = run(scenario)
    assert timeout == ("1234ms",)
    assert row == (marker, [marker]) and isinstance(row, tuple)
    assert {row[0]} == {marker}  # same hash as Python's UUID
    assert rows == [(1,), (2,), (3,)]
    assert nothing is None


@pytest.mark.django_db(transaction=True)
def test_server_errors_are_raised_as_django_s():
    """A statement timeout reads as an outage (`unavailable` for the consumers); a constraint,
    bad data (on the server or refused by the driver) and a syntax error as Django's own."""

    async def scenario():
        got = {}
        conns = await aio.loop_connections()
        async with conns.connection() as conn:  # the connection the next statements take
            await conn.execute("SET statement_timeout = 50; CREATE TEMP TABLE probe (n int PRIMARY KEY)")
        for name, sql, params in [
            ("timeout", "SELECT pg_sleep(2)", {}),
            ("unique", "INSERT INTO probe VALUES (%(n)s), (%(n)s)", {"n": 1}),
            ("zero", "SELECT 1 / %(n)s::int", {"n": 0}),
            ("argument", "SELECT %(n)s::int", {"n": "not a number"}),
            ("syntax", "SELEC 1", {}),
        ]:
            try:
                got[name] = await aio.fetchone(sql, params)
            except Exception as exc:
                got[name] = type(exc)
        return got

    got = run(scenario)
    assert got["timeout"] is OperationalError
    assert got["unique"] is IntegrityError
    assert got["zero"] is DataError
    assert got["argument"] is DataError
    assert got["syntax"] is DatabaseError


def test_no_server_at_the_address_is_an_outage():
    """Nothing listening where the database should be: Django's OperationalError, at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario():
        with pytest.raises(OperationalError):
            await aio.fetchone("SELECT 1", {})

    with database_settings(HOST="127.0.0.1", PORT=port):
        run(scenario)


@pytest.mark.django_db(transaction=True)
def test_a_caller_cancelled_mid_statement_does_not_give_its_connection_back():
    """A send that runs in its caller's task (`LoopBatcher(eager_after=…)`) is cancelled with
    it: asyncpg is still cancelling the statement on the server, so that connection is closed
    rather than handed to the next statement, which runs on a new one."""

    async def scenario():
        conns = await aio.loop_connections()
        pid = (await aio.fetchone("SELECT pg_backend_pid()", {}))[0]
        sleeping = asyncio.ensure_future(aio.fetchone("SELECT pg_sleep(5)", {}))
        await asyncio.sleep(0.2)  # the statement is running on the server
        sleeping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sleeping
        idle = list(conns.idle)
        after = (await aio.fetchone("SELECT pg_backend_pid()", {}))[0]
        return pid, idle, after

    pid, idle, after = run(scenario)
    assert idle == [] and after != pid
