"""Posts, likes, comments, shares and pinning through the API, with the database afterwards."""

from __future__ import annotations

import uuid

import pytest

from feed.models import Comment, Post, PostLike, PostShare

pytestmark = pytest.mark.django_db


def test_it_creates_a_post_and_shows_it_in_the_feed(api, auth, alice, bob):
    response = api.post(
        "/api/posts/",
        {
            "title": "  Nouveau poste  ",
            "content": "Je cherche un CDI à Lyon.",
            "image_urls": ["https://i.example/1.png"],
        },
        format="json",
        headers=auth(alice),
    )
    assert response.status_code == 201, response.content
    body = response.json()
    post = Post.objects.get(pk=body["id"])
    assert (post.user, post.title, post.content, post.image_urls) == (
        alice,
        "Nouveau poste",
        "Je cherche un CDI à Lyon.",
        ["https://i.example/1.png"],
    )
    assert body["author"]["id"] == str(alice.pk)
    assert body["likes_count"] == 0 and body["liked_by_me"] is False
    assert api.get("/api/feed/", headers=auth(bob)).json()["results"][0]["id"] == body["id"]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"content": "   "},
        {"content": "x" * 10001},
        {"content": "ok", "image_urls": ["javascript:alert(1)"]},
        {"content": "ok", "image_urls": "https://i.example/1.png"},
        {"content": "ok", "title": "t" * 301},
    ],
)
def test_it_refuses_invalid_posts(api, auth, alice, payload):
    response = api.post("/api/posts/", payload, format="json", headers=auth(alice))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"
    assert Post.objects.count() == 0


def test_it_lets_only_the_author_edit_and_delete(api, auth, alice, bob, make_post):
    post = make_post(alice, "avant")
    assert (
        api.patch(f"/api/posts/{post.pk}/", {"content": "pirate"}, format="json", headers=auth(bob)).status_code == 403
    )
    assert api.delete(f"/api/posts/{post.pk}/", headers=auth(bob)).status_code == 403

    response = api.patch(f"/api/posts/{post.pk}/", {"content": "après"}, format="json", headers=auth(alice))
    assert response.status_code == 200
    assert response.json()["content"] == "après"
    post.refresh_from_db()
    assert post.content == "après"

    assert api.delete(f"/api/posts/{post.pk}/", headers=auth(alice)).status_code == 204
    post.refresh_from_db()
    assert post.deleted_at is not None
    assert api.get(f"/api/posts/{post.pk}/", headers=auth(alice)).status_code == 404
    assert api.delete(f"/api/posts/{post.pk}/", headers=auth(alice)).status_code == 404
    assert api.get(f"/api/posts/{uuid.uuid4()}/", headers=auth(alice)).status_code == 404


def test_it_lets_only_admins_pin(api, auth, alice, root, make_post):
    post = make_post(alice)
    response = api.post(f"/api/posts/{post.pk}/pin/", headers=auth(alice))
    assert response.status_code == 403
    assert response.json()["code"] == "forbidden"
    assert api.post(f"/api/posts/{post.pk}/pin/", headers=auth(root)).json() == {"id": str(post.pk), "is_pinned": True}
    assert Post.objects.get(pk=post.pk).is_pinned
    assert api.delete(f"/api/posts/{post.pk}/pin/", headers=auth(root)).json()["is_pinned"] is False
    assert not Post.objects.get(pk=post.pk).is_pinned


def test_it_toggles_a_like(api, auth, alice, bob, make_post):
    post = make_post(alice)
    url = f"/api/posts/{post.pk}/like/"
    assert api.post(url, headers=auth(bob)).json() == {"liked": True, "likes_count": 1}
    assert api.post(url, headers=auth(alice)).json() == {"liked": True, "likes_count": 2}
    assert PostLike.objects.filter(post=post).count() == 2
    assert api.post(url, headers=auth(bob)).json() == {"liked": False, "likes_count": 1}
    assert list(PostLike.objects.filter(post=post).values_list("user", flat=True)) == [alice.pk]
    assert Post.objects.get(pk=post.pk).likes_count == 1


