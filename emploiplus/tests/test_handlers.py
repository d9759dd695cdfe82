"""Django behind a real daphne, through emploiplus.handlers.SyncStackASGIHandler: the
middleware still does its job in sync mode, connections go back to the pool, and a view's
`async_to_sync` broadcast still reaches WebSocket clients through the server's event loop."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from websockets.asyncio.client import connect

from accounts.testing import token_for
from emploiplus.testing import asgi_server
from messaging.services import conversation_get_or_create_direct

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def call(address: str, path: str, *, method: str = "GET", body: bytes | None = None, headers=None):
    request = urllib.request.Request(f"http://{address}{path}", data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers, response.read()  # case-insensitive names
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


APP_NAME = "emploiplus-handlers-test"  # libpq's PGAPPNAME: tells the server's connections from others


def server_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [APP_NAME])
        return cursor.fetchone()[0]


def test_the_middleware_still_works_and_connections_stay_bounded(alice):
    with asgi_server(RATE_LIMIT_PER_MINUTE="1000000", HTTP_THREADS="4", PGAPPNAME=APP_NAME) as (address, _proc):
        status, headers, _ = call(address, "/api/me/")
        assert status == 401 and headers.get("WWW-Authenticate")  # DRF authentication ran
        status, _, body = call(address, "/api/me/", headers={"Authorization": f"Bearer {token_for(alice)}"})
        assert status == 200 and json.loads(body)["id"] == str(alice.pk)
        status, headers, _ = call(address, "/admin/login/")  # sessions, CSRF, messages, clickjacking
        assert status == 200
        assert "csrftoken=" in headers.get("Set-Cookie", "") and headers.get("X-Frame-Options") == "DENY"
        status, _, _ = call(address, "/admin/login/", method="POST", body=b"username=x&password=y")
        assert status == 403  # CSRF enforced in sync mode too

        # 300 requests from 12 clients: the server holds at most its 4 HTTP threads' connections
        # (+ one spare), not one per concurrent request (Django's stock handler: 12 here).
        with ThreadPoolExecutor(12) as clients:
            statuses = list(clients.map(lambda _: call(address, "/api/jobs/?limit=5")[0], range(300)))
        assert statuses == [200] * 300
        assert 1 <= server_connections() <= 4 + 1


async def test_a_rest_send_reaches_the_other_participants_websocket(alice, bob):
    conversation, _ = await asyncio.to_thread(conversation_get_or_create_direct, user=alice, other_user_id=bob.pk)
    with asgi_server(RATE_LIMIT_PER_MINUTE="1000000") as (address, _proc):
        async with connect(f"ws://{address}/ws/messages/?token={token_for(bob)}", open_timeout=10) as ws:
            body = json.dumps({"content": "Bonjour Bob"}).encode()
            headers = {"Authorization": f"Bearer {token_for(alice)}", "Content-Type": "application/json"}
            status, _, raw = await asyncio.to_thread(
                call,
                address,
                f"/api/conversations/{conversation.pk}/messages/",
                method="POST",
                body=body,
                headers=headers,
            )
            assert status == 201, raw
            sent = json.loads(raw)
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
                if frame["event"] == "new_message":
                    break
            assert frame["data"]["id"] == sent["id"] and frame["data"]["content"] == "Bonjour Bob"
