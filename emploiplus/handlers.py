"""Django's ASGI handler, with the middleware chain and the view run as one sync call.

Under ASGI, Django's own handler (`get_asgi_application()`) runs the middleware chain in
async mode. Every middleware built on MiddlewareMixin — Django's own: security, sessions,
common, CSRF, authentication, messages, clickjacking — then runs each of its hooks through
`sync_to_async`, a hop to a thread created for the request, and the sync view is one more
hop. With our 8 middleware that is ~2.5 ms of CPU per request before any work, i.e. most
of a cheap request's cost (bench/bench_http.py measures both handlers in one run).

`SyncStackASGIHandler` loads the same middleware in sync mode and runs chain + view in
*one* `sync_to_async(thread_sensitive=False)` call on a fixed pool of `HTTP_THREADS`
threads (default 16; settings check it fits in DB_POOL_MAX_SIZE). Behaviour is
Django's sync behaviour — the one `manage.py runserver` under WSGI and the test client
have: one thread runs the request from the first middleware to the response; its
database connection is given back to the pool around the request (the request_started /
request_finished signals Django sends from the event loop's side do not reach this
thread); `async_to_sync` in a view (the channel-layer broadcasts) runs on the server's
event loop, as before. An async view still works (Django wraps it with async_to_sync), but
our HTTP views are sync.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.handlers.asgi import ASGIHandler
from django.db import close_old_connections, reset_queries

T = TypeVar("T")
_EXECUTOR: ThreadPoolExecutor | None = None


def _executor() -> ThreadPoolExecutor:
    global _EXECUTOR
    if _EXECUTOR is None:
        _EXECUTOR = ThreadPoolExecutor(max_workers=settings.HTTP_THREADS, thread_name_prefix="http")
    return _EXECUTOR


def as_a_request(fn: Callable[[], T]) -> T:
    # What the request_started / request_finished receivers do, in the thread that uses the
    # connection (Django sends those signals from another thread, or not at all, here).
    reset_queries()
    close_old_connections()
    try:
        return fn()
    finally:
        close_old_connections()


async def run_in_pool(fn: Callable[[], T]) -> T:
    """Run sync `fn` on the HTTP_THREADS pool with the database connection handled as around
    a Django request (`as_a_request`, which the webhook consumer's own pool uses too).
    Through sync_to_async, so `async_to_sync` inside `fn` runs on the calling event loop."""
    return await sync_to_async(as_a_request, thread_sensitive=False, executor=_executor())(fn)


class SyncStackASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)

    async def get_response_async(self, request):
        return await run_in_pool(lambda: self.get_response(request))


def get_asgi_application() -> SyncStackASGIHandler:
    """django.core.asgi.get_asgi_application, with SyncStackASGIHandler."""
    import django

    django.setup(set_prefix=False)
    return SyncStackASGIHandler()
