"""Shared pieces of the benchmarks: timing, statistics, result rows, machine description."""

from __future__ import annotations

import os
import platform
import statistics
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
