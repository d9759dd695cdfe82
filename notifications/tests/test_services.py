"""notification_queue: recipients, rows, delivery batches, read state (no worker needed)."""

from __future__ import annotations

import pytest

from accounts.models import Candidate, Role
from emploiplus import effects
from emploiplus.errors import ApplicationError
from emploiplus.events import notifications_group
from emploiplus.testing import Listener
from notifications import services
from notifications.models import BatchStatus, Notification, NotificationBatch, NotificationDelivery


def test_it_stores_small_explicit_lists_inline(alice, bob, django_capture_on_commit_callbacks):
    listener = Listener()
    frames_to = {user.pk: listener.join(notifications_group(user.pk)) for user in (alice, bob)}
    with django_capture_on_commit_callbacks(execute=True):
        batch = services.notification_queue(
            type="message",
            title="Nouveau message",
            body="Bob : salut",
            data={"conversationId": "c1"},
            user_ids=[alice.id, str(bob.id), alice.id],
        )
    assert batch.status == BatchStatus.STORED and batch.recipients_count == 2
    rows = Notification.objects.filter(batch=batch).order_by("user__email")
    assert [(n.user_id, n.type, n.title, n.data) for n in rows] == [
        (alice.id, "message", "Nouveau message", {"conversationId": "c1"}),
        (bob.id, "message", "Nouveau message", {"conversationId": "c1"}),
    ]
    deliveries = NotificationDelivery.objects.filter(notification__batch=batch)
    assert sorted(deliveries.values_list("channel", "status", "batch_key")) == [("push", "pending", "")] * 2
    # After the commit: a dispatcher request and one websocket frame per recipient.
    assert [job.func_name for job in effects.queue("notifications").get_jobs()] == [
        "notifications.jobs.deliveries_dispatch"
    ]
    for user in (alice, bob):
        [frame] = listener.received(frames_to[user.pk])
        assert (frame["event"], frame["data"]["title"]) == ("notification", "Nouveau message")
        assert frame["data"]["id"] == str(Notification.objects.get(batch=batch, user=user).pk)
    listener.close()


def test_it_defers_large_lists_to_the_worker(make_user, settings):
    settings.NOTIFICATIONS_INLINE_MAX = 2
    users = [make_user(f"u{i}") for i in range(5)]
    batch = services.notification_queue(type="job_match", title="Offre", body="", user_ids=[u.id for u in users])
    assert batch.status == BatchStatus.QUEUED
    assert not Notification.objects.exists()
    assert services.notification_batch_fanout(batch_id=batch.id) == 5
    assert services.notification_batch_fanout(batch_id=batch.id) == 5  # a re-run stores nothing twice
    assert Notification.objects.count() == 5
    batch.refresh_from_db()
    assert batch.status == BatchStatus.STORED and batch.recipients_count == 5


def test_it_drops_disabled_and_inactive_users_and_filters_only_narrow(make_user, settings):
    settings.NOTIFICATIONS_INLINE_MAX = 0
    dev = make_user("dev")
    Candidate.objects.filter(pk=dev.pk).update(skills=["python", "django"], location="Lyon")
    muted = make_user("muted")
    Candidate.objects.filter(pk=muted.pk).update(skills=["python"], location="Lyon", notifications_enabled=False)
    gone = make_user("gone", is_active=False)
    Candidate.objects.filter(pk=gone.pk).update(skills=["python"], location="Lyon")
    outsider = make_user("outsider")  # matches the filters but is not in user_ids
    Candidate.objects.filter(pk=outsider.pk).update(skills=["python"], location="Lyon")
    other = make_user("other")
    Candidate.objects.filter(pk=other.pk).update(skills=["java"], location="Lyon")

    batch = services.notification_queue(
        type="job_match",
        title="Offre Python",
        body="",
        user_ids=[dev.id, muted.id, gone.id, other.id],
        filters={"skills": ["Python"], "location": "lyon"},
    )
    services.notification_batch_fanout(batch_id=batch.id)
    assert list(Notification.objects.values_list("user_id", flat=True)) == [dev.id]


def test_it_targets_a_role(make_user, rita, alice, settings):
    batch = services.notification_queue(type="announce", title="Maintenance", body="", role=Role.COMPANY)
    services.notification_batch_fanout(batch_id=batch.id)
    assert list(Notification.objects.values_list("user_id", flat=True)) == [rita.id]


def test_it_refuses_calls_without_recipients_or_with_bad_input(alice):
    with pytest.raises(ApplicationError) as exc:
        services.notification_queue(type="x", title="t", body="")
    assert exc.value.code == "recipients_required"
    with pytest.raises(ApplicationError):
        services.notification_queue(type="x", title="t", body="", user_ids=["nope"])
    with pytest.raises(ApplicationError):
        services.notification_queue(type="x", title="t", body="", user_ids=[alice.id], channels=("pigeon",))
    with pytest.raises(ApplicationError):
        services.notification_queue(type="x", title="t", body="", user_ids=[alice.id], filters={"age": 3})
    assert not NotificationBatch.objects.exists()
