"""The `/ws/…/` transport: one WebSocket, one namespace, CONTRACT §5's JSON frames.

Client → server frames are `{"event", "data", "ref"?}`; the namespace's handler
`on_<event>(data)` returns the ack payload. With a `ref`, the client gets
`{"event": "ack", "ref", "data"}` or `{"event": "error", "ref", "error": {"code", "message"}}`;
errors are sent even without a ref so a client always learns why nothing happened.
Server pushes arrive from the channel layer as `emploiplus.event` messages (see
`emploiplus.effects`) and go out as `{"event", "data"}`.

`EventConsumer.for_namespace(SomeNamespace)` is the consumer of a namespace
(`emploiplus.realtime.Namespace`: the same classes Socket.IO serves, `emploiplus.sio`).
Identity is `user`, set from the scope by the auth middleware (accounts.middleware) at the
handshake; nothing in a frame can change it.

Security behaviour:
- unauthenticated (no/bad token): accepted, then closed with 4401 (CONTRACT §5);
- the token's `exp` (+ JWT_LEEWAY_SECONDS) is enforced for the life of the connection:
  a timer closes it with 4401 at expiry, and a frame arriving after expiry is refused by
  closing with 4401 before any handler runs;
- every incoming frame (valid or not) counts against WS_EVENTS_PER_10_SECONDS per
  connection; over the limit the frame gets an `error` frame `rate_limited` and the
  connection stays open.

Life and death: a server stopping (SIGTERM) cancels every consumer — the disconnect path
(presence, `user_left`, groups) still runs and the client gets 1001; a consumer that crashes
releases its presence before dying (its heartbeat would otherwise keep the user online).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
from typing import Any, ClassVar

from autobahn.exception import Disconnected as _DaphneDisconnected
from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from emploiplus import effects, metrics
from emploiplus import sentry as error_reporting
from emploiplus.errors import ApplicationError
from emploiplus.realtime import (
    MAX_FRAME_BYTES,
    EventWindow,
    Namespace,
    error_body,
    expires_at,
    frame_too_large_error,
    rate_limited_error,
    unexpected_error_body,
)

log = logging.getLogger(__name__)

# What the servers raise when a frame is sent on a WebSocket the client already closed:
# daphne autobahn's Disconnected, uvicorn's ClientDisconnected (an OSError, as the ASGI spec
# asks of servers since 2.4).
ClientGone = (_DaphneDisconnected, OSError)


async def send_or_drop(consumer: AsyncWebsocketConsumer, text: str) -> bool:
    """Send a text frame; False (dropped) when the client is already gone: ClientGone, or
    uvicorn's RuntimeError("Unexpected ASGI message 'websocket.send', after sending
    'websocket.close' …") for a send racing our own close. Every consumer sends through this."""
    try:
        await consumer.send(text_data=text)
    except ClientGone:
        return False
    except RuntimeError as exc:
        if "after sending 'websocket.close'" not in str(exc):
            raise
        return False
    return True


CLOSE_UNAUTHENTICATED = 4401
CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011


def _ref_of(text_data: str | None) -> str | int | None:
    """Best-effort `ref` of a frame we refuse without handling (so the client can match it)."""
    if not text_data or len(text_data) > MAX_FRAME_BYTES:
        return None
    try:
        ref = json.loads(text_data).get("ref")
    except (ValueError, AttributeError, RecursionError):
        return None
    return ref if isinstance(ref, (str, int)) else None


async def dispatch_without_connection_hop(consumer: AsyncWebsocketConsumer, message: dict[str, Any]) -> None:
    """AsyncConsumer.dispatch without its `aclose_old_connections()`: a thread hop before every
    frame and every channel-layer message (~8 % of a message's CPU, py-spy under
    `python -m bench messaging`). Our consumers touch the database only through
    `emploiplus.effects.run_sync`, whose thread checks its connection before and after. An
    exception is reported at once (the task may end much later: emploiplus.sentry)."""
    handler = getattr(consumer, get_handler_name(message), None)
    if handler is None:
        raise ValueError(f"No handler for message type {message['type']}")
    try:
        await handler(message)
    except Exception:
        error_reporting.capture_exception()
        raise


async def handle_client_frames(consumer: AsyncWebsocketConsumer, receive, *, then=None) -> None:
    """The ASGI messages from the client, awaited and handled in turn by the calling task until
    the consumer stops (StopConsumer). Channels' `await_many_dispatch` instead waits on the
    client and the consumer's channel with `asyncio.wait` and a new task per message: three
    loop turns before a frame is handled. `then()`, if given, runs once the first
    message (websocket.connect, always the first: ASGI) has been handled."""
    try:
        await consumer.dispatch(await receive())
        if then is not None:
            then()
        while True:
            await consumer.dispatch(await receive())
    except StopConsumer:
        pass


