"""Benchmarks only: every HTTP path through Django's stock ASGIHandler (async middleware
chain) — the naive alternative to emploiplus.handlers.SyncStackASGIHandler, measured in the
same runs."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")
application = get_asgi_application()
