"""Helpers for the feed tests: posts with chosen timestamps."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from feed.models import Post


@pytest.fixture
def make_post(db):
    def make(author, content: str = "Bonjour", *, minutes_ago: float | None = None, **fields) -> Post:
        post = Post.objects.create(user=author, content=content, **fields)
        if minutes_ago is not None:
            Post.objects.filter(pk=post.pk).update(created_at=timezone.now() - dt.timedelta(minutes=minutes_ago))
            post.refresh_from_db()
        return post

    return make
