"""The one list toolkit (emploiplus.pagination), endpoint by endpoint: every list pages with
`?limit=&cursor=`, its own `next_cursor` works, and a forged, tampered, stale or foreign
cursor, or a bad limit, is a 400 with the field — never a 500."""

from __future__ import annotations

import pytest
from django.test import override_settings

from emploiplus.pagination import encode_cursor
from feed.models import Comment, Post
from matching.testing import make_job, set_profile
from messaging.services import conversation_get_or_create_direct, message_send
from notifications.services import notification_queue

pytestmark = pytest.mark.django_db


@pytest.fixture
def lists(alice, bob, charlie, rita, acme):
    """Two rows or more in every list, and the URL and reader of each."""
    posts = [Post.objects.create(user=alice, content=f"Stage de développement {i}") for i in range(3)]
    for i in range(3):
        Comment.objects.create(post=posts[0], user=bob, content=f"Bravo {i}")
    direct, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    conversation_get_or_create_direct(user=alice, other_user_id=charlie.pk)
    for i in range(3):
        message_send(user=bob, conversation_id=direct.pk, content=f"message {i}")
    for i in range(3):
        notification_queue(type="info", title=f"Note {i}", body="", user_ids=[alice.pk], channels=("websocket",))
    set_profile(alice, skills=["python", "django"], experience_level="mid")
    set_profile(bob, skills=["python"], experience_level="mid")
    set_profile(charlie, skills=["django"], experience_level="mid")
    job = make_job(acme, title="Développeur Python", required_skills=["python", "django"])
    for i in range(2):
        make_job(acme, title=f"Backend {i}", required_skills=["python"])
    return {
        "feed": ("/api/feed/", alice),
        "comments": (f"/api/posts/{posts[0].pk}/comments/", alice),
        "search": ("/api/search/?q=stage&type=posts", alice),
        "conversations": ("/api/conversations/", alice),
        "messages": (f"/api/conversations/{direct.pk}/messages/", alice),
        "notifications": ("/api/notifications/", alice),
        "jobs": ("/api/jobs/", alice),
        "job-matches": (f"/api/jobs/{job.pk}/matches/", rita),
        "my-matches": ("/api/me/matches/", alice),
    }


LISTS = [
    "feed",
    "comments",
    "search",
    "conversations",
    "messages",
    "notifications",
    "jobs",
    "job-matches",
    "my-matches",
]


def get(api, auth, url: str, user, **params):
    sep = "&" if "?" in url else "?"
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return api.get(f"{url}{sep}{query}" if query else url, headers=auth(user))


@pytest.mark.parametrize("name", LISTS)
def test_it_walks_every_list_with_its_own_cursor(api, auth, lists, name):
    url, user = lists[name]
    seen = []
    page = get(api, auth, url, user, limit=1)
    while True:
        assert page.status_code == 200, page.json()
        body = page.json()
        assert set(body) == {"results", "next_cursor"} and len(body["results"]) <= 1
        seen += body["results"]
        if body["next_cursor"] is None:
            break
        page = get(api, auth, url, user, limit=1, cursor=body["next_cursor"])
    assert len(seen) >= 2
    assert get(api, auth, url, user, limit=50).json()["results"] == seen  # same rows, one page


@pytest.mark.parametrize("name", LISTS)
def test_it_refuses_a_forged_tampered_stale_or_foreign_cursor_with_400(api, auth, lists, name):
    url, user = lists[name]
    real = get(api, auth, url, user, limit=1).json()["next_cursor"]
    assert real
    with override_settings(SECRET_KEY="another-deployment-secret-key-for-the-stale-cursor"):
        stale = get(api, auth, url, user, limit=1).json()["next_cursor"]
    foreign_name = "feed" if name != "feed" else "jobs"
    foreign = get(api, auth, *lists[foreign_name], limit=1).json()["next_cursor"]
    for cursor in ("garbage", real[:-2] + ("AA" if not real.endswith("AA") else "BB"), stale, foreign, "x" * 5000):
        response = get(api, auth, url, user, cursor=cursor)
        assert response.status_code == 400, (cursor, response.json())
        assert response.json()["code"] == "invalid_cursor"
        assert "cursor" in response.json()["errors"]


@pytest.mark.parametrize("name", LISTS)
@pytest.mark.parametrize("limit", ["0", "-1", "abc", "2.5", "1e3", "100000"])
def test_it_refuses_a_bad_limit_with_400_and_the_field(api, auth, lists, name, limit):
    url, user = lists[name]
    response = get(api, auth, url, user, limit=limit)
    assert response.status_code == 400, response.json()
    assert response.json()["code"] == "invalid_limit"
    assert response.json()["errors"]["limit"]


def test_a_cursor_with_a_valid_signature_but_a_bad_position_is_refused(api, auth, lists):
    url, user = lists["notifications"]
    for payload in (
        {"t": "not a date", "i": "x"},
        {"t": "2026-01-01T00:00:00", "i": "00000000-0000-0000-0000-000000000000"},
    ):
        cursor = encode_cursor(f"notifications.{user.pk}.all", payload)
        response = get(api, auth, url, user, cursor=cursor)
        assert (response.status_code, response.json()["code"]) == (400, "invalid_cursor")
