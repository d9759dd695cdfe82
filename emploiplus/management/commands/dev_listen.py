"""Watch a demo user's WebSockets: every frame of /ws/messages/ and /ws/notifications/, one line each.

    python manage.py dev_listen --as camille          # until Ctrl-C
    python manage.py dev_listen --as camille --count 2 --timeout 60

Connects as that user (a `dev_token` token) to the running server (`make run`, PORT) and
prints `<namespace> <event> <data as JSON>` for each frame pushed. `--count N` stops after N
frames. Refused unless DEBUG is on.
"""

from __future__ import annotations

import asyncio
import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.testing import token_for
from emploiplus import demo

NAMESPACES = ("messages", "notifications")


class Command(BaseCommand):
    help = "Print the frames a demo user receives on /ws/messages/ and /ws/notifications/ (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--as", dest="who", required=True, help="e-mail, persona (camille) or role")
        parser.add_argument("--url", default="", help="default: ws://127.0.0.1:<PORT>")
        parser.add_argument("--count", type=int, default=0, help="stop after this many frames (0: never)")
        parser.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")

    def handle(self, *args, who: str, url: str, count: int, timeout: float, **options):
        demo.require_debug("dev_listen")
        try:
            import websockets
        except ImportError as exc:  # a dev requirement (requirements-dev.txt)
            raise CommandError("dev_listen needs the websockets package (make install).") from exc
        user = demo.user_for(who)
        token = token_for(user, expires_in=86400)
        base = (url or f"ws://127.0.0.1:{settings.PORT}").rstrip("/")
        try:
            received = asyncio.run(self.listen(websockets, base, token, count, timeout, user.email))
        except TimeoutError as exc:
            raise CommandError(f"dev_listen: no more frames within {timeout:g} s") from exc
        except OSError as exc:
            raise CommandError(f"cannot connect to {base} ({exc}): is `make run` running?") from exc
        if count and received < count:
            raise CommandError(f"dev_listen: {received} of {count} frames")

    async def listen(self, websockets, base: str, token: str, count: int, timeout: float, email: str) -> int:
        queue: asyncio.Queue = asyncio.Queue()
        sockets = [await websockets.connect(f"{base}/ws/{ns}/?token={token}") for ns in NAMESPACES]
        self.stdout.write(f"listening as {email} on {', '.join(f'/ws/{ns}/' for ns in NAMESPACES)}")
        self.stdout.flush()

        async def pump(ns: str, ws) -> None:
            async for raw in ws:
                await queue.put((ns, json.loads(raw)))

        tasks = [asyncio.create_task(pump(ns, ws)) for ns, ws in zip(NAMESPACES, sockets, strict=True)]
        received = 0
        try:
            async with asyncio.timeout(timeout or None):
                while not count or received < count:
                    ns, frame = await queue.get()
                    data = json.dumps(frame.get("data"), ensure_ascii=False)
                    self.stdout.write(f"{ns} {frame.get('event')} {data}")
                    self.stdout.flush()
                    received += 1
        finally:
            for task in tasks:
                task.cancel()
            for ws in sockets:
                await ws.close()
        return received
