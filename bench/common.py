"""Shared pieces of the benchmarks: timing, statistics, result rows, machine description,
HTTP load against a real server, WebSocket clients, process memory."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import itertools
import json
import os
import platform
import resource
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    benchmark: str
    variant: str
    size: str
    n: int
    median_ms: float
    p99_ms: float
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summarize(benchmark: str, variant: str, size: str, samples_s: list[float], **extra: Any) -> Result:
    ms = [s * 1000 for s in samples_s]
    return Result(
        benchmark=benchmark,
        variant=variant,
        size=size,
        n=len(ms),
        median_ms=round(statistics.median(ms), 3),
        p99_ms=round(percentile(ms, 99), 3),
        extra=extra,
    )


def time_calls(fn: Callable[[], Any], *, n: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
    }


# (method, path, body, headers) of one HTTP request.
Request = tuple[str, str, bytes | None, dict[str, str]]


def http_load(address: str, requests: list[Request], *, concurrency: int, expect: int) -> tuple[list[float], float]:
    """Send every request once from `concurrency` client threads, each with its own keep-alive
    connection, all starting together; (latencies in s, wall seconds). RuntimeError if any
    answer is not `expect`."""
    host, port = address.split(":")
    latencies: list[float] = []
    errors: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)

    def client(items: list[Request]) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        mine = []
        start.wait()
        for method, path, body, headers in items:
            began = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - began)
            if response.status != expect:
                with lock:
                    errors.append(response.status)
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(requests[i::concurrency],)) for i in range(concurrency)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} unexpected statuses (expected {expect}), e.g. {errors[:5]}")
    return latencies, wall


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to tell server cost from machine load."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


@contextlib.contextmanager
def checkout(ref: str):
    """A temporary detached checkout of `ref` (e.g. the commit before a change), so that a
    benchmark measures the code before and after in the same run. Served with this venv."""
    import subprocess
    import tempfile
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    where = Path(tempfile.mkdtemp(prefix="bench-before-")) / "src"
    subprocess.run(
        ["git", "-C", str(root), "worktree", "add", "--detach", str(where), ref], check=True, capture_output=True
    )
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(root), "worktree", "remove", "--force", str(where)], capture_output=True)


def rss_kib(pid: int) -> int:
    """Resident memory of a process (Linux /proc VmRSS), KiB; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def raise_fd_limit() -> int:
    """Lift this process's open-file limit to the hard limit (thousands of client sockets)."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Socket:
    """One client session of a `/ws/` path; `on_frame(socket, frame, now)` sees every frame
    with its arrival time (time.perf_counter, the same clock as time.monotonic on Linux).
    `request(event, data)` sends the frame with a fresh `ref` and returns a future of its
    `ack` or `error` answer. `close_code` is set when the server ends the session."""

    _refs = itertools.count(1)

    def __init__(self, ws, user, on_frame):
        self.ws, self.user, self.on_frame = ws, user, on_frame
        self.pending: dict[str, asyncio.Future] = {}
        self.close_code: int | None = None
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def open(
        cls, address: str, user, on_frame=None, token: str | None = None, *, path: str = "/ws/messages/"
    ) -> Socket:
        from websockets.asyncio.client import connect

        from accounts.testing import token_for

        ws = await connect(
            f"ws://{address}{path}?token={token or token_for(user)}",
            open_timeout=60,
            ping_interval=None,
            max_queue=None,
        )
        return cls(ws, user, on_frame or (lambda *_: None))

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                frame = json.loads(raw)
                waiting = self.pending.pop(str(frame.get("ref")), None) if frame.get("ref") is not None else None
                if waiting is not None and not waiting.done() and frame.get("event") in ("ack", "error"):
                    waiting.set_result(frame)
                self.on_frame(self, frame, time.perf_counter())
        self.close_code = getattr(self.ws, "close_code", None) or -1
        for waiting in self.pending.values():
            if not waiting.done():
                waiting.set_exception(ConnectionError(f"socket closed ({self.close_code})"))

    async def send(self, event: str, data: dict[str, Any]) -> None:
        await self.ws.send(json.dumps({"event": event, "data": data}))

    async def request(self, event: str, data: dict[str, Any]) -> asyncio.Future:
        ref = str(next(self._refs))
        answer = asyncio.get_running_loop().create_future()
        self.pending[ref] = answer
        await self.ws.send(json.dumps({"event": event, "data": data, "ref": ref}))
        return answer

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self.reader.cancel()
