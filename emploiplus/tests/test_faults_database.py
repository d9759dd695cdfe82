"""Fault suite, PostgreSQL (issue 16): a real server process on a private PostgreSQL cluster
(the dev stack's embedded one, in a temporary directory) that the test restarts and stops.
The shared PostgreSQL is never touched.

- Restarted (`pg_ctl restart -m fast`): every pooled connection died with the old server;
  the pool checks each connection before handing it out, so the requests and the signed
  webhook sent right after answer as usual and the delivery is stored.
- Stopped: the API answers 503 + Retry-After in its error format, the webhooks 503 (a
  sender that retries can), `/readyz` names the database; never a 500. Started again: the
  same server answers as before, nothing restarted. An open WebSocket gets `unavailable`
  error frames meanwhile and sends again afterwards.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from accounts.testing import make_token
from emploiplus import effects
from emploiplus.testing import asgi_server, private_postgres, until
from matching.testing import envelope, sign

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

# A short pool wait so the "database down" answers come quickly (default 10 s).
SERVER_ENV = {"DB_POOL_TIMEOUT_SECONDS": "2"}


@pytest.fixture(scope="module")
def cluster():
    with private_postgres() as server:
        server.migrate()
        yield server


def call(base: str, method: str, path: str, *, token: str | None = None, body: bytes | None = None, **headers):
    request = urllib.request.Request(f"http://{base}{path}", data=body, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    for name, value in headers.items():
        request.add_header(name.replace("_", "-"), value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def webhook(base: str, company_id: str | None = None) -> tuple[int, object, dict, str]:
    record = {
        "id": str(uuid.uuid4()),
        "company_id": company_id or str(uuid.uuid4()),
        "title": "Développeuse Django",
        "required_skills": ["Django"],
        "status": "active",
    }
    body = json.dumps(envelope(record)).encode()
    status, headers, answer = call(base, "POST", "/api/webhooks/jobs/notify", body=body, X_Webhook_Signature=sign(body))
    return status, headers, json.loads(answer), record["id"]


def stored_events(cluster, record_id: str) -> int:
    with psycopg.connect(cluster.url) as conn:
        row = conn.execute("SELECT count(*) FROM webhook_events WHERE payload::text LIKE %s", [f"%{record_id}%"])
        return row.fetchone()[0]


def server_connections(cluster) -> int:
    with psycopg.connect(cluster.url) as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE datname = 'emploiplus' AND pid <> pg_backend_pid()"
        return conn.execute(query).fetchone()[0]


def test_no_request_fails_on_a_connection_that_died_with_a_restarted_server(cluster):
    tokens = [make_token() for _ in range(8)]  # unknown subs: the first request creates each user
    with asgi_server(DATABASE_URL=cluster.url, **SERVER_ENV) as (base, _proc), ThreadPoolExecutor(16) as pool:

        def me(i: int) -> int:
            return call(base, "GET", "/api/me/", token=tokens[i % len(tokens)])[0]

        assert list(pool.map(me, range(48))) == [200] * 48  # concurrent: the pool holds several
        before = server_connections(cluster)
        assert before >= 2, "the pool should hold several connections before the restart"

        cluster.restart()  # every one of them is now dead

        status, _h, receipt, record_id = webhook(base)  # the first request after the restart
        assert status == 202, receipt
        assert (receipt["accepted"], receipt["duplicate"]) == (True, False)
        statuses = list(pool.map(me, range(60)))
        assert statuses == [200] * 60
    assert stored_events(cluster, record_id) == 1


def test_with_the_database_down_it_answers_503_then_resumes_by_itself(cluster):
    token = make_token()
    with asgi_server(DATABASE_URL=cluster.url, **SERVER_ENV) as (base, _proc), ThreadPoolExecutor(8) as pool:
        assert call(base, "GET", "/api/me/", token=token)[0] == 200
        cluster.stop()
        try:
            # (GET /api/me/ would still answer 200 from the per-process user cache)
            answers = list(pool.map(lambda _i: call(base, "GET", "/api/notifications/", token=token), range(8)))
            for status, headers, body in answers:
                assert status == 503
                assert headers["Retry-After"] == "5"
                assert json.loads(body) == {
                    "detail": "Service momentanément indisponible (base de données), réessayez dans quelques secondes.",
                    "code": "unavailable",
                    "retry_after": 5,
                }
            status, headers, body = call(
                base, "POST", "/api/posts/", token=token, body=json.dumps({"content": "Bonjour"}).encode()
            )
            assert (status, json.loads(body)["code"], headers["Retry-After"]) == (503, "unavailable", "5")

            status, headers, answer, _record = webhook(base)
            assert (status, answer["error"], headers["Retry-After"]) == (503, "unavailable", "5")

            status, _h, body = call(base, "GET", "/readyz")
            ready = json.loads(body)
            assert status == 503
            assert ready["checks"]["database"].startswith("database unreachable")
            assert ready["checks"]["migrations"] == "skipped: database unreachable"
            assert call(base, "GET", "/healthz")[0] == 200  # the process itself is alive
        finally:
            cluster.start()

        # Back: the same server process answers again without being restarted.
        assert until(lambda: call(base, "GET", "/api/notifications/", token=token)[0] == 200, within=60, every=0.5)
        status, _h, receipt, record_id = webhook(base)
        assert status == 202, receipt
        assert call(base, "GET", "/readyz")[0] == 200
    assert stored_events(cluster, record_id) == 1


def test_websocket_sends_with_the_database_down_get_unavailable_then_work_again(cluster):
    """An open /ws/messages/ connection while PostgreSQL is stopped: each send_message gets an
    `error` frame `unavailable` (the consumer stays up, nothing is half-stored); once the
    database is back the same connection sends and the other participant receives."""
    import asyncio

    import websockets

    alice, bob = uuid.uuid4(), uuid.uuid4()
    token_a, token_b = make_token(alice), make_token(bob)
    with asgi_server(DATABASE_URL=cluster.url, **SERVER_ENV) as (base, _proc):
        assert call(base, "GET", "/api/me/", token=token_b)[0] == 200  # bob exists
        status, _h, body = call(
            base, "POST", "/api/conversations/", token=token_a, body=json.dumps({"participantIds": [str(bob)]}).encode()
        )
        assert status in (200, 201), body
        conversation_id = json.loads(body)["id"]

        async def scenario() -> tuple[list[dict], dict, dict]:
            async with (
                websockets.connect(f"ws://{base}/ws/messages/?token={token_a}") as ws_a,
                websockets.connect(f"ws://{base}/ws/messages/?token={token_b}") as ws_b,
            ):

                async def frame(ws, event: str) -> dict:
                    while True:
                        received = json.loads(await asyncio.wait_for(ws.recv(), 30))
                        if received.get("event") == event:
                            return received

                for ws, ref in ((ws_a, "ja"), (ws_b, "jb")):
                    await ws.send(json.dumps({"event": "join_conversation", "ref": ref,
                                              "data": {"conversationId": conversation_id}}))  # fmt: skip
                    await frame(ws, "ack")
                await asyncio.to_thread(cluster.stop)
                errors = []
                try:
                    for i in range(3):
                        await ws_a.send(json.dumps({"event": "send_message", "ref": f"down{i}",
                                                    "data": {"conversationId": conversation_id, "content": f"perdu {i}",
                                                             "clientMessageId": f"down-{i}"}}))  # fmt: skip
                        errors.append(await frame(ws_a, "error"))
                finally:
                    await asyncio.to_thread(cluster.start)
                # Back: the same connection sends (its resend with the same clientMessageId too).
                for _ in range(60):
                    await ws_a.send(json.dumps({"event": "send_message", "ref": "up",
                                                "data": {"conversationId": conversation_id, "content": "de retour",
                                                         "clientMessageId": "down-0"}}))  # fmt: skip
                    answer = json.loads(await asyncio.wait_for(ws_a.recv(), 30))
                    while answer.get("event") not in ("ack", "error"):
                        answer = json.loads(await asyncio.wait_for(ws_a.recv(), 30))
                    if answer["event"] == "ack":
                        break
                    await asyncio.sleep(0.5)
                received = await frame(ws_b, "new_message")
                return errors, answer, received

        errors, answer, received = asyncio.run(scenario())
    assert [(e["ref"], e["error"]["code"]) for e in errors] == [(f"down{i}", "unavailable") for i in range(3)], errors
    assert answer["event"] == "ack", answer
    assert received["data"]["content"] == "de retour"
    with psycopg.connect(cluster.url) as conn:
        rows = conn.execute("SELECT content FROM messages WHERE conversation_id = %s", [conversation_id])
        contents = [row[0] for row in rows]
    assert contents == ["de retour"]  # nothing of the outage was half-stored


def test_a_statement_stuck_behind_a_lock_is_cancelled_and_answers_503(cluster):
    """DB_STATEMENT_TIMEOUT_SECONDS: a request whose statement waits on a lock held elsewhere
    is cancelled by PostgreSQL and answers 503 `unavailable` (never hangs, never 500); requests
    that do not touch the locked table are served meanwhile; once the lock goes, it works."""
    token = make_token()
    post = json.dumps({"content": "Bonjour"}).encode()
    with asgi_server(DATABASE_URL=cluster.url, DB_STATEMENT_TIMEOUT_SECONDS="1", **SERVER_ENV) as (base, _proc):
        assert call(base, "POST", "/api/posts/", token=token, body=post)[0] == 201
        with psycopg.connect(cluster.url, autocommit=False) as locker:
            locker.execute("LOCK TABLE posts IN ACCESS EXCLUSIVE MODE")
            status, headers, body = call(base, "POST", "/api/posts/", token=token, body=post)
            assert (status, json.loads(body)["code"], headers["Retry-After"]) == (503, "unavailable", "5"), body
            assert call(base, "GET", "/api/notifications/", token=token)[0] == 200
            locker.rollback()
        assert call(base, "POST", "/api/posts/", token=token, body=post)[0] == 201
    with psycopg.connect(cluster.url) as conn:
        assert conn.execute("SELECT count(*) FROM posts WHERE content = 'Bonjour'").fetchone()[0] == 2


def test_a_job_that_meets_a_database_outage_is_retried_and_done_once_it_is_back(cluster):
    """A signed job webhook acknowledged (stored, queued) before PostgreSQL stops: the worker's
    attempts fail while it is down, RQ's retry policy (emploiplus.effects: at once, 30 s,
    120 s) runs it again, and once the database is back the event is processed — once."""
    from emploiplus.testing import rq_worker

    company_id = str(uuid.uuid4())
    with psycopg.connect(cluster.url) as conn:
        conn.execute(
            "INSERT INTO companies (id, name, logo_url, website, created_at, updated_at)"
            " VALUES (%s, 'Acme SAS', '', '', now(), now())",
            [company_id],
        )
    with asgi_server(DATABASE_URL=cluster.url, **SERVER_ENV) as (base, _proc):
        status, _h, receipt, record_id = webhook(base, company_id)
        assert status == 202, receipt
    queue = effects.queue("notifications")
    [job] = [j for j in queue.get_jobs() if j.func_name == "webhooks.jobs.process_event"]
    cluster.stop()
    down = True
    try:
        with rq_worker(DATABASE_URL=cluster.url, DB_POOL_TIMEOUT_SECONDS="2"):
            # The worker's first attempt meets the outage and is scheduled again.
            assert until(lambda: queue.fetch_job(job.id).retries_left < 3, within=30), "no failed attempt"
            cluster.start()
            down = False
            processed = until(lambda: event_status(cluster, record_id) == "processed", within=90, every=1)
            assert processed, event_status(cluster, record_id)
    finally:
        if down:
            cluster.start()
    with psycopg.connect(cluster.url) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE id = %s", [record_id]).fetchone()
    assert row[0] == 1  # the job the webhook announced exists, once


def event_status(cluster, record_id: str) -> str | None:
    try:
        with psycopg.connect(cluster.url, connect_timeout=2) as conn:
            row = conn.execute(
                "SELECT status FROM webhook_events WHERE payload::text LIKE %s", [f"%{record_id}%"]
            ).fetchone()
    except psycopg.OperationalError:
        return None
    return row[0] if row else None


def test_a_websocket_send_after_a_restart_is_acked_on_its_first_try(cluster):
    """The consumers' own connections (emploiplus/postgres/aio.py) died with the old server
    too: the first send after the restart finds its connection dead by polling it and
    replaces it — an ack, not an `unavailable` error."""
    import asyncio

    import websockets

    alice, bob = uuid.uuid4(), uuid.uuid4()
    token_a = make_token(alice)
    with asgi_server(DATABASE_URL=cluster.url, **SERVER_ENV) as (base, _proc):
        assert call(base, "GET", "/api/me/", token=make_token(bob))[0] == 200  # bob exists
        status, _h, body = call(
            base, "POST", "/api/conversations/", token=token_a, body=json.dumps({"participantIds": [str(bob)]}).encode()
        )
        assert status in (200, 201), body
        conversation_id = json.loads(body)["id"]

        async def scenario() -> list[dict]:
            answers = []
            async with websockets.connect(f"ws://{base}/ws/messages/?token={token_a}") as ws:

                async def send_all(ns: range) -> list[dict]:
                    for n in ns:  # all sent before any answer is read: handled concurrently
                        data = {"conversationId": conversation_id, "content": f"n{n}"}
                        await ws.send(json.dumps({"event": "send_message", "ref": f"m{n}", "data": data}))
                    got: dict[str, dict] = {}
                    while len(got) < len(ns):
                        frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                        if frame.get("ref") in {f"m{n}" for n in ns}:
                            got[frame["ref"]] = frame
                    return [got[f"m{n}"] for n in ns]

                # Concurrent sends: the loop holds several connections, all idle afterwards.
                answers += await send_all(range(6))
                await asyncio.to_thread(cluster.restart)
                answers += await send_all(range(6, 12))
            return answers

        answers = asyncio.run(scenario())
    assert [a["event"] for a in answers] == ["ack"] * 12, [a for a in answers if a["event"] != "ack"]
    with psycopg.connect(cluster.url) as conn:
        rows = conn.execute("SELECT content FROM messages WHERE conversation_id = %s", [conversation_id])
        assert sorted(row[0] for row in rows) == sorted(f"n{n}" for n in range(12))
