"""bench_webhooks only: the ASGI application with every HTTP path (webhooks included) going
through Django's handler and middleware, as before webhooks.apis.WebhookConsumer."""

from emploiplus.asgi import django_asgi_app as application  # noqa: F401
