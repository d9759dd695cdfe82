"""REST: list (cursor), read, read-all, unread-count (owner only); queue health; admin."""

from __future__ import annotations

import pytest
from django.test import Client

from emploiplus import effects
from notifications import services
from notifications.models import Notification


def _notify(user, n: int = 1, **kw):
    for i in range(n):
        services.notification_queue(type="message", title=f"Message {i}", body="", user_ids=[user.id], **kw)


def test_it_lists_own_notifications_newest_first_with_a_cursor(api, auth, alice, bob):
    _notify(alice, 5)
    _notify(bob, 2)
    first = api.get("/api/notifications/?limit=3", headers=auth(alice))
    assert first.status_code == 200
    assert [n["title"] for n in first.json()["results"]] == ["Message 4", "Message 3", "Message 2"]
    assert first.json()["results"][0]["read"] is False and first.json()["results"][0]["createdAt"]
    second = api.get(f"/api/notifications/?limit=3&cursor={first.json()['next_cursor']}", headers=auth(alice))
    assert [n["title"] for n in second.json()["results"]] == ["Message 1", "Message 0"]
    assert second.json()["next_cursor"] is None
    assert api.get("/api/notifications/?cursor=garbage", headers=auth(alice)).status_code == 400
    assert api.get("/api/notifications/").status_code == 401


def test_it_marks_one_read_and_hides_others_notifications(api, auth, alice, bob):
    _notify(alice)
    _notify(bob)
    mine = Notification.objects.get(user=alice)
    theirs = Notification.objects.get(user=bob)
    response = api.post(f"/api/notifications/{mine.id}/read/", headers=auth(alice))
    assert response.status_code == 200 and response.json()["read"] is True
    assert api.post(f"/api/notifications/{theirs.id}/read/", headers=auth(alice)).status_code == 404
    assert api.post("/api/notifications/not-a-uuid/read/", headers=auth(alice)).status_code == 404
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_it_counts_unread_and_marks_all_read(api, auth, alice, bob):
    _notify(alice, 3)
    _notify(bob, 1)
    assert api.get("/api/notifications/unread-count/", headers=auth(alice)).json() == {"count": 3}
    assert api.post("/api/notifications/read-all/", headers=auth(alice)).json() == {"updated": 3}
    assert api.get("/api/notifications/unread-count/", headers=auth(alice)).json() == {"count": 0}
    assert api.get("/api/notifications/unread-count/", headers=auth(bob)).json() == {"count": 1}


def test_it_shows_queue_health_to_admins_only(api, auth, alice, root, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        _notify(alice)  # one dispatcher job waiting
    assert api.get("/api/queues/health", headers=auth(alice)).status_code == 403
    response = api.get("/api/queues/health", headers=auth(root))
    assert response.status_code == 200
    body = response.json()
    assert body["healthy"] is False  # no worker in this test
    assert body["queues"]["notifications"] == {
        "waiting": 1,
        "active": 0,
        "scheduled": 0,
        "completed": 0,
        "failed": 0,
        "workers": 0,
    }
    assert set(body["queues"]) == {"notifications", "emails", "sms"}


@pytest.fixture
def staff_client(make_user):
    boss = make_user("boss", role="admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(boss)
    return client


def test_it_shows_deliveries_and_failed_jobs_in_the_admin(staff_client, alice):
    from django_rq.settings import get_queues_list
    from rq import Queue

    _notify(alice)
    delivery = Notification.objects.get(user=alice).deliveries.get()
    delivery.status, delivery.last_error = "failed", "batch: HTTP 400: bad"
    delivery.save()
    page = staff_client.get("/admin/notifications/notificationdelivery/?status__exact=failed")
    assert page.status_code == 200 and b"HTTP 400" in page.content
    assert staff_client.get(f"/admin/notifications/notification/{delivery.notification_id}/change/").status_code == 200

    # A failed job in the failed registry shows on the RQ dashboard and can be requeued.
    django_queue = effects.queue("notifications")
    queue = Queue("notifications", connection=django_queue.connection)  # plain RQ: no on-commit deferral
    job = queue.enqueue(services.delivery_job_id, "x", job_id="failed-demo")
    queue.remove(job)
    job.set_status("failed")
    queue.failed_job_registry.add(job, exc_string="DeliveryFailed: HTTP 400")
    assert staff_client.get("/admin/rq/").status_code == 200
    index = [q["name"] for q in get_queues_list()].index("notifications")
    failed_page = staff_client.get(f"/admin/rq/queues/{index}/failed/")
    assert failed_page.status_code == 200 and b"failed-demo" in failed_page.content
    requeue = staff_client.post(f"/admin/rq/queues/{index}/failed-demo/requeue/")
    assert requeue.status_code == 302
    assert "failed-demo" in queue.job_ids and queue.failed_job_registry.count == 0


def test_it_lists_batches_in_the_admin(staff_client, alice, bob):
    batch = services.notification_queue(type="message", title="Bonjour", body="", user_ids=[alice.id, bob.id])
    page = staff_client.get("/admin/notifications/notificationbatch/")
    assert page.status_code == 200 and b"Bonjour" in page.content
    assert staff_client.get(f"/admin/notifications/notificationbatch/{batch.id}/change/").status_code == 200


def test_it_searches_the_admin_lists_with_any_text(staff_client, alice):
    services.notification_queue(type="message", title="Bonjour", body="", user_ids=[alice.id])
    for model in ("notification", "notificationdelivery", "notificationbatch"):
        for term in ("bonjour", "alice@example.test", "not-a-uuid"):
            assert staff_client.get(f"/admin/notifications/{model}/?q={term}").status_code == 200, (model, term)
