"""Socket.IO across server processes that share one listening socket, with no sticky sessions:
long-polling clients whose every request may land on either process, and `/ws/` and Socket.IO
clients in the same conversations."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accounts.models import User
from accounts.testing import token_for
from bench.common import cpu_seconds
from emploiplus.testing import asgi_servers, run_node
from messaging.models import Message
from messaging.services import conversation_get_or_create_direct

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JS = Path(__file__).parent / "js"
SERVER_ENV = {"WS_EVENTS_PER_10_SECONDS": "100000", "RATE_LIMIT_PER_MINUTE": "100000", "LOG_LEVEL": "WARNING"}


def pairs_file(tmp_path, n: int, *, side_a: str = "sio", side_b: str = "sio") -> Path:
    pairs = []
    for i in range(n):
        a = User.objects.create(email=f"pair{i}-a@example.test")
        b = User.objects.create(email=f"pair{i}-b@example.test")
        conversation, _ = conversation_get_or_create_direct(user=a, other_user_id=b.pk)
        pairs.append(
            {
                "tokenA": token_for(a),
                "tokenB": token_for(b),
                "conversationId": str(conversation.pk),
                "sideA": side_a,
                "sideB": side_b,
            }
        )
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps(pairs))
    return path


def check_exactly_once_in_order(result: dict, *, per_conversation: int) -> None:
    assert result["errors"] == []
    for conversation, ids in result["sent"].items():
        assert len(ids) == len(set(ids)) == per_conversation
        for side in ("a", "b"):
            got = result["received"][conversation][side]
            assert got == ids, (
                f"{conversation} {side}: {len(got)} received, {len(set(got))} distinct, in order: {got == ids}"
            )
    stored = set(map(str, Message.objects.values_list("id", flat=True)))
    assert stored == {i for ids in result["sent"].values() for i in ids}


def test_polling_clients_on_two_processes_without_sticky_sessions_lose_nothing(node, tmp_path):
    """10 pairs × 100 messages over long-polling only: every GET and POST is a new TCP
    connection (socket.io-client in Node), handed to either process by the kernel."""
    path = pairs_file(tmp_path, 10)
    with asgi_servers(2, **SERVER_ENV) as (address, procs):
        cpu_before = [cpu_seconds(p.pid) for p in procs]
        [result] = run_node(
            JS / "pairs.js",
            timeout=200,
            URL=f"http://{address}",
            PAIRS_FILE=str(path),
            MESSAGES="100",
            TRANSPORTS="polling",
        )
        cpu_used = [cpu_seconds(p.pid) - before for p, before in zip(procs, cpu_before, strict=True)]
    assert "failed" not in result, result
    check_exactly_once_in_order(result, per_conversation=100)
    # Both processes served the sessions (a process that served nothing would use ~0 s).
    assert min(cpu_used) > 0.2 * max(cpu_used), cpu_used


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_ws_and_socketio_clients_in_one_conversation_see_each_other(node, tmp_path, server):
    path = pairs_file(tmp_path, 3, side_a="ws", side_b="sio")
    with asgi_servers(2, server=server, **SERVER_ENV) as (address, _procs):
        [result] = run_node(JS / "pairs.js", URL=f"http://{address}", PAIRS_FILE=str(path), MESSAGES="20")
    assert "failed" not in result, result
    check_exactly_once_in_order(result, per_conversation=20)
