"""REST of conversations: the same services as the WebSocket."""

from __future__ import annotations

import uuid

import pytest
from asgiref.sync import sync_to_async
from rest_framework.test import APIClient

from accounts.testing import auth_header
from messaging.models import Conversation, Message
from messaging.services import conversation_get_or_create_direct, message_delete, message_send
from messaging.tests.helpers import ws


@pytest.fixture
def direct(alice, bob) -> Conversation:
    return conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)[0]


@pytest.mark.django_db
def test_it_creates_a_direct_conversation_once(api, auth, alice, bob):
    first = api.post("/api/conversations/", {"participantIds": [str(bob.pk)]}, format="json", headers=auth(alice))
    assert first.status_code == 201, first.content
    again = api.post("/api/conversations/", {"participantIds": [str(alice.pk)]}, format="json", headers=auth(bob))
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    body = first.json()
    assert body["isGroup"] is False and body["unreadCount"] == 0 and body["lastMessage"] is None
    assert [p["id"] for p in body["participants"]] == [str(bob.pk)]
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_creates_groups_and_validates(api, auth, alice, bob, charlie):
    response = api.post(
        "/api/conversations/",
        {"participantIds": [str(bob.pk), str(charlie.pk)], "title": "Projet"},
        format="json",
        headers=auth(alice),
    )
    assert response.status_code == 201
    assert response.json()["isGroup"] is True
    assert {p["id"] for p in response.json()["participants"]} == {str(bob.pk), str(charlie.pk)}
    bad = api.post("/api/conversations/", {"participantIds": ["nope"]}, format="json", headers=auth(alice))
    assert bad.status_code == 400 and bad.json()["code"] == "invalid" and "participantIds" in bad.json()["errors"]
    unknown = api.post(
        "/api/conversations/", {"participantIds": [str(uuid.uuid4())]}, format="json", headers=auth(alice)
    )
    assert unknown.status_code == 400 and unknown.json()["code"] == "invalid_participants"
    assert api.get("/api/conversations/").status_code == 401
    assert Conversation.objects.count() == 1


@pytest.mark.django_db
def test_it_lists_conversations_with_last_message_and_unread_count(api, auth, alice, bob, charlie, make_user):
    with_bob, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    with_charlie, _ = conversation_get_or_create_direct(user=alice, other_user_id=charlie.pk)
    others = [conversation_get_or_create_direct(user=alice, other_user_id=make_user(f"u{i}").pk)[0] for i in range(3)]
    message_send(user=bob, conversation_id=with_bob.pk, content="un")
    message_send(user=bob, conversation_id=with_bob.pk, content="deux")
    message_send(user=charlie, conversation_id=with_charlie.pk, content="salut")

    page = api.get("/api/conversations/?limit=2", headers=auth(alice)).json()
    assert [c["id"] for c in page["results"]] == [str(with_charlie.pk), str(with_bob.pk)]
    assert page["results"][0]["lastMessage"]["content"] == "salut"
    assert page["results"][0]["unreadCount"] == 1
    assert page["results"][1]["unreadCount"] == 2
    assert page["results"][1]["participants"][0]["email"] == bob.email
    rest = api.get(f"/api/conversations/?cursor={page['next_cursor']}&limit=10", headers=auth(alice)).json()
    assert {c["id"] for c in rest["results"]} == {str(c.pk) for c in others}
    assert rest["next_cursor"] is None
    assert api.get("/api/conversations/?cursor=garbage", headers=auth(alice)).json()["code"] == "invalid_cursor"
    # bob sees only his own conversation.
    assert [c["id"] for c in api.get("/api/conversations/", headers=auth(bob)).json()["results"]] == [str(with_bob.pk)]


