"""Real-time events: group names and the channel-layer message every transport forwards.

Frames leave through `emploiplus.effects` (after the commit, or at once from async code);
consumers receive them as `{"type": "emploiplus.event", "event", "data"}` messages and
forward them as `{"event", "data"}` (CONTRACT §5). Group names are built here so every
transport (`/ws/…`, Socket.IO) and every service agree on them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

EVENT_MESSAGE_TYPE = "emploiplus.event"


def iso(value: datetime | None) -> str | None:
    """The wire format of every timestamp in a payload: ISO 8601, UTC, `Z`."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def now_iso() -> str:
    return iso(datetime.now(UTC))


def user_group(user_id: UUID | str) -> str:
    """Every connection of one user (all tabs, all processes, every transport)."""
    return f"user.{user_id}"


def notifications_group(user_id: UUID | str) -> str:
    return f"notifications.{user_id}"


def role_group(role: str) -> str:
    return f"role.{role}"


def conversation_group(conversation_id: UUID | str) -> str:
    """Connections that joined a conversation's room (typing, joined/left)."""
    return f"conversation.{conversation_id}"


def presence_group(user_id: UUID | str) -> str:
    """Connections that follow one user's presence."""
    return f"presence.{user_id}"


def event_message(event: str, data: dict[str, Any], *, exclude_channel: str | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"type": EVENT_MESSAGE_TYPE, "event": event, "data": data}
    if exclude_channel:
        message["exclude"] = exclude_channel
    return message
