"""emploiplus.effects.ChannelLayer: channels_redis with one reader task per event loop for the
process-local channels. What it must keep: every message reaches its channel once and in
order, a cancelled receive loses nobody else's messages, the reader ends when nobody waits
(and a later receive starts it again), Redis outages are retried, and it speaks channels_redis'
own format both ways (a process still on the stock layer interoperates)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import pytest
from channels.layers import channel_layers, get_channel_layer
from channels_redis.core import RedisChannelLayer
from django.conf import settings

from emploiplus import effects
from emploiplus.effects import ChannelLayer
from emploiplus.testing import RedisMonitor


@pytest.fixture
async def layer():
    layer = channel_layers.make_backend("default")
    assert type(layer) is ChannelLayer
    yield layer
    await layer.flush()
    await layer.close_pools()


@pytest.fixture
async def stock():
    config = settings.CHANNEL_LAYERS["default"]["CONFIG"]
    stock = RedisChannelLayer(**config)
    yield stock
    await stock.close_pools()


async def test_the_configured_layer_is_ours():
    assert type(get_channel_layer()) is ChannelLayer


async def test_many_channels_each_get_their_messages_once_and_in_order(layer):
    channels = [await layer.new_channel() for _ in range(40)]
    received: dict[str, list[int]] = {c: [] for c in channels}

    async def consume(channel: str) -> None:
        while len(received[channel]) < 25:
            received[channel].append((await layer.receive(channel))["n"])

    consumers = [asyncio.create_task(consume(c)) for c in channels]
    for n in range(25):
        await asyncio.gather(*(layer.send(c, {"type": "t", "n": n}) for c in channels))
    await asyncio.wait_for(asyncio.gather(*consumers), 20)
    assert all(got == list(range(25)) for got in received.values()), received
    # One reader served all 40 channels.
    assert sum(1 for t in asyncio.all_tasks() if t.get_name() == "channel-layer-reader") <= 1


async def test_a_group_send_reaches_every_member_once(layer):
    members = [await layer.new_channel() for _ in range(5)]
    for channel in members:
        await layer.group_add("room", channel)
    await layer.group_send("room", {"type": "t", "text": "salut"})
    got = await asyncio.wait_for(asyncio.gather(*(layer.receive(c) for c in members)), 10)
    assert [m["text"] for m in got] == ["salut"] * 5
    leftovers = await asyncio.gather(
        *(asyncio.wait_for(layer.receive(c), 0.3) for c in members), return_exceptions=True
    )
    assert all(isinstance(x, TimeoutError) for x in leftovers), leftovers


async def test_frames_for_this_loops_own_channels_are_handed_over_without_redis(stock):
    """A frame from an event loop reaches the channels receiving on that loop in memory: Redis
    never sees it (MONITOR shows the commands of the send script too). The process's other
    channels — one that has not received yet, one whose receive was cancelled — and another
    process's get it through Redis, as before, and every one of them gets it once."""
    layer = get_channel_layer()
    here, later, gone = [await layer.new_channel() for _ in range(3)]
    there = await stock.new_channel()  # another process
    group = f"user.{uuid.uuid4().hex}"
    for channel in (here, later, gone, there):
        await layer.group_add(group, channel)
    receiving = asyncio.create_task(layer.receive(here))
    cancelled = asyncio.create_task(layer.receive(gone))
    await asyncio.sleep(0.05)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    with RedisMonitor(settings.REDIS_URL) as monitor:
        await effects.abroadcast(group, "new_message", {"n": 1})
        got = await asyncio.wait_for(receiving, 5)
    assert (got["event"], got["data"]) == ("new_message", {"n": 1})
    sent = " ".join(monitor.commands)
    assert here not in sent and later in sent and gone in sent and there in sent, monitor.commands
    for receive in (layer.receive(later), layer.receive(gone), stock.receive(there)):
        assert (await asyncio.wait_for(receive, 5))["data"] == {"n": 1}
    nothing_more = await asyncio.gather(
        *(asyncio.wait_for(layer.receive(c), 0.3) for c in (here, later)), return_exceptions=True
    )
    assert all(isinstance(x, TimeoutError) for x in nothing_more), nothing_more
    for channel in (here, later, gone, there):
        await layer.group_discard(group, channel)
    await layer.close_pools()  # this loop's reader and connections


