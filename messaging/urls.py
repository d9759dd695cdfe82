from django.urls import path

from messaging.apis import ConversationListCreateApi, ConversationMessagesApi, ConversationReadApi

urlpatterns = [
    path("conversations/", ConversationListCreateApi.as_view(), name="conversations"),
    path(
        "conversations/<uuid:conversation_id>/messages/",
        ConversationMessagesApi.as_view(),
        name="conversation-messages",
    ),
    path("conversations/<uuid:conversation_id>/read/", ConversationReadApi.as_view(), name="conversation-read"),
]
