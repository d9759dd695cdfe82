from django.urls import path

from feed import apis

urlpatterns = [
    path("feed/", apis.FeedApi.as_view(), name="feed"),
    path("search/", apis.SearchApi.as_view(), name="search"),
    path("posts/", apis.PostCreateApi.as_view(), name="post-create"),
    path("posts/<uuid:post_id>/", apis.PostDetailApi.as_view(), name="post-detail"),
    path("posts/<uuid:post_id>/pin/", apis.PostPinApi.as_view(), name="post-pin"),
    path("posts/<uuid:post_id>/like/", apis.PostLikeApi.as_view(), name="post-like"),
    path("posts/<uuid:post_id>/share/", apis.PostShareApi.as_view(), name="post-share"),
    path("posts/<uuid:post_id>/comments/", apis.CommentListCreateApi.as_view(), name="post-comments"),
    path(
        "posts/<uuid:post_id>/comments/<uuid:comment_id>/",
        apis.CommentDetailApi.as_view(),
        name="post-comment-detail",
    ),
]
