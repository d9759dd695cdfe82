"""Counters stay exact under concurrent like/unlike toggles (real threads, real connections)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import User
from accounts.testing import auth_header
from feed.models import Post, PostLike

USERS = 50
TOGGLES_PER_USER = 3  # odd: every user ends up liking the post


@pytest.mark.django_db(transaction=True)
def test_it_keeps_the_like_counter_exact_under_50_concurrent_togglers(alice):
    post = Post.objects.create(user=alice, content="Likez-moi")
    users = [User.objects.create_user(email=f"fan{i}@example.test", full_name=f"Fan {i}") for i in range(USERS)]
    barrier = threading.Barrier(USERS, timeout=60)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def toggle(user: User) -> None:
        try:
            client = APIClient()
            headers = auth_header(user)
            barrier.wait()  # all 50 threads hit the database at the same moment
            for _ in range(TOGGLES_PER_USER):
                statuses.append(client.post(f"/api/posts/{post.pk}/like/", headers=headers).status_code)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own connection

    threads = [threading.Thread(target=toggle, args=(u,)) for u in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert not errors, errors[:3]
    assert statuses == [200] * USERS * TOGGLES_PER_USER
    post.refresh_from_db()
    rows = PostLike.objects.filter(post=post).count()
    assert rows == USERS
    assert post.likes_count == rows
    assert set(PostLike.objects.filter(post=post).values_list("user", flat=True)) == {u.pk for u in users}


@pytest.mark.django_db(transaction=True)
def test_it_keeps_one_like_per_user_when_the_same_user_double_clicks(alice, bob):
    post = Post.objects.create(user=alice, content="Double clic")
    barrier = threading.Barrier(10, timeout=60)
    results: list[dict] = []

    def toggle() -> None:
        try:
            client = APIClient()
            headers = auth_header(bob)
            barrier.wait()
            results.append(client.post(f"/api/posts/{post.pk}/like/", headers=headers).json())
        finally:
            connection.close()

    threads = [threading.Thread(target=toggle) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert len(results) == 10
    liked = sum(r["liked"] for r in results)
    assert liked == 5  # ten toggles alternate like / unlike, whatever the interleaving
    post.refresh_from_db()
    assert post.likes_count == PostLike.objects.filter(post=post).count() == 0
