"""Cookie-session middleware for the pages that use cookies, and only for them.

The admin (and the RQ dashboard under it) logs staff in with a session cookie and needs
sessions, CSRF protection, authentication and messages. The API never does: every request
carries a bearer token (accounts.authentication) and DRF views are CSRF-exempt. Running those
four middleware on every API call and webhook delivery cost ~8 % of a cheap request's CPU
(py-spy on `python -m bench webhooks`), so `CookieSessionMiddleware` runs them as one inner
chain for the paths in COOKIE_PATHS and passes every other request straight through.

Django's admin system checks look for those middleware in MIDDLEWARE by name; settings
silence exactly those three checks (admin.E408–E410), and
`emploiplus/tests/test_admin.py` logs into the admin through the real stack.
"""

from __future__ import annotations

from django.utils.module_loading import import_string

COOKIE_PATHS = ("/admin/",)
CHAIN = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
)


class CookieSessionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        handler = get_response
        self.middleware = []
        for path in reversed(CHAIN):
            handler = import_string(path)(handler)
            self.middleware.append(handler)
        self.with_cookies = handler

    def __call__(self, request):
        if request.path_info.startswith(COOKIE_PATHS):
            return self.with_cookies(request)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        # Django collects process_view hooks from MIDDLEWARE only: run the inner chain's (CSRF)
        # for cookie paths.
        if request.path_info.startswith(COOKIE_PATHS):
            for middleware in reversed(self.middleware):
                hook = getattr(middleware, "process_view", None)
                if hook is not None:
                    response = hook(request, view_func, view_args, view_kwargs)
                    if response is not None:
                        return response
        return None
