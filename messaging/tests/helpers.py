"""WebSocket test helpers: real ASGI application, real Redis channel layer."""

from __future__ import annotations

import json
from typing import Any

from channels.testing import WebsocketCommunicator

from accounts.testing import token_for
from emploiplus.asgi import application

TIMEOUT = 5


class Client:
    """One WebSocket session of a user (a browser tab)."""

    def __init__(self, path: str, user=None, token: str | None = None):
        token = token if token is not None else (token_for(user) if user is not None else None)
        query = f"?token={token}" if token else ""
        self.comm = WebsocketCommunicator(application, f"{path}{query}")
        self.user = user
        self.pending: list[dict[str, Any]] = []  # pushes that arrived while waiting for an ack

    async def connect(self) -> Client:
        connected, _ = await self.comm.connect(timeout=TIMEOUT)
        assert connected
        return self

    async def send(self, event: str, data: dict[str, Any] | None = None, ref: str | None = None) -> None:
        frame: dict[str, Any] = {"event": event, "data": data or {}}
        if ref is not None:
            frame["ref"] = ref
        await self.comm.send_to(text_data=json.dumps(frame))

    async def recv(self) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        return json.loads(await self.comm.receive_from(timeout=TIMEOUT))

    async def recv_event(self, event: str, *, skip: tuple[str, ...] = ()) -> dict[str, Any]:
        """The next frame, which must be `event` (frames named in `skip` are passed over)."""
        while True:
            frame = await self.recv()
            if frame["event"] in skip:
                continue
            assert frame["event"] == event, frame
            return frame

    async def call(self, event: str, data: dict[str, Any] | None = None, *, ref: str = "r1") -> dict[str, Any]:
        """Send a frame with a ref; return its ack/error (pushes meanwhile are kept for recv)."""
        await self.send(event, data, ref=ref)
        while True:
            frame = json.loads(await self.comm.receive_from(timeout=TIMEOUT))
            if frame["event"] in ("ack", "error") and frame.get("ref") == ref:
                return frame
            self.pending.append(frame)

    async def call_ok(self, event: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        frame = await self.call(event, data)
        assert frame["event"] == "ack", frame
        return frame["data"]

    async def nothing(self, timeout: float = 0.3) -> bool:
        return not self.pending and await self.comm.receive_nothing(timeout=timeout)

    async def drain(self, timeout: float = 0.3) -> list[dict[str, Any]]:
        """Every frame that arrives until `timeout` passes quietly."""
        frames, self.pending = self.pending, []
        while not await self.comm.receive_nothing(timeout=timeout):
            frames.append(json.loads(await self.comm.receive_from(timeout=TIMEOUT)))
        return frames

    async def close(self) -> None:
        await self.comm.disconnect()


async def ws(path: str, user) -> Client:
    return await Client(path, user).connect()
