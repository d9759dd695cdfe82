"""PostgreSQL layer of messaging: triggers and row-level security.

The guide enabled RLS on conversations without any policy (so nobody could read
them). Here every table has policies: a row is visible only to the participants of
its conversation. Membership is checked by a SECURITY DEFINER function so the
policy on conversation_participants does not recurse into itself.
"""

from django.db import migrations

from emploiplus.sql import grant_to_authenticated, updated_at_trigger

RLS = """
CREATE FUNCTION emploiplus_is_participant(conversation uuid) RETURNS boolean
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
    SELECT EXISTS (
        SELECT 1 FROM conversation_participants
        WHERE conversation_id = conversation AND user_id = auth.uid()
    )
$$;
REVOKE ALL ON FUNCTION emploiplus_is_participant(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION emploiplus_is_participant(uuid) TO authenticated, service_role;

ALTER TABLE conversations ENABLE ROW LEVEL SECURITY;
CREATE POLICY conversations_participants_select ON conversations FOR SELECT TO authenticated
    USING (emploiplus_is_participant(id));

ALTER TABLE conversation_participants ENABLE ROW LEVEL SECURITY;
CREATE POLICY participants_select ON conversation_participants FOR SELECT TO authenticated
    USING (emploiplus_is_participant(conversation_id));
CREATE POLICY participants_update_own ON conversation_participants FOR UPDATE TO authenticated
    USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());

ALTER TABLE messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY messages_participants_select ON messages FOR SELECT TO authenticated
    USING (emploiplus_is_participant(conversation_id));
CREATE POLICY messages_sender_insert ON messages FOR INSERT TO authenticated
    WITH CHECK (sender_id = auth.uid() AND emploiplus_is_participant(conversation_id));
CREATE POLICY messages_sender_update ON messages FOR UPDATE TO authenticated
    USING (sender_id = auth.uid()) WITH CHECK (sender_id = auth.uid());
"""

RLS_REVERSE = """
DROP POLICY IF EXISTS messages_sender_update ON messages;
DROP POLICY IF EXISTS messages_sender_insert ON messages;
DROP POLICY IF EXISTS messages_participants_select ON messages;
ALTER TABLE messages DISABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS participants_update_own ON conversation_participants;
DROP POLICY IF EXISTS participants_select ON conversation_participants;
ALTER TABLE conversation_participants DISABLE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS conversations_participants_select ON conversations;
ALTER TABLE conversations DISABLE ROW LEVEL SECURITY;
DROP FUNCTION IF EXISTS emploiplus_is_participant(uuid);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("emploiplus", "0001_sql_foundation"),
        ("messaging", "0001_initial"),
    ]

    operations = [
        updated_at_trigger("conversations"),
        updated_at_trigger("messages"),
        grant_to_authenticated("conversations", "conversation_participants", privileges="SELECT"),
        grant_to_authenticated("messages", privileges="SELECT, INSERT, UPDATE"),
        grant_to_authenticated("conversation_participants", privileges="UPDATE"),
        migrations.RunSQL(RLS, RLS_REVERSE),
    ]
