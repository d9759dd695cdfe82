"""Fault suite, Redis (issue 16): a real server process on a private Redis that the test stops
and starts again. The shared Redis is never touched.

With Redis down: REST reads and writes answer as usual (the rate limit counts per process,
the skill-alias cache reads the database, after-commit jobs are logged and left to the
sweeps), the local limit still answers 429, `/readyz` says Redis is down; once Redis is back,
`/readyz` is 200 again and the limit is shared through Redis again.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest
import redis

from accounts.testing import token_for
from emploiplus.testing import asgi_server, private_redis, until
from matching.models import Job, SkillAlias

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(120)]


def call(base: str, method: str, path: str, token: str | None = None, body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://{base}{path}", data=data, method=method)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.headers, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read() or b"null")


def test_rest_keeps_working_with_redis_down_and_shares_limits_again_when_it_is_back(rita, alice, settings):
    rita_token, alice_token = token_for(rita), token_for(alice)
    SkillAlias.objects.get_or_create(alias="reactjs", defaults={"canonical": "react"})  # seeded; gone after a flush
    with private_redis() as server, asgi_server(REDIS_URL=server.url, RATE_LIMIT_PER_MINUTE="20") as (base, _proc):
        assert call(base, "GET", "/api/me/", alice_token)[0] == 200  # counted in Redis
        server.stop()

        # Reads and writes still answer (alice: 1 request so far, in the Redis count now gone).
        status, _h, created = call(
            base,
            "POST",
            "/api/jobs/",
            rita_token,
            {"title": "Développeuse Django", "required_skills": ["Django", "ReactJS"], "status": "active"},
        )
        assert status == 201, created
        job = Job.objects.get(pk=created["id"])
        assert (job.title, job.required_skills) == ("Développeuse Django", ["django", "react"])
        status, _h, listed = call(base, "GET", f"/api/jobs/?company_id={rita.company_id}", rita_token)
        assert status == 200 and [j["id"] for j in listed["results"]] == [str(job.pk)]

        # The local limit: alice gets 20 per minute on this process, then 429 with Retry-After.
        statuses = [call(base, "GET", "/api/me/", alice_token)[0] for _ in range(21)]
        assert statuses == [200] * 20 + [429]
        status, headers, body = call(base, "GET", "/api/me/", alice_token)
        assert (status, body["code"]) == (429, "throttled")
        assert 1 <= int(headers["Retry-After"]) <= 60

        status, _h, ready = call(base, "GET", "/readyz")
        assert status == 503
        assert ready["checks"]["redis"].startswith("redis unreachable")
        assert ready["checks"]["database"] == "ok"

        server.start()  # back, empty: no persistence
        assert until(lambda: call(base, "GET", "/readyz")[0] == 200)
        # The shared window takes over again: rita's requests are counted in Redis.
        bucket = f"{settings.REDIS_KEY_PREFIX}:ratelimit:user:{rita.pk}"
        client = redis.Redis.from_url(server.url)

        def counted_in_redis() -> bool:
            assert call(base, "GET", "/api/me/", rita_token)[0] == 200
            return client.zcard(bucket) > 0

        assert until(counted_in_redis, every=1.0)  # the breaker probes Redis every 5 s
    job.refresh_from_db()
    assert job.notification_status == "queued"  # the lost enqueue is left to the sweep (test_effects)


def test_rest_answers_while_redis_is_paused_and_counts_in_redis_again_after(alice, settings):
    """`CLIENT PAUSE` (a Redis that accepts connections but answers nothing, e.g. a failover
    or a long blocking command): the rate limiter gives up on it after its read timeout and
    counts locally; requests answer 200, never a 500."""
    token = token_for(alice)
    with private_redis() as server, asgi_server(REDIS_URL=server.url) as (base, _proc):
        client = redis.Redis.from_url(server.url)
        assert call(base, "GET", "/api/me/", token)[0] == 200
        bucket = f"{settings.REDIS_KEY_PREFIX}:ratelimit:user:{alice.pk}"
        assert client.zcard(bucket) == 1
        # WRITE: writes and scripts (the limiter's) wait; this client's reads and UNPAUSE do not.
        client.execute_command("CLIENT", "PAUSE", "30000", "WRITE")  # bounded: 30 s at most
        try:
            statuses = [call(base, "GET", "/api/me/", token)[0] for _ in range(5)]
        finally:
            client.execute_command("CLIENT", "UNPAUSE")
        assert statuses == [200] * 5
        assert client.zcard(bucket) == 1  # none of them reached Redis

        def counted_in_redis() -> bool:
            assert call(base, "GET", "/api/me/", token)[0] == 200
            return client.zcard(bucket) > 1

        assert until(counted_in_redis, every=1.0)  # the breaker probes Redis again within 5 s


def test_a_redis_restart_under_messaging_loses_nothing_acknowledged_and_live_delivery_resumes(alice, bob):
    """Redis restarted (no persistence: the Channels groups are gone) while alice sends on
    /ws/messages/: bob's consumer ends instead of waiting on groups that no longer exist, his
    client reconnects and receives live again; every message alice got an ack for is in the
    history."""
    import asyncio

    import websockets

    from messaging.models import Message
    from messaging.services import conversation_get_or_create_direct

    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    cid = str(conversation.pk)

    with private_redis() as server, asgi_server(REDIS_URL=server.url, WS_EVENTS_PER_10_SECONDS="100000") as (base, _):

        async def joined(token: str):
            ws = await websockets.connect(f"ws://{base}/ws/messages/?token={token}", open_timeout=10)
            await ws.send(json.dumps({"event": "join_conversation", "ref": "j", "data": {"conversationId": cid}}))
            while json.loads(await asyncio.wait_for(ws.recv(), 10)).get("ref") != "j":
                pass
            return ws

        async def send(ws, n: int) -> dict:
            ref = f"m{n}"
            data = {"conversationId": cid, "content": f"n{n}", "clientMessageId": ref}
            await ws.send(json.dumps({"event": "send_message", "ref": ref, "data": data}))
            while (frame := json.loads(await asyncio.wait_for(ws.recv(), 15))).get("ref") != ref:
                pass
            return frame

        async def scenario() -> tuple[list[str], bool, dict]:
            ws_a, ws_b = await joined(token_for(alice)), await joined(token_for(bob))
            acked = []
            for n in range(5):
                if (await send(ws_a, n))["event"] == "ack":
                    acked.append(f"n{n}")
            await asyncio.to_thread(server.stop)
            with contextlib.suppress(websockets.ConnectionClosed):
                for n in range(5, 10):  # during the outage: stored (PostgreSQL), frames lost
                    if (await send(ws_a, n))["event"] == "ack":
                        acked.append(f"n{n}")
            # bob's consumer ends: its receive failed with Redis (not a deaf open socket).
            bob_closed = False
            try:
                while True:  # bounded: a deaf socket fails the test with TimeoutError
                    await asyncio.wait_for(ws_b.recv(), 20)
            except websockets.ConnectionClosed:
                bob_closed = True
            await asyncio.to_thread(server.start)
            # Both reconnect (as socket.io-client / a frontend would) and live delivery resumes.
            for _ in range(60):
                try:
                    ws_a, ws_b = await joined(token_for(alice)), await joined(token_for(bob))
                    break
                except (OSError, websockets.ConnectionClosed, websockets.InvalidStatus, TimeoutError):
                    await asyncio.sleep(0.5)
            frame = await send(ws_a, 10)
            assert frame["event"] == "ack", frame
            acked.append("n10")
            while (live := json.loads(await asyncio.wait_for(ws_b.recv(), 15))).get("event") != "new_message":
                pass
            await ws_a.close()
            await ws_b.close()
            return acked, bob_closed, live

        acked, bob_closed, live = asyncio.run(scenario())
    assert bob_closed  # the server ended bob's connection
    assert live["data"]["content"] == "n10"
    stored = set(Message.objects.filter(conversation=conversation).values_list("content", flat=True))
    assert set(acked) <= stored, (acked, stored)  # nothing acknowledged is lost
    assert len(acked) >= 6  # the 5 before the outage and the one after, at least


def test_a_socketio_websocket_is_closed_when_redis_fails_not_left_deaf(alice):
    """The Socket.IO transport does as /ws/: a failed channel-layer receive (the consumer's own
    channel, emploiplus.effects.ChannelLayer) ends the consumer and closes the socket — the
    client reconnects and joins its groups again — rather than leaving it open and deaf."""
    import asyncio

    import websockets

    with private_redis() as server, asgi_server(REDIS_URL=server.url) as (base, _):

        async def scenario() -> bool:
            url = f"ws://{base}/socket.io/?EIO=4&transport=websocket&token={token_for(alice)}"
            async with websockets.connect(url, open_timeout=10) as ws:
                assert (await asyncio.wait_for(ws.recv(), 10)).startswith("0")
                await ws.send("40/messages,")
                assert (await asyncio.wait_for(ws.recv(), 10)).startswith("40/messages,")
                await asyncio.to_thread(server.stop)
                try:
                    while True:  # bounded: a deaf socket fails the test with TimeoutError
                        await asyncio.wait_for(ws.recv(), 20)
                except websockets.ConnectionClosed:
                    return True

        assert asyncio.run(scenario())


def _keys_without_ttl(client) -> set[bytes]:
    """Keys that never expire, but for the cluster-wide metric counters (emploiplus.metrics:
    one per counter name, kept on purpose; a restarted Redis starts them again)."""
    return {key for key in client.scan_iter(count=1000) if client.ttl(key) == -1 and b":metrics:" not in key}


def _rq_idle(client) -> bool:
    """No job queued or running on any queue (RQ moves a finished job from its started to its
    finished registry in one transaction)."""
    from django.conf import settings
    from rq import Queue
    from rq.registry import StartedJobRegistry

    return all(
        Queue(name, connection=client).count == 0 and StartedJobRegistry(name, connection=client).count == 0
        for name in settings.RQ_QUEUES
    )


@pytest.mark.timeout(240)
def test_a_redis_restart_under_webhook_traffic_loses_no_accepted_delivery(alice, acme, settings):
    """Signed job webhooks arrive at a steady pace while Redis is stopped and started again
    (no persistence: queued jobs are gone). Every delivery answers 202 (stored) or 503, never
    500; once the sweeps have run (the cron's minute tick, run here), every accepted delivery
    is processed, its job matched and alice notified and pushed exactly once per job. Nothing
    is left behind in Redis: no key without a TTL that was not there before the traffic."""
    import threading

    from emploiplus import effects
    from matching.services import job_sweep_pending
    from matching.testing import envelope, set_profile, sign
    from notifications.models import Notification, NotificationDelivery
    from notifications.services import notifications_sweep
    from notifications.testing import FakeOneSignal
    from notifications.tests.helpers import worker
    from webhooks.models import WebhookEvent, WebhookStatus
    from webhooks.services import webhook_sweep

    set_profile(alice, skills=["python"], experience_level="mid")
    answers: list[tuple[str, int]] = []

    def deliver(base: str, n: int) -> None:
        record = {"id": str(uuid.uuid4()), "company_id": str(acme.pk), "title": f"Data engineer {n}",
                  "required_skills": ["python"], "status": "active"}  # fmt: skip
        body = json.dumps(envelope(record)).encode()
        request = urllib.request.Request(f"http://{base}/api/webhooks/jobs/notify", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        request.add_header("X-Webhook-Signature", sign(body))
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                answers.append((record["id"], response.status))
        except urllib.error.HTTPError as error:
            answers.append((record["id"], error.code))

    with (
        FakeOneSignal() as onesignal,
        private_redis() as server,
        asgi_server(REDIS_URL=server.url, RATE_LIMIT_PER_MINUTE="100000") as (base, _proc),
        worker(onesignal.url, REDIS_URL=server.url),
    ):
        client = redis.Redis.from_url(server.url)
        deliver(base, 0)  # warm: the worker registered, the queues and their registries exist
        assert until(lambda: NotificationDelivery.objects.filter(notification__user=alice, status="sent").exists())
        # The snapshot waits for the worker to be idle: the notification row is written inside
        # the webhook job, before RQ files that job in its finished registry (a key with no TTL).
        assert until(lambda: _rq_idle(client))
        before = _keys_without_ttl(client)

        stop = threading.Event()

        def traffic() -> None:
            n = 1
            while not stop.is_set():
                deliver(base, n)
                n += 1
                time.sleep(0.15)

        sender = threading.Thread(target=traffic)
        sender.start()
        time.sleep(1.5)
        server.stop()
        time.sleep(2)
        server.start()
        time.sleep(1.5)
        stop.set()
        sender.join(30)

        # The cron's minute ticks, now: enqueue what was stored while Redis was away. Pushes
        # whose job vanished with Redis are queued again once NOTIFICATIONS_STALE_SECONDS old
        # (600 s): that wait is skipped here.
        settings.NOTIFICATIONS_STALE_SECONDS = 0
        settings.RQ_QUEUES = {name: {**cfg, "URL": server.url} for name, cfg in settings.RQ_QUEUES.items()}
        effects.reset_for_tests()
        try:
            accepted = [job_id for job_id, status in answers if status == 202]

            progress: dict[str, object] = {}

            def all_done() -> bool:
                webhook_sweep(older_than_seconds=0)
                job_sweep_pending(older_than_seconds=0)
                notifications_sweep()
                events = WebhookEvent.objects.filter(payload__record__company_id=str(acme.pk))
                progress["events not processed"] = list(
                    events.exclude(status=WebhookStatus.PROCESSED).values_list("status", flat=True)
                )
                progress["deliveries not sent"] = list(
                    NotificationDelivery.objects.filter(notification__user=alice)
                    .exclude(status="sent")
                    .values_list("status", flat=True)
                )
                progress["notified"] = Notification.objects.filter(user=alice, type="job_match").count()
                return (
                    not progress["events not processed"]
                    and not progress["deliveries not sent"]
                    and progress["notified"] == len(accepted)
                )

            assert until(all_done, within=90, every=1.0), (progress, len(accepted))
            left = _keys_without_ttl(client) - before
        finally:
            effects.reset_for_tests()

    statuses = {status for _id, status in answers}
    assert statuses <= {202, 503}, answers  # never a 500
    assert len(accepted) >= 15, answers  # traffic ran before, during and after the outage
    assert WebhookEvent.objects.filter(payload__record__company_id=str(acme.pk)).count() == len(accepted)
    # Each accepted job notified alice once, and every notification was pushed (sent).
    notified = Notification.objects.filter(user=alice, type="job_match")
    assert notified.count() == len(accepted)
    assert set(NotificationDelivery.objects.filter(notification__user=alice).values_list("status", flat=True)) == {
        "sent"
    }
    assert sum(onesignal.id_counts.values()) >= 1 and set(onesignal.id_counts) == {str(alice.pk)}
    assert not left, sorted(left)


def test_a_socket_that_ends_while_redis_is_gone_leaves_no_group_in_the_process(alice, settings):
    """The channel layer keeps its own channels' groups in memory (frames to them skip Redis).
    A socket that closes while Redis is down cannot tell Redis it left; it still leaves its
    groups in the process (before Redis is asked), so no frame is handed to a channel that is
    gone and the process keeps nothing for it."""
    import asyncio

    from channels.layers import get_channel_layer

    from emploiplus import effects
    from emploiplus.testing import channel_layer_at
    from messaging.tests.helpers import Client

    with private_redis() as server:
        channel_layer_at(settings, server.url)
        settings.REDIS_URL = server.url
        effects.reset_for_tests()
        try:

            async def scenario() -> tuple[set[str], set[str]]:
                layer = get_channel_layer()
                client = await Client("/ws/messages/", alice).connect()
                before = set(layer._joined)
                await asyncio.to_thread(server.stop)
                with contextlib.suppress(Exception):  # the consumer's Redis calls fail: it ends anyway
                    await client.comm.disconnect(timeout=15)
                return before, set(layer._joined)

            before, after = asyncio.run(scenario())
        finally:
            effects.reset_for_tests()
    assert f"user.{alice.pk}" in before
    assert after == set()
