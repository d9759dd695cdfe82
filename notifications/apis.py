"""REST: the owner's notifications (CONTRACT §6) and the queues' health (admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsAdmin
from emploiplus.pagination import parse_limit
from notifications import selectors, services


class NotificationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    type = serializers.CharField()
    title = serializers.CharField()
    body = serializers.CharField()
    data = serializers.JSONField()
    read = serializers.SerializerMethodField()
    readAt = serializers.DateTimeField(source="read_at", allow_null=True)  # noqa: N815 - contract casing
    createdAt = serializers.DateTimeField(source="created_at")  # noqa: N815

    def get_read(self, obj) -> bool:
        return obj.read_at is not None


NOTIFICATION_PAGE = inline_serializer(
    "NotificationPage",
    {"results": NotificationOutputSerializer(many=True), "next_cursor": serializers.CharField(allow_null=True)},
)
QUEUE_STATS = inline_serializer(
    "QueueStats",
    {name: serializers.IntegerField() for name in ("waiting", "active", "scheduled", "completed", "failed", "workers")},
)
QUEUES_HEALTH = inline_serializer(
    "QueuesHealth",
    {"healthy": serializers.BooleanField(), "queues": serializers.DictField(child=QUEUE_STATS)},
)


class NotificationListApi(APIView):
    class FilterSerializer(serializers.Serializer):
        cursor = serializers.CharField(required=False, help_text="`next_cursor` of the previous page (opaque)")
        limit = serializers.IntegerField(required=False, min_value=1, max_value=selectors.MAX_LIMIT, default=20)
        unread = serializers.BooleanField(required=False, default=False)

    @extend_schema(parameters=[FilterSerializer], responses=NOTIFICATION_PAGE)
    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"), maximum=selectors.MAX_LIMIT)
        params = self.FilterSerializer(data={k: v for k, v in request.query_params.items() if k != "limit"})
        params.is_valid(raise_exception=True)
        rows, next_cursor = selectors.notification_list_for_user(
            user=request.user,
            cursor=params.validated_data.get("cursor") or None,
            limit=limit,
            unread_only=params.validated_data["unread"],
        )
        return Response({"results": NotificationOutputSerializer(rows, many=True).data, "next_cursor": next_cursor})


class NotificationReadApi(APIView):
    @extend_schema(request=None, responses=NotificationOutputSerializer)
    def post(self, request, notification_id):
        notification = services.notification_mark_one_read(user=request.user, notification_id=notification_id)
        return Response(NotificationOutputSerializer(notification).data)


class NotificationReadAllApi(APIView):
    @extend_schema(request=None, responses=inline_serializer("ReadAll", {"updated": serializers.IntegerField()}))
    def post(self, request):
        return Response({"updated": services.notification_mark_all_read(user=request.user)})


class NotificationUnreadCountApi(APIView):
    @extend_schema(responses=inline_serializer("UnreadCount", {"count": serializers.IntegerField()}))
    def get(self, request):
        return Response({"count": selectors.notification_unread_count(user=request.user)})


class QueuesHealthApi(APIView):
    permission_classes = [IsAdmin]

    @extend_schema(responses=QUEUES_HEALTH)
    def get(self, request):
        return Response(services.queues_health())
