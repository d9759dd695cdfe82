"""PostgreSQL layer of webhooks: the updated_at trigger. No grants: only the backend reads the log."""

from django.db import migrations

from emploiplus.sql import updated_at_trigger


class Migration(migrations.Migration):
    dependencies = [
        ("emploiplus", "0001_sql_foundation"),
        ("webhooks", "0001_initial"),
    ]

    operations = [updated_at_trigger("webhook_events")]
