"""REST of messaging (CONTRACT §6): the same services as `/ws/messages/`.

Conversations and messages have the camelCase shape of the WebSocket payloads, so a
client merges REST history with live `new_message` events as they are. Conversations
the caller is not in answer 404.
"""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from emploiplus.pagination import parse_limit
from emploiplus.schema import page_of
from messaging import selectors, services


def _limit(request) -> int:
    return parse_limit(request.query_params.get("limit"), default=selectors.DEFAULT_PAGE, maximum=selectors.MAX_PAGE)


class ConversationListCreateApi(APIView):
    class FilterSerializer(serializers.Serializer):
        cursor = serializers.CharField(required=False, help_text="`next_cursor` of the previous page (opaque)")
        limit = serializers.IntegerField(required=False, min_value=1, max_value=selectors.MAX_PAGE)

    @extend_schema_serializer(component_name="ConversationCreateInput")
    class InputSerializer(serializers.Serializer):
        participantIds = serializers.ListField(  # noqa: N815 - wire name
            child=serializers.UUIDField(), min_length=1, max_length=100
        )
        title = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")
        isGroup = serializers.BooleanField(required=False, allow_null=True, default=None)  # noqa: N815

    @extend_schema(parameters=[FilterSerializer], responses=page_of("ConversationPage", OpenApiTypes.OBJECT))
    def get(self, request):
        cursor = request.query_params.get("cursor") or None
        return Response(selectors.conversation_list(user=request.user, cursor=cursor, limit=_limit(request)))

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request):
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        conversation, created = services.conversation_create(
            user=request.user,
            participant_ids=body.validated_data["participantIds"],
            title=body.validated_data["title"],
            is_group=body.validated_data["isGroup"],
        )
        conversation = selectors.conversation_get_for_user(user=request.user, conversation_id=conversation.pk)
        return Response(
            selectors.conversation_payload(conversation, user=request.user),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ConversationMessagesApi(APIView):
    class FilterSerializer(serializers.Serializer):
        before = serializers.UUIDField(required=False, help_text="Older than this message (newest first)")
        after = serializers.UUIDField(required=False, help_text="Newer than this message (oldest first, catch-up)")
        cursor = serializers.CharField(required=False, help_text="`next_cursor` of the previous page (opaque)")
        limit = serializers.IntegerField(required=False, min_value=1, max_value=selectors.MAX_PAGE)

    @extend_schema_serializer(component_name="MessageSendInput")
    class InputSerializer(serializers.Serializer):
        content = serializers.CharField(allow_blank=True, trim_whitespace=False)
        attachments = serializers.JSONField(required=False, default=None)
        clientMessageId = serializers.CharField(  # noqa: N815 - wire name
            required=False, allow_null=True, allow_blank=True, max_length=100, default=None
        )

    @extend_schema(parameters=[FilterSerializer], responses=page_of("MessagePage", OpenApiTypes.OBJECT))
    def get(self, request, conversation_id):
        limit = _limit(request)
        params = self.FilterSerializer(data={k: v for k, v in request.query_params.items() if k != "limit"})
        params.is_valid(raise_exception=True)
        anchors = {k: str(v) for k, v in params.validated_data.items() if k in ("before", "after")}
        return Response(
            selectors.message_list(
                user=request.user,
                conversation_id=conversation_id,
                cursor=params.validated_data.get("cursor"),
                limit=limit,
                **anchors,
            )
        )

    @extend_schema(request=InputSerializer, responses={201: OpenApiTypes.OBJECT})
    def post(self, request, conversation_id):
        selectors.conversation_require_participant(user=request.user, conversation_id=conversation_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        message, created = services.message_send(
            user=request.user,
            conversation_id=conversation_id,
            content=body.validated_data["content"],
            attachments=body.validated_data["attachments"],
            client_message_id=body.validated_data["clientMessageId"],
        )
        return Response(
            selectors.message_payload(message, sender_email=request.user.email),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ConversationReadApi(APIView):
    @extend_schema_serializer(component_name="MarkReadInput")
    class InputSerializer(serializers.Serializer):
        messageIds = serializers.ListField(  # noqa: N815 - wire name
            child=serializers.UUIDField(), required=False, allow_null=True, default=None, max_length=500
        )

    @extend_schema(request=InputSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request, conversation_id):
        selectors.conversation_require_participant(user=request.user, conversation_id=conversation_id)
        body = self.InputSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        result = services.messages_mark_read(
            user=request.user, conversation_id=conversation_id, message_ids=body.validated_data["messageIds"]
        )
        return Response(result)
