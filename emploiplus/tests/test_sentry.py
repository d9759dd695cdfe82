"""Error reporting: with SENTRY_DSN set, an exception in a view, in a job (its final failure
only) and in a WebSocket consumer each reach Sentry's ingest endpoint — here a real local HTTP
server — tagged with release and environment, and without tokens or personal data."""

from __future__ import annotations

import asyncio
import gzip
import json
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from accounts.testing import token_for
from emploiplus import sentry
from emploiplus.testing import asgi_servers, free_port, rq_worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
RELEASE = "abc123-test"


class Ingest:
    """Sentry's envelope endpoint: records every event it receives."""

    def __init__(self) -> None:
        self.server = HTTPServer(host="127.0.0.1", port=free_port(), threaded=True)
        self.events: list[dict] = []
        self.raw: list[bytes] = []

    def __enter__(self) -> Ingest:
        self.server.expect_request("/api/1/envelope/", method="POST").respond_with_handler(self.handle)
        self.server.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.clear()
        if self.server.is_running():
            self.server.stop()

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.server.port}/1"

    def handle(self, request: Request) -> Response:
        body = request.get_data()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.raw.append(body)
        lines = body.split(b"\n")
        for header, payload in zip(lines[1::2], lines[2::2], strict=False):
            if json.loads(header).get("type") == "event":
                self.events.append(json.loads(payload))
        return Response("{}", status=200, content_type="application/json")

    def wait_for(self, predicate, seconds: float = 30) -> list[dict]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            found = [e for e in self.events if predicate(e)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no such event among {[message_of(e) for e in self.events]}")


def message_of(event: dict) -> str:
    values = (event.get("exception") or {}).get("values") or []
    if values:
        return f"{values[-1].get('type')}: {values[-1].get('value')}"
    return (event.get("logentry") or {}).get("message") or event.get("message") or ""


def env(ingest: Ingest) -> dict[str, str]:
    return {"SENTRY_DSN": ingest.dsn, "SENTRY_RELEASE": RELEASE, "SENTRY_ENVIRONMENT": "test"}


def assert_tagged(event: dict) -> None:
    assert event["release"] == RELEASE and event["environment"] == "test"


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_it_reports_an_exception_in_a_view_and_in_a_consumer(alice, server):
    import websockets

    token = token_for(alice)
    boom = "emploiplus.tests.boom_app:application"
    with Ingest() as ingest, asgi_servers(1, server=server, application=boom, **env(ingest)) as (address, _procs):
        import urllib.error
        import urllib.request

        async def consumers() -> None:
            async with websockets.connect(f"ws://{address}/ws/__boom__/?token={token}") as ws:
                await ws.send("hello")
                await asyncio.to_thread(ingest.wait_for, lambda e: message_of(e) == "RuntimeError: boom consumer")
            async with websockets.connect(f"ws://{address}/ws/__boom_handler__/?token={token}") as ws:
                await ws.send(json.dumps({"event": "boom", "data": {}, "ref": 1}))
                reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
                assert reply["error"]["code"] == "internal_error"

        asyncio.run(consumers())
        (consumer,) = ingest.wait_for(lambda e: message_of(e) == "RuntimeError: boom consumer")
        assert_tagged(consumer)
        assert consumer["tags"]["process_type"] == "other"
        (handler,) = ingest.wait_for(lambda e: message_of(e) == "RuntimeError: boom handler")
        assert handler["logger"] == "emploiplus.realtime"  # logged by the frame protocol, reported from the log
        assert_tagged(handler)
        request = urllib.request.Request(f"http://{address}/__boom__/?token=secret-in-query", headers={
            "Authorization": f"Bearer {token}", "Cookie": "sessionid=s3cr3t"})  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(request, timeout=10)
        assert error.value.code == 500
        (view,) = ingest.wait_for(lambda e: message_of(e) == "RuntimeError: boom view")
        assert_tagged(view)

    sent = b"\n".join(ingest.raw)
    # No token (header, query string, subprotocol), cookie or e-mail leaves the server.
    for secret in (token.encode(), b"secret-in-query", b"s3cr3t", alice.email.encode()):
        at = sent.find(secret)
        assert at == -1, sent[max(0, at - 300) : at + 50]
    assert "user" not in view or "email" not in view["user"]


def test_it_reports_only_the_final_failure_of_a_retried_job():
    import django_rq
    from rq import Retry

    with Ingest() as ingest:
        queue = django_rq.get_queue("sms")
        job = queue.enqueue("emploiplus.tests.jobs_for_tests.boom", "boom job", retry=Retry(max=2))
        with rq_worker("sms", burst=True, **env(ingest)) as worker:
            assert worker.wait(120) == 0
        job.refresh()
        assert job.get_status() == "failed" and job.retries_left == 0
        events = ingest.wait_for(lambda e: message_of(e) == "RuntimeError: boom job")
        time.sleep(1)  # anything else the worker sent has arrived by now (it flushed before exiting)
        events = [e for e in ingest.events if message_of(e) == "RuntimeError: boom job"]
        assert len(events) == 1  # three attempts, one report
        assert_tagged(events[0])


def test_it_scrubs_tokens_from_what_it_sends():
    event = {
        "request": {
            "url": "http://x/ws/messages/?token=abc&x=1",
            "query_string": "token=abc&x=1",
            "headers": {"Sec-WebSocket-Protocol": "bearer, abc", "X-Webhook-Secret": "s", "Accept": "*/*"},
            "cookies": {"sessionid": "s"},
            "data": {"content": "un message privé"},
        }
    }
    scrubbed = sentry.before_send(event, {})["request"]
    assert scrubbed["query_string"] == "token=[Filtered]&x=1"
    assert scrubbed["url"].endswith("?token=[Filtered]&x=1")
    assert scrubbed["headers"] == {
        "Sec-WebSocket-Protocol": "[Filtered]",
        "X-Webhook-Secret": "[Filtered]",
        "Accept": "*/*",
    }
    assert "cookies" not in scrubbed and "data" not in scrubbed
