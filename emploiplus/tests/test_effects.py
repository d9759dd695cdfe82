"""emploiplus.effects, the one door out of a transaction: nothing leaves a rolled-back
transaction (or savepoint), everything of a commit leaves once in the fewest Redis round
trips, a flush that fails never fails the committed write (the sweeps deliver it later), and
the channels_redis / Django internals it relies on still have the shape it expects."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid

import pytest
from channels.layers import get_channel_layer
from django.db import connection, transaction

from emploiplus import effects
from emploiplus.testing import (
    Listener,
    TurnCountingProxy,
    asgi_server,
    channel_layer_at,
    private_redis,
    rq_worker,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def listener():
    listener = Listener()
    yield listener
    listener.close()


def events_of(messages: list[dict]) -> list[tuple[str, dict]]:
    return [(m["event"], m["data"]) for m in messages]


def queued(name: str = "notifications") -> list[tuple[str, tuple]]:
    rq_queue = effects.queue(name)
    return [(job.func_name, job.args) for job in rq_queue.get_jobs()]


# --- what leaves, and when --------------------------------------------------------------
def test_it_sends_nothing_before_the_commit_and_everything_after(listener):
    channel = listener.join("user.a")
    with transaction.atomic():
        effects.broadcast("user.a", "new_message", {"n": 1})
        effects.enqueue("matching.jobs.process_job", "j1")
        assert listener.received(channel, wait=0.2) == []
        assert queued() == []
    assert events_of(listener.received(channel)) == [("new_message", {"n": 1})]
    assert queued() == [("matching.jobs.process_job", ("j1",))]


def test_it_sends_nothing_from_a_rolled_back_transaction(listener):
    channel = listener.join("user.a")
    with pytest.raises(RuntimeError), transaction.atomic():
        effects.broadcast("user.a", "new_message", {"n": 1})
        effects.enqueue("matching.jobs.process_job", "j1")
        effects.after_commit(lambda: pytest.fail("a follow-up of a rolled-back transaction ran"))
        raise RuntimeError("rollback")
    assert listener.received(channel) == []
    assert queued() == []
    # The next transaction on the same connection starts clean.
    with transaction.atomic():
        effects.broadcast("user.a", "new_message", {"n": 2})
    assert events_of(listener.received(channel)) == [("new_message", {"n": 2})]


def test_it_drops_a_rolled_back_savepoint_and_keeps_the_rest_in_order(listener):
    channel = listener.join("user.a")
    ran = []
    with transaction.atomic():
        effects.broadcast("user.a", "e", {"n": 1})
        with pytest.raises(RuntimeError), transaction.atomic():
            effects.broadcast("user.a", "e", {"n": "lost"})
            effects.enqueue("matching.jobs.process_job", "lost")
            raise RuntimeError("savepoint rollback")
        with transaction.atomic():  # a savepoint that is released
            effects.broadcast("user.a", "e", {"n": 2})
            effects.enqueue("matching.jobs.process_job", "kept")
        effects.after_commit(lambda: ran.append("follow-up"))
        effects.broadcast("user.a", "e", {"n": 3})
    assert [d["n"] for _e, d in events_of(listener.received(channel))] == [1, 2, 3]
    assert queued() == [("matching.jobs.process_job", ("kept",))]
    assert ran == ["follow-up"]


def test_it_sends_at_once_in_autocommit(listener):
    channel = listener.join("user.a")
    assert connection.get_autocommit() and not connection.in_atomic_block
    effects.broadcast_many([("user.a", "e", {"n": 1}), ("user.a", "e", {"n": 2})])
    assert [d["n"] for _e, d in events_of(listener.received(channel))] == [1, 2]


def test_a_follow_up_that_writes_flushes_its_own_effects(listener):
    channel = listener.join("user.b")

    def follow_up() -> None:  # runs after the commit, outside any transaction: its own flush
        with transaction.atomic():
            effects.broadcast("user.b", "second", {})

    with transaction.atomic():
        effects.broadcast("user.b", "first", {})
        effects.after_commit(follow_up)
    assert [e for e, _d in events_of(listener.received(channel))] == ["first", "second"]


# --- the cost of a flush --------------------------------------------------------------------
@pytest.fixture
def through_proxy(settings):
    """Point the channel layer and the queues at a round-trip counting proxy to Redis."""
    with TurnCountingProxy.in_front_of(settings.REDIS_URL) as proxy:
        url = proxy.proxied(settings.REDIS_URL)
        channel_layer_at(settings, url)
        settings.RQ_QUEUES = {name: {**cfg, "URL": url} for name, cfg in settings.RQ_QUEUES.items()}
        effects.reset_for_tests()
        yield proxy
    effects.reset_for_tests()


def test_it_flushes_a_commit_in_two_round_trips_whatever_its_size(listener, through_proxy):
    channels = {group: listener.join(group) for group in ("user.a", "user.b", "user.c")}

    def commit(n: int) -> None:
        with transaction.atomic():
            for i in range(n):
                effects.broadcast(f"user.{'abc'[i % 3]}", "new_message", {"i": i})
            effects.broadcast("user.nobody", "new_message", {})  # no member: no push
            effects.enqueue("matching.jobs.process_job", "j")
            effects.enqueue("notifications.jobs.deliveries_send", "email:b:0", queue="emails")

    commit(1)  # opens the connections (redis-py's handshake is not a flush's cost)
    for n in (3, 30):
        through_proxy.reset()
        commit(n)
        # One script reads every group's members and pushes; one RQ pipeline.
        assert through_proxy.turns == 2, n
    received = {group: len(listener.received(channel)) for group, channel in channels.items()}
    assert received == {"user.a": 1 + 1 + 10, "user.b": 1 + 10, "user.c": 1 + 10}
    assert len(queued("notifications")) == 3 and len(queued("emails")) == 3


def test_naive_group_send_costs_four_round_trips_per_frame(listener, through_proxy):
    """The yardstick the test above is measured against (channels_redis' own group_send)."""
    listener.join("user.a")
    layer = get_channel_layer()  # on the proxy, used from the listener's loop

    async def send_three() -> int:
        await layer.group_send("user.a", {"type": "x"})  # warm this loop's pool
        through_proxy.reset()
        for _ in range(3):
            await layer.group_send("user.a", {"type": "x"})
        turns = through_proxy.turns
        await layer.close_pools()  # this layer goes away with the proxy settings
        return turns

    assert listener._run(send_three()) == 12


def test_concurrent_flushes_of_one_loop_share_round_trips_and_keep_their_order(listener, through_proxy):
    """A busy server flushes many commits at once: those that come while a send is in flight
    leave together in the next one (one round trip for the batch), in order."""
    channel = listener.join("user.a")
    layer = get_channel_layer()

    async def burst() -> int:
        await effects.abroadcast("user.a", "warm", {})  # this loop's pool
        through_proxy.reset()
        await asyncio.gather(*(effects.abroadcast("user.a", "new_message", {"i": i}) for i in range(20)))
        turns = through_proxy.turns
        await layer.close_pools()
        return turns

    turns = listener._run(burst())
    assert turns == 1  # one script call for 20 flushes (20 one by one)
    got = [m["data"]["i"] for m in listener.received(channel) if m["event"] == "new_message"]
    assert got == list(range(20))


# --- a flush that fails: the write stands, the sweep delivers --------------------------------
@pytest.fixture
def dead_redis(settings):
    """Frames and jobs pointed at a private Redis that is stopped (restart with .start())."""
    with private_redis() as server:
        channel_layer_at(settings, server.url)
        settings.RQ_QUEUES = {name: {**cfg, "URL": server.url} for name, cfg in settings.RQ_QUEUES.items()}
        effects.reset_for_tests()
        server.stop()
        yield server
    effects.reset_for_tests()


def test_a_job_created_while_redis_is_down_is_saved_and_the_sweep_runs_it(dead_redis, rita, alice, caplog):
    from matching.models import Job, NotificationStatus
    from matching.services import candidate_update_profile, job_create, job_sweep_pending
    from notifications.models import Notification

    candidate_update_profile(candidate=alice.candidate, skills=["Django"], queue_rematch=False)
    caplog.set_level(logging.ERROR, logger="emploiplus.effects")
    job = job_create(user=rita, title="Développeuse Django", required_skills=["Django"], status="active")
    stored = Job.objects.get(pk=job.pk)
    assert stored.notification_status == NotificationStatus.QUEUED
    lost = [r.getMessage() for r in caplog.records if "after-commit jobs lost" in r.getMessage()]
    assert lost and f"matching.jobs.process_job('{job.pk}',)" in lost[0]

    dead_redis.start()
    effects.reset_for_tests()
    assert job_sweep_pending(stuck_after_seconds=0) == [str(job.pk)]
    assert Job.objects.get(pk=job.pk).notification_status == NotificationStatus.SENT
    assert Notification.objects.filter(user=alice, type="job_match").count() == 1


def test_a_rematch_lost_with_redis_is_run_by_the_sweep(dead_redis, rita, alice):
    from matching.services import candidate_sweep_rematch, candidate_update_profile, job_create
    from notifications.models import Notification

    job_create(user=rita, title="Data analyst", required_skills=["SQL", "Python"], status="active")
    candidate_update_profile(candidate=alice.candidate, skills=["SQL", "Python"])  # the enqueue is lost
    alice.candidate.refresh_from_db()
    assert alice.candidate.rematch_requested_at is not None

    dead_redis.start()
    effects.reset_for_tests()
    assert candidate_sweep_rematch(older_than_seconds=0) == [str(alice.pk)]
    alice.candidate.refresh_from_db()
    assert alice.candidate.rematch_requested_at is None
    assert Notification.objects.filter(user=alice, type="job_matches_digest").count() == 1
    assert candidate_sweep_rematch(older_than_seconds=0) == []  # done once


@pytest.mark.slow
def test_a_webhook_acknowledged_while_redis_is_down_is_delivered_after_it_is_back(acme, alice):
    """Real processes: a server and a worker on a private Redis that is stopped during the
    delivery and started again; the delivery is answered 202 and the sweep delivers it."""
    import http.client

    from matching.services import candidate_update_profile
    from matching.testing import envelope, sign
    from notifications.models import Notification
    from webhooks.models import WebhookEvent, WebhookStatus
    from webhooks.services import webhook_sweep

    candidate_update_profile(candidate=alice.candidate, skills=["Kotlin"], queue_rematch=False)
    record = {
        "id": str(uuid.uuid4()),
        "company_id": str(acme.pk),
        "title": "Développeur Android",
        "required_skills": ["Kotlin"],
        "status": "active",
    }
    body = json.dumps(envelope(record)).encode()
    with private_redis() as redis_server, asgi_server(REDIS_URL=redis_server.url) as (address, _proc):
        redis_server.stop()
        host, port = address.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        conn.request("POST", "/api/webhooks/jobs/notify", body=body, headers={"X-Webhook-Signature": sign(body)})
        response = conn.getresponse()
        answer = json.loads(response.read())
        assert (response.status, answer["duplicate"]) == (202, False)
        event = WebhookEvent.objects.get(pk=answer["event_id"])
        assert event.status == WebhookStatus.RECEIVED

        redis_server.start()
        with rq_worker("notifications", REDIS_URL=redis_server.url):
            from django.test import override_settings

            with override_settings(
                RQ_QUEUES={name: {"URL": redis_server.url, "DEFAULT_TIMEOUT": 600} for name in ("notifications",)}
            ):
                effects.reset_for_tests()
                assert webhook_sweep(older_than_seconds=0) == [str(event.pk)]
            effects.reset_for_tests()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                event.refresh_from_db()
                if event.status == WebhookStatus.PROCESSED:
                    break
                time.sleep(0.2)
    assert event.status == WebhookStatus.PROCESSED
    assert Notification.objects.filter(user=alice, type="job_match", data__jobId=record["id"]).count() == 1


# --- the internals this module relies on ------------------------------------------------------
def test_the_pinned_channel_layer_still_has_the_shape_of_the_fast_path():
    """Fails loudly when channels_redis changes what `effects` reads (then update effects)."""
    layer = get_channel_layer()
    assert effects.fast_path_supported(layer), f"{type(layer)} lost the internals effects relies on"
    assert layer._group_key("user.a") == f"{layer.prefix}:group:user.a".encode()
    by_connection, key_to_message, key_to_capacity = layer._map_channel_keys_to_connection(
        ["specific.abc!1", "specific.abc!2", "plain.x"], {"type": "t"}
    )
    assert set(key_to_message) == {f"{layer.prefix}specific.abc!", f"{layer.prefix}plain.x"}
    message = layer.deserialize(key_to_message[f"{layer.prefix}specific.abc!"])
    assert message == {"type": "t", "__asgi_channel__": ["specific.abc!1", "specific.abc!2"]}
    assert set(key_to_capacity.values()) == {layer.capacity} and list(by_connection) == [0]


def test_the_send_script_stores_what_channels_redis_itself_would(caplog):
    """`_SEND` writes channels_redis' format itself. Read back with the stock layer: one
    stored message per process key naming that process's channels of the group (as
    `_map_channel_keys_to_connection` does), plain channels on their own key, an expired
    member skipped, a full key dropped and counted, each frame's fields intact."""
    import redis
    from channels_redis.core import RedisChannelLayer

    layer = get_channel_layer()
    stock = RedisChannelLayer(hosts=layer.hosts, prefix=layer.prefix, capacity=layer.capacity)
    client = redis.Redis.from_url(effects._layer_address(layer))
    group = f"user.{uuid.uuid4().hex}"
    tag = uuid.uuid4().hex[:8]
    local = [f"specific.{tag}!1", f"specific.{tag}!2"]
    plain, full, stale = f"plain.{tag}", f"full.{tag}", f"stale.{tag}"
    now = time.time()
    members = {name: now for name in [*local, plain, full]} | {stale: now - layer.group_expiry - 5}
    client.zadd(layer._group_key(group), members)
    client.zadd(f"{layer.prefix}{full}", {f"m{i}": now for i in range(layer.capacity)})
    try:
        with caplog.at_level(logging.INFO, logger="emploiplus.effects"):
            effects._send_frames([effects.Frame(group, "new_message", {"n": 1, "s": "é" * 40, "l": [1, None]})])
        assert "1 channel message(s) over capacity" in caplog.text
        [stored_local] = client.zrange(f"{layer.prefix}specific.{tag}!", 0, -1)
        [stored_plain] = client.zrange(f"{layer.prefix}{plain}", 0, -1)
        for stored, names in ((stored_local, local), (stored_plain, [plain])):
            message = stock.deserialize(stored)
            assert message.pop("__asgi_channel__") == names
            assert message.pop("fid") and message == {
                "type": "emploiplus.event",
                "event": "new_message",
                "data": {"n": 1, "s": "é" * 40, "l": [1, None]},
            }
        assert client.zcard(f"{layer.prefix}{full}") == layer.capacity
        assert not client.exists(f"{layer.prefix}{stale}")
        assert client.zscore(layer._group_key(group), stale) is None  # an expired member is pruned
        assert 0 < client.ttl(f"{layer.prefix}{plain}") <= layer.expiry
    finally:
        client.delete(layer._group_key(group), *(f"{layer.prefix}{k}" for k in (f"specific.{tag}!", plain, full)))


def test_it_reads_djangos_commit_hooks_as_it_expects():
    with transaction.atomic():
        effects.broadcast("user.a", "e", {})
        hooks = connection.run_on_commit
        assert all(isinstance(h, tuple) and len(h) == 3 for h in hooks)
        sids, func, robust = hooks[-1]
        assert (sids, robust) == (set(), True) and func.func.__self__.__class__.__name__ == "_Pending"


def test_every_member_of_every_group_gets_its_frames_in_order_sync_and_async(listener):
    """Two "processes" (two layers), process-local and plain channels, from a sync thread
    and from an event loop: what channels_redis' own receive() hands out."""
    a1 = listener.join("user.a")
    a2 = listener.join("user.a", "user.b")
    plain = listener.join("user.a", plain=True)
    frames = [("user.a", "new_message", {"n": 1}), ("user.b", "new_message", {"n": 1}), ("user.a", "sent", {})]
    effects.broadcast_many(frames)  # sync path
    listener._run(effects._asend_frames([effects.Frame(g, e, d) for g, e, d in frames]))  # async path
    for channel, expected in (
        (a1, ["new_message", "sent"] * 2),
        (a2, ["new_message", "new_message", "sent"] * 2),
        (plain, ["new_message", "sent"] * 2),
    ):
        got = listener.received(channel)
        assert [m["event"] for m in got] == expected
        assert all(m["type"] == "emploiplus.event" for m in got)


def test_a_follow_up_gets_the_expiring_sets_it_reads_from_the_frames_call(listener, monkeypatch):
    """`after_commit(live_keys=…)`: the script call that sends the frames reads the sets too —
    a member scored after Redis' clock is live; an expired member or no set is not — and
    the follow-up gets one flag per key, in order, even when the frames and the keys of one
    commit span several calls (FRAMES_PER_SEND). The sync flush calls `fn()`, which reads
    them itself."""
    from emploiplus.redis import get_redis, key

    monkeypatch.setattr(effects, "FRAMES_PER_SEND", 2)
    channel = listener.join("user.a")
    now = time.time()
    sets = [key("test", "live", name) for name in ("fresh", "expired", "missing", "fresh2")]
    get_redis().zadd(sets[0], {"c1": now + 30})
    get_redis().zadd(sets[1], {"c1": now - 30})
    get_redis().zadd(sets[3], {"c1": now - 30, "c2": now + 30})
    got: list = []

    async def read(live) -> None:
        got.append(live)

    def service() -> None:
        with transaction.atomic():
            effects.broadcast_many([("user.a", "e", {"n": n}) for n in range(3)])
            effects.after_commit(lambda: got.append("sync"), afn=read, live_keys=sets)

    listener._run(effects.run_sync(service))
    assert got == [[True, False, False, True]]
    assert events_of(listener.received(channel)) == [("e", {"n": n}) for n in range(3)]
    service()  # no loop: the sync flush
    assert got[1:] == ["sync"]


def test_the_held_send_connection_survives_a_killed_connection_and_a_flushed_script_cache(listener):
    """The frame script runs on one held connection per loop (`effects._HeldScript`): killed
    by Redis, it is opened again and the call sent once more; with Redis' script cache
    emptied (a restart), EVALSHA's NOSCRIPT is answered by an EVAL. Nothing is lost."""
    from emploiplus.redis import get_redis

    channel = listener.join("user.a")
    layer = get_channel_layer()

    async def send(n: int) -> None:
        await effects.abroadcast("user.a", "e", {"n": n})

    async def held_id() -> int:
        held = effects._held_send_script(layer.connection(0)).connection
        await held.send_command("CLIENT", "ID")
        return await held.read_response()

    listener._run(send(0))
    first = listener._run(held_id())
    assert get_redis().execute_command("CLIENT", "KILL", "ID", first) == 1
    listener._run(send(1))  # the dead connection found, opened again, sent once more
    assert listener._run(held_id()) != first
    get_redis().script_flush()
    listener._run(send(2))  # NOSCRIPT → EVAL
    assert events_of(listener.received(channel)) == [("e", {"n": n}) for n in range(3)]


def test_the_held_send_connection_gives_up_after_its_socket_timeout_when_redis_never_answers():
    """`_HeldScript` bounds a whole call by the connection's socket timeout (not redis-py's
    `wait_for` on each write): a Redis that takes the call and never answers fails it with
    redis-py's TimeoutError in that time, not retried (the script may have run), and the
    connection is dropped (its reply, if one ever comes, is never read as the next one's)."""
    import redis.asyncio
    from redis.exceptions import TimeoutError as RedisTimeoutError

    async def scenario() -> tuple[float, bool, int]:
        calls = 0

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal calls
            while chunk := await reader.read(65536):
                if b"EVAL" in chunk:
                    calls += 1  # read, never answered
                else:  # the client's hello on connecting (CLIENT SETINFO …): +OK to each command
                    writer.write(b"+OK\r\n" * (chunk.count(b"\r\n*") + chunk.startswith(b"*")))

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = redis.asyncio.Redis(host="127.0.0.1", port=port, socket_timeout=0.3)
        held = effects._HeldScript()
        started = time.monotonic()
        with pytest.raises(RedisTimeoutError):
            await held(client, ["k"], ["a"])
        elapsed = time.monotonic() - started
        connected = held.connection.is_connected
        server.close()
        await client.aclose()
        return elapsed, connected, calls

    elapsed, connected, calls = asyncio.run(scenario())
    assert 0.25 <= elapsed < 3
    assert not connected
    assert calls == 1


def test_run_sync_flushes_the_services_effects_from_the_event_loop(listener):
    channel = listener.join("user.a")

    def service(n: int) -> int:
        with transaction.atomic():
            effects.broadcast("user.a", "e", {"n": n})
        return n * 2

    assert listener._run(effects.run_sync(service, n=21)) == 42
    assert events_of(listener.received(channel)) == [("e", {"n": 21})]


def test_every_caller_of_a_batch_that_fails_gets_the_error(dead_redis):
    """Frames batched together fail together: each caller hears it (and logs what it lost)."""

    async def burst() -> list:
        return await asyncio.gather(
            *(effects.abroadcast("user.a", "typing", {"i": i}) for i in range(5)), return_exceptions=True
        )

    outcomes = asyncio.run(burst())
    assert len(outcomes) == 5 and all(isinstance(o, Exception) for o in outcomes), outcomes
