"""A fake OneSignal for tests and benchmarks: a real local HTTP server (werkzeug, threaded).

It behaves like OneSignal where the pipeline depends on it: `POST /notifications` with
`Authorization: Key …`; the same `idempotency_key` twice returns the first answer and
delivers nothing new; external ids listed in `invalid` come back as `invalid_aliases`.
It counts every external id it delivered *across* idempotency keys (`id_counts`), so a
batch sent twice under two keys would show up as a count of 2.

`script` holds canned answers for the next requests (status, headers, body), e.g.
`[(429, {"Retry-After": "1"}, {...}), (500, {}, {...})]`; `on_request(payload)` runs
after the ids were counted and before the answer (a test can block there to kill the
worker mid-request).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from emploiplus.testing import free_port


class FakeOneSignal:
    def __init__(
        self, *, api_key: str = "test-onesignal-key", record_bodies: bool = True, host: str = "127.0.0.1"
    ) -> None:
        self.api_key = api_key
        self.record_bodies = record_bodies
        self.server = HTTPServer(host=host, port=free_port(), threaded=True)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []  # every HTTP call: headers + JSON body
        self.answers: dict[str, dict[str, Any]] = {}  # idempotency key → first successful answer
        self.id_counts: Counter[str] = Counter()
        self.invalid: set[str] = set()
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.on_request: Callable[[dict[str, Any]], None] | None = None

    # --- lifecycle ------------------------------------------------------------------------
    def start(self) -> FakeOneSignal:
        self.server.expect_request("/notifications", method="POST").respond_with_handler(self._handle)
        self.server.start()
        return self

    def stop(self) -> None:
        if self.server.is_running():
            self.server.clear()
            self.server.stop()

    def __enter__(self) -> FakeOneSignal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.server.host}:{self.server.port}"

    # --- observations ---------------------------------------------------------------------
    @property
    def calls(self) -> int:
        return len(self.requests)

    def delivered_calls(self) -> list[dict[str, Any]]:
        """Bodies of the calls that delivered something (first use of their key)."""
        return [r["json"] for r in self.requests if r["delivered"]]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 30, interval: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()

    # --- the endpoint ---------------------------------------------------------------------
    def _handle(self, request: Request) -> Response:
        if request.headers.get("Authorization") != f"Key {self.api_key}":
            return self._json(401, {"errors": ["Access denied. Please include an 'Authorization' header."]})
        try:
            payload = json.loads(request.get_data())
        except ValueError:
            return self._json(400, {"errors": ["Invalid JSON"]})
        record: dict[str, Any] = {
            "headers": dict(request.headers),
            "json": payload if self.record_bodies else {"idempotency_key": payload.get("idempotency_key")},
            "delivered": False,
            "at": time.monotonic(),
        }
        with self.lock:
            self.requests.append(record)
            if self.script:
                status, headers, body = self.script.pop(0)
                return self._json(status, body, headers)
            key = payload.get("idempotency_key") or str(uuid.uuid4())
            answer = self.answers.get(key)
            if answer is None:
                ids = list(payload.get("include_aliases", {}).get("external_id", []))
                invalid = [i for i in ids if i in self.invalid]
                delivered = [i for i in ids if i not in self.invalid]
                self.id_counts.update(delivered)
                record["delivered"] = True
                answer = {"id": str(uuid.uuid4()) if delivered else ""}
                if invalid:
                    answer["errors"] = {"invalid_aliases": {"external_id": invalid}}
                self.answers[key] = answer
        if self.on_request is not None:
            self.on_request(payload)
        return self._json(200, answer)

    @staticmethod
    def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
        return Response(json.dumps(body), status=status, headers=headers or {}, content_type="application/json")
