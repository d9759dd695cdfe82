"""Real-time messaging (issue 4) on two daphne processes sharing PostgreSQL and Redis,
driven by real WebSocket clients (the `websockets` library) from this process.

1. Send → receive latency: CONVERSATIONS one-to-one conversations, sender on server A,
   recipient on server B, messages at a steady RATE (msg/s, all conversations together)
   for DURATION seconds; latency = recipient's `new_message` minus the moment the sender
   wrote the frame (one clock: both clients live here). Variants: WebSocket
   `send_message` vs REST `POST /api/conversations/{id}/messages/` (the same service;
   at most REST_RATE msg/s, since this process's HTTP client would queue above that).
2. Concurrent connections: CONNECTIONS authenticated `/ws/messages/` sockets held across
   the two servers; memory per connection = growth of the servers' RSS / connections;
   then the latency of messages between some of those users at that load.
3. Group fan-out: one conversation of 50 participants holding FANOUT sessions in all
   (half per server); time from the send until the last session has `new_message`
   (per-user groups: 50 group sends, coalesced by channels_redis into one Redis message
   per process and group; no session joined the room). The naive alternative — the
   guide's room-only delivery — is not compared: it misses every session that did not
   join, which the contract forbids (and 1,000 joins announce ~500,000 `user_joined`).

Sizes (BENCH_SCALE=1, what the issue asks): 200 conversations at 200 msg/s for 10 s,
10,000 connections, 1,000 fan-out sessions. BENCH_SCALE scales CONNECTIONS and DURATION;
BENCH_MESSAGING_RATE sets the rate. The client side runs in this single process and
shares the machine's cores with the servers, PostgreSQL and Redis: its own scheduling
delay is part of every figure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

from bench.common import Result, Socket, checkout, percentile, raise_fd_limit, rss_kib, summarize

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
CONVERSATIONS = 200
RATE = float(os.environ.get("BENCH_MESSAGING_RATE", "200"))
DURATION = max(3.0, 10 * SCALE)
CONNECTIONS = int(os.environ.get("BENCH_MESSAGING_CONNECTIONS", str(int(10_000 * SCALE))))
FANOUT_SESSIONS = int(os.environ.get("BENCH_MESSAGING_FANOUT", "1000"))
FANOUT_ROUNDS = 20
GROUP_SIZE = 50
# Which parts to run (comma-separated): versus, latency, rest, connections, fanout.
PARTS = set(os.environ.get("BENCH_MESSAGING_PARTS", "versus,latency,rest,connections,fanout").split(","))
# The Node/Socket.io stack this backend replaces (its own README says how to measure it).
PEER_DIR = Path(os.environ.get("BENCH_PEER_DIR", Path(__file__).resolve().parents[2] / "shared" / "peers" / "socketio"))
VERSUS_PAIRS = int(os.environ.get("BENCH_VERSUS_PAIRS", "50"))
VERSUS_MESSAGES = int(os.environ.get("BENCH_VERSUS_MESSAGES", "40"))
VERSUS_ROUNDS = int(os.environ.get("BENCH_VERSUS_ROUNDS", "2"))
# The one-conversation shape: messages per stack, sent in bursts of VERSUS_BURST, the stacks taking turns.
VERSUS_SEQUENTIAL = int(os.environ.get("BENCH_VERSUS_SEQUENTIAL", "600"))
VERSUS_BURST = int(os.environ.get("BENCH_VERSUS_BURST", "100"))
# Our stacks in the comparison (comma-separated): uvicorn, stock (uvicorn with channels_redis'
# own receive), daphne, before (uvicorn serving a checkout of each commit of BENCH_VERSUS_BEFORE:
# one or several, comma-separated, all measured in the same run).
VERSUS_STACKS = os.environ.get("BENCH_VERSUS_STACKS", "uvicorn,stock,daphne,before").split(",")
VERSUS_BEFORE = [rev for rev in os.environ.get("BENCH_VERSUS_BEFORE", "5dbce58").split(",") if rev]
# Our transports: ws (/ws/messages/), sio (Socket.IO over websocket), polling (long-polling).
VERSUS_VARIANTS = os.environ.get("BENCH_VERSUS_VARIANTS", "ws,sio,polling").split(",")
REST_RATE = 20  # urllib from a few threads of this process: above that the client queues

SERVER_ENV = {
    "WS_EVENTS_PER_10_SECONDS": "100000000",
    "RATE_LIMIT_PER_MINUTE": "100000000",
    "LOG_LEVEL": "WARNING",
}


def _users(prefix: str, n: int):
    from accounts.models import User

    User.objects.filter(email__startswith=f"{prefix}-").delete()
    User.objects.bulk_create([User(email=f"{prefix}-{i}@bench.test", full_name=f"{prefix} {i}") for i in range(n)])
    return list(User.objects.filter(email__startswith=f"{prefix}-").order_by("email"))


def _progress(text: str) -> None:
    print(f"    [messaging] {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


async def _open_many(specs, *, concurrency: int = 50) -> list[Socket]:
    """Open sockets (at most `concurrency` handshakes at a time); failures are counted."""
    gate = asyncio.Semaphore(concurrency)

    async def one(spec):
        async with gate:
            return await Socket.open(*spec)

    opened = await asyncio.gather(*(one(s) for s in specs), return_exceptions=True)
    sockets = [s for s in opened if isinstance(s, Socket)]
    if len(sockets) < len(specs):
        _progress(f"{len(specs) - len(sockets)} of {len(specs)} sockets failed to open: {opened[0]!r}")
    return sockets


async def _latency(pairs, conversations, servers, *, rate: float, duration: float, via_rest: bool = False):
    """Steady-rate messages from pairs[i][0] (server A) to pairs[i][1] (server B)."""
    import urllib.request

    from accounts.testing import token_for

    sent_at: dict[str, float] = {}
    samples: list[float] = []

    def on_recipient(sock, frame, now):
        if frame["event"] == "new_message" and frame["data"]["senderId"] != str(sock.user.pk):
            started = sent_at.pop(frame["data"]["clientMessageId"], None)
            if started is not None:
                samples.append(now - started)

    senders = await _open_many([(servers[0], a) for a, _ in pairs])
    recipients = await _open_many([(servers[1], b, on_recipient) for _, b in pairs])
    tokens = {a.pk: token_for(a) for a, _ in pairs}
    loop = asyncio.get_running_loop()

    def rest_post(cid, token, body):
        request = urllib.request.Request(
            f"http://{servers[0]}/api/conversations/{cid}/messages/",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    total = int(rate * duration)
    interval = 1 / rate
    pending = []
    start = time.perf_counter()
    for n in range(total):
        due = start + n * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        i = n % len(pairs)
        cid = str(conversations[i])
        client_id = f"{'rest' if via_rest else 'ws'}-{n}-{start}"
        body = {"conversationId": cid, "content": f"message {n}", "clientMessageId": client_id}
        sent_at[client_id] = time.perf_counter()
        if via_rest:
            pending.append(loop.run_in_executor(None, rest_post, cid, tokens[pairs[i][0].pk], body))
        else:
            await senders[i].send("send_message", body)
    await asyncio.gather(*pending)
    deadline = time.perf_counter() + 30
    while sent_at and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)
    lost = len(sent_at)
    for sock in senders + recipients:
        await sock.close()
    return samples, lost, total / (time.perf_counter() - start)


# --- versus: the Node/Socket.io peer and this project, one Node client, one run ---------------
def _install_peer() -> Path:
    """The peer's server and its npm packages, copied into the ignored .data/peer (the shared
    folder is read-only; nothing of it is committed)."""
    import shutil
    import subprocess

    from django.conf import settings

    target = Path(settings.DATA_DIR) / "peer"
    target.mkdir(parents=True, exist_ok=True)
    for name in ("server.js", "package.json", "package-lock.json"):
        shutil.copyfile(PEER_DIR / name, target / name)
    if not (target / "node_modules" / "socket.io").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=target, check=True, timeout=600
        )
    return target


@contextlib.contextmanager
def _peer_servers():
    """Two peer processes (the peer's multi-process shape: Redis adapter, one port each)."""
    import subprocess

    from django.conf import settings

    from emploiplus.testing import database_url_for_tests, free_port, stop_process

    target = _install_peer()
    ports = [free_port(), free_port()]
    env = {**os.environ, "DATABASE_URL": database_url_for_tests(), "REDIS_URL": settings.REDIS_URL}
    procs = [
        subprocess.Popen(
            ["node", "server.js"], cwd=target, env={**env, "PORT": str(port)}, stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        for port in ports
    ]  # fmt: skip
    try:
        import socket as socket_module

        for port in ports:  # listening?
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket_module.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the peer did not start") from None
                    time.sleep(0.2)
        yield [f"http://127.0.0.1:{p}" for p in ports], procs
    finally:
        for proc in procs:
            stop_process(proc)


def _cpu_ticks() -> dict[int, tuple[str, int]]:
    """pid → (command name, user + system clock ticks) of every process on the machine."""
    ticks = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks[int(entry.name)] = (comm, int(fields[11]) + int(fields[12]))
    return ticks


def _cpu_per_message(before, after, *, server_pids: set[int], client_s: float, delivered: int) -> dict[str, float]:
    """CPU milliseconds per delivered message by component: the two servers, PostgreSQL,
    Redis, the Node client (its rusage as this process's child)."""
    hz = os.sysconf("SC_CLK_TCK")
    spent = {"servers": 0.0, "postgres": 0.0, "redis": 0.0}
    for pid, (comm, ticks) in after.items():
        used = (ticks - before.get(pid, (comm, 0))[1]) / hz
        if pid in server_pids:
            spent["servers"] += used
        elif comm.startswith("postgres"):
            spent["postgres"] += used
        elif comm.startswith("redis-server"):
            spent["redis"] += used
    spent["client"] = client_s
    return {f"cpu_ms_{k}": round(1000 * v / max(1, delivered), 3) for k, v in spent.items()}


def _node_client(
    *,
    mode: str,
    urls: list[str],
    pairs_file: str | None,
    pairs: int,
    messages: int,
    transports: str = "websocket",
    server_pids: set[int] = frozenset(),
    latencies: bool = False,
) -> dict:
    import subprocess

    from django.conf import settings

    from emploiplus import jsclient

    modules = jsclient.install(settings.DATA_DIR)
    env = {
        **os.environ,
        "NODE_PATH": str(modules),
        "MODE": mode,
        "URL_A": urls[0],
        "URL_B": urls[-1],
        "PAIRS": str(pairs),
        "MESSAGES": str(messages),
        "TRANSPORTS": transports,
        **({"PAIRS_FILE": pairs_file} if pairs_file else {}),
        **({"LATENCIES": "1"} if latencies else {}),
    }
    script = Path(__file__).resolve().parent / "js" / "messaging.js"
    before, children = _cpu_ticks(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["node", str(script)], env=env, capture_output=True, text=True, timeout=900, check=True)
    after, children_after = _cpu_ticks(), resource.getrusage(resource.RUSAGE_CHILDREN)
    outcome = json.loads(out.stdout.strip().splitlines()[-1])
    client_s = (children_after.ru_utime + children_after.ru_stime) - (children.ru_utime + children.ru_stime)
    outcome.update(
        _cpu_per_message(before, after, server_pids=server_pids, client_s=client_s, delivered=outcome["delivered"])
    )
    return outcome


def _merged(outcomes: list[dict]) -> dict:
    """One outcome of several runs of the Node client (bursts): medians of all their
    latencies, throughput over their summed wall time, CPU per message weighted by deliveries."""
    latencies = [x for o in outcomes for x in o["latencies"]]
    delivered = sum(o["delivered"] for o in outcomes)
    merged = {
        "pairs": outcomes[0]["pairs"],
        "messages": sum(o["messages"] for o in outcomes),
        "delivered": delivered,
        "lost": sum(o["lost"] for o in outcomes),
        "wall_s": sum(o["wall_s"] for o in outcomes),
        "bursts": len(outcomes),
        "median_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": percentile(latencies, 99),
    }
    merged["msgs_per_s"] = delivered / merged["wall_s"] if merged["wall_s"] else 0.0
    for key in (k for k in outcomes[0] if k.startswith("cpu_ms_")):
        merged[key] = round(sum(o[key] * o["delivered"] for o in outcomes) / max(1, delivered), 3)
    return merged


def _peer_memory_per_connection(n: int) -> Result:
    """The peer's side of "memory per connection": `n` Socket.IO websocket connections to its
    /messages namespace across its two processes (raw Engine.IO v4 frames: open, namespace
    connect), RSS growth of both processes / connections."""
    import websockets

    with _peer_servers() as (urls, procs):

        async def one(url: str, i: int, gate: asyncio.Semaphore):
            async with gate:
                ws = await websockets.connect(
                    f"{url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket", open_timeout=60
                )
                assert (await ws.recv()).startswith("0")  # Engine.IO open
                await ws.send(f'40/messages,{{"userId":"idle{i}"}}')
                while not (await ws.recv()).startswith("40/messages,"):
                    pass
                return ws

        async def hold() -> tuple[int, float]:
            before = sum(rss_kib(p.pid) for p in procs)
            gate = asyncio.Semaphore(100)
            held = await asyncio.gather(*(one(urls[i % 2], i, gate) for i in range(n)))
            await asyncio.sleep(2)
            after = sum(rss_kib(p.pid) for p in procs)
            for ws in held:
                await ws.close()
            return len(held), (after - before) / max(1, len(held))

        held, per_conn_kib = asyncio.run(hold())
    _progress(f"peer: {held} connections held, {per_conn_kib:.1f} KiB each")
    return Result(
        benchmark="memory per connection",
        variant="Node/Socket.io peer (websocket)",
        size=f"{held} connections, 2 processes",
        n=held,
        median_ms=float("nan"),
        p99_ms=float("nan"),
        extra={"server_memory_per_connection_kib": round(per_conn_kib, 1)},
    )


def _versus() -> list[Result]:
    """CONTRACT's comparison (issue 13): 50 conversations × 40 sequential messages, a and b on
    two different server processes, the same Node client for the peer and for us, a round per
    stack; then one conversation, sequential, in bursts that the stacks take in turns, all of
    them up at once. Our variants: /ws/messages/, Socket.IO over websocket, Socket.IO
    long-polling only (not sequential); on uvicorn (the default) and on daphne."""
    import tempfile

    from accounts.testing import token_for
    from emploiplus.testing import asgi_server
    from messaging.services import conversation_get_or_create_direct

    users = _users("versus", 2 * VERSUS_PAIRS)
    pairs = []
    for i in range(VERSUS_PAIRS):
        a, b = users[2 * i], users[2 * i + 1]
        conversation, _ = conversation_get_or_create_direct(user=a, other_user_id=b.pk)
        pairs.append({"tokenA": token_for(a, expires_in=6 * 3600), "tokenB": token_for(b, expires_in=6 * 3600),
                      "conversationId": str(conversation.pk)})  # fmt: skip
    pairs_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)  # noqa: SIM115
    json.dump(pairs, pairs_file)
    pairs_file.close()

    rows: dict[tuple[str, str], list[dict]] = {}

    def record(shape: str, variant: str, outcome: dict) -> None:
        rows.setdefault((shape, variant), []).append(outcome)
        _progress(f"versus {shape} {variant}: {outcome['msgs_per_s']:.0f} msg/s, median {outcome['median_ms']:.1f} ms, "
                  f"p99 {outcome['p99_ms']:.1f} ms, lost {outcome['lost']}; CPU ms/msg: "
                  + ", ".join(f"{k[7:]} {v}" for k, v in outcome.items() if k.startswith("cpu_ms_")))  # fmt: skip

    # The naive alternative of the channel layer's receive (CHANNEL_LAYER_RECEIVE) in the same run.
    stacks = {
        "uvicorn": ("uvicorn", "batched", "uvicorn", None),
        "stock": ("uvicorn", "channels_redis", "uvicorn, stock receive", None),
        "daphne": ("daphne", "batched", "daphne", None),
        **{f"before:{rev}": ("uvicorn", "batched", f"uvicorn, before: {rev}", rev) for rev in VERSUS_BEFORE},
    }
    befores = [f"before:{rev}" for rev in VERSUS_BEFORE]
    stack_names = [n for name in VERSUS_STACKS for n in (befores if name == "before" else [name])]

    @contextlib.contextmanager
    def our_servers(server: str, receive: str, before: str | None):
        env = {**SERVER_ENV, "CHANNEL_LAYER_RECEIVE": receive}
        with (
            checkout(before) if before else contextlib.nullcontext() as source,
            asgi_server(server=server, source=source, **env) as (a, proc_a),
            asgi_server(server=server, source=source, **env) as (b, proc_b),
        ):
            yield [f"http://{a}", f"http://{b}"], {proc_a.pid, proc_b.pid}

    def our_variants(server: str) -> list[tuple[str, str, str]]:
        """(client mode, transports, label) of each variant asked for in VERSUS_VARIANTS."""
        variants = {
            "ws": ("ws", "websocket", "/ws/messages/"),
            "sio": ("sio", "websocket", "Socket.IO websocket"),
            "polling": ("sio", "polling", "Socket.IO long-polling"),
        }
        keys = [k for k in variants if k in VERSUS_VARIANTS and (k != "polling" or server == "uvicorn")]
        return [variants[k] for k in keys]

    # 50 conversations at once: a round per stack, the stacks alternating, so drifting load hits all.
    for _round in range(VERSUS_ROUNDS):
        with _peer_servers() as (urls, procs):
            outcome = _node_client(mode="peer", urls=urls, pairs_file=None, pairs=VERSUS_PAIRS,
                                   messages=VERSUS_MESSAGES, server_pids={p.pid for p in procs})  # fmt: skip
            record("concurrent", "Node/Socket.io peer", outcome)
        for server, receive, tag, before in (stacks[name] for name in stack_names):
            with our_servers(server, receive, before) as (urls, pids):
                for mode, transports, label in our_variants(server):
                    outcome = _node_client(mode=mode, urls=urls, pairs_file=pairs_file.name,
                                           pairs=VERSUS_PAIRS, messages=VERSUS_MESSAGES, transports=transports,
                                           server_pids=pids)  # fmt: skip
                    record("concurrent", f"{label} ({tag})", outcome)

    # One conversation, sequential: a few milliseconds a message, so the machine's drift between
    # two stacks' turns weighs more than what tells them apart. Every stack's servers are up at once
    # (idle while another is measured) and the messages go in bursts, the stacks taking turns.
    with contextlib.ExitStack() as up:
        urls, procs = up.enter_context(_peer_servers())
        turns = [("Node/Socket.io peer", dict(mode="peer", urls=urls, pairs_file=None, transports="websocket",
                                              server_pids={p.pid for p in procs}))]  # fmt: skip
        for server, receive, tag, before in (stacks[name] for name in stack_names):
            urls, pids = up.enter_context(our_servers(server, receive, before))
            for mode, transports, label in our_variants(server):
                if transports != "polling":
                    turns.append((f"{label} ({tag})", dict(mode=mode, urls=urls, pairs_file=pairs_file.name,
                                                           transports=transports, server_pids=pids)))  # fmt: skip
        bursts = max(1, VERSUS_SEQUENTIAL // VERSUS_BURST)
        runs: dict[str, list[dict]] = {label: [] for label, _ in turns}
        for burst in range(bursts):
            for label, kwargs in turns[burst % len(turns) :] + turns[: burst % len(turns)]:  # rotate who goes first
                runs[label].append(_node_client(pairs=1, messages=VERSUS_BURST, latencies=True, **kwargs))
        for label, outcomes in runs.items():
            record("sequential", label, _merged(outcomes))

    def runs_of(outcomes: list[dict]) -> str:
        bursts = outcomes[0].get("bursts")
        return f"{bursts} bursts, the stacks taking turns" if bursts else f"{len(outcomes)} run(s)"

    results = []
    for (shape, variant), outcomes in rows.items():
        peer = rows[(shape, "Node/Socket.io peer")]

        def best(key: str, data=outcomes) -> float:
            return statistics.median([o[key] for o in data])

        results.append(
            Result(
                benchmark=f"messaging vs Node/Socket.io peer ({shape})",
                variant=variant,
                size=f"{outcomes[0]['pairs']} conversation(s) × "
                f"{outcomes[0]['messages'] // outcomes[0]['pairs']} msgs, 2 server processes, " + runs_of(outcomes),
                n=sum(o["delivered"] for o in outcomes),
                median_ms=round(best("median_ms"), 2),
                p99_ms=round(best("p99_ms"), 2),
                extra={
                    "msgs_per_s": round(best("msgs_per_s"), 1),
                    "lost": sum(o["lost"] for o in outcomes),
                    "throughput_vs_peer": round(best("msgs_per_s") / best("msgs_per_s", peer), 2),
                    "median_vs_peer": round(best("median_ms") / best("median_ms", peer), 2),
                    "p99_vs_peer": round(best("p99_ms") / best("p99_ms", peer), 2),
                    **{k: round(best(k), 3) for k in outcomes[0] if k.startswith("cpu_ms_")},
                },
            )
        )
    os.unlink(pairs_file.name)
    return results


def run() -> list[Result]:
    from emploiplus.testing import asgi_server
    from messaging.services import conversation_create_group, conversation_get_or_create_direct

    fd_limit = raise_fd_limit()
    results: list[Result] = _versus() if "versus" in PARTS else []
    users = _users("msgbench", 2 * CONVERSATIONS)
    pairs = [(users[2 * i], users[2 * i + 1]) for i in range(CONVERSATIONS)]
    conversations = [conversation_get_or_create_direct(user=a, other_user_id=b.pk)[0].pk for a, b in pairs]

    with asgi_server(**SERVER_ENV) as (server_a, proc_a), asgi_server(**SERVER_ENV) as (server_b, proc_b):
        servers = (server_a, server_b)

        # 1. latency at a steady rate
        for via_rest, label in ((False, "WebSocket send_message"), (True, "REST POST (same service)")):
            if ("rest" if via_rest else "latency") not in PARTS:
                continue
            _progress(f"latency: {label}")
            duration = DURATION if not via_rest else max(3.0, DURATION / 2)
            rate = RATE if not via_rest else min(RATE, REST_RATE)
            samples, lost, achieved = asyncio.run(
                _latency(pairs, conversations, servers, rate=rate, duration=duration, via_rest=via_rest)
            )
            results.append(
                summarize(
                    "messaging send→receive latency",
                    label,
                    f"{CONVERSATIONS} convs, {rate:g} msg/s × {duration:g} s",
                    samples,
                    lost=lost,
                    achieved_rate=round(achieved, 1),
                    target="median ≤ 5 ms, p99 ≤ 25 ms",
                )
            )

        if "connections" in PARTS:
            # 2. connections held, memory per connection, latency at that load
            idle_users = _users("msgidle", CONNECTIONS)
            _progress(f"holding {CONNECTIONS} connections")

            async def hold() -> tuple[int, float, list[float], int]:
                rss_before = rss_kib(proc_a.pid) + rss_kib(proc_b.pid)
                started = time.perf_counter()
                held = await _open_many([(servers[i % 2], u) for i, u in enumerate(idle_users)], concurrency=100)
                opened_in = time.perf_counter() - started
                _progress(f"{len(held)} held after {time.perf_counter() - started:.1f} s")
                await asyncio.sleep(2)
                rss_after = rss_kib(proc_a.pid) + rss_kib(proc_b.pid)
                samples, lost, _ = await _latency(
                    pairs[:50], conversations[:50], servers, rate=min(RATE, 50), duration=max(3.0, DURATION / 2)
                )
                for sock in held:
                    await sock.close()
                per_conn = (rss_after - rss_before) * 1024 / max(1, len(held))
                return len(held), opened_in, samples, lost, per_conn

            held, opened_in, samples, lost, per_conn = asyncio.run(hold())
            results.append(
                summarize(
                    "messaging latency under held connections",
                    "WebSocket send_message",
                    f"{held} connections held, 50 convs",
                    samples,
                    lost=lost,
                    connections_held=held,
                    opened_in_s=round(opened_in, 1),
                    server_memory_per_connection_kib=round(per_conn / 1024, 1),
                    fd_limit=fd_limit,
                    target="10,000 held, median ≤ 20 ms",
                )
            )

            results.append(_peer_memory_per_connection(CONNECTIONS))

        if "fanout" in PARTS:
            # 3. fan-out to FANOUT sessions of a 50-member group
            members = _users("msgfan", GROUP_SIZE)
            group = conversation_create_group(user=members[0], participant_ids=[m.pk for m in members[1:]])

            async def fanout() -> tuple[list[float], list[float]]:
                from accounts.testing import token_for

                tokens = {m.pk: token_for(m) for m in members}
                arrivals: dict[str, list[float]] = {}

                def on_frame(sock, frame, now):
                    if frame["event"] == "new_message":
                        arrivals.setdefault(frame["data"]["clientMessageId"], []).append(now)

                specs = [
                    (servers[i % 2], members[i % GROUP_SIZE], on_frame, tokens[members[i % GROUP_SIZE].pk])
                    for i in range(FANOUT_SESSIONS)
                ]
                sessions = await _open_many(specs, concurrency=100)
                sender = await Socket.open(servers[0], members[0])
                per_user = []
                short = {"per_user": 0}
                _progress(f"fan-out: {len(sessions)} sessions open")
                for n in range(FANOUT_ROUNDS):
                    key = f"fan-{n}-{time.time()}"
                    started = time.perf_counter()
                    await sender.send(
                        "send_message", {"conversationId": str(group.pk), "content": "x", "clientMessageId": key}
                    )
                    # the sender's own socket is a session of members[0] too: FANOUT + 1 copies
                    deadline = started + 10
                    while len(arrivals.get(key, ())) < len(sessions) and time.perf_counter() < deadline:
                        await asyncio.sleep(0.001)
                    if len(arrivals.get(key, ())) >= len(sessions):
                        per_user.append(max(arrivals[key]) - started)
                    else:
                        short["per_user"] += 1
                for sock in [*sessions, sender]:
                    await sock.close()
                return per_user, short, len(sessions)

            _progress("fan-out")
            per_user, short, fan_sessions = asyncio.run(fanout())
            results.append(
                summarize(
                    "messaging group fan-out",
                    "new_message via per-user groups",
                    f"{GROUP_SIZE} members, {fan_sessions} sessions",
                    per_user,
                    rounds=FANOUT_ROUNDS,
                    rounds_incomplete_after_10s=short["per_user"],
                )
            )
    return results
