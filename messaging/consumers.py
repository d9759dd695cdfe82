"""`/ws/messages/` and `/ws/presence/` (CONTRACT §5): thin translations of frames into
service calls. Every write goes through `messaging.services` (the REST API uses the
same functions); events reach sockets through the channel layer groups of
`emploiplus.events`, so they cross server processes.

Presence: both namespaces count — a user is online while any `/ws/messages/` or
`/ws/presence/` connection of theirs is alive on any process (see `messaging.presence`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from emploiplus import effects
from emploiplus.consumers import EventConsumer
from emploiplus.errors import ApplicationError, Forbidden
from emploiplus.events import conversation_group, iso, now_iso, presence_group, user_group
from messaging import presence, selectors, services
from messaging.selectors import message_payload, parse_uuid

log = logging.getLogger(__name__)

CLOSE_GOING_AWAY = 1001
CLOSE_INTERNAL_ERROR = 1011
MAX_PRESENCE_IDS_PER_FRAME = 200
MAX_PRESENCE_SUBSCRIPTIONS = 1000

# Room events that must never reach any session of the user who caused them.
_ROOM_EVENTS = frozenset({"user_typing", "user_joined", "user_left"})


class PresenceTrackingMixin:
    """Registers the connection in Redis presence for its lifetime, and closes it cleanly
    when the server shuts down: daphne cancels every application before exiting, so the
    disconnect path (presence, `user_left`, groups) runs then and the client gets 1001."""

    async def __call__(self, scope, receive, send):
        try:
            return await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            if getattr(self, "user", None) is not None and not getattr(self, "_disconnected", False):
                with contextlib.suppress(Exception):
                    await self.disconnect(CLOSE_GOING_AWAY)
                with contextlib.suppress(Exception):
                    await self.close(code=CLOSE_GOING_AWAY)
            raise
        except Exception:
            # A consumer that crashes never gets its websocket.disconnect: release its
            # presence now, or its heartbeat would keep the user online for ever.
            if getattr(self, "user", None) is not None and not getattr(self, "_disconnected", False):
                with contextlib.suppress(Exception):
                    await self.disconnect(CLOSE_INTERNAL_ERROR)
            raise

    async def disconnect(self, code: int) -> None:
        self._disconnected = True
        await super().disconnect(code)

    async def track_presence(self) -> None:
        await presence.connect(user_id=self.user.pk, email=self.user.email or "", connection_id=self.channel_name)

    async def untrack_presence(self) -> None:
        try:
            await presence.disconnect(user_id=self.user.pk, connection_id=self.channel_name)
        except Exception:  # Redis gone: the TTL expires the connection
            log.warning("presence disconnect failed", exc_info=True)


class MessagesConsumer(PresenceTrackingMixin, EventConsumer):
    handled_events = (
        "join_conversation",
        "leave_conversation",
        "typing",
        "send_message",
        "mark_as_read",
        "delete_message",
    )

    async def on_connect(self) -> None:
        self.rooms: set[str] = set()
        self.known_conversations: set[str] = set()
        await self.join_group(user_group(self.user.pk))
        await self.track_presence()

    async def on_disconnect(self, code: int) -> None:
        for conversation_id in list(getattr(self, "rooms", ())):
            await self._announce_room(conversation_id, "user_left")
        await self.untrack_presence()

    async def emploiplus_event(self, message: dict[str, Any]) -> None:
        if message.get("event") in _ROOM_EVENTS and message["data"].get("userId") == str(self.user.pk):
            return
        await super().emploiplus_event(message)

    # --- helpers --------------------------------------------------------------------
    async def _participant_conversation(self, data: dict[str, Any]) -> str:
        conversation_id = str(parse_uuid(data.get("conversationId"), field="conversationId"))
        if conversation_id not in self.known_conversations:
            allowed = await effects.run_sync(selectors.is_participant, user=self.user, conversation_id=conversation_id)
            if not allowed:
                raise Forbidden("Vous ne participez pas à cette conversation.")
            self.known_conversations.add(conversation_id)
        return conversation_id

    async def _announce_room(self, conversation_id: str, event: str) -> None:
        await effects.abroadcast(
            conversation_group(conversation_id),
            event,
            {
                "conversationId": conversation_id,
                "userId": str(self.user.pk),
                "email": self.user.email,
                "timestamp": now_iso(),
            },
            exclude=self.channel_name,
        )

    # --- events ---------------------------------------------------------------------
    async def on_join_conversation(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = await self._participant_conversation(data)
        if conversation_id not in self.rooms:
            await self.join_group(conversation_group(conversation_id))
            self.rooms.add(conversation_id)
            await self._announce_room(conversation_id, "user_joined")
        return {"conversationId": conversation_id}

    async def on_leave_conversation(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = str(parse_uuid(data.get("conversationId"), field="conversationId"))
        if conversation_id in self.rooms:
            self.rooms.discard(conversation_id)
            await self.leave_group(conversation_group(conversation_id))
            await self._announce_room(conversation_id, "user_left")
        return {"conversationId": conversation_id}

    async def on_typing(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = await self._participant_conversation(data)
        await effects.abroadcast(
            conversation_group(conversation_id),
            "user_typing",
            {
                "conversationId": conversation_id,
                "userId": str(self.user.pk),
                "email": self.user.email,
                "isTyping": bool(data.get("isTyping", True)),
                "timestamp": now_iso(),
            },
            exclude=self.channel_name,
        )
        return {}

    async def on_send_message(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = parse_uuid(data.get("conversationId"), field="conversationId")
        message, created = await effects.run_sync(
            services.message_send,
            user=self.user,
            conversation_id=conversation_id,
            content=data.get("content"),
            attachments=data.get("attachments"),
            client_message_id=data.get("clientMessageId"),
        )
        return {**message_payload(message, sender_email=self.user.email), "duplicate": not created}

    async def on_mark_as_read(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = parse_uuid(data.get("conversationId"), field="conversationId")
        return await effects.run_sync(
            services.messages_mark_read,
            user=self.user,
            conversation_id=conversation_id,
            message_ids=data.get("messageIds"),
        )

    async def on_delete_message(self, data: dict[str, Any]) -> dict[str, Any]:
        message_id = parse_uuid(data.get("messageId"), field="messageId")
        message = await effects.run_sync(services.message_delete, user=self.user, message_id=message_id)
        return {
            "messageId": str(message.id),
            "conversationId": str(message.conversation_id),
            "timestamp": iso(message.deleted_at),
        }


class PresenceConsumer(PresenceTrackingMixin, EventConsumer):
    """Subscription-based presence: a client names the users it cares about."""

    handled_events = ("subscribe", "unsubscribe", "get_online_users")

    async def on_connect(self) -> None:
        self.subscriptions: set[str] = set()
        await self.track_presence()

    async def on_disconnect(self, code: int) -> None:
        await self.untrack_presence()

    def _user_ids(self, data: dict[str, Any], *, required: bool = True) -> list[str]:
        raw = data.get("userIds")
        if raw is None and not required:
            return sorted(self.subscriptions)
        if not isinstance(raw, list) or len(raw) > MAX_PRESENCE_IDS_PER_FRAME:
            raise ApplicationError(
                "invalid_data", f"'userIds' : une liste de {MAX_PRESENCE_IDS_PER_FRAME} identifiants au plus."
            )
        return list(dict.fromkeys(str(parse_uuid(u, field="userIds")) for u in raw))

    async def _state(self, user_ids: list[str]) -> dict[str, Any]:
        state = {"online": await presence.aonline_user_ids(user_ids)}
        await self.send_event("presence_state", state)
        return state

    async def on_subscribe(self, data: dict[str, Any]) -> dict[str, Any]:
        user_ids = self._user_ids(data)
        if len(self.subscriptions | set(user_ids)) > MAX_PRESENCE_SUBSCRIPTIONS:
            raise ApplicationError(
                "too_many_subscriptions", f"Au plus {MAX_PRESENCE_SUBSCRIPTIONS} abonnements par connexion."
            )
        for uid in user_ids:
            if uid not in self.subscriptions:
                await self.join_group(presence_group(uid))
                self.subscriptions.add(uid)
        return await self._state(user_ids)

    async def on_unsubscribe(self, data: dict[str, Any]) -> dict[str, Any]:
        for uid in self._user_ids(data):
            if uid in self.subscriptions:
                self.subscriptions.discard(uid)
                await self.leave_group(presence_group(uid))
        return {"subscribed": sorted(self.subscriptions)}

    async def on_get_online_users(self, data: dict[str, Any]) -> dict[str, Any]:
        return await self._state(self._user_ids(data, required=False))
