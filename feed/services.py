"""Writes of the feed: posts, likes, comments, shares, moderation.

Counters (`likes_count`, `comments_count`, `shares_count`) are never written here: the
triggers of feed migration 0002 update them with one atomic `UPDATE … SET n = n ± 1` per
row change, so they stay exact whatever the concurrency and whoever writes the rows.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Role, User
from emploiplus.errors import Forbidden, NotFound
from feed.models import Comment, Post, PostShare
from feed.selectors import post_get_for_author, post_get_visible

_UNSET: Any = object()


@transaction.atomic
def post_create(*, author: User, content: str, title: str = "", image_urls: list[str] | None = None) -> Post:
    return Post.objects.create(user=author, title=title, content=content, image_urls=list(image_urls or []))


@transaction.atomic
def post_update(
    *, user: User, post_id: uuid.UUID, title: str = _UNSET, content: str = _UNSET, image_urls: list[str] = _UNSET
) -> Post:
    """Edit by the author (admins too). Only the given fields change."""
    post = post_get_for_author(user=user, post_id=post_id)
    changed = []
    for field, value in (("title", title), ("content", content), ("image_urls", image_urls)):
        if value is not _UNSET:
            setattr(post, field, list(value) if field == "image_urls" else value)
            changed.append(field)
    if changed:
        post.save(update_fields=[*changed, "updated_at"])
    return post


@transaction.atomic
def post_delete(*, user: User, post_id: uuid.UUID) -> None:
    """Soft delete by the author (or an admin): the post leaves the feed and search."""
    post = post_get_for_author(user=user, post_id=post_id)
    post.deleted_at = timezone.now()
    post.save(update_fields=["deleted_at", "updated_at"])


def _require_admin(user: User) -> None:
    if user.role != Role.ADMIN:
        raise Forbidden("Réservé aux administrateurs.")


@transaction.atomic
def post_set_pinned(*, user: User, post_id: uuid.UUID, pinned: bool) -> Post:
    """Pin or unpin a post (admins only); pinned posts open the feed."""
    _require_admin(user)
    post = Post.objects.filter(pk=post_id, deleted_at__isnull=True).first()
    if post is None:
        raise NotFound("Publication introuvable.", code="post_not_found")
    if post.is_pinned != pinned:
        post.is_pinned = pinned
        post.save(update_fields=["is_pinned", "updated_at"])
    return post


@transaction.atomic
def post_set_hidden(*, user: User, post_id: uuid.UUID, hidden: bool) -> Post:
    """Moderation: a hidden post disappears from the feed and search (admins only)."""
    _require_admin(user)
    post = Post.objects.filter(pk=post_id).first()
    if post is None:
        raise NotFound("Publication introuvable.", code="post_not_found")
    if post.is_hidden != hidden:
        post.is_hidden = hidden
        post.save(update_fields=["is_hidden", "updated_at"])
    return post


@transaction.atomic
def post_like_toggle(*, user: User, post_id: uuid.UUID) -> tuple[bool, int]:
    """Like the post if the caller has not, else unlike it. Returns (liked, likes_count).

    Race-free: a transaction-scoped advisory lock keyed on (post, user) serialises the
    toggles of one user on one post (a double click gives like then unlike, never two
    likes or a lost toggle), while toggles of different users never wait on each other
    except for the counter trigger's row update. The unique (post_id, user_id)
    constraint still guards against any other writer (ON CONFLICT DO NOTHING).
    """
    post_get_visible(post_id=post_id)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended('post_like:' || %s::text || ':' || %s::text, 0))",
            [post_id, user.pk],
        )
        cursor.execute("DELETE FROM post_likes WHERE post_id = %s AND user_id = %s RETURNING id", [post_id, user.pk])
        liked = cursor.fetchone() is None
        if liked:
            cursor.execute(
                """
                INSERT INTO post_likes (id, post_id, user_id, created_at)
                VALUES (%s, %s, %s, now())
                ON CONFLICT (post_id, user_id) DO NOTHING
                """,
                [uuid.uuid4(), post_id, user.pk],
            )
        cursor.execute("SELECT likes_count FROM posts WHERE id = %s", [post_id])
        (likes_count,) = cursor.fetchone()
    return liked, likes_count


@transaction.atomic
def comment_create(*, user: User, post_id: uuid.UUID, content: str) -> Comment:
    post_get_visible(post_id=post_id)
    comment = Comment.objects.create(post_id=post_id, user=user, content=content)
    comment.user = user
    return comment


@transaction.atomic
def comment_delete(*, user: User, post_id: uuid.UUID, comment_id: uuid.UUID) -> None:
    """Soft delete by the comment's author, the post's author or an admin."""
    comment = (
        Comment.objects.select_related("post")
        .filter(pk=comment_id, post_id=post_id, deleted_at__isnull=True, post__deleted_at__isnull=True)
        .first()
    )
    if comment is None:
        raise NotFound("Commentaire introuvable.", code="comment_not_found")
    if user.pk not in (comment.user_id, comment.post.user_id) and user.role != Role.ADMIN:
        raise Forbidden("Seul l'auteur peut supprimer ce commentaire.")
    comment.deleted_at = timezone.now()
    comment.save(update_fields=["deleted_at", "updated_at"])


@transaction.atomic
def post_share(*, user: User, post_id: uuid.UUID, comment: str = "") -> tuple[PostShare, int]:
    """Record a share (a user may share a post several times). Returns (share, shares_count)."""
    post_get_visible(post_id=post_id)
    share = PostShare.objects.create(post_id=post_id, user=user, comment=comment)
    shares_count = Post.objects.filter(pk=post_id).values_list("shares_count", flat=True).get()
    return share, shares_count