def test_it_refuses_to_like_comment_or_share_an_invisible_post(api, auth, alice, bob, make_post):
    from django.utils import timezone

    for post in (make_post(alice, deleted_at=timezone.now()), make_post(alice, is_hidden=True)):
        for url, body in (("like/", {}), ("comments/", {"content": "hé"}), ("share/", {})):
            response = api.post(f"/api/posts/{post.pk}/{url}", body, format="json", headers=auth(bob))
            assert response.status_code == 404
            assert response.json()["code"] == "post_not_found"
        assert api.get(f"/api/posts/{post.pk}/comments/", headers=auth(bob)).status_code == 404
    assert PostLike.objects.count() == Comment.objects.count() == PostShare.objects.count() == 0


def test_it_adds_lists_and_soft_deletes_comments(api, auth, alice, bob, charlie, make_post):
    post = make_post(alice)
    url = f"/api/posts/{post.pk}/comments/"
    ids = []
    for i in range(5):
        response = api.post(url, {"content": f"Commentaire {i}"}, format="json", headers=auth(bob))
        assert response.status_code == 201
        assert response.json()["author"]["id"] == str(bob.pk)
        ids.append(response.json()["id"])
    assert Post.objects.get(pk=post.pk).comments_count == 5

    first = api.get(url, {"limit": 3}, headers=auth(charlie)).json()
    second = api.get(url, {"limit": 3, "cursor": first["next_cursor"]}, headers=auth(charlie)).json()
    assert [c["id"] for c in first["results"] + second["results"]] == ids
    assert second["next_cursor"] is None
    bad = api.get(url, {"cursor": first["next_cursor"] + "x"}, headers=auth(charlie))
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"

    assert api.delete(f"{url}{ids[0]}/", headers=auth(charlie)).status_code == 403
    assert api.delete(f"{url}{ids[0]}/", headers=auth(bob)).status_code == 204  # its author
    assert api.delete(f"{url}{ids[1]}/", headers=auth(alice)).status_code == 204  # the post's author
    assert api.delete(f"{url}{ids[1]}/", headers=auth(alice)).status_code == 404
    assert Comment.objects.filter(deleted_at__isnull=False).count() == 2
    assert Post.objects.get(pk=post.pk).comments_count == 3
    assert [c["id"] for c in api.get(url, headers=auth(charlie)).json()["results"]] == ids[2:]
    assert api.get("/api/feed/", headers=auth(charlie)).json()["results"][0]["comments_count"] == 3


def test_it_shares_a_post(api, auth, alice, bob, make_post):
    post = make_post(alice)
    url = f"/api/posts/{post.pk}/share/"
    first = api.post(url, {"comment": "À voir"}, format="json", headers=auth(bob))
    assert first.status_code == 201
    assert first.json()["shares_count"] == 1
    assert api.post(url, {}, format="json", headers=auth(bob)).json()["shares_count"] == 2
    assert PostShare.objects.filter(post=post, user=bob).count() == 2
    assert PostShare.objects.get(pk=first.json()["id"]).comment == "À voir"
    assert Post.objects.get(pk=post.pk).shares_count == 2


def test_it_does_not_move_updated_at_or_the_search_vector_when_only_counters_change(api, auth, alice, bob, make_post):
    from django.db import connection

    post = make_post(alice, "Développeur Python")
    # A sentinel vector: a trigger recomputing it on a counter UPDATE would overwrite it.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE posts SET search_vector = 'sentinelle'::tsvector WHERE id = %s", [post.pk])
    post.refresh_from_db()
    api.post(f"/api/posts/{post.pk}/like/", headers=auth(bob))
    api.post(f"/api/posts/{post.pk}/comments/", {"content": "bravo"}, format="json", headers=auth(bob))
    after = Post.objects.get(pk=post.pk)
    assert (after.likes_count, after.comments_count) == (1, 1)
    assert after.updated_at == post.updated_at
    assert after.search_vector == "'sentinelle'"


def test_it_updates_the_search_vector_when_the_text_changes(api, auth, alice, make_post):
    post = make_post(alice, "Développeur Python")
    api.patch(f"/api/posts/{post.pk}/", {"content": "Comptable à Nantes"}, format="json", headers=auth(alice))
    results = api.get("/api/search/", {"q": "comptable", "type": "posts"}, headers=auth(alice)).json()["results"]
    assert [r["id"] for r in results] == [str(post.pk)]
    assert api.get("/api/search/", {"q": "python", "type": "posts"}, headers=auth(alice)).json()["results"] == []