async def test_this_loops_channels_get_a_frame_before_redis_has_run_the_send(stock):
    """The layer knows its own channels' groups, so their frames are handed over before the
    send script is written, not once Redis has answered: here Redis holds every write
    (CLIENT PAUSE WRITE), the process's own channel has its frame meanwhile, and another
    process's channel gets it once Redis runs the script."""
    import redis

    layer = get_channel_layer()
    here, there = await layer.new_channel(), await stock.new_channel()
    group = f"user.{uuid.uuid4().hex}"
    await layer.group_add(group, here)
    await stock.group_add(group, there)
    receiving = asyncio.create_task(layer.receive(here))
    await asyncio.sleep(0.05)
    admin = redis.Redis.from_url(settings.REDIS_URL)
    admin.execute_command("CLIENT", "PAUSE", 3000, "WRITE")
    try:
        sending = asyncio.create_task(effects.abroadcast(group, "new_message", {"n": 1}))
        got = await asyncio.wait_for(receiving, 2)
        assert (got["event"], got["data"]) == ("new_message", {"n": 1})
        assert not sending.done()  # the script waits on Redis
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    await asyncio.wait_for(sending, 5)
    assert (await asyncio.wait_for(stock.receive(there), 5))["data"] == {"n": 1}
    with pytest.raises(TimeoutError):  # once only
        await asyncio.wait_for(layer.receive(here), 0.3)
    await layer.group_discard(group, here)
    await stock.group_discard(group, there)
    await layer.close_pools()


async def test_this_loops_channels_that_left_or_whose_membership_expired_get_nothing(monkeypatch):
    """What the layer hands over in memory follows the memberships Redis holds: a channel that
    left (either way) gets nothing, nor one whose membership is older than group_expiry, as
    channels_redis expires it; one that joins again gets the next frame."""
    layer = get_channel_layer()
    monkeypatch.setattr(layer, "group_expiry", 2)
    left, left_many, stale, fresh = [await layer.new_channel() for _ in range(4)]
    group = f"user.{uuid.uuid4().hex}"
    await effects.group_add_many(stale, [group])
    await asyncio.sleep(3.1)  # channels_redis' cutoff is in whole seconds: expired within group_expiry + 1 s
    for channel in (left, left_many, fresh):
        await layer.group_add(group, channel)
    await layer.group_discard(group, left)
    await effects.group_discard_many(left_many, [group])
    receives = {c: asyncio.create_task(layer.receive(c)) for c in (left, left_many, stale, fresh)}
    await asyncio.sleep(0.05)
    with RedisMonitor(settings.REDIS_URL) as monitor:
        await effects.abroadcast(group, "new_message", {"n": 1})
        assert (await asyncio.wait_for(receives[fresh], 5))["data"] == {"n": 1}
    assert not any(c in " ".join(monitor.commands) for c in receives), monitor.commands  # none through Redis
    await asyncio.sleep(0.3)
    assert not any(receives[c].done() for c in (left, left_many, stale))
    await layer.group_add(group, left)
    await effects.abroadcast(group, "new_message", {"n": 2})
    assert (await asyncio.wait_for(receives[left], 5))["data"] == {"n": 2}
    for channel in (left_many, stale):
        receives[channel].cancel()
    await asyncio.gather(*receives.values(), return_exceptions=True)
    for channel in receives:
        await layer.group_discard(group, channel)
    await layer.close_pools()


async def test_a_cancelled_receive_loses_nothing_for_the_other_channels(layer):
    gone, staying = await layer.new_channel(), await layer.new_channel()
    waiting = asyncio.create_task(layer.receive(gone))
    kept = asyncio.create_task(layer.receive(staying))
    await asyncio.sleep(0.1)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await layer.send(staying, {"type": "t", "n": 1})
    await layer.send(staying, {"type": "t", "n": 2})
    assert (await asyncio.wait_for(kept, 10))["n"] == 1
    assert (await asyncio.wait_for(layer.receive(staying), 10))["n"] == 2


