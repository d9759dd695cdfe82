"""Soak (issue 16): minutes of fixed-rate mixed traffic on the production shape of the stack,
with every operation accounted for.

The stack, as a deployment runs it: two web processes (uvicorn, one port each, so a sender
and its recipient sit on different processes), one RQ worker on every queue
(`python -m emploiplus.processes worker`) and the cron scheduler (`… processes cron`: the
minute sweeps), all on real PostgreSQL and Redis, with production limits (rate limits, WebSocket
event limits at their defaults). OneSignal is a local HTTP server started here
(notifications.testing.FakeOneSignal): every push is a real HTTP call it counts.

Traffic is open-loop: each kind of operation has a schedule of N per second (`MIX` ×
BENCH_SOAK_RATE), fired on time whatever the answers take, for BENCH_SOAK_WARMUP_SECONDS of
warm-up then BENCH_SOAK_SECONDS measured:
- `ws_message`: `send_message` on `/ws/messages/` (with a `ref`); PAIRS conversations, the
  sender on one process and the recipient on the other (half the pairs each way);
- `rest_message`: `POST /api/conversations/{id}/messages/` on the sender's process;
- REST reads: `history_read` (a conversation's messages), `feed_read`, `jobs_list`,
  `notifications_read` (unread count); REST writes: `post_create`, `post_like` (toggle);
- `webhook_job`: a signed job INSERT on `/api/webhooks/jobs/notify` whose required skill is
  held by exactly PER_GROUP candidates (score 100) → matching → one notification each, a
  push each at the fake OneSignal and a `notification` frame on each candidate's
  `/ws/notifications/` socket (held open on alternating processes);
- `webhook_duplicate`: an accepted delivery sent again (expects 200 `duplicate`).

Accounting, after the traffic and a drain of the worker (bounded by BENCH_SOAK_DRAIN_SECONDS):
- every HTTP status per kind: `http_5xx` (target 0), `unexpected_status` (any other status
  than the one each kind expects, 429 included: each user stays far below the limits), and
  transport errors (no answer);
- `lost` (target 0): an acknowledged message (ack frame / 201) missing from the database or
  never delivered to the recipient's socket, an accepted webhook whose event is not
  `processed`, whose job is not stored, or whose candidates lack their notification row,
  push delivery row `sent`, push at the fake or frame; plus `unacked` (sent, no ack) and
  duplicates (a push or a frame twice);
- REST writes: every created post in the database; likes = the parity of each user's toggles,
  `likes_count` = the rows;
- memory: VmRSS of each process (/proc) after the warm-up and at the end (and every 10 s
  between), growth in MiB, per 1,000 requests served (worker: per 1,000 jobs) and over the
  second half, with the threads and open descriptors at both ends;
- the worker: its busy share, each job function's queue wait and run time (RQ's records);
- Redis: `INFO memory` (instance-wide: other databases on the same server count too) and,
  for this database, `DBSIZE`, the bytes of its keys (`MEMORY USAGE`) and the keys by
  pattern (ids folded), with and without a TTL, before the traffic, after the drain with the
  clients gone, and after the stack stopped;
- error lines the processes logged (LOG_LEVEL=WARNING; ERROR/CRITICAL/Traceback counted),
  failed RQ jobs.

Environment (read by this bench only): BENCH_SOAK_SECONDS (150), BENCH_SOAK_WARMUP_SECONDS
(15), BENCH_SOAK_RATE (1.0: 22 operations/s in all), BENCH_SOAK_DRAIN_SECONDS (90). The full
report (keys by pattern, log excerpts) goes to bench/results/soak.json. The client runs in
this one process and shares the machine with the stack; `schedule_lag_ms_max` says how late it
fired (a late client, not a slow server).
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import Result, Socket, cpu_seconds, raise_fd_limit, rss_kib, summarize

SECONDS = float(os.environ.get("BENCH_SOAK_SECONDS", "150"))
WARMUP = float(os.environ.get("BENCH_SOAK_WARMUP_SECONDS", "15"))
RATE = float(os.environ.get("BENCH_SOAK_RATE", "1.0"))
DRAIN = float(os.environ.get("BENCH_SOAK_DRAIN_SECONDS", "90"))
SERIES_SECONDS = 10  # RSS sampled this often during the measured traffic

# Operations per second at BENCH_SOAK_RATE=1, and the status each one expects.
MIX: dict[str, float] = {
    "ws_message": 8.0,
    "rest_message": 2.0,
    "history_read": 2.0,
    "feed_read": 2.0,
    "jobs_list": 3.0,
    "notifications_read": 1.0,
    "post_create": 1.0,
    "post_like": 2.0,
    # One worker on every queue (make run's shape) forks a work horse per job: ~3 jobs per
    # webhook at ~0.2 s each on a loaded 2-core machine; 1.5/s already saturated it there.
    "webhook_job": 1.0,
    "webhook_duplicate": 0.2,
}
EXPECT = {
    "rest_message": 201,
    "history_read": 200,
    "feed_read": 200,
    "jobs_list": 200,
    "notifications_read": 200,
    "post_create": 201,
    "post_like": 200,
    "webhook_job": 202,
    "webhook_duplicate": 200,
}
PAIRS = 20  # conversations; 40 users share the REST traffic: ~20 requests/min each (limit 120)
SKILL_GROUPS = 4
PER_GROUP = 3  # candidates holding each group's skill: the notifications of one job
SEED_POSTS = 20
EMAIL_DOMAIN = "soak.bench"
RESULTS = Path(__file__).resolve().parent / "results"
SERVER_ENV = {"LOG_LEVEL": "WARNING", "DEBUG": "0"}
ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback")


def _progress(text: str) -> None:
    print(f"    [soak] {time.strftime('%H:%M:%S')} {text}", file=sys.stderr, flush=True)


# --- data -------------------------------------------------------------------------------------
def _setup() -> dict[str, Any]:
    """Users, conversations, candidates and posts of the soak (the previous run's removed)."""
    from accounts.models import Candidate, Company, Role, User
    from accounts.testing import token_for
    from feed.models import Post
    from matching.models import Job
    from matching.skills import skills_normalize
    from messaging.services import conversation_get_or_create_direct

    User.objects.filter(email__endswith=f"@{EMAIL_DOMAIN}").delete()
    company, _ = Company.objects.get_or_create(name="soak company")
    Job.objects.filter(company=company).delete()
    people = User.objects.bulk_create(
        [User(email=f"pair-{i:03d}@{EMAIL_DOMAIN}", full_name=f"Soak {i}") for i in range(2 * PAIRS)]
    )
    pairs = []
    for i in range(PAIRS):
        a, b = people[2 * i], people[2 * i + 1]
        conversation, _ = conversation_get_or_create_direct(user=a, other_user_id=b.pk)
        pairs.append((a, b, str(conversation.pk)))
    skills = [f"soakskill{g}" for g in range(SKILL_GROUPS)]
    candidates = User.objects.bulk_create(
        [
            User(email=f"cand-{g}-{k}@{EMAIL_DOMAIN}", full_name=f"Candidat {g}.{k}", role=Role.CANDIDATE)
            for g in range(SKILL_GROUPS)
            for k in range(PER_GROUP)
        ]
    )
    Candidate.objects.bulk_create(
        [
            Candidate(user=u, skills=skills_normalize([skills[n // PER_GROUP]]), experience_level="senior")
            for n, u in enumerate(candidates)
        ]
    )
    groups = [[str(u.pk) for u in candidates[g * PER_GROUP : (g + 1) * PER_GROUP]] for g in range(SKILL_GROUPS)]
    posts = Post.objects.bulk_create(
        [Post(user=people[i % len(people)], content=f"Publication de soak {i}") for i in range(SEED_POSTS)]
    )
    everyone = [*people, *candidates]
    return {
        "company": str(company.pk),
        "pairs": pairs,
        "people": people,
        "candidates": candidates,
        "groups": groups,
        "skills": skills,
        "posts": [str(p.pk) for p in posts],
        "tokens": {str(u.pk): token_for(u, expires_in=6 * 3600) for u in everyone},
    }


# --- the stack ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _stack(logs: Path):
    """FakeOneSignal, two web processes, one worker on every queue, the cron scheduler."""
    from emploiplus import effects
    from emploiplus.testing import BASE_DIR, asgi_server, stop_process, subprocess_env, until
    from notifications.testing import FakeOneSignal

    with contextlib.ExitStack() as stack:
        fake = stack.enter_context(FakeOneSignal())
        env = {**SERVER_ENV, "ONESIGNAL_API_URL": fake.url}
        files = {
            name: stack.enter_context(open(logs / f"{name}.log", "w")) for name in ("web-a", "web-b", "worker", "cron")
        }
        procs = {}
        # The worker and the scheduler boot while the web processes do.
        for name, args in (("worker", ["worker"]), ("cron", ["cron"])):
            procs[name] = subprocess.Popen(
                [sys.executable, "-m", "emploiplus.processes", *args],
                cwd=BASE_DIR,
                env=subprocess_env(**env),
                start_new_session=True,
                stdout=files[name],
                stderr=files[name],
            )
            stack.callback(stop_process, procs[name])
        a, procs["web-a"] = stack.enter_context(asgi_server(stderr=files["web-a"], **env))
        b, procs["web-b"] = stack.enter_context(asgi_server(stderr=files["web-b"], **env))
        # Stopped together at the end (each then waits for its own, already done).
        stack.callback(_stop_all, list(procs.values()), stop_process)
        connection = effects.queue("notifications").connection
        if not until(lambda: _worker_of(connection, procs["worker"].pid), within=60):
            raise RuntimeError(f"the worker did not register (see {logs / 'worker.log'})")
        yield {"servers": [a, b], "procs": procs, "fake": fake, "logs": logs, "files": files}


def _stop_all(procs: list[subprocess.Popen], stop) -> None:
    with ThreadPoolExecutor(len(procs)) as pool:
        list(pool.map(stop, procs))


def _worker_of(connection, pid: int):
    from rq import Worker

    for worker in Worker.all(connection=connection):
        if worker.pid == pid:
            return worker
    return None


def _queues_state() -> dict[str, dict[str, int]]:
    from emploiplus import effects

    out = {}
    for name in ("notifications", "emails", "sms"):
        queue = effects.queue(name)
        out[name] = {
            "waiting": queue.count,
            "started": queue.started_job_registry.count,
            "scheduled": queue.scheduled_job_registry.count,
            "deferred": queue.deferred_job_registry.count,
            "failed": queue.failed_job_registry.count,
        }
    return out


def _job_stats(since) -> dict[str, dict[str, Any]]:
    """Queue wait and run time per job function, from RQ's records of the jobs finished since
    `since` (an aware UTC datetime; finished jobs are kept for their result TTL)."""
    import statistics

    from rq.job import Job

    from emploiplus import effects

    by_function: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for name in ("notifications", "emails", "sms"):
        queue = effects.queue(name)
        ids = queue.finished_job_registry.get_job_ids()
        for job in Job.fetch_many(ids, connection=queue.connection):
            if job is None or not (job.enqueued_at and job.started_at and job.ended_at) or job.enqueued_at < since:
                continue
            wait = (job.started_at - job.enqueued_at).total_seconds()
            by_function[job.func_name].append((wait, (job.ended_at - job.started_at).total_seconds()))
    out = {}
    for function, timings in sorted(by_function.items()):
        waits = [w for w, _ in timings]
        runs = [r for _, r in timings]
        out[function] = {
            "n": len(timings),
            "wait_median_s": round(statistics.median(waits), 3),
            "wait_max_s": round(max(waits), 3),
            "run_median_s": round(statistics.median(runs), 3),
            "run_max_s": round(max(runs), 3),
        }
    return out


# --- Redis --------------------------------------------------------------------------------------
_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{12,}|\d+", re.IGNORECASE)


def key_pattern(key: str) -> str:
    """A key with its ids folded: `p:asgi:group:user.<uuid>` → `p:asgi:group:user.*`."""
    key = re.sub(r"(specific\.)[^:]+", r"\1*", key)  # channels_redis' per-process channel names
    return _ID.sub("*", key)


def redis_snapshot() -> dict[str, Any]:
    """This Redis database's keys by pattern (with / without a TTL), their bytes, the instance's memory."""
    from emploiplus.redis import get_redis

    client = get_redis()
    keys = [k.decode() for k in client.scan_iter(count=1000)]
    patterns: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    no_ttl: Counter[str] = Counter()
    total_bytes = 0
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        pipe = client.pipeline(transaction=False)
        for k in chunk:
            pipe.ttl(k)
            pipe.memory_usage(k)
        answers = pipe.execute()
        for k, ttl, size in zip(chunk, answers[0::2], answers[1::2], strict=True):
            if ttl == -2:  # expired meanwhile
                continue
            pattern = key_pattern(k)
            patterns[pattern] += 1
            sizes[pattern] += size or 0
            total_bytes += size or 0
            if ttl == -1:
                no_ttl[pattern] += 1
    memory = client.info("memory")
    return {
        "dbsize": client.dbsize(),
        "db_key_bytes": total_bytes,
        "used_memory": memory["used_memory"],
        "keys_by_pattern": dict(sorted(patterns.items())),
        "bytes_by_pattern": dict(sorted(sizes.items())),
        "keys_without_ttl_by_pattern": dict(sorted(no_ttl.items())),
    }


def _redis_growth(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Patterns whose keys without a TTL grew: what stays behind for good."""
    grown = {}
    for pattern, count in after["keys_without_ttl_by_pattern"].items():
        delta = count - before["keys_without_ttl_by_pattern"].get(pattern, 0)
        if delta > 0:
            grown[pattern] = delta
    return grown


# --- the client -------------------------------------------------------------------------------
class Http:
    """Keep-alive HTTP/1.1 connections per (thread, server). One idle for 3 s is replaced
    before use (uvicorn closes idle ones after 5 s: a request racing that close would fail
    for the client's sake, not the server's)."""

    def __init__(self) -> None:
        self.local = threading.local()

    def request(self, address: str, method: str, path: str, body: bytes | None, headers: dict[str, str]):
        conns = self.local.__dict__.setdefault("conns", {})
        conn, last = conns.pop(address, (None, 0.0))
        if conn is not None and time.monotonic() - last > 3:
            conn.close()
            conn = None
        if conn is None:
            host, port = address.split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=30)
        began = time.perf_counter()
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except Exception:
            conn.close()
            raise
        ended = time.perf_counter()
        conns[address] = (conn, time.monotonic())
        return response.status, data, began, ended


class Soak:
    def __init__(self, data: dict[str, Any], stack: dict[str, Any], *, seconds: float, warmup: float, rate: float):
        self.data, self.stack = data, stack
        self.servers: list[str] = stack["servers"]
        self.seconds, self.warmup, self.rate = seconds, warmup, rate
        self.random = random.Random(16)
        self.http = Http()
        self.pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="soak-http")
        self.tag = uuid.uuid4().hex[:8]
        self.measure_from = float("inf")
        # accounting
        self.statuses: Counter[tuple[str, int]] = Counter()
        self.transport_errors: Counter[str] = Counter()
        self.transport_examples: list[str] = []
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.served: Counter[int] = Counter()  # requests (HTTP + WS frames) per web process
        self.lag: dict[str, float] = defaultdict(float)
        self.fired: Counter[str] = Counter()
        self.messages: dict[str, dict[str, Any]] = {}  # clientMessageId → record
        self.deliveries: Counter[str] = Counter()  # clientMessageId → new_message frames at the recipient
        self.ws_errors: Counter[str] = Counter()
        self.webhooks: dict[str, dict[str, Any]] = {}  # job id → record
        self.duplicates_answered: Counter[str] = Counter()
        self.frames: dict[tuple[str, str], float] = {}  # (job id, user id) → first notification frame
        self.frame_counts: Counter[tuple[str, str]] = Counter()
        self.posts_created: list[str] = []
        self.toggles: Counter[tuple[str, str]] = Counter()
        self.unexpected_examples: list[str] = []
        self.sockets_closed: list[str] = []
        self.senders: list[Socket] = []
        self.recipients: list[Socket] = []
        self.listeners: list[Socket] = []
        self.sender_server: list[int] = []

    # --- recording ---------------------------------------------------------------------------
    def _measured(self, began: float) -> bool:
        return began >= self.measure_from

    def _record_http(self, kind: str, server: int, status: int, began: float, ended: float, body: bytes) -> None:
        self.statuses[(kind, status)] += 1
        self.served[server] += 1
        if status != EXPECT[kind] and len(self.unexpected_examples) < 20:
            self.unexpected_examples.append(f"{kind} {status} {body[:300]!r}")
        if self._measured(began):
            self.samples[kind].append(ended - began)

    async def rest(
        self, kind: str, server: int, method: str, path: str, *, user: str | None, payload=None, raw=None, headers=None
    ):
        body = raw if raw is not None else (json.dumps(payload).encode() if payload is not None else None)
        all_headers = {"Content-Type": "application/json", **(headers or {})}
        if user is not None:
            all_headers["Authorization"] = f"Bearer {self.data['tokens'][user]}"
        loop = asyncio.get_running_loop()
        try:
            status, data, began, ended = await loop.run_in_executor(
                self.pool, self.http.request, self.servers[server], method, path, body, all_headers
            )
        except Exception as exc:
            self.transport_errors[kind] += 1
            if len(self.transport_examples) < 20:
                self.transport_examples.append(f"{kind}: {exc!r}")
            return None
        self._record_http(kind, server, status, began, ended, data)
        return status, data, began

    # --- sockets -------------------------------------------------------------------------------
    def on_message_frame(self, sock, frame, now) -> None:
        if frame.get("event") == "new_message":
            data = frame["data"]
            if data.get("senderId") != str(sock.user.pk):
                cmid = data.get("clientMessageId") or ""
                self.deliveries[cmid] += 1
                record = self.messages.get(cmid)
                if record is not None and "delivered" not in record:
                    record["delivered"] = now
        elif frame.get("event") == "error" and frame.get("ref") is None:
            self.ws_errors[f"unsolicited {frame.get('error', {}).get('code')}"] += 1

    def on_notification_frame(self, sock, frame, now) -> None:
        if frame.get("event") == "notification":
            job_id = str((frame["data"].get("data") or {}).get("jobId", ""))
            key = (job_id, str(sock.user.pk))
            self.frame_counts[key] += 1
            self.frames.setdefault(key, now)

    async def open_sockets(self) -> None:
        """Pair i: the sender on process i % 2, the recipient on the other; candidates'
        notification sockets alternate."""
        for i, (a, b, _cid) in enumerate(self.data["pairs"]):
            s, r = i % 2, 1 - i % 2
            tokens = self.data["tokens"]
            self.senders.append(await Socket.open(self.servers[s], a, self.on_message_frame, tokens[str(a.pk)]))
            self.recipients.append(await Socket.open(self.servers[r], b, self.on_message_frame, tokens[str(b.pk)]))
            self.sender_server.append(s)
        for n, user in enumerate(self.data["candidates"]):
            self.listeners.append(
                await Socket.open(
                    self.servers[n % 2],
                    user,
                    self.on_notification_frame,
                    self.data["tokens"][str(user.pk)],
                    path="/ws/notifications/",
                )
            )

    def all_sockets(self) -> list[Socket]:
        return [*self.senders, *self.recipients, *self.listeners]

    async def close_sockets(self) -> None:
        for sock in self.all_sockets():
            if sock.close_code is not None:
                self.sockets_closed.append(f"{sock.user.email}: {sock.close_code}")
        await asyncio.gather(*(s.close() for s in self.all_sockets()))

    # --- operations ----------------------------------------------------------------------------
    async def op_ws_message(self, n: int) -> None:
        i = n % PAIRS
        _a, _b, cid = self.data["pairs"][i]
        cmid = f"soak-{self.tag}-ws-{n}"
        record = self.messages[cmid] = {"via": "ws", "sent": time.perf_counter()}
        try:
            answer = await self.senders[i].request(
                "send_message", {"conversationId": cid, "content": f"message {n}", "clientMessageId": cmid}
            )
            frame = await asyncio.wait_for(answer, 30)
        except Exception as exc:
            record["error"] = repr(exc)
            return
        self.served[self.sender_server[i]] += 1
        if frame["event"] == "ack":
            record["id"] = frame["data"]["id"]
            record["acked"] = time.perf_counter()
            if self._measured(record["sent"]):
                self.samples["ws_message"].append(record["acked"] - record["sent"])
        else:
            record["error"] = frame.get("error", {}).get("code")
            self.ws_errors[str(record["error"])] += 1

    async def op_rest_message(self, n: int) -> None:
        i = (n * 7) % PAIRS
        a, _b, cid = self.data["pairs"][i]
        cmid = f"soak-{self.tag}-rest-{n}"
        record = self.messages[cmid] = {"via": "rest", "sent": time.perf_counter()}
        result = await self.rest(
            "rest_message",
            self.sender_server[i],
            "POST",
            f"/api/conversations/{cid}/messages/",
            user=str(a.pk),
            payload={"content": f"message REST {n}", "clientMessageId": cmid},
        )
        if result is None:
            record["error"] = "transport"
            return
        status, body, began = result
        record["sent"] = began
        if status == 201:
            record["id"] = json.loads(body)["id"]
            record["acked"] = time.perf_counter()
        else:
            record["error"] = status

    def _someone(self) -> tuple[int, str]:
        user = self.random.choice(self.data["people"])
        return self.random.randrange(2), str(user.pk)

    async def op_history_read(self, n: int) -> None:
        a, b, cid = self.data["pairs"][n % PAIRS]
        user = str((a if n % 2 else b).pk)
        await self.rest("history_read", n % 2, "GET", f"/api/conversations/{cid}/messages/?limit=20", user=user)

    async def op_feed_read(self, n: int) -> None:
        server, user = self._someone()
        await self.rest("feed_read", server, "GET", "/api/feed/?limit=20", user=user)

    async def op_jobs_list(self, n: int) -> None:
        server, user = self._someone()
        query = "?limit=20" if n % 3 else f"?limit=20&skills={self.data['skills'][n % SKILL_GROUPS]}"
        await self.rest("jobs_list", server, "GET", f"/api/jobs/{query}", user=user)

    async def op_notifications_read(self, n: int) -> None:
        user = self.data["candidates"][n % len(self.data["candidates"])]
        await self.rest("notifications_read", n % 2, "GET", "/api/notifications/unread-count/", user=str(user.pk))

    async def op_post_create(self, n: int) -> None:
        server, user = self._someone()
        result = await self.rest(
            "post_create", server, "POST", "/api/posts/", user=user, payload={"content": f"Soak {self.tag} {n}"}
        )
        if result and result[0] == 201:
            self.posts_created.append(json.loads(result[1])["id"])

    async def op_post_like(self, n: int) -> None:
        server, user = self._someone()
        post = self.random.choice(self.data["posts"])
        result = await self.rest("post_like", server, "POST", f"/api/posts/{post}/like/", user=user)
        if result and result[0] == 200:
            self.toggles[(user, post)] += 1

    def _webhook_body(self, n: int) -> tuple[str, int, bytes]:
        from django.utils import timezone

        from matching.testing import envelope

        job_id, group = str(uuid.uuid4()), n % SKILL_GROUPS
        record = {
            "id": job_id,
            "company_id": self.data["company"],
            "title": f"Offre de soak {n}",
            "required_skills": [self.data["skills"][group]],
            "experience_level": "mid",
            "location": "Lyon",
            "status": "active",
            "updated_at": timezone.now().isoformat(),
        }
        return job_id, group, json.dumps(envelope(record)).encode()

    async def op_webhook_job(self, n: int) -> None:
        from matching.testing import sign

        job_id, group, body = self._webhook_body(n)
        result = await self.rest(
            "webhook_job",
            n % 2,
            "POST",
            "/api/webhooks/jobs/notify",
            user=None,
            raw=body,
            headers={"X-Webhook-Signature": sign(body)},
        )
        if result and result[0] == 202:
            self.webhooks[job_id] = {
                "group": group,
                "body": body,
                "posted": result[2],
                "event_id": json.loads(result[1])["event_id"],
            }

    async def op_webhook_duplicate(self, n: int) -> None:
        from matching.testing import sign

        if not self.webhooks:
            return
        job_id = self.random.choice(list(self.webhooks))
        body = self.webhooks[job_id]["body"]
        result = await self.rest(
            "webhook_duplicate",
            (n + 1) % 2,
            "POST",
            "/api/webhooks/jobs/notify",
            user=None,
            raw=body,
            headers={"X-Webhook-Signature": sign(body)},
        )
        if result and result[0] == 200:
            self.duplicates_answered[str(json.loads(result[1]).get("duplicate"))] += 1

    # --- the schedule ----------------------------------------------------------------------------
    async def schedule(self, kind: str, per_second: float, start: float, end: float, tasks: set) -> None:
        op = getattr(self, f"op_{kind}")
        n = 0
        while True:
            due = start + n / per_second
            if due >= end:
                return
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            self.lag[kind] = max(self.lag[kind], time.perf_counter() - due)
            self.fired[kind] += 1
            task = asyncio.ensure_future(op(n))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1

    async def traffic(self, on_warm) -> None:
        tasks: set = set()
        start = time.perf_counter() + 0.5
        self.measure_from = start + self.warmup
        end = self.measure_from + self.seconds
        schedules = [
            asyncio.ensure_future(self.schedule(kind, per_second * self.rate, start, end, tasks))
            for kind, per_second in MIX.items()
            if per_second * self.rate > 0
        ]

        async def warm_mark():
            await asyncio.sleep(max(0.0, self.measure_from - time.perf_counter()))
            on_warm()

        await asyncio.gather(warm_mark(), *schedules)
        _progress(f"traffic done: {sum(self.fired.values())} operations fired; waiting for {len(tasks)} in flight")
        while tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)

    # --- end of run ------------------------------------------------------------------------------
    def pushes(self) -> tuple[dict[tuple[str, str], float], Counter]:
        """(job id, user id) → arrival of the first push at the fake; and every push counted."""
        fake = self.stack["fake"]
        first: dict[tuple[str, str], float] = {}
        counts: Counter[tuple[str, str]] = Counter()
        with fake.lock:
            requests = list(fake.requests)
        for request in requests:
            if not request["delivered"]:
                continue
            body = request["json"]
            job_id = str((body.get("data") or {}).get("jobId", ""))
            for external_id in body.get("include_aliases", {}).get("external_id", []):
                counts[(job_id, external_id)] += 1
                first.setdefault((job_id, external_id), request["at"])
        return first, counts

    def expected_notifications(self) -> list[tuple[str, str]]:
        return [(job_id, uid) for job_id, w in self.webhooks.items() for uid in self.data["groups"][w["group"]]]

    async def wait_delivered(self, within: float) -> None:
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline:
            if all("delivered" in r for r in self.messages.values() if "acked" in r):
                return
            await asyncio.sleep(0.2)

    async def wait_drained(self, within: float) -> float:
        started = time.perf_counter()
        deadline = started + within
        expected = self.expected_notifications()
        while time.perf_counter() < deadline:
            first, _ = self.pushes()
            done = all(k in first and k in self.frames for k in expected)
            if done:
                state = await asyncio.to_thread(_queues_state)
                if all(q["waiting"] == 0 and q["started"] == 0 and q["deferred"] == 0 for q in state.values()):
                    return time.perf_counter() - started
            await asyncio.sleep(0.5)
        return -1.0


def _check_database(soak: Soak, push_first, push_counts) -> dict[str, Any]:
    from feed.models import Post, PostLike
    from matching.models import Job
    from messaging.models import Message
    from notifications.models import Notification, NotificationDelivery
    from webhooks.models import WebhookEvent

    out: dict[str, Any] = {}
    acked = {cmid: r for cmid, r in soak.messages.items() if "acked" in r}
    stored = set(Message.objects.filter(id__in=[r["id"] for r in acked.values()]).values_list("id", flat=True))
    stored = {str(i) for i in stored}
    not_stored = [cmid for cmid, r in acked.items() if r["id"] not in stored]
    not_delivered = [cmid for cmid, r in acked.items() if "delivered" not in r]
    out["messages"] = {
        "sent": len(soak.messages),
        "acked": len(acked),
        "unacked": len(soak.messages) - len(acked),
        "not_stored": len(not_stored),
        "not_delivered": len(not_delivered),
        "delivered_twice": sum(1 for c in soak.deliveries.values() if c > 1),
        "examples": (not_stored + not_delivered)[:10],
        "errors": [r.get("error") for r in soak.messages.values() if "acked" not in r][:10],
    }
    lost_messages = len(set(not_stored) | set(not_delivered))

    job_ids = list(soak.webhooks)
    event_status = {
        str(k): v
        for k, v in WebhookEvent.objects.filter(id__in=[w["event_id"] for w in soak.webhooks.values()]).values_list(
            "id", "status"
        )
    }
    jobs = {str(k): v for k, v in Job.objects.filter(id__in=job_ids).values_list("id", "notification_status")}
    notified = {
        (str(j), str(u))
        for j, u in Notification.objects.filter(type="job_match", data__jobId__in=job_ids).values_list(
            "data__jobId", "user_id"
        )
    }
    push_rows = Counter(
        NotificationDelivery.objects.filter(
            channel="push", notification__type="job_match", notification__data__jobId__in=job_ids
        ).values_list("status", flat=True)
    )
    expected = soak.expected_notifications()
    incomplete: Counter[str] = Counter()
    lost_webhooks = set()
    for job_id, w in soak.webhooks.items():
        checks = [
            ("event_not_processed", event_status.get(w["event_id"]) == "processed"),
            ("job_not_stored_or_not_sent", jobs.get(job_id) == "sent"),
        ]
        for uid in soak.data["groups"][w["group"]]:
            key = (job_id, uid)
            checks += [
                ("notification_row_missing", key in notified),
                ("push_missing", key in push_first),
                ("frame_missing", key in soak.frames),
            ]
        for name, ok in checks:
            if not ok:
                incomplete[name] += 1
                lost_webhooks.add(job_id)
    out["webhooks"] = {
        "accepted": len(soak.webhooks),
        "events_by_status": dict(Counter(event_status.values())),
        "expected_notifications": len(expected),
        "notification_rows": len(notified),
        "push_delivery_rows": dict(push_rows),
        "pushes_received": sum(1 for k in expected if k in push_first),
        "pushes_twice": sum(1 for k, c in push_counts.items() if c > 1),
        # No other push is expected: every message recipient holds a socket (online).
        "pushes_unexpected": sum(c for k, c in push_counts.items() if k[0] not in soak.webhooks),
        "frames_received": sum(1 for k in expected if k in soak.frames),
        "frames_twice": sum(1 for c in soak.frame_counts.values() if c > 1),
        "duplicates_answered": dict(soak.duplicates_answered),
        "incomplete": dict(incomplete),
        "lost_examples": sorted(lost_webhooks)[:10],
    }
    lost_webhook_count = len(lost_webhooks)

    created = set(Post.objects.filter(id__in=soak.posts_created).values_list("id", flat=True))
    posts = soak.data["posts"]
    likes = {(str(u), str(p)) for u, p in PostLike.objects.filter(post_id__in=posts).values_list("user_id", "post_id")}
    wrong_likes = sum(1 for key, n in soak.toggles.items() if (n % 2 == 1) != (key in likes))
    wrong_likes += sum(1 for key in likes if key not in soak.toggles)
    counts = dict(Post.objects.filter(id__in=posts).values_list("id", "likes_count"))
    rows = Counter(str(p) for _u, p in likes)
    wrong_counters = sum(1 for pid, c in counts.items() if c != rows.get(str(pid), 0))
    out["feed"] = {
        "posts_created": len(soak.posts_created),
        "posts_missing": len(soak.posts_created) - len(created),
        "like_toggles": sum(soak.toggles.values()),
        "likes_wrong": wrong_likes,
        "likes_count_wrong": wrong_counters,
    }
    out["lost"] = lost_messages + lost_webhook_count + out["feed"]["posts_missing"] + wrong_likes
    return out


def _log_errors(logs: Path) -> dict[str, Any]:
    out = {}
    for path in sorted(logs.glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        errors = [line for line in lines if ERROR_LINE.search(line)]
        warnings = [line for line in lines if "WARNING" in line]
        out[path.stem] = {
            "error_lines": len(errors),
            "warning_lines": len(warnings),
            "examples": (errors or warnings)[:5],
        }
    return out


def _threads(pid: int) -> int:
    with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def _memory(procs, samples: dict[str, dict[str, Any]], series: dict[str, list[float]]) -> dict[str, dict[str, Any]]:
    """Per process: RSS after the warm-up and at the end, growth (MiB, per 1,000 requests
    or jobs, and over the second half of the series), CPU used."""
    wall = samples["end"]["at"] - samples["start"]["at"]
    out = {}
    for name, proc in procs.items():
        start, end = samples["start"][name], samples["end"][name]
        growth = (end["rss_kib"] - start["rss_kib"]) / 1024
        half = series[name][len(series[name]) // 2 :]
        m: dict[str, Any] = {
            "pid": proc.pid,
            "start_mib": round(start["rss_kib"] / 1024, 1),
            "end_mib": round(end["rss_kib"] / 1024, 1),
            "growth_mib": round(growth, 2),
            "growth_mib_second_half": round(half[-1] - half[0], 2) if len(half) > 1 else None,
            "cpu_share": round((end["cpu_s"] - start["cpu_s"]) / wall, 3),
            # Threads and descriptors (sockets) at both ends: pools that grew under a burst
            # (HTTP_THREADS, database connections) explain RSS that is not a leak.
            "threads": [start["threads"], end["threads"]],
            "open_fds": [start["fds"], end["fds"]],
            "rss_series_mib": series[name],
        }
        if start["served"] is not None:
            m["requests"] = end["served"] - start["served"]
            m["growth_mib_per_1000_requests"] = round(growth * 1000 / max(1, m["requests"]), 3)
        if start["jobs"] is not None:
            m["jobs"] = end["jobs"] - start["jobs"]
            m["growth_mib_per_1000_jobs"] = round(growth * 1000 / max(1, m["jobs"]), 3)
            m["busy_share"] = round((end["working_s"] - start["working_s"]) / wall, 3)
        out[name] = m
    return out


def soak(
    *, seconds: float = SECONDS, warmup: float = WARMUP, rate: float = RATE, drain: float = DRAIN
) -> dict[str, Any]:
    """Run the soak; the whole report (what `run` turns into rows, bench/results/soak.json)."""
    import logging

    from emploiplus import effects

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the fake OneSignal's access log
    raise_fd_limit()
    data = _setup()
    logs = Path(tempfile.mkdtemp(prefix="emploiplus-soak-"))
    report: dict[str, Any] = {
        "seconds": seconds,
        "warmup_seconds": warmup,
        "rate": rate,
        "ops_per_second": round(sum(MIX.values()) * rate, 2),
        "mix_per_second": {k: round(v * rate, 2) for k, v in MIX.items()},
        "logs": str(logs),
    }
    started_at = datetime.now(UTC)  # RQ keeps aware UTC timestamps
    _progress(f"starting the stack (logs in {logs})")
    with _stack(logs) as stack:
        procs = stack["procs"]
        connection = effects.queue("notifications").connection
        failed_before = {q: s["failed"] for q, s in _queues_state().items()}
        redis_before = redis_snapshot()
        state = Soak(data, stack, seconds=seconds, warmup=warmup, rate=rate)
        samples: dict[str, dict[str, Any]] = {}
        series: dict[str, list[float]] = {name: [] for name in procs}

        def sample(moment: str) -> None:
            """RSS, CPU and work done of every process at `moment` (start = after the warm-up)."""
            worker = _worker_of(connection, procs["worker"].pid)
            samples[moment] = {
                name: {
                    "rss_kib": rss_kib(p.pid),
                    "cpu_s": cpu_seconds(p.pid),
                    "threads": _threads(p.pid),
                    "fds": _open_fds(p.pid),
                    "served": state.served[("web-a", "web-b").index(name)] if name.startswith("web") else None,
                    "jobs": (worker.successful_job_count + worker.failed_job_count)
                    if worker and name == "worker"
                    else None,
                    "working_s": worker.total_working_time if worker and name == "worker" else None,
                }
                for name, p in procs.items()
            }
            samples[moment]["at"] = time.perf_counter()

        async def sample_series() -> None:
            """RSS every SERIES_SECONDS from the end of the warm-up: growth that levels off
            (caches filling) or keeps its slope (a leak)."""
            await asyncio.sleep(max(0.0, state.measure_from - time.perf_counter()))
            while True:
                for name, p in procs.items():
                    series[name].append(round(rss_kib(p.pid) / 1024, 2))
                await asyncio.sleep(SERIES_SECONDS)

        def on_warm() -> None:
            sample("start")
            rss = ", ".join(f"{n} {m['rss_kib'] / 1024:.1f} MiB" for n, m in samples["start"].items() if n != "at")
            _progress(f"warm-up done; RSS {rss}")

        async def main() -> float:
            await state.open_sockets()
            _progress(
                f"{len(state.all_sockets())} sockets open; traffic for {warmup:g} + {seconds:g} s"
                f" at {report['ops_per_second']} ops/s"
            )
            sampler = asyncio.ensure_future(sample_series())
            await state.traffic(on_warm)
            sampler.cancel()
            await state.wait_delivered(20)
            drained = await state.wait_drained(drain)
            _progress(f"drained in {drained:.1f} s" if drained >= 0 else f"not drained after {drain:g} s")
            sample("end")
            await state.close_sockets()
            return drained

        report["drain_seconds"] = round(asyncio.run(main()), 1)
        state.pool.shutdown()
        report["load_average"] = [round(x, 2) for x in os.getloadavg()]
        time.sleep(2)  # the servers see the closes, presence is released
        report["queues"] = _queues_state()
        report["jobs"] = _job_stats(started_at)
        report["failed_jobs_new"] = sum(report["queues"][q]["failed"] - failed_before[q] for q in failed_before)
        redis_after = redis_snapshot()
        push_first, push_counts = state.pushes()
    redis_stopped = redis_snapshot()
    report["memory"] = _memory(procs, samples, series)
    report["redis"] = {
        "before": redis_before,
        "after_drain": redis_after,
        "after_stop": redis_stopped,
        "without_ttl_grown_after_drain": _redis_growth(redis_before, redis_after),
        "without_ttl_grown_after_stop": _redis_growth(redis_before, redis_stopped),
    }
    statuses: dict[str, dict[str, int]] = defaultdict(dict)
    for (kind, status), count in sorted(state.statuses.items()):
        statuses[kind][str(status)] = count
    report["statuses"] = dict(statuses)
    report["http_requests"] = sum(state.statuses.values())
    report["http_5xx"] = sum(c for (_k, s), c in state.statuses.items() if s >= 500)
    report["unexpected_status"] = sum(c for (k, s), c in state.statuses.items() if s != EXPECT[k] and s < 500)
    report["unexpected_examples"] = state.unexpected_examples
    report["transport_errors"] = dict(state.transport_errors)
    report["transport_examples"] = state.transport_examples
    report["ws_errors"] = dict(state.ws_errors)
    report["sockets_closed_by_server"] = state.sockets_closed
    report["fired"] = dict(state.fired)
    report["schedule_lag_ms_max"] = {k: round(v * 1000, 1) for k, v in state.lag.items()}
    report.update(_check_database(state, push_first, push_counts))
    report["log_errors"] = _log_errors(logs)
    report["latency_s"] = dict(state.samples)
    report["latency_s"]["ws_message send→recipient"] = [
        r["delivered"] - r["sent"]
        for r in state.messages.values()
        if r["via"] == "ws" and "delivered" in r and r["sent"] >= state.measure_from
    ]
    report["latency_s"]["rest_message POST→recipient"] = [
        r["delivered"] - r["sent"]
        for r in state.messages.values()
        if r["via"] == "rest" and "delivered" in r and r["sent"] >= state.measure_from
    ]
    pushes, frames = [], []
    for job_id, w in state.webhooks.items():
        if w["posted"] < state.measure_from:
            continue
        members = data["groups"][w["group"]]
        if all((job_id, u) in push_first for u in members):
            pushes.append(max(push_first[(job_id, u)] for u in members) - w["posted"])
        if all((job_id, u) in state.frames for u in members):
            frames.append(max(state.frames[(job_id, u)] for u in members) - w["posted"])
    report["latency_s"]["webhook_job POST→last push"] = pushes
    report["latency_s"]["webhook_job POST→last frame"] = frames
    return report


def _write(report: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "soak.json"
    slim = {k: v for k, v in report.items() if k != "latency_s"}
    out.write_text(json.dumps(slim, indent=2, default=str))
    return out


def rows(report: dict[str, Any]) -> list[Result]:
    size = f"{report['seconds']:g} s (+{report['warmup_seconds']:g} s warm-up), {report['ops_per_second']:g} ops/s"
    results = []
    all_samples = []
    for kind, samples in report["latency_s"].items():
        if not samples:
            continue
        base = kind.split(" ")[0]
        extra: dict[str, Any] = {}
        if kind in report["statuses"]:
            extra["statuses"] = report["statuses"][kind]
        if " " not in kind:
            all_samples += samples
            extra["per_second"] = report["mix_per_second"].get(base)
        results.append(summarize("soak", kind, size, samples, **extra))
    memory = {}
    for name, m in report["memory"].items():
        per = ""
        if "requests" in m:
            per = f", {m['growth_mib_per_1000_requests']:+} per 1k req"
        elif "jobs" in m:
            per = f", {m['growth_mib_per_1000_jobs']:+} per 1k jobs, busy {m['busy_share']:.0%}"
        half = m["growth_mib_second_half"]
        memory[name] = (
            f"{m['start_mib']}→{m['end_mib']} MiB ({m['growth_mib']:+} MiB{per};"
            f" 2nd half {'?' if half is None else f'{half:+}'}; cpu {m['cpu_share']:.0%};"
            f" threads {m['threads'][0]}→{m['threads'][1]})"
        )
    redis = report["redis"]
    results.append(
        summarize(
            "soak totals",
            "2 web + worker + cron",
            size,
            all_samples,
            requests=report["http_requests"],
            http_5xx=report["http_5xx"],
            unexpected_status=report["unexpected_status"],
            transport_errors=sum(report["transport_errors"].values()),
            lost=report["lost"],
            messages_acked=report["messages"]["acked"],
            unacked=report["messages"]["unacked"],
            webhooks_accepted=report["webhooks"]["accepted"],
            pushes=report["webhooks"]["pushes_received"],
            pushes_twice=report["webhooks"]["pushes_twice"],
            pushes_unexpected=report["webhooks"]["pushes_unexpected"],
            failed_jobs=report["failed_jobs_new"],
            error_lines=sum(v["error_lines"] for v in report["log_errors"].values()),
            drain_s=report["drain_seconds"],
            load_average=report["load_average"],
            job_wait_max_s=max((j["wait_max_s"] for j in report["jobs"].values()), default=0),
            rss=memory,
            redis_keys=f"{redis['before']['dbsize']}→{redis['after_drain']['dbsize']}"
            f" (stopped: {redis['after_stop']['dbsize']})",
            redis_db_bytes=f"{redis['before']['db_key_bytes']}→{redis['after_drain']['db_key_bytes']}",
            redis_used_memory=f"{redis['before']['used_memory']}→{redis['after_drain']['used_memory']}",
            redis_without_ttl_grown=redis["without_ttl_grown_after_stop"],
        )
    )
    return results


def run() -> list[Result]:
    report = soak()
    out = _write(report)
    _progress(f"full report: {out}")
    return rows(report)
