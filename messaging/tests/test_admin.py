"""Admin: conversations and messages searchable and filterable, deleted ones visible."""

import pytest

from messaging.services import conversation_get_or_create_direct, message_delete, message_send


@pytest.mark.django_db
def test_it_lists_searches_and_filters_in_the_admin(client, make_user, alice, bob):
    root = make_user("boss", role="admin", is_staff=True, is_superuser=True)
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    kept, _ = message_send(user=alice, conversation_id=conversation.pk, content="Entretien confirmé")
    gone, _ = message_send(user=alice, conversation_id=conversation.pk, content="Message effacé")
    message_delete(user=alice, message_id=gone.pk)
    client.force_login(root)

    for url, expected, absent in [
        ("/admin/messaging/message/?q=Entretien", "Entretien confirmé", "Message effacé"),
        ("/admin/messaging/message/?deleted=yes", "Message effacé", "Entretien confirmé"),
        ("/admin/messaging/message/?deleted=no", "Entretien confirmé", "Message effacé"),
        (f"/admin/messaging/message/?q={conversation.pk}", "Entretien confirmé", None),
        ("/admin/messaging/message/?q=alice%40example.test", "Message effacé", None),
        ("/admin/messaging/conversation/?q=bob%40example.test", str(conversation.pk), None),
        ("/admin/messaging/conversation/?q=not-a-uuid", None, str(conversation.pk)),
        ("/admin/messaging/conversation/?is_group__exact=0", str(conversation.pk), None),
        ("/admin/messaging/conversationparticipant/?q=bob%40example.test", "bob@example.test", None),
    ]:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        if expected:
            assert expected in body, url
        if absent:
            assert absent not in body, url
    page = client.get(f"/admin/messaging/conversation/{conversation.pk}/change/")
    assert page.status_code == 200  # participants inline
    assert client.get(f"/admin/messaging/message/{kept.pk}/change/").status_code == 200
