"""Real-time events: the one helper that sends a frame to a channel-layer group.

Services call `broadcast_on_commit(group, event, data)` inside their transaction: the
frame leaves only once the data it announces has been committed. Consumers receive it
as a `{"type": "emploiplus.event", "event": ..., "data": ...}` message and forward it as
the JSON frame `{"event": ..., "data": ...}` (CONTRACT §5).

Group names are built here so every transport agrees on them.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

EVENT_MESSAGE_TYPE = "emploiplus.event"


def user_group(user_id: UUID | str) -> str:
    """Every connection of one user (all tabs, all processes)."""
    return f"user.{user_id}"


def notifications_group(user_id: UUID | str) -> str:
    return f"notifications.{user_id}"


def role_group(role: str) -> str:
    return f"role.{role}"


def conversation_group(conversation_id: UUID | str) -> str:
    """Connections that joined a conversation's room (typing, joined/left)."""
    return f"conversation.{conversation_id}"


def presence_group(user_id: UUID | str) -> str:
    """Connections subscribed to one user's presence."""
    return f"presence.{user_id}"


def event_message(event: str, data: dict[str, Any], *, exclude_channel: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": EVENT_MESSAGE_TYPE, "event": event, "data": data}
    if exclude_channel:
        message["exclude"] = exclude_channel
    return message


def broadcast(group: str, event: str, data: dict[str, Any], *, exclude_channel: str | None = None) -> None:
    """Send now (synchronous callers). Prefer `broadcast_on_commit` from services."""
    layer = get_channel_layer()
    if layer is None:
        return
    async_to_sync(layer.group_send)(group, event_message(event, data, exclude_channel=exclude_channel))


async def abroadcast(group: str, event: str, data: dict[str, Any], *, exclude_channel: str | None = None) -> None:
    """Send now from async code (consumers): typing, joined/left — nothing to persist."""
    layer = get_channel_layer()
    if layer is None:
        return
    await layer.group_send(group, event_message(event, data, exclude_channel=exclude_channel))


def broadcast_on_commit(group: str, event: str, data: dict[str, Any]) -> None:
    """Send once the current transaction commits (immediately when there is none)."""
    transaction.on_commit(lambda: broadcast(group, event, data), robust=True)
