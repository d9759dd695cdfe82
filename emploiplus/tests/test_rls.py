"""Row-level security, exercised as Supabase's `authenticated` role with request.jwt.claims set.

Django connects as the tables' owner (RLS does not apply to it); Supabase clients
(PostgREST) connect as `authenticated` with the JWT claims in `request.jwt.claims`.
"""

from __future__ import annotations

import json

import pytest
from django.db import connection, transaction

from messaging.models import Conversation, ConversationParticipant, Message
from notifications.models import Notification

pytestmark = pytest.mark.django_db


def as_authenticated(claims: dict, sql: str, params=None) -> list[tuple]:
    # In a savepoint: if the statement fails, rolling back also undoes SET LOCAL ROLE.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE authenticated")
        cursor.execute("SELECT set_config('request.jwt.claims', %s, true)", [json.dumps(claims)])
        cursor.execute(sql, params or [])
        result = cursor.fetchall()
        cursor.execute("RESET ROLE")
        return result


def claims_of(user, **app_metadata) -> dict:
    return {"sub": str(user.pk), "role": "authenticated", "app_metadata": app_metadata, "user_metadata": {}}


@pytest.fixture
def conversation(alice, bob):
    conv = Conversation.objects.create(direct_key=f"{alice.pk}:{bob.pk}")
    ConversationParticipant.objects.create(conversation=conv, user=alice)
    ConversationParticipant.objects.create(conversation=conv, user=bob)
    Message.objects.create(conversation=conv, sender=alice, recipient=bob, content="Bonjour Bob")
    return conv


def test_it_shows_a_candidate_only_their_own_row(alice, bob):
    seen = as_authenticated(claims_of(alice), "SELECT id FROM candidates")
    assert seen == [(alice.pk,)]


def test_it_shows_every_candidate_to_an_app_metadata_admin(alice, bob, charlie):
    seen = as_authenticated(claims_of(charlie, role="admin"), "SELECT id FROM candidates")
    assert {row[0] for row in seen} == {alice.pk, bob.pk, charlie.pk}


def test_it_ignores_an_admin_role_in_user_metadata(alice, bob):
    claims = claims_of(bob)
    claims["user_metadata"] = {"role": "admin"}
    seen = as_authenticated(claims, "SELECT id FROM candidates")
    assert seen == [(bob.pk,)]


def test_it_honours_an_admin_role_stored_in_the_database(alice, root):
    seen = as_authenticated(claims_of(root), "SELECT id FROM candidates")
    assert (alice.pk,) in seen


def test_it_shows_messages_and_conversations_to_participants_only(conversation, alice, bob, charlie):
    for participant in (alice, bob):
        assert as_authenticated(claims_of(participant), "SELECT content FROM messages") == [("Bonjour Bob",)]
        assert as_authenticated(claims_of(participant), "SELECT id FROM conversations") == [(conversation.pk,)]
        members = as_authenticated(claims_of(participant), "SELECT user_id FROM conversation_participants")
        assert {row[0] for row in members} == {alice.pk, bob.pk}

    assert as_authenticated(claims_of(charlie), "SELECT content FROM messages") == []
    assert as_authenticated(claims_of(charlie), "SELECT id FROM conversations") == []
    assert as_authenticated(claims_of(charlie), "SELECT user_id FROM conversation_participants") == []


def test_it_refuses_a_message_from_a_non_participant(conversation, charlie):
    from django.db.utils import ProgrammingError

    with pytest.raises(ProgrammingError, match="row-level security"):
        as_authenticated(
            claims_of(charlie),
            "INSERT INTO messages (id, conversation_id, sender_id, content, attachments, created_at, updated_at)"
            " VALUES (gen_random_uuid(), %s, %s, 'intrus', '[]', now(), now())",
            [conversation.pk, charlie.pk],
        )


def test_it_shows_notifications_to_their_owner_only(alice, bob):
    Notification.objects.create(user=alice, type="job_match", title="Pour Alice")
    Notification.objects.create(user=bob, type="job_match", title="Pour Bob")
    assert as_authenticated(claims_of(alice), "SELECT title FROM notifications") == [("Pour Alice",)]
    assert as_authenticated(claims_of(bob), "SELECT title FROM notifications") == [("Pour Bob",)]


def test_it_shows_nothing_without_claims(alice, conversation):
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE authenticated")
        try:
            cursor.execute("SELECT count(*) FROM candidates")
            candidates = cursor.fetchone()[0]
            cursor.execute("SELECT count(*) FROM messages")
            messages = cursor.fetchone()[0]
        finally:
            cursor.execute("RESET ROLE")
    assert (candidates, messages) == (0, 0)


def test_it_grants_anon_no_table():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.role_table_grants"
            " WHERE grantee = 'anon' AND table_schema = 'public'"
        )
        assert cursor.fetchall() == []
