"""Helpers of the notification tests: bulk users, waiting, real workers, WebSocket clients."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from channels.testing import WebsocketCommunicator
from django.db import connection

from accounts.models import Candidate, Role, User
from accounts.testing import token_for
from emploiplus.testing import rq_worker
from notifications.models import NotificationDelivery

WS_TIMEOUT = 10


def bulk_candidates(n: int, *, prefix: str = "c", **candidate_fields: Any) -> list[uuid.UUID]:
    """n candidate users (User + Candidate rows) in two INSERTs."""
    users = [
        User(id=uuid.uuid4(), email=f"{prefix}{i}-{uuid.uuid4().hex[:6]}@example.test", role=Role.CANDIDATE)
        for i in range(n)
    ]
    User.objects.bulk_create(users, batch_size=5000)
    Candidate.objects.bulk_create([Candidate(user=u, **candidate_fields) for u in users], batch_size=5000)
    return [u.id for u in users]


def wait_until(predicate: Callable[[], bool], *, timeout: float = 60, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
        connection.close()  # a fresh snapshot from PostgreSQL next time
    return predicate()


def rq_state() -> dict[str, Any]:
    """What RQ holds, for a failing wait to say why: `queues_health()` (waiting, active,
    scheduled, failed jobs and workers per queue) and the end of each failed job's error."""
    from rq.registry import FailedJobRegistry

    from emploiplus import effects
    from notifications.services.health import QUEUES, queues_health

    failures = {}
    for name in QUEUES:
        queue = effects.queue(name)
        for job in (queue.fetch_job(i) for i in FailedJobRegistry(queue=queue).get_job_ids()):
            if job is not None:
                failures[job.id] = (job.exc_info or "")[-300:]
    return {**queues_health(), "failures": failures}


def pending_deliveries() -> int:
    return NotificationDelivery.objects.filter(status="pending").count()


@contextlib.contextmanager
def worker(fake_url: str, *queues: str, **env: str) -> Iterator[Any]:
    """A real rqworker (with scheduler) talking to the fake OneSignal, fast backoff."""
    env = {
        "ONESIGNAL_API_URL": fake_url,
        "NOTIFICATIONS_RETRY_BASE_SECONDS": "1",
        "LOG_LEVEL": os.environ.get("NOTIFICATIONS_TEST_WORKER_LOG_LEVEL", "WARNING"),
        **env,
    }
    with rq_worker(*queues, **env) as proc:
        yield proc


def kill_worker_hard(proc) -> list[int]:
    """SIGKILL an rqworker and every process under it, as a crash or the OOM killer would.

    RQ's work-horse runs in its own process group (setpgrp), so killing the worker's
    group alone would leave the horse finishing its job."""
    pids = []

    def walk(pid: int) -> None:
        pids.append(pid)
        try:
            with open(f"/proc/{pid}/task/{pid}/children") as fh:
                children = [int(c) for c in fh.read().split()]
        except OSError:
            return
        for child in children:
            walk(child)

    walk(proc.pid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    proc.wait(10)
    return pids


class WsClient:
    """One `/ws/notifications/` session through the real ASGI app and Redis channel layer."""

    def __init__(self, user=None, token: str | None = None):
        from emploiplus.asgi import application

        token = token if token is not None else token_for(user)
        self.comm = WebsocketCommunicator(application, f"/ws/notifications/?token={token}")

    async def connect(self) -> WsClient:
        connected, _ = await self.comm.connect(timeout=WS_TIMEOUT)
        assert connected
        return self

    async def recv(self, timeout: float = WS_TIMEOUT) -> dict[str, Any]:
        return json.loads(await self.comm.receive_from(timeout=timeout))

    async def call(self, event: str, data: dict[str, Any], ref: str = "r1") -> dict[str, Any]:
        await self.comm.send_to(text_data=json.dumps({"event": event, "data": data, "ref": ref}))
        while True:
            frame = await self.recv()
            if frame.get("ref") == ref:
                return frame

    async def nothing(self, timeout: float = 0.5) -> bool:
        return await self.comm.receive_nothing(timeout=timeout)

    async def close(self) -> None:
        await self.comm.disconnect()
