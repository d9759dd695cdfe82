"""A partial index on users(id) WHERE is_active, for the matcher's account check.

The job → candidates matcher checks `users.is_active` only for the candidates scoring
≥ threshold (~37k at 1M candidates). Against users_pkey each probe also reads the users
heap page (a random page per candidate); this partial index answers the probe as an
index-only scan (`SELECT 1 FROM users WHERE id = $1 AND is_active`). It holds only active
accounts and is maintained by PostgreSQL; the users table belongs to accounts, the index
to the matcher that needs it. Reversing drops it.
"""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_sql"),
        ("matching", "0005_skill_score_from_overlap"),
    ]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS idx_users_active_id ON users (id) WHERE is_active;",
            "DROP INDEX IF EXISTS idx_users_active_id;",
        )
    ]