async def test_the_reader_ends_when_nobody_waits_and_a_new_receive_restarts_it(layer):
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "t", "n": 1})
    assert (await asyncio.wait_for(layer.receive(channel), 10))["n"] == 1
    loop = asyncio.get_running_loop()
    reader = layer._readers[loop]
    await asyncio.wait_for(asyncio.shield(reader), layer.brpop_timeout + 5)  # ends by itself
    assert reader.done() and not reader.cancelled()
    # What arrives meanwhile waits in Redis for the next receive.
    await layer.send(channel, {"type": "t", "n": 2})
    assert (await asyncio.wait_for(layer.receive(channel), 10))["n"] == 2
    assert layer._readers[loop] is not reader


async def test_messages_sent_while_nobody_receives_arrive_in_order(layer):
    channel = await layer.new_channel()
    for n in range(700):  # more than one READ_BATCH
        await layer.send(channel, {"type": "t", "n": n})
    got = [(await asyncio.wait_for(layer.receive(channel), 10))["n"] for _ in range(700)]
    assert got == list(range(700))


async def test_it_interoperates_with_the_stock_channels_redis_layer(layer, stock):
    ours, theirs = await layer.new_channel(), await stock.new_channel()
    await stock.group_add("both", ours)
    await layer.group_add("both", theirs)
    await stock.send(ours, {"type": "t", "from": "stock"})
    await layer.send(theirs, {"type": "t", "from": "ours"})
    await stock.group_send("both", {"type": "t", "from": "stock-group"})
    assert [(await asyncio.wait_for(layer.receive(ours), 10))["from"] for _ in range(2)] == ["stock", "stock-group"]
    assert [(await asyncio.wait_for(stock.receive(theirs), 10))["from"] for _ in range(2)] == ["ours", "stock-group"]


async def test_plain_channels_are_received_as_channels_redis_does(layer, stock):
    await stock.send("plain.poll-1", {"type": "t", "n": 1})
    assert (await asyncio.wait_for(layer.receive("plain.poll-1"), 10))["n"] == 1


async def test_a_redis_outage_fails_the_waiting_receives_and_receiving_works_again_after(caplog):
    """As channels_redis' receive raises: consumers end (their clients reconnect and join their
    groups again, which a restarted Redis lost) instead of waiting forever on groups that are gone."""
    from emploiplus.testing import private_redis

    with private_redis() as server:
        config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "hosts": [server.url]}
        layer = ChannelLayer(**config)
        one, two = await layer.new_channel(), await layer.new_channel()
        waiting = [asyncio.create_task(layer.receive(c)) for c in (one, one, two)]  # two receives on one
        await asyncio.sleep(0.2)
        await asyncio.to_thread(server.stop)
        outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 15)
        assert all(isinstance(o, Exception) and not isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
        assert "Redis unreachable, 3 receive(s) fail" in caplog.text
        await asyncio.to_thread(server.start)
        sender = ChannelLayer(**config)
        await sender.send(one, {"type": "t", "n": "after"})
        assert (await asyncio.wait_for(layer.receive(one), 15))["n"] == "after"
        await sender.close_pools()
        await layer.close_pools()


async def test_a_redis_without_bzmpop_is_read_with_zpopmin_and_bzpopmin(caplog):
    """Redis before 7.0 has no BZMPOP (here: a Redis with the command renamed away): the reader
    says so once and reads as channels_redis does, in order, nothing lost."""
    from emploiplus.testing import private_redis

    with private_redis("--rename-command", "BZMPOP", '""') as server, caplog.at_level("INFO", "emploiplus.effects"):
        config = {**settings.CHANNEL_LAYERS["default"]["CONFIG"], "hosts": [server.url]}
        layer, sender = ChannelLayer(**config), ChannelLayer(**config)
        channel = await layer.new_channel()
        first = asyncio.create_task(layer.receive(channel))  # waits (BZPOPMIN) before anything is sent
        await asyncio.sleep(0.1)
        for n in range(5):
            await sender.send(channel, {"type": "t", "n": n})
        got = [(await asyncio.wait_for(first, 10))["n"]]
        got += [(await asyncio.wait_for(layer.receive(channel), 10))["n"] for _ in range(4)]
        assert got == [0, 1, 2, 3, 4]
        assert caplog.text.count("Redis has no BZMPOP") == 1
        await sender.close_pools()
        await layer.close_pools()
