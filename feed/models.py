"""Posts of the newsfeed and their likes, comments and shares.

`likes_count`, `comments_count` and `shares_count` are maintained by triggers in the
database (feed migration 0002), so they stay exact whatever writes the rows.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.db.models import Q

from emploiplus.models import TimestampedModel


class Post(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="posts")
    title = models.CharField(max_length=300, blank=True, default="")
    content = models.TextField()
    image_urls = ArrayField(models.URLField(max_length=1000), default=list, blank=True)
    is_pinned = models.BooleanField(default=False)
    is_hidden = models.BooleanField(default=False, help_text="Hidden by a moderator")
    likes_count = models.PositiveIntegerField(default=0, editable=False)
    comments_count = models.PositiveIntegerField(default=0, editable=False)
    shares_count = models.PositiveIntegerField(default=0, editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True)
    search_vector = SearchVectorField(null=True, editable=False)

    class Meta:
        db_table = "posts"
        verbose_name = "publication"
        indexes = [
            models.Index(fields=["-created_at", "-id"], name="idx_posts_created_id"),
            models.Index(
                fields=["-created_at", "-id"],
                name="idx_posts_pinned",
                condition=Q(is_pinned=True, deleted_at__isnull=True),
            ),
            # The non-pinned phase of the newsfeed keyset (feed.selectors.feed_list): only
            # visible posts, so a deep page skips nothing but inactive authors.
            models.Index(
                fields=["-created_at", "-id"],
                name="idx_posts_feed",
                condition=Q(deleted_at__isnull=True, is_hidden=False, is_pinned=False),
            ),
            models.Index(fields=["user", "-created_at"], name="idx_posts_user_created"),
            GinIndex(fields=["search_vector"], name="idx_posts_search_gin"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(likes_count__gte=0) & Q(comments_count__gte=0) & Q(shares_count__gte=0),
                name="posts_counters_non_negative",
            )
        ]

    def __str__(self) -> str:
        return self.title or self.content[:60]


class PostLike(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="likes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="post_likes")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "post_likes"
        verbose_name = "j'aime"
        constraints = [models.UniqueConstraint(fields=["post", "user"], name="post_likes_unique_user")]

    def __str__(self) -> str:
        return f"{self.user_id} ♥ {self.post_id}"


class Comment(TimestampedModel):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="comments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments")
    content = models.TextField()
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "comments"
        verbose_name = "commentaire"
        indexes = [
            models.Index(fields=["post", "created_at", "id"], name="idx_comments_post_created"),
        ]

    def __str__(self) -> str:
        return self.content[:60]


class PostShare(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    post = models.ForeignKey(Post, on_delete=models.CASCADE, related_name="shares")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="post_shares")
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "post_shares"
        verbose_name = "partage"

    def __str__(self) -> str:
        return f"{self.user_id} ↗ {self.post_id}"
