"""RQ job functions for the tests of the worker, metrics, logs and Sentry (importable by workers)."""

from __future__ import annotations

import logging

log = logging.getLogger("emploiplus.tests.jobs")


def add(a: int, b: int) -> int:
    return a + b


def log_something(text: str) -> str:
    log.info("job says %s", text)
    return text


def boom(text: str = "boom job") -> None:
    raise RuntimeError(text)


def quiet_sweep() -> dict[str, int]:
    return {"requeued": 0, "abandoned": 0}


def busy_sweep() -> dict[str, int]:
    return {"requeued": 2, "abandoned": 0}
