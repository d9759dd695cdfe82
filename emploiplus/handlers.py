"""Django's ASGI handler, with the middleware chain and the view run as one sync call.

Under ASGI, Django's own handler (`get_asgi_application()`) runs the middleware chain in
async mode. Every middleware built on MiddlewareMixin — Django's own: security, sessions,
common, CSRF, authentication, messages, clickjacking — then runs each of its hooks through
`sync_to_async`, a hop to a thread created for the request, and the sync view is one more
hop; it also starts a task per request to listen for a disconnect, and closes the response
through one more hop. With our 8 middleware that was ~2.5 ms of CPU per request before any
work, i.e. most of a cheap request's cost (bench/bench_http.py measures both in one run).

`SyncStackASGIHandler` serves every HTTP route (the REST API, the admin, the signed
webhooks: one path for all) as Django's WSGI handler does, in *one* hop to a fixed pool of
`HTTP_THREADS` threads (default 16; settings check it fits in DB_POOL_MAX_SIZE): the thread
sends `request_started` (reset queries, check the connection), runs the sync middleware
chain and the view, closes the response (`request_finished`: the database connection goes
back to the pool) unless it streams. What the request committed (frames, jobs: see
`emploiplus.effects`) leaves from the event loop once the response is sent, so a client never
waits for Redis, and under load the jobs of many requests share one pipeline. An async view
still works (Django wraps it with async_to_sync), but our HTTP views are sync.

Bodies: a request whose `Content-Length` exceeds DATA_UPLOAD_MAX_MEMORY_SIZE (1 MiB), or
whose body grows past it while being read (chunked), is answered 413 before it is read
whole (Django's own handler would spool it to disk first); the API and the webhooks have
no file uploads.
"""

from __future__ import annotations

import asyncio
import contextvars
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.urls import set_script_prefix

from emploiplus import effects

T = TypeVar("T")
_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=settings.HTTP_THREADS, thread_name_prefix="http")
    return _EXECUTOR


async def run_in_pool(fn: Callable[[], T]) -> T:
    """Run sync `fn` on the HTTP_THREADS pool, in a copy of the caller's context (so an
    `emploiplus.effects.Collected` reaches it). A plain executor call: asgiref's
    sync_to_async costs more per request, and nothing in our views needs `async_to_sync`
    to reach this loop (effects talk to Redis directly from the thread)."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(_executor(), context.run, fn)


class _BodyTooLarge(Exception):
    pass


class SyncStackASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def handle(self, scope, receive, send):
        try:
            body_file = await self.read_body(receive, scope)
        except _BodyTooLarge:
            from emploiplus.exceptions import payload_too_large_response  # DRF: after django.setup()

            await self.send_response(payload_too_large_response(scope.get("path", "")), send)
            return
        except RequestAborted:  # the client went away while sending
            return
        try:
            request, error_response = self.create_request(scope, body_file)
            if request is None:
                await self.send_response(error_response, send)
                return
            prefix = get_script_prefix(scope)
            with effects.Collected() as collected:
                response = await run_in_pool(lambda: self._respond(request, prefix))
            try:
                await self.send_response(response, send)
            finally:
                if response.streaming:
                    await run_in_pool(response.close)
                # What the request committed leaves once its answer is on its way.
                await collected.flush()
        finally:
            body_file.close()

    def _respond(self, request, prefix: str):
        """In a pool thread: what Django's WSGIHandler does around a request."""
        set_script_prefix(prefix)
        signals.request_started.send(sender=self.__class__, environ=request.META)
        try:
            response = self.get_response(request)
        except BaseException:
            signals.request_finished.send(sender=self.__class__)
            raise
        response._handler_class = self.__class__
        if not response.streaming:
            response.close()  # request_finished: the connection goes back to the pool
        return response

    async def read_body(self, receive, scope=None):
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and scope is not None:
            for name, value in scope.get("headers", ()):
                if name == b"content-length":
                    try:
                        declared = int(value)
                    except ValueError:
                        declared = 0
                    if declared > limit:
                        raise _BodyTooLarge()
                    break
        body_file = tempfile.SpooledTemporaryFile(max_size=settings.FILE_UPLOAD_MAX_MEMORY_SIZE, mode="w+b")  # noqa: SIM115 - returned open
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                body_file.close()
                raise RequestAborted()
            chunk = message.get("body", b"")
            received += len(chunk)
            if limit is not None and received > limit:
                body_file.close()
                raise _BodyTooLarge()
            body_file.write(chunk)
            if not message.get("more_body", False):
                break
        body_file.seek(0)
        return body_file


def get_asgi_application() -> SyncStackASGIHandler:
    """django.core.asgi.get_asgi_application, with SyncStackASGIHandler."""
    import django

    django.setup(set_prefix=False)
    return SyncStackASGIHandler()
