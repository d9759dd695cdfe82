"""The `/messages` and `/presence` namespaces (CONTRACT §5): thin translations of client
events into service calls, served by every transport — `/ws/messages/` and `/ws/presence/`
(`emploiplus.consumers`) and Socket.IO (`emploiplus.sio`). Every write goes through
`messaging.services` (the REST API uses the same functions); events reach sockets through the
channel-layer groups of `emploiplus.events`, so they cross server processes.

Presence: both namespaces count — a user is online while any `/messages` or `/presence`
connection of theirs is alive on any process, on any transport (see `messaging.presence`).

Who sees whose presence: a presence connection follows its user's **contacts** (people they
share a conversation with, up to 1,000, most recent first) from the moment it connects,
without subscribing, and receives `presence_state` for them at once. `subscribe`,
`unsubscribe` and `get_online_users` accept contacts only (and oneself): presence of anyone
else is refused (`forbidden`) — it is nobody's business.
"""

from __future__ import annotations

from typing import Any

from emploiplus import effects
from emploiplus.consumers import EventConsumer
from emploiplus.errors import ApplicationError, Forbidden
from emploiplus.events import conversation_group, iso, now_iso, presence_group, user_group
from emploiplus.realtime import Namespace
from messaging import presence, selectors, services
from messaging.selectors import message_payload, parse_uuid

MAX_PRESENCE_IDS_PER_FRAME = 200
MAX_PRESENCE_SUBSCRIPTIONS = 1000

# Room events that must never reach any session of the user who caused them.
_ROOM_EVENTS = frozenset({"user_typing", "user_joined", "user_left"})


class MessagesNamespace(Namespace):
    name = "/messages"
    handled_events = (
        "join_conversation",
        "leave_conversation",
        "typing",
        "send_message",
        "mark_as_read",
        "delete_message",
    )
    state_fields = ("rooms", "known_conversations")

    def __init__(self, conn) -> None:
        super().__init__(conn)
        self.rooms: set[str] = set()
        self.known_conversations: set[str] = set()

    async def on_connect(self) -> None:
        await self.join(user_group(self.user.pk))
        await self.conn.track_presence()

    async def on_disconnect(self) -> None:
        for conversation_id in list(self.rooms):
            await self._announce_room(conversation_id, "user_left")

    def wants(self, message: dict[str, Any]) -> bool:
        if message.get("event") in _ROOM_EVENTS and message["data"].get("userId") == str(self.user.pk):
            return False
        return super().wants(message)

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
            exclude=self.conn.channel_name,
        )

    # --- events ---------------------------------------------------------------------
    async def on_join_conversation(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = await self._participant_conversation(data)
        if conversation_id not in self.rooms:
            await self.join(conversation_group(conversation_id))
            self.rooms.add(conversation_id)
            await self._announce_room(conversation_id, "user_joined")
        return {"conversationId": conversation_id}

    async def on_leave_conversation(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = str(parse_uuid(data.get("conversationId"), field="conversationId"))
        if conversation_id in self.rooms:
            self.rooms.discard(conversation_id)
            await self.leave(conversation_group(conversation_id))
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
            exclude=self.conn.channel_name,
        )
        return {}

    async def on_send_message(self, data: dict[str, Any]) -> dict[str, Any]:
        conversation_id = parse_uuid(data.get("conversationId"), field="conversationId")
        message, created = await services.amessage_send(
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


class PresenceNamespace(Namespace):
    """Contacts followed from the start; `subscribe` for the ones a client cares about now."""

    name = "/presence"
    handled_events = ("subscribe", "unsubscribe", "get_online_users")
    state_fields = ("subscriptions", "contacts", "allowed")

    def __init__(self, conn) -> None:
        super().__init__(conn)
        self.subscriptions: set[str] = set()
        self.contacts: set[str] = set()  # followed from the connection's start
        self.allowed: set[str] = set()  # known to be contacts (e.g. a conversation begun since)

    async def on_connect(self) -> None:
        contacts = await effects.run_sync(selectors.contact_ids, user=self.user)
        self.contacts = set(contacts)
        await self.join(*(presence_group(uid) for uid in contacts))
        await self.conn.track_presence()
        if contacts:
            await self.conn.emit("presence_state", {"online": await presence.aonline_user_ids(contacts)})

    def _user_ids(self, data: dict[str, Any], *, required: bool = True) -> list[str]:
        raw = data.get("userIds")
        if raw is None and not required:
            return sorted(self.subscriptions | self.contacts)
        if not isinstance(raw, list) or len(raw) > MAX_PRESENCE_IDS_PER_FRAME:
            raise ApplicationError(
                "invalid_data", f"'userIds' : une liste de {MAX_PRESENCE_IDS_PER_FRAME} identifiants au plus."
            )
        return list(dict.fromkeys(str(parse_uuid(u, field="userIds")) for u in raw))

    async def _visible(self, user_ids: list[str]) -> None:
        """Refuse the whole frame if it names someone who is not a contact (nor oneself)."""
        me = str(self.user.pk)
        unknown = [uid for uid in user_ids if uid not in self.contacts and uid not in self.allowed and uid != me]
        if unknown:
            # A conversation may have started since this connection opened.
            self.allowed |= await effects.run_sync(selectors.are_contacts, user=self.user, user_ids=unknown)
            if any(uid not in self.allowed for uid in unknown):
                raise Forbidden("Présence réservée à vos contacts (une conversation en commun).")

    async def _state(self, user_ids: list[str]) -> dict[str, Any]:
        state = {"online": await presence.aonline_user_ids(user_ids)}
        await self.conn.emit("presence_state", state)
        return state

    async def on_subscribe(self, data: dict[str, Any]) -> dict[str, Any]:
        user_ids = self._user_ids(data)
        if len(self.subscriptions | set(user_ids)) > MAX_PRESENCE_SUBSCRIPTIONS:
            raise ApplicationError(
                "too_many_subscriptions", f"Au plus {MAX_PRESENCE_SUBSCRIPTIONS} abonnements par connexion."
            )
        await self._visible(user_ids)
        await self.join(*(presence_group(uid) for uid in user_ids))
        self.subscriptions.update(user_ids)
        return await self._state(user_ids)

    async def on_unsubscribe(self, data: dict[str, Any]) -> dict[str, Any]:
        user_ids = [uid for uid in self._user_ids(data) if uid in self.subscriptions]
        self.subscriptions.difference_update(user_ids)
        # Contacts stay followed: they were never a subscription.
        await self.leave(*(presence_group(uid) for uid in user_ids if uid not in self.contacts))
        return {"subscribed": sorted(self.subscriptions)}

    async def on_get_online_users(self, data: dict[str, Any]) -> dict[str, Any]:
        user_ids = self._user_ids(data, required=False)
        await self._visible(user_ids)
        return await self._state(user_ids)


MessagesConsumer = EventConsumer.for_namespace(MessagesNamespace)
PresenceConsumer = EventConsumer.for_namespace(PresenceNamespace)