@pytest.mark.django_db
def test_it_pages_history_newest_first_and_catches_up_after(api, auth, alice, bob, direct):
    sent = [message_send(user=(alice, bob)[i % 2], conversation_id=direct.pk, content=f"m{i}")[0] for i in range(5)]
    message_delete(user=alice, message_id=sent[2].pk)
    url = f"/api/conversations/{direct.pk}/messages/"

    page = api.get(f"{url}?limit=2", headers=auth(bob)).json()
    assert [m["content"] for m in page["results"]] == ["m4", "m3"]
    page = api.get(f"{url}?limit=2&cursor={page['next_cursor']}", headers=auth(bob)).json()
    assert [(m["content"], m["deleted"]) for m in page["results"]] == [("", True), ("m1", False)]
    page = api.get(f"{url}?limit=2&cursor={page['next_cursor']}", headers=auth(bob)).json()
    assert [m["content"] for m in page["results"]] == ["m0"] and page["next_cursor"] is None

    catch_up = api.get(f"{url}?after={sent[1].pk}&limit=2", headers=auth(bob)).json()
    assert [m["id"] for m in catch_up["results"]] == [str(sent[2].pk), str(sent[3].pk)]
    catch_up = api.get(f"{url}?cursor={catch_up['next_cursor']}", headers=auth(bob)).json()
    assert [m["content"] for m in catch_up["results"]] == ["m4"] and catch_up["next_cursor"] is None
    assert api.get(f"{url}?after={uuid.uuid4()}", headers=auth(bob)).status_code == 404


@pytest.mark.django_db
def test_it_hides_conversations_from_non_participants(api, auth, charlie, direct):
    message_send(user=direct.memberships.first().user, conversation_id=direct.pk, content="secret")
    for method, path, body in [
        ("get", f"/api/conversations/{direct.pk}/messages/", None),
        ("post", f"/api/conversations/{direct.pk}/messages/", {"content": "intrus"}),
        ("post", f"/api/conversations/{direct.pk}/read/", {}),
        ("get", f"/api/conversations/{uuid.uuid4()}/messages/", None),
    ]:
        response = getattr(api, method)(path, body, format="json", headers=auth(charlie))
        assert response.status_code == 404, (path, response.content)
        assert response.json()["code"] == "not_found"
    assert Message.objects.count() == 1
    assert Message.objects.get().read_at is None


@pytest.mark.django_db
def test_it_sends_idempotently_and_marks_read(api, auth, alice, bob, direct):
    url = f"/api/conversations/{direct.pk}/messages/"
    body = {"content": "  Disponible lundi ?  ", "clientMessageId": "web-1"}
    first = api.post(url, body, format="json", headers=auth(alice))
    assert first.status_code == 201
    assert first.json()["content"] == "Disponible lundi ?"
    again = api.post(url, body, format="json", headers=auth(alice))
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    empty = api.post(url, {"content": "   "}, format="json", headers=auth(alice))
    assert empty.status_code == 400 and empty.json()["code"] == "invalid_content"
    assert "content" in empty.json()["errors"]
    assert Message.objects.count() == 1

    read = api.post(f"/api/conversations/{direct.pk}/read/", {}, format="json", headers=auth(bob))
    assert read.status_code == 200
    assert read.json()["messageIds"] == [first.json()["id"]] and read.json()["userId"] == str(bob.pk)
    assert Message.objects.get().read_at is not None
    listed = api.get("/api/conversations/", headers=auth(bob)).json()["results"]
    assert listed[0]["unreadCount"] == 0


@pytest.mark.django_db(transaction=True)
async def test_it_pushes_a_rest_message_to_the_socket(alice, bob, direct):
    bob_tab = await ws("/ws/messages/", bob)
    try:
        client = APIClient()
        response = await sync_to_async(client.post)(
            f"/api/conversations/{direct.pk}/messages/",
            {"content": "Envoyé par REST", "clientMessageId": "rest-1"},
            format="json",
            headers=auth_header(alice),
        )
        assert response.status_code == 201
        frame = await bob_tab.recv_event("new_message")
        assert frame["data"]["id"] == response.json()["id"]
        assert frame["data"]["content"] == "Envoyé par REST"
        assert frame["data"]["clientMessageId"] == "rest-1"
        assert await bob_tab.nothing()
    finally:
        await bob_tab.close()
