"""REST of the feed (CONTRACT §6): thin views over feed.services and feed.selectors."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from emploiplus.pagination import Page, parse_limit
from emploiplus.schema import page_of
from feed import selectors, services


def _page(page: Page) -> Response:
    return Response(page.body())


class _Url(serializers.URLField):
    def __init__(self, **kwargs):
        super().__init__(max_length=1000, **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not value.lower().startswith(("https://", "http://")):
            raise serializers.ValidationError("URL http(s) attendue.")
        return value


class PostInput(serializers.Serializer):
    title = serializers.CharField(max_length=300, required=False, allow_blank=True, trim_whitespace=True)
    content = serializers.CharField(max_length=10000, trim_whitespace=True)
    image_urls = serializers.ListField(child=_Url(), max_length=10, required=False)


# --- OpenAPI shapes (documentation only; the selectors build the payloads) -------------

LIMIT = OpenApiParameter("limit", OpenApiTypes.INT, description="1–50, default 20")
CURSOR = OpenApiParameter("cursor", OpenApiTypes.STR, description="`next_cursor` of the previous page (opaque)")


class PersonOut(serializers.Serializer):
    id = serializers.UUIDField()
    full_name = serializers.CharField()
    avatar_url = serializers.CharField()
    role = serializers.CharField()


class CompanyOut(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    logo_url = serializers.CharField()


class FeedItemOut(serializers.Serializer):
    id = serializers.UUIDField()
    title = serializers.CharField()
    content = serializers.CharField()
    image_urls = serializers.ListField(child=serializers.URLField())
    is_pinned = serializers.BooleanField()
    likes_count = serializers.IntegerField()
    comments_count = serializers.IntegerField()
    shares_count = serializers.IntegerField()
    liked_by_me = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    author = PersonOut()
    company = CompanyOut(allow_null=True)


class CommentOut(serializers.Serializer):
    id = serializers.UUIDField()
    post_id = serializers.UUIDField()
    content = serializers.CharField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    author = PersonOut()


class SearchResultOut(serializers.Serializer):
    type = serializers.ChoiceField(choices=["job", "post", "candidate"])
    id = serializers.UUIDField()
    title = serializers.CharField()
    snippet = serializers.CharField()
    created_at = serializers.DateTimeField()
    score = serializers.FloatField()


class FeedApi(APIView):
    """GET /api/feed/?cursor=&limit= — pinned first, then newest; keyset cursor."""

    @extend_schema(parameters=[LIMIT, CURSOR], responses=page_of("FeedPage", FeedItemOut(many=True)))
    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"))
        cursor = request.query_params.get("cursor") or None
        return _page(selectors.feed_list(viewer=request.user, cursor=cursor, limit=limit))


class PostCreateApi(APIView):
    """POST /api/posts/ {title?, content, image_urls?} → 201 with the post as the feed shows it."""

    @extend_schema(request=PostInput, responses={201: FeedItemOut})
    def post(self, request):
        data = PostInput(data=request.data)
        data.is_valid(raise_exception=True)
        post = services.post_create(author=request.user, **data.validated_data)
        return Response(selectors.feed_entry_get(viewer=request.user, post_id=post.id), status=status.HTTP_201_CREATED)


class PostDetailApi(APIView):
    """GET / PATCH (author) / DELETE (author or admin, soft) /api/posts/{id}/."""

    @extend_schema(responses=FeedItemOut)
    def get(self, request, post_id):
        return Response(selectors.feed_entry_get(viewer=request.user, post_id=post_id))

    @extend_schema(request=PostInput, responses=FeedItemOut)
    def patch(self, request, post_id):
        data = PostInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        post = services.post_update(user=request.user, post_id=post_id, **data.validated_data)
        if post.is_hidden:
            return Response({"id": post.id, "is_hidden": True})
        return Response(selectors.feed_entry_get(viewer=request.user, post_id=post.id))

    @extend_schema(responses={204: None})
    def delete(self, request, post_id):
        services.post_delete(user=request.user, post_id=post_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


PIN_OUT = inline_serializer("PinOut", {"id": serializers.UUIDField(), "is_pinned": serializers.BooleanField()})


class PostPinApi(APIView):
    """POST (pin) / DELETE (unpin) /api/posts/{id}/pin/ — admins only."""

    @extend_schema(request=None, responses=PIN_OUT)
    def post(self, request, post_id):
        post = services.post_set_pinned(user=request.user, post_id=post_id, pinned=True)
        return Response({"id": post.id, "is_pinned": post.is_pinned})

    @extend_schema(responses=PIN_OUT)
    def delete(self, request, post_id):
        post = services.post_set_pinned(user=request.user, post_id=post_id, pinned=False)
        return Response({"id": post.id, "is_pinned": post.is_pinned})


class PostLikeApi(APIView):
    """POST /api/posts/{id}/like/ — toggle; answers {liked, likes_count}."""

    @extend_schema(
        request=None,
        responses=inline_serializer(
            "LikeToggle", {"liked": serializers.BooleanField(), "likes_count": serializers.IntegerField()}
        ),
    )
    def post(self, request, post_id):
        liked, likes_count = services.post_like_toggle(user=request.user, post_id=post_id)
        return Response({"liked": liked, "likes_count": likes_count})


class CommentListCreateApi(APIView):
    """GET (oldest first, keyset cursor) / POST {content} /api/posts/{id}/comments/."""

    class InputSerializer(serializers.Serializer):
        content = serializers.CharField(max_length=5000, trim_whitespace=True)

        class Meta:
            ref_name = "CommentInput"

    @extend_schema(parameters=[LIMIT, CURSOR], responses=page_of("CommentPage", CommentOut(many=True)))
    def get(self, request, post_id):
        limit = parse_limit(request.query_params.get("limit"))
        cursor = request.query_params.get("cursor") or None
        return _page(selectors.comment_list(post_id=post_id, cursor=cursor, limit=limit))

    @extend_schema(request=InputSerializer, responses={201: CommentOut})
    def post(self, request, post_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.comment_create(user=request.user, post_id=post_id, **data.validated_data)
        return Response(selectors.comment_shape(comment), status=status.HTTP_201_CREATED)


class CommentDetailApi(APIView):
    """DELETE /api/posts/{id}/comments/{comment_id}/ — soft delete."""

    @extend_schema(responses={204: None})
    def delete(self, request, post_id, comment_id):
        services.comment_delete(user=request.user, post_id=post_id, comment_id=comment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PostShareApi(APIView):
    """POST /api/posts/{id}/share/ {comment?} → 201 {id, shares_count}."""

    class InputSerializer(serializers.Serializer):
        comment = serializers.CharField(max_length=2000, required=False, allow_blank=True)

        class Meta:
            ref_name = "ShareInput"

    @extend_schema(
        request=InputSerializer,
        responses={
            201: inline_serializer(
                "ShareOut", {"id": serializers.UUIDField(), "shares_count": serializers.IntegerField()}
            )
        },
    )
    def post(self, request, post_id):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        share, shares_count = services.post_share(user=request.user, post_id=post_id, **data.validated_data)
        return Response({"id": share.id, "shares_count": shares_count}, status=status.HTTP_201_CREATED)


class SearchApi(APIView):
    """GET /api/search/?q=&type=jobs|posts|candidates&limit=&cursor=

    French full text over v_search_optimized, ranked by ts_rank × recency. Without
    `type`: jobs and posts (and candidates for recruiters and admins).
    """

    @extend_schema(
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, required=True, description="2–200 characters"),
            OpenApiParameter("type", OpenApiTypes.STR, enum=["jobs", "posts", "candidates"]),
            LIMIT,
            CURSOR,
        ],
        responses=page_of("SearchPage", SearchResultOut(many=True)),
    )
    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"))
        cursor = request.query_params.get("cursor") or None
        q = request.query_params.get("q", "")
        type_ = request.query_params.get("type") or None
        return _page(selectors.search_list(user=request.user, q=q, type_=type_, cursor=cursor, limit=limit))
