from django.urls import re_path

from webhooks.apis import JobNotifyWebhookApi, MatchingUpdateWebhookApi, TestWebhookApi

# With or without a trailing slash: a POST cannot be redirected to the slashed URL.
# In the ASGI server these paths are served by webhooks.apis.WebhookConsumer (emploiplus.asgi).
urlpatterns = [
    re_path(r"^jobs/notify/?$", JobNotifyWebhookApi.as_view(), name="webhook-jobs-notify"),
    re_path(r"^matching/update/?$", MatchingUpdateWebhookApi.as_view(), name="webhook-matching-update"),
    re_path(r"^test/?$", TestWebhookApi.as_view(), name="webhook-test"),
]
