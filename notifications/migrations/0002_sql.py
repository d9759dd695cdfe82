"""PostgreSQL layer of notifications: triggers and row-level security (owner only)."""

from django.db import migrations

from emploiplus.sql import grant_to_authenticated, updated_at_trigger

RLS = """
ALTER TABLE notifications ENABLE ROW LEVEL SECURITY;
CREATE POLICY notifications_owner_select ON notifications FOR SELECT TO authenticated
    USING (user_id = auth.uid());
CREATE POLICY notifications_owner_update ON notifications FOR UPDATE TO authenticated
    USING (user_id = auth.uid()) WITH CHECK (user_id = auth.uid());
"""

RLS_REVERSE = """
DROP POLICY IF EXISTS notifications_owner_update ON notifications;
DROP POLICY IF EXISTS notifications_owner_select ON notifications;
ALTER TABLE notifications DISABLE ROW LEVEL SECURITY;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("emploiplus", "0001_sql_foundation"),
        ("notifications", "0001_initial"),
    ]

    operations = [
        updated_at_trigger("notification_deliveries"),
        grant_to_authenticated("notifications", privileges="SELECT, UPDATE"),
        migrations.RunSQL(RLS, RLS_REVERSE),
    ]
