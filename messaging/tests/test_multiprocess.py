"""Two real daphne processes sharing PostgreSQL and Redis; real WebSocket clients.

Alice talks to server A, Bob to server B (two tabs). Events cross processes through the
Redis channel layer; presence through Redis keys with a TTL, so a SIGKILLed server's
users go offline within the documented bound (here TTL 2 s + heartbeat 0.5 s).
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os
import signal
import time
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from accounts.testing import token_for
from emploiplus.testing import asgi_server, stop_process
from messaging.models import Message
from messaging.services import conversation_get_or_create_direct

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TTL, HEARTBEAT = 2.0, 0.5
SERVER_ENV = {
    "PRESENCE_TTL_SECONDS": str(TTL),
    "PRESENCE_HEARTBEAT_SECONDS": str(HEARTBEAT),
    "WS_EVENTS_PER_10_SECONDS": "1000000",
}
WAIT = 10  # seconds: generous bound for any single expected frame on a loaded machine


class Tab:
    """A real WebSocket client (the `websockets` library) on one server."""

    _refs = itertools.count()

    def __init__(self, ws):
        self.ws = ws
        self.pushes: asyncio.Queue = asyncio.Queue()
        self.acks: dict[str, asyncio.Future] = {}
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(cls, address: str, path: str, user) -> Tab:
        ws = await connect(f"ws://{address}{path}?token={token_for(user)}", open_timeout=WAIT)
        return cls(ws)

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = json.loads(raw)
            if frame["event"] in ("ack", "error") and frame.get("ref") in self.acks:
                self.acks.pop(frame["ref"]).set_result(frame)
            else:
                self.on_push(frame)

    def on_push(self, frame: dict[str, Any]) -> None:
        self.pushes.put_nowait(frame)

    async def call(self, event: str, data: dict[str, Any]) -> dict[str, Any]:
        ref = f"r{next(self._refs)}"
        future = self.acks[ref] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
        frame = await asyncio.wait_for(future, WAIT)
        assert frame["event"] == "ack", frame
        return frame["data"]

    async def expect(self, event: str, *, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
        while True:
            frame = await asyncio.wait_for(self.pushes.get(), WAIT)
            if frame["event"] not in ignore:
                assert frame["event"] == event, frame
                return frame["data"]

    async def expect_id(self, event: str, id_: str) -> dict[str, Any]:
        """The `event` frame about `id_`, passing over any other frame."""
        while True:
            frame = await asyncio.wait_for(self.pushes.get(), WAIT)
            if frame["event"] == event and frame["data"].get("id") == id_:
                return frame["data"]

    async def quiet(self, seconds: float = 0.5) -> bool:
        await asyncio.sleep(seconds)
        return self.pushes.empty()

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


def test_it_talks_across_two_processes_and_expires_a_killed_one(alice, bob):
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    cid = str(conversation.pk)
    with asgi_server(**SERVER_ENV) as (server_a, _), asgi_server(**SERVER_ENV) as (server_b, proc_b):

        async def scenario() -> float:
            alice_tab = await Tab.open(server_a, "/ws/messages/", alice)
            watcher = await Tab.open(server_a, "/ws/presence/", alice)
            await watcher.expect("presence_state")  # its contacts' (bob's), at connect
            assert (await watcher.call("subscribe", {"userIds": [str(bob.pk)]})) == {"online": []}
            await watcher.expect("presence_state")

            bob_1 = await Tab.open(server_b, "/ws/messages/", bob)
            assert (await watcher.expect("user_online"))["userId"] == str(bob.pk)
            bob_2 = await Tab.open(server_b, "/ws/messages/", bob)
            assert await watcher.quiet()  # second tab: no second user_online

            await alice_tab.call("join_conversation", {"conversationId": cid})
            await bob_1.call("join_conversation", {"conversationId": cid})
            assert (await alice_tab.expect("user_joined"))["userId"] == str(bob.pk)

            await alice_tab.call("typing", {"conversationId": cid, "isTyping": True})
            assert (await bob_1.expect("user_typing"))["userId"] == str(alice.pk)

            sent = await alice_tab.call("send_message", {"conversationId": cid, "content": "Bonjour de A"})
            for tab in (bob_1, bob_2):  # both tabs on B, joined or not
                assert (await tab.expect("new_message"))["id"] == sent["id"]
            reply = await bob_2.call("send_message", {"conversationId": cid, "content": "Bonjour de B"})
            assert (await alice_tab.expect_id("new_message", reply["id"]))["senderId"] == str(bob.pk)
            await bob_1.call("mark_as_read", {"conversationId": cid})
            receipt = await alice_tab.expect("messages_read", ignore=("new_message", "message_sent"))
            assert receipt["messageIds"] == [sent["id"]] and receipt["userId"] == str(bob.pk)
            assert reply["content"] == "Bonjour de B"

            # Online until the last tab closes.
            await bob_1.close()
            assert await watcher.quiet(1.5)
            state = await watcher.call("get_online_users", {"userIds": [str(bob.pk)]})
            assert state == {"online": [str(bob.pk)]}
            await watcher.expect("presence_state")
            await bob_2.close()
            assert (await watcher.expect("user_offline"))["userId"] == str(bob.pk)

            # Bob comes back on B; B is killed: nothing closes his socket cleanly.
            bob_3 = await Tab.open(server_b, "/ws/messages/", bob)
            assert (await watcher.expect("user_online"))["userId"] == str(bob.pk)
            os.killpg(proc_b.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            assert (await asyncio.wait_for(watcher.expect("user_offline"), TTL + HEARTBEAT + WAIT))["userId"] == str(
                bob.pk
            )
            elapsed = time.monotonic() - killed_at
            await bob_3.close()
            await alice_tab.close()
            await watcher.close()
            return elapsed

        elapsed = asyncio.run(scenario())
        print(f"bob offline {elapsed:.2f} s after SIGKILL (bound {TTL + HEARTBEAT} s + sweep scheduling)")
    assert list(
        Message.objects.filter(conversation=conversation).values_list("content", flat=True).order_by("created_at")
    ) == ["Bonjour de A", "Bonjour de B"]


STRESS_MESSAGES = int(os.environ.get("MESSAGING_STRESS_MESSAGES", "10000"))
STRESS_CLIENTS = int(os.environ.get("MESSAGING_STRESS_CLIENTS", "100"))


def test_it_loses_nothing_under_load_across_two_processes(make_user):
    """STRESS_CLIENTS clients (pairs on different servers) send STRESS_MESSAGES messages in
    all: every one is stored once and reaches each session of both participants once."""
    users = [make_user(f"load{i}") for i in range(STRESS_CLIENTS)]
    pairs = [(users[i], users[i + 1]) for i in range(0, len(users), 2)]
    conversations = {
        u.pk: conversation_get_or_create_direct(user=a, other_user_id=b.pk)[0].pk for a, b in pairs for u in (a, b)
    }
    per_client = STRESS_MESSAGES // STRESS_CLIENTS
    with asgi_server(**SERVER_ENV) as (server_a, _), asgi_server(**SERVER_ENV) as (server_b, _):

        class Counting(Tab):
            def on_push(self, frame):
                if frame["event"] == "new_message":
                    self.received[frame["data"]["id"]] += 1

        async def scenario():
            tabs = []
            for i, user in enumerate(users):  # a pair's two users are on different servers
                tab = await Counting.open((server_a, server_b)[i % 2], "/ws/messages/", user)
                tab.received = collections.Counter()
                tab.user = user
                tabs.append(tab)

            async def send_all(tab) -> list[str]:
                window = asyncio.Semaphore(2)
                cid = str(conversations[tab.user.pk])

                async def one(n):
                    async with window:
                        ack = await tab.call(
                            "send_message",
                            {"conversationId": cid, "content": f"m{n}", "clientMessageId": f"{tab.user.pk}-{n}"},
                        )
                        return ack["id"]

                return await asyncio.gather(*(one(n) for n in range(per_client)))

            started = time.monotonic()
            sent = await asyncio.gather(*(send_all(t) for t in tabs))
            sending = time.monotonic() - started
            by_conversation = collections.defaultdict(set)
            for tab, ids in zip(tabs, sent, strict=True):
                by_conversation[conversations[tab.user.pk]].update(ids)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if all(sum(t.received.values()) >= len(by_conversation[conversations[t.user.pk]]) for t in tabs):
                    break
                await asyncio.sleep(0.2)
            await asyncio.sleep(0.5)  # any late duplicate would show up now
            for tab in tabs:
                await tab.close()
            return tabs, sent, by_conversation, sending

        tabs, sent, by_conversation, sending = asyncio.run(scenario())
    missing = {t.user.email: len(by_conversation[conversations[t.user.pk]] - set(t.received)) for t in tabs}
    print(f"sent in {sending:.1f} s; missing per session: {sum(missing.values())} {sorted(missing.values())[-5:]}")
    all_ids = [i for ids in sent for i in ids]
    assert len(all_ids) == len(set(all_ids)) == per_client * STRESS_CLIENTS
    assert Message.objects.count() == len(all_ids)
    assert set(map(str, Message.objects.values_list("id", flat=True))) == set(all_ids)
    for tab in tabs:
        expected = by_conversation[conversations[tab.user.pk]]
        assert set(tab.received) == expected, f"{tab.user.email}: {len(expected - set(tab.received))} missing"
        assert set(tab.received.values()) == {1}, f"{tab.user.email}: duplicates"
    print(f"{len(all_ids)} messages by {STRESS_CLIENTS} clients sent in {sending:.1f} s")


def test_it_closes_sockets_and_clears_presence_on_shutdown(alice, bob):
    """SIGTERM: the server's sockets close and its users go offline at once (TTL here
    60 s, so the sweeper could not be what announces it)."""
    env = {**SERVER_ENV, "PRESENCE_TTL_SECONDS": "60", "PRESENCE_HEARTBEAT_SECONDS": "20"}
    conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)  # bob is alice's contact
    with asgi_server(**env) as (server_a, _), asgi_server(**env) as (server_b, proc_b):

        async def scenario():
            watcher = await Tab.open(server_a, "/ws/presence/", alice)
            await watcher.expect("presence_state")  # her contacts', at connect
            await watcher.call("subscribe", {"userIds": [str(bob.pk)]})
            await watcher.expect("presence_state")
            bob_tab = await Tab.open(server_b, "/ws/messages/", bob)
            await watcher.expect("user_online")
            await asyncio.to_thread(stop_process, proc_b)
            assert proc_b.returncode == 0  # exited on SIGTERM, was not SIGKILLed
            assert (await watcher.expect("user_offline"))["userId"] == str(bob.pk)
            await asyncio.wait(
                [bob_tab.reader], timeout=WAIT
            )  # ends with ConnectionClosed: the server dropped the socket
            assert bob_tab.reader.done() and isinstance(bob_tab.reader.exception(), ConnectionClosed)
            await watcher.close()

        asyncio.run(scenario())
