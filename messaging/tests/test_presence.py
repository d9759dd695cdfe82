"""`/ws/presence/`: subscriptions, multi-tab, expiry of connections nobody refreshes."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from emploiplus.redis import get_redis
from messaging import presence
from messaging.tests.helpers import ws

pytestmark = pytest.mark.django_db(transaction=True)

P = "/ws/presence/"
M = "/ws/messages/"


async def contacts(user, *others, after=()) -> None:
    """Make `others` contacts of `user` (a direct conversation each), after the presence
    sockets in `after` finished connecting (so they do not follow them from the start)."""
    from messaging.services import conversation_get_or_create_direct

    for tab in after:  # frames are handled after on_connect: one round trip settles it
        await tab.call_ok("get_online_users", {"userIds": []})
        await tab.recv_event("presence_state")
    for other in others:
        await asyncio.to_thread(conversation_get_or_create_direct, user=user, other_user_id=other.pk)


async def test_it_tells_subscribers_only_when_a_user_comes_and_goes(alice, bob, charlie):
    watcher = await ws(P, alice)
    bystander = await ws(P, charlie)  # subscribed to nobody
    await contacts(alice, bob, charlie, after=(watcher, bystander))  # begun after they connected
    try:
        state = await watcher.call_ok("subscribe", {"userIds": [str(bob.pk)]})
        assert state == {"online": []}
        assert (await watcher.recv_event("presence_state"))["data"] == {"online": []}

        bob_tab = await ws(M, bob)  # a messages socket counts as presence
        online = await watcher.recv_event("user_online")
        assert online["data"]["userId"] == str(bob.pk)
        assert online["data"]["email"] == bob.email
        assert online["data"]["timestamp"].endswith("Z")

        bob_second_tab = await ws(P, bob)
        assert await watcher.nothing()  # already online: no second user_online
        state = await watcher.call_ok("get_online_users", {"userIds": [str(bob.pk), str(charlie.pk)]})
        assert state == {"online": [str(bob.pk), str(charlie.pk)]}  # charlie has a presence socket
        await watcher.recv_event("presence_state")

        await bob_tab.close()
        assert await watcher.nothing()  # one tab left: still online
        assert (await watcher.call_ok("get_online_users", {}))["online"] == [str(bob.pk)]
        await watcher.recv_event("presence_state")

        await bob_second_tab.close()
        offline = await watcher.recv_event("user_offline")
        assert offline["data"]["userId"] == str(bob.pk)
        assert presence.online_user_ids([bob.pk]) == set()
        assert await bystander.nothing()

        await watcher.call_ok("unsubscribe", {"userIds": [str(bob.pk)]})
        again = await ws(M, bob)
        assert await watcher.nothing()
        await again.close()
    finally:
        await watcher.close()
        await bystander.close()


async def test_it_refuses_malformed_presence_frames(alice):
    tab = await ws(P, alice)
    try:
        for data in ({}, {"userIds": "x"}, {"userIds": ["not-a-uuid"]}, {"userIds": [str(uuid.uuid4())] * 201}):
            frame = await tab.call("subscribe", data)
            assert frame["error"]["code"] == "invalid_data", frame
        frame = await tab.call("send_message", {})
        assert frame["error"]["code"] == "unknown_event"
        assert await tab.nothing()
    finally:
        await tab.close()


async def test_it_expires_connections_of_a_dead_process(alice, bob, settings):
    """A connection registered by a process that then died (nobody refreshes it) is
    dropped within TTL + heartbeat, and subscribers get user_offline."""
    settings.PRESENCE_TTL_SECONDS = 1
    settings.PRESENCE_HEARTBEAT_SECONDS = 0.2
    # The dead process's registration: exactly what its consumer's connect() wrote.
    r = get_redis()
    r.eval(
        presence.TOUCH, 2, presence.connections_key(bob.pk), presence.online_index_key(), 0, 1, str(bob.pk), "dead.1"
    )
    assert presence.online_user_ids([bob.pk]) == {str(bob.pk)}

    watcher = await ws(P, alice)  # a live process: heartbeats its own socket and sweeps
    await contacts(alice, bob, after=(watcher,))
    try:
        assert (await watcher.call_ok("subscribe", {"userIds": [str(bob.pk)]})) == {"online": [str(bob.pk)]}
        await watcher.recv_event("presence_state")
        offline = await watcher.recv_event("user_offline")  # within 1 s + 0.2 s (+ scheduling)
        assert offline["data"]["userId"] == str(bob.pk)
        assert presence.online_user_ids([bob.pk]) == set()
        assert r.zscore(presence.online_index_key(), str(bob.pk)) is None
        # The live socket kept itself alive across several TTLs.
        await asyncio.sleep(1.5)
        assert presence.online_user_ids([alice.pk]) == {str(alice.pk)}
        assert await watcher.nothing()
    finally:
        await watcher.close()
    assert presence.online_user_ids([alice.pk]) == set()


async def test_it_caps_subscriptions_per_connection(alice):
    from accounts.models import User
    from messaging.models import Conversation, ConversationParticipant

    tab = await ws(P, alice)
    await contacts(alice, after=(tab,))

    def a_thousand_and_one_contacts() -> list[str]:
        users = User.objects.bulk_create([User(email=f"c{i}@example.test") for i in range(1001)])
        group = Conversation.objects.create(is_group=True, created_by=alice)
        ConversationParticipant.objects.bulk_create(
            [ConversationParticipant(conversation=group, user_id=u.pk) for u in [alice, *users]]
        )
        return [str(u.pk) for u in users]

    ids = await asyncio.to_thread(a_thousand_and_one_contacts)
    try:
        for k in range(5):  # 5 × 200 = the cap of 1,000
            await tab.call_ok("subscribe", {"userIds": ids[k * 200 : (k + 1) * 200]})
            await tab.recv_event("presence_state")
        frame = await tab.call("subscribe", {"userIds": [ids[1000]]})
        assert frame["error"]["code"] == "too_many_subscriptions"
        assert await tab.nothing()
    finally:
        await tab.close()


def _transport_that_closes(app, closed: asyncio.Event, gone: type[Exception]):
    """The ASGI app behind a transport that, once `closed` is set, refuses to send like a
    server on a socket the client already closed (daphne: autobahn's Disconnected; uvicorn:
    ClientDisconnected)."""

    async def wrapped(scope, receive, send):
        async def guarded_send(message):
            if closed.is_set() and message["type"] == "websocket.send":
                raise gone("Attempt to send on a closed protocol")
            await send(message)

        return await app(scope, receive, guarded_send)

    return wrapped


@pytest.mark.parametrize("gone", ["daphne", "uvicorn"])
async def test_an_event_for_a_tab_closed_meanwhile_neither_crashes_it_nor_keeps_the_user_online(alice, bob, gone):
    """Seen over real daphne: bob closes his tab while an event for him is on its way; the
    send raised, the consumer died without its disconnect, and bob stayed online for ever."""
    from channels.testing import WebsocketCommunicator

    from accounts.testing import token_for
    from emploiplus.asgi import application
    from messaging.services import conversation_get_or_create_direct

    watcher = await ws(P, alice)
    await contacts(alice, after=(watcher,))
    direct, _ = await asyncio.to_thread(conversation_get_or_create_direct, user=alice, other_user_id=bob.pk)
    alice_tab = await ws(M, alice)
    closed = asyncio.Event()
    from autobahn.exception import Disconnected
    from uvicorn.protocols.utils import ClientDisconnected

    error = {"daphne": Disconnected, "uvicorn": ClientDisconnected}[gone]
    bob_tab = WebsocketCommunicator(_transport_that_closes(application, closed, error), f"{M}?token={token_for(bob)}")
    try:
        await watcher.call_ok("subscribe", {"userIds": [str(bob.pk)]})
        await watcher.recv_event("presence_state")
        assert (await bob_tab.connect(timeout=5))[0]
        await watcher.recv_event("user_online")

        closed.set()  # bob's browser is gone; daphne has not told the consumer yet
        await alice_tab.call_ok("send_message", {"conversationId": str(direct.id), "content": "Tu es là ?"})
        await asyncio.sleep(0.3)  # the new_message reaches bob's consumer and cannot be sent

        await bob_tab.disconnect()  # the websocket.disconnect that follows: no crash re-raised here
        assert (await watcher.recv_event("user_offline"))["data"]["userId"] == str(bob.pk)
        assert presence.online_user_ids([bob.pk]) == set()
    finally:
        await alice_tab.close()
        await watcher.close()


async def test_a_heartbeat_landing_after_a_tab_left_does_not_bring_it_back(alice, bob):
    """The interleaving of a real race, played in order: the heartbeat's TOUCH is built from
    the registry, the tab closes (LEAVE) while it is in flight, then the TOUCH lands."""
    from messaging.presence import _registry, connections_key

    watcher = await ws(P, alice)
    await contacts(alice, bob, after=(watcher,))
    try:
        await watcher.call_ok("subscribe", {"userIds": [str(bob.pk)]})
        await watcher.recv_event("presence_state")
        registry = _registry()

        # One tab: it leaves, the late TOUCH must not resurrect it (nor announce user_online).
        await presence.connect(user_id=bob.pk, email=bob.email, connection_id="tab-1")
        await watcher.recv_event("user_online")
        in_flight = list(registry.connections.items())
        await presence.disconnect(user_id=bob.pk, connection_id="tab-1")
        await watcher.recv_event("user_offline")
        await presence.heartbeat(registry.connections, snapshot=in_flight)
        assert presence.online_user_ids([bob.pk]) == set()
        assert await watcher.nothing()

        # Two tabs, one leaves: the other keeps bob online, the one that left stays gone.
        await presence.connect(user_id=bob.pk, email=bob.email, connection_id="tab-2")
        await presence.connect(user_id=bob.pk, email=bob.email, connection_id="tab-3")
        await watcher.recv_event("user_online")
        in_flight = list(registry.connections.items())
        await presence.disconnect(user_id=bob.pk, connection_id="tab-2")
        await presence.heartbeat(registry.connections, snapshot=in_flight)
        assert presence.online_user_ids([bob.pk]) == {str(bob.pk)}
        assert get_redis().zrange(connections_key(bob.pk), 0, -1) == [b"tab-3"]
        assert await watcher.nothing()
        await presence.disconnect(user_id=bob.pk, connection_id="tab-3")
        await watcher.recv_event("user_offline")
    finally:
        await watcher.close()


def test_a_presence_write_that_reaches_redis_too_late_changes_nothing(bob):
    """A TOUCH, LEAVE or SWEEP whose caller stopped waiting can still reach Redis later: the
    kernel retransmits what a socket closed on a read timeout had written, so it lands once a
    partition heals, and nobody announces what it changed (several hosts: a user who left
    during the cut was back online, unannounced, after the heal). Each carries a deadline in
    Redis time and, past it, changes nothing."""
    r = get_redis()
    seconds, micros = r.time()
    now = seconds + micros / 1_000_000
    conns, index, uid = presence.connections_key(bob.pk), presence.online_index_key(), str(bob.pk)

    assert r.eval(presence.TOUCH, 2, conns, index, now - 1, 30, uid, "tab-1") == presence.LATE
    assert presence.online_user_ids([bob.pk]) == set() and r.zscore(index, uid) is None
    assert r.eval(presence.TOUCH, 2, conns, index, now + 60, 30, uid, "tab-1") == 1  # on time
    assert r.eval(presence.LEAVE, 2, conns, index, now - 1, uid, "tab-1") == presence.LATE
    assert presence.online_user_ids([bob.pk]) == {uid}
    r.zadd(conns, {"tab-1": now - 5})  # expired, as if its process had died
    r.zadd(index, {uid: now - 5})
    assert r.eval(presence.SWEEP, 1, index, now - 1, presence.connections_key(""), 500) == presence.LATE
    assert r.zscore(index, uid) is not None  # left for a sweep on time, which announces it
    assert r.eval(presence.SWEEP, 1, index, 0, presence.connections_key(""), 500) == [uid.encode()]


async def test_a_registration_that_came_too_late_is_made_and_announced_by_the_next_heartbeat(alice, bob, settings):
    """This process's writes arrive late (its estimate of Redis' clock is set 100 s behind):
    bob's connect registers nothing and announces nothing; the next heartbeat reads Redis'
    clock again, the one after registers bob and announces user_online."""
    settings.PRESENCE_HEARTBEAT_SECONDS = 0.2
    watcher = await ws(P, alice)
    await contacts(alice, bob, after=(watcher,))
    try:
        await watcher.call_ok("subscribe", {"userIds": [str(bob.pk)]})
        await watcher.recv_event("presence_state")
        assert presence._clock.offset is not None  # set by alice's own connect
        presence._clock.offset -= 100
        assert await presence.connect(user_id=bob.pk, email=bob.email, connection_id="tab-late") is False
        assert presence.online_user_ids([bob.pk]) == set()
        online = await watcher.recv_event("user_online")  # a heartbeat or two later
        assert online["data"]["userId"] == str(bob.pk)
        assert presence.online_user_ids([bob.pk]) == {str(bob.pk)}
        await presence.disconnect(user_id=bob.pk, connection_id="tab-late")
        assert (await watcher.recv_event("user_offline"))["data"]["userId"] == str(bob.pk)
    finally:
        await watcher.close()


async def test_it_follows_contacts_without_subscribing_and_refuses_strangers(alice, bob, charlie):
    """CONTRACT §5: a presence connection gets user_online/user_offline for its contacts from the
    start (with their state at once); presence of non-contacts is refused."""
    await contacts(alice, bob)
    bob_tab = await ws(M, bob)
    await bob_tab.call_ok("leave_conversation", {"conversationId": str(uuid.uuid4())})  # connected for sure
    watcher = await ws(P, alice)
    try:
        assert (await watcher.recv_event("presence_state"))["data"] == {"online": [str(bob.pk)]}
        await bob_tab.close()
        assert (await watcher.recv_event("user_offline"))["data"]["userId"] == str(bob.pk)
        bob_tab = await ws(M, bob)
        assert (await watcher.recv_event("user_online"))["data"]["userId"] == str(bob.pk)

        charlie_tab = await ws(M, charlie)
        await charlie_tab.call_ok("leave_conversation", {"conversationId": str(uuid.uuid4())})
        assert await watcher.nothing()  # not a contact: nothing
        for event in ("subscribe", "get_online_users"):
            frame = await watcher.call(event, {"userIds": [str(charlie.pk)]})
            assert frame["error"]["code"] == "forbidden", frame
        assert (await watcher.call_ok("get_online_users", {"userIds": [str(alice.pk)]})) == {"online": [str(alice.pk)]}
        await watcher.recv_event("presence_state")
        await charlie_tab.close()
        assert await watcher.nothing()
    finally:
        await bob_tab.close()
        await watcher.close()


def test_a_connect_that_fails_on_redis_leaves_nothing_to_heartbeat(alice, settings):
    """A socket connecting while Redis is down fails to connect (the client retries); its
    connection must not stay in the process's registry, or the heartbeat would keep alice
    online for as long as the process lives once Redis is back (a `user_offline` that never
    comes: issue 16)."""
    from emploiplus.testing import private_redis

    with private_redis() as server:
        settings.REDIS_URL = server.url

        async def scenario() -> tuple[int, int, list[str]]:
            server.stop()
            with pytest.raises(Exception):  # noqa: B017 - whichever redis-py error the refused connect raises
                await presence.connect(user_id=alice.pk, email=alice.email, connection_id=f"c-{uuid.uuid4()}")
            held = presence.local_connection_count()
            await asyncio.to_thread(server.start)
            registry = presence._registry()
            await presence.heartbeat(registry.connections)  # what the heartbeat task sends next
            return held, presence.local_connection_count(), await presence.aonline_user_ids([alice.pk])

        held, still_held, online = asyncio.run(scenario())
    assert (held, still_held, online) == (0, 0, [])


def test_concurrent_lookups_of_one_loop_share_a_round_trip_and_each_get_their_own_answer(alice, bob, charlie, settings):
    """Every message sent asks who of its recipients is online: on a busy server those
    lookups go to Redis together (emploiplus.batching), each caller still gets its own."""
    from emploiplus.testing import TurnCountingProxy

    port = int(settings.REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    with TurnCountingProxy(port) as proxy:
        settings.REDIS_URL = settings.REDIS_URL.replace(f":{port}/", f":{proxy.port}/")
        connection_id = f"c-{uuid.uuid4()}"

        async def scenario() -> tuple[list[list[str]], int]:
            await presence.connect(user_id=alice.pk, email=alice.email, connection_id=connection_id)
            await presence.aonline_user_ids([bob.pk])  # this loop's connection is open
            proxy.reset()
            asked = [[alice.pk], [bob.pk], [charlie.pk, alice.pk, bob.pk], []] * 5
            answers = await asyncio.gather(*(presence.aonline_user_ids(ids) for ids in asked))
            turns = proxy.turns
            await presence.disconnect(user_id=alice.pk, connection_id=connection_id)
            return answers, turns

        answers, turns = asyncio.run(scenario())
    assert answers == [[str(alice.pk)], [], [str(alice.pk)], []] * 5
    assert turns == 1  # 15 lookups (the empty ones ask nothing), one call of the script
