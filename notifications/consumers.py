"""The `/notifications` namespace: the user's notifications (and their role's broadcasts) in
real time, on `/ws/notifications/` and Socket.IO alike (emploiplus.realtime)."""

from __future__ import annotations

from typing import Any

from emploiplus import effects, events
from emploiplus.consumers import EventConsumer
from emploiplus.errors import ApplicationError
from emploiplus.realtime import Namespace
from notifications import services


class NotificationsNamespace(Namespace):
    name = "/notifications"
    handled_events = ("mark_read",)

    async def on_connect(self) -> None:
        await self.join(events.notifications_group(self.user.pk), events.role_group(self.user.role))

    async def on_mark_read(self, data: dict[str, Any]) -> dict[str, Any]:
        ids = data.get("notificationIds")
        if not isinstance(ids, list) or not ids or len(ids) > 500:
            raise ApplicationError("invalid_data", "notificationIds doit être une liste de 1 à 500 identifiants.")
        marked = await effects.run_sync(services.notification_mark_read, user=self.user, notification_ids=ids)
        return {"notificationIds": marked}


NotificationConsumer = EventConsumer.for_namespace(NotificationsNamespace)
