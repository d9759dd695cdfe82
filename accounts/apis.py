"""REST: the caller's own account."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView


class MeApi(APIView):
    @extend_schema_serializer(component_name="Me")
    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        email = serializers.EmailField(allow_null=True)
        full_name = serializers.CharField()
        avatar_url = serializers.CharField()
        role = serializers.CharField()
        company_id = serializers.UUIDField(allow_null=True)
        is_staff = serializers.BooleanField()
        created_at = serializers.DateTimeField()

    @extend_schema(responses=OutputSerializer, summary="The caller's account")
    def get(self, request):
        return Response(self.OutputSerializer(request.user).data)
