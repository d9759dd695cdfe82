"""Small shared model pieces."""

from __future__ import annotations

import uuid

from django.db import models


class TimestampedModel(models.Model):
    """created_at / updated_at. The `update_updated_at_column()` trigger moves `updated_at`
    on every UPDATE, including raw SQL ones; `auto_now` keeps Django's view in sync."""

    created_at = models.DateTimeField(auto_now_add=True, db_index=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


def new_uuid() -> uuid.UUID:
    return uuid.uuid4()
