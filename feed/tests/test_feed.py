"""GET /api/feed/: order, keyset cursors, visibility, embedded author/company, no N+1."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core import signing
from django.utils import timezone

from feed.models import Post, PostLike

pytestmark = pytest.mark.django_db


def _walk(api, auth, user, *, limit, on_page=None):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        response = api.get("/api/feed/", params, headers=auth(user))
        assert response.status_code == 200, response.content
        body = response.json()
        seen.extend(item["id"] for item in body["results"])
        pages += 1
        assert pages < 200
        if on_page:
            on_page(pages)
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


def test_it_walks_the_whole_feed_exactly_once_while_posts_are_inserted(api, auth, alice, bob, make_post):
    base = timezone.now() - dt.timedelta(hours=5)
    posts = [make_post(alice if i % 2 else bob, f"Post {i}") for i in range(47)]
    # Several posts share one timestamp: the id breaks the tie, nothing is lost or repeated.
    for i, post in enumerate(posts):
        Post.objects.filter(pk=post.pk).update(created_at=base + dt.timedelta(minutes=i // 3))
    pinned = posts[5]
    Post.objects.filter(pk__in=[pinned.pk, posts[30].pk]).update(is_pinned=True)
    expected = {str(p.pk) for p in posts}
    inserted = []

    def insert_during_walk(page):
        inserted.append(str(make_post(bob, f"Nouveau pendant la page {page}").pk))

    seen = _walk(api, auth, alice, limit=4, on_page=insert_during_walk)

    assert len(seen) == len(set(seen))  # never twice
    assert expected <= set(seen)  # every post visible at the start
    assert set(seen) - expected <= set(inserted)  # nothing else
    assert set(seen[:2]) == {str(pinned.pk), str(posts[30].pk)}  # pinned first
    assert seen[0] == str(posts[30].pk)  # pinned ones newest first


def test_it_orders_pinned_first_then_newest_with_every_page_size(api, auth, alice, make_post):
    old_pinned = make_post(alice, "épinglé ancien", minutes_ago=500, is_pinned=True)
    new_pinned = make_post(alice, "épinglé récent", minutes_ago=400, is_pinned=True)
    others = [make_post(alice, f"normal {i}", minutes_ago=100 - i) for i in range(5)]
    expected = [str(new_pinned.pk), str(old_pinned.pk)] + [str(p.pk) for p in reversed(others)]
    for limit in (1, 2, 3, 50):
        assert _walk(api, auth, alice, limit=limit) == expected


def test_it_shows_author_company_counters_and_liked_by_me(api, auth, alice, bob, rita, acme, make_post):
    post = make_post(rita, "Nous recrutons !", title="Offre", image_urls=["https://img.example/a.png"])
    PostLike.objects.create(post=post, user=alice)

    body = api.get("/api/feed/", headers=auth(alice)).json()
    item = body["results"][0]
    assert item["id"] == str(post.pk)
    assert item["title"] == "Offre"
    assert item["content"] == "Nous recrutons !"
    assert item["image_urls"] == ["https://img.example/a.png"]
    assert item["likes_count"] == 1
    assert item["liked_by_me"] is True
    assert item["author"] == {"id": str(rita.pk), "full_name": "Rita", "avatar_url": "", "role": "company"}
    assert item["company"] == {"id": str(acme.pk), "name": "Acme SAS", "logo_url": ""}
    assert body["next_cursor"] is None

    assert api.get("/api/feed/", headers=auth(bob)).json()["results"][0]["liked_by_me"] is False


def test_it_never_shows_deleted_hidden_or_inactive_authors_posts(api, auth, alice, bob, charlie, make_post):
    visible = make_post(alice, "visible")
    make_post(alice, "supprimé", deleted_at=timezone.now())
    make_post(alice, "masqué", is_hidden=True)
    make_post(alice, "épinglé supprimé", is_pinned=True, deleted_at=timezone.now())
    make_post(charlie, "auteur désactivé", is_pinned=True)
    make_post(charlie, "auteur désactivé 2")
    charlie.is_active = False
    charlie.save()

    assert _walk(api, auth, bob, limit=2) == [str(visible.pk)]
    assert api.get(f"/api/posts/{visible.pk}/", headers=auth(bob)).status_code == 200


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "eyJwIjpmYWxzZX0:1abc:xyz",
        signing.dumps({"p": False, "t": "2020-01-01T00:00:00+00:00", "i": "x"}),  # unsigned with our salt
        "' OR 1=1 --",
        "a" * 5000,
    ],
)
def test_it_refuses_a_forged_cursor(api, auth, alice, make_post, cursor):
    make_post(alice)
    response = api.get("/api/feed/", {"cursor": cursor}, headers=auth(alice))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_cursor"


def test_it_refuses_a_cursor_with_a_valid_signature_but_bad_content(api, auth, alice):
    from emploiplus.pagination import encode_cursor

    for payload in (
        {"p": "yes", "t": "2020-01-01T00:00:00+00:00", "i": "00000000-0000-0000-0000-000000000000"},
        {"p": False, "t": "not a date", "i": "00000000-0000-0000-0000-000000000000"},
        {"p": False},
    ):
        response = api.get("/api/feed/", {"cursor": encode_cursor("feed", payload)}, headers=auth(alice))
        assert response.status_code == 400
        assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize("limit", ["0", "51", "-1", "abc", "1e3", "2.5"])
def test_it_refuses_a_bad_limit(api, auth, alice, limit):
    response = api.get("/api/feed/", {"limit": limit}, headers=auth(alice))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_limit"


def test_it_requires_authentication(api):
    assert api.get("/api/feed/").status_code == 401


def test_it_reads_a_page_in_a_constant_number_of_queries(
    api, auth, alice, bob, rita, make_post, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for i in range(60):
        post = make_post([alice, bob, rita][i % 3], f"post {i}", is_pinned=i in (3, 7))
        if i % 2:
            PostLike.objects.create(post=post, user=alice)

    def get(**params):
        # At most: loading the caller (authentication, may be cached) + one query for the page.
        with django_assert_max_num_queries(2), CaptureQueriesContext(connection) as queries:
            response = api.get("/api/feed/", params, headers=auth(alice))
        assert response.status_code == 200
        assert len([q for q in queries.captured_queries if "v_newsfeed_feed" in q["sql"]]) == 1
        return response.json(), len(queries.captured_queries)

    get(limit=1)  # warm whatever authentication caches
    small, n_small = get(limit=5)
    big, n_big = get(limit=50)
    rest, n_rest = get(limit=50, cursor=big["next_cursor"])
    assert n_small == n_big == n_rest  # no query per post, per author or per like
    assert len(small["results"]) == 5
    assert len(big["results"]) == 50
    assert len(rest["results"]) == 10
    assert rest["next_cursor"] is None
    assert sum(item["liked_by_me"] for item in big["results"] + rest["results"]) == 30