async def serve_until_stopped(consumer, serve, *, stopping, failed) -> None:
    """Await `serve` (a consumer's whole life) and end it the way both transports end one.

    - The server stopping cancels it: `stopping()` runs (the disconnect path, then a 1001
      close for the client), and the cancellation goes on.
    - Its channel failing (`consumer._channel_failed`, set before the consumer's task was
      cancelled for it: Redis gone) and any other error end it with that error, after
      `failed()` (the disconnect path, best effort): the server closes the socket and the
      client reconnects, rather than staying connected and deaf.
    """
    try:
        return await serve
    except asyncio.CancelledError:
        error = consumer.__dict__.get("_channel_failed")
        if error is None:  # the server is stopping
            with contextlib.suppress(Exception):
                await stopping()
            raise
        asyncio.current_task().uncancel()  # the channel failure's cancellation, for its error
    except Exception as exc:
        error = exc
    with contextlib.suppress(Exception):
        await failed()
    raise error


class EventConsumer(AsyncWebsocketConsumer):
    namespace_class: ClassVar[type[Namespace]]

    @classmethod
    def for_namespace(cls, namespace_class: type[Namespace]) -> type[EventConsumer]:
        return type(f"{namespace_class.__name__}Consumer", (cls,), {"namespace_class": namespace_class})

    # --- the Connection a namespace sees (emploiplus.realtime) -------------------------------
    @property
    def connection_id(self) -> str:
        return self.channel_name

    async def join(self, groups: list[str]) -> None:
        await effects.group_add_many(self.channel_name, groups)

    async def leave(self, groups: list[str]) -> None:
        await effects.group_discard_many(self.channel_name, groups)

    async def emit(self, event: str, data: dict[str, Any]) -> None:
        await self.send_frame({"event": event, "data": data})

    async def track_presence(self) -> None:
        from messaging import presence

        await presence.connect(user_id=self.user.pk, email=self.user.email or "", connection_id=self.connection_id)
        self._tracked = True

    async def untrack_presence(self) -> None:
        from messaging import presence

        self._tracked = False
        try:
            await presence.disconnect(user_id=self.user.pk, connection_id=self.connection_id)
        except Exception:  # Redis gone: the TTL expires the connection
            log.warning("presence disconnect failed", exc_info=True)

    # --- connection lifecycle -------------------------------------------------------
    async def dispatch(self, message: dict[str, Any]) -> None:
        await dispatch_without_connection_hop(self, message)

    async def __call__(self, scope, receive, send):
        await serve_until_stopped(self, self._serve(scope, receive, send), stopping=self._stopping, failed=self._failed)

    def _open(self) -> bool:
        return getattr(self, "namespace", None) is not None and not getattr(self, "_disconnected", False)

    async def _stopping(self) -> None:
        if self._open():
            with contextlib.suppress(Exception):
                await self.disconnect(CLOSE_GOING_AWAY)
            with contextlib.suppress(Exception):
                await self.close(code=CLOSE_GOING_AWAY)

    async def _failed(self) -> None:
        if self._open():
            await self.disconnect(CLOSE_INTERNAL_ERROR)

    async def _serve(self, scope, receive, send) -> None:
        """Channels' `AsyncConsumer.__call__` with another loop than its `await_many_dispatch`
        (`handle_client_frames`), which also holds channel-layer messages back while a client
        frame's handler runs. Here what the channel layer delivers is handled as it comes by
        one task of its own (`_forward_channel`), started once `connect` has accepted a user —
        as the Socket.IO transport forwards a namespace's channel (emploiplus/sio/websocket.py).
        So a `new_message` reaches a client while that client's own send is still being
        stored."""
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = await self.channel_layer.new_channel()
        self.channel_receive = functools.partial(self.channel_layer.receive, self.channel_name)
        self.base_send = send
        self._channel_failed: BaseException | None = None
        forwarder: asyncio.Task | None = None

        def forward() -> None:
            nonlocal forwarder
            if getattr(self, "namespace", None) is not None:  # a user, accepted
                forwarder = asyncio.ensure_future(self._forward_channel(asyncio.current_task()))

        try:
            await handle_client_frames(self, receive, then=forward)
        finally:
            if forwarder is not None:
                forwarder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await forwarder

    async def _forward_channel(self, consumer: asyncio.Task) -> None:
        """The channel layer's messages, one at a time. If receiving or handling one fails (Redis
        gone: emploiplus.effects.ChannelLayer), the consumer ends with that error, as it would
        in Channels' own loop: `__call__` raises it once this cancels `consumer`."""
        try:
            while True:
                await self.dispatch(await self.channel_receive())
        except Exception as exc:
            self._channel_failed = exc
            consumer.cancel()

    async def connect(self) -> None:
        """The namespace's `on_connect` runs before the handshake completes, as Socket.IO's
        runs before its CONNECT answer: a client whose handshake has completed is in its groups
        already, so it gets every `new_message` sent from then on (a message sent to it right
        after its handshake, on another process, found it in no group before). Frames that
        `on_connect` emits (`presence_state`) follow the accept."""
        self.user = self.scope.get("user")
        self.claims = self.scope.get("claims")
        self.namespace: Namespace | None = None
        self._window = EventWindow()
        self._expires_at = expires_at(self.claims)
        self._expiry_task: asyncio.Task | None = None
        if self.user is None:
            await self._accept()
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        self.namespace = self.namespace_class(self)
        self._early: list[dict[str, Any]] | None = []
        try:
            await self.namespace.on_connect()
        finally:  # also when it failed: the client then gets 1011, as from any handler that fails
            await self._accept()
            early, self._early = self._early, None
        if self._expires_at is not None:
            self._expiry_task = asyncio.ensure_future(self._close_at(self._expires_at))
        for frame in early:
            await self.send_frame(frame)

    async def _accept(self) -> None:
        await self.accept(subprotocol=self.scope.get("subprotocol"))
        self._metrics_namespace = metrics.ws_opened(self.scope)

    async def _close_at(self, when: float) -> None:
        await asyncio.sleep(max(0.0, when - time.time()))
        await self._close_expired()

    async def _close_expired(self) -> None:
        if not getattr(self, "_expired", False):
            self._expired = True
            await self.close(code=CLOSE_UNAUTHENTICATED)

    async def disconnect(self, code: int) -> None:
        metrics.ws_closed(self.__dict__.pop("_metrics_namespace", None))
        self._disconnected = True
        task = getattr(self, "_expiry_task", None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        namespace = getattr(self, "namespace", None)
        if namespace is not None:
            try:
                await namespace.on_disconnect()
            finally:
                if getattr(self, "_tracked", False):
                    await self.untrack_presence()
                await namespace.leave_all()

    # --- frames in ------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.namespace is None:
            return
        if getattr(self, "_expired", False) or (self._expires_at is not None and time.time() >= self._expires_at):
            await self._close_expired()
            return
        ref = None
        try:
            if self._window.over():
                ref = _ref_of(text_data)
                raise rate_limited_error()
            if text_data is None:
                raise ApplicationError("invalid_frame", "Frames must be JSON text.")
            if len(text_data) > MAX_FRAME_BYTES // 4 and len(text_data.encode()) > MAX_FRAME_BYTES:
                raise frame_too_large_error()
            try:
                frame = json.loads(text_data)
            except (ValueError, RecursionError) as exc:  # RecursionError: nesting too deep
                raise ApplicationError("invalid_json", "Frame is not valid JSON.") from exc
            if not isinstance(frame, dict):
                raise ApplicationError("invalid_frame", "Frame must be a JSON object.")
            ref = frame.get("ref")
            if ref is not None and not isinstance(ref, (str, int)):
                ref = None
            metrics.ws_received(self._metrics_namespace, frame.get("event"), self.namespace.handled_events)
            result = await self.namespace.handle(frame.get("event"), frame.get("data"))
        except ApplicationError as exc:
            await self.send_frame({"event": "error", "ref": ref, "error": error_body(exc)})
            return
        except Exception as exc:
            await self.send_frame({"event": "error", "ref": ref, "error": unexpected_error_body(exc)})
            return
        if ref is not None:
            await self.send_frame({"event": "ack", "ref": ref, "data": result})

    # --- frames out -----------------------------------------------------------------
    async def send_frame(self, frame: dict[str, Any]) -> None:
        if getattr(self, "_early", None) is not None:  # the handshake is not complete yet
            self._early.append(frame)
            return
        text = json.dumps(frame, separators=(",", ":"), default=str)
        if await send_or_drop(self, text):
            metrics.ws_sent(getattr(self, "_metrics_namespace", None), frame.get("event"))
        else:
            # The client closed between this event's arrival and its send. Dropping the frame
            # is all there is to do: the websocket.disconnect message that follows runs the
            # cleanup (presence, rooms). Letting it raise would kill the consumer and skip it.
            log.debug("frame dropped: the client is gone")

    async def emploiplus_event(self, message: dict[str, Any]) -> None:  # type "emploiplus.event"
        """Channel-layer message of type `emploiplus.event` → the namespace → a JSON frame."""
        if self.namespace is not None:
            await self.namespace.deliver(message)
