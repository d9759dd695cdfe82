from django.urls import re_path

from webhooks.apis import job_notify_webhook, matching_update_webhook, test_webhook

# With or without a trailing slash: a POST cannot be redirected to the slashed URL.
urlpatterns = [
    re_path(r"^jobs/notify/?$", job_notify_webhook, name="webhook-jobs-notify"),
    re_path(r"^matching/update/?$", matching_update_webhook, name="webhook-matching-update"),
    re_path(r"^test/?$", test_webhook, name="webhook-test"),
]
