"""Drop idx_users_active_id (migration 0006): the matcher no longer probes users.

Since 0007 the job → candidates matcher reads candidate_match_profiles, which only holds
candidates of active accounts, so nothing reads this partial index any more and every
write to users paid for it. Reversing creates it again.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("matching", "0007_candidate_match_profiles")]

    operations = [
        migrations.RunSQL(
            "DROP INDEX IF EXISTS idx_users_active_id;",
            "CREATE INDEX IF NOT EXISTS idx_users_active_id ON users (id) WHERE is_active;",
        )
    ]
