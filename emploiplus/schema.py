"""OpenAPI helpers shared by the apps' API views (drf-spectacular)."""

from __future__ import annotations

from drf_spectacular.utils import inline_serializer
from rest_framework import serializers


def page_of(name: str, item: serializers.Serializer) -> serializers.Serializer:
    """The shape of every list response: `{"results": [...], "next_cursor": str | null}`."""
    return inline_serializer(name, {"results": item, "next_cursor": serializers.CharField(allow_null=True)})
