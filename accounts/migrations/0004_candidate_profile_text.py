"""Candidate profile text (issue 15): headline and summary, with a database default ("") so
rows inserted by other writers (Supabase clients, raw SQL) stay valid."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_candidate_rematch_requested_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="candidate",
            name="headline",
            field=models.CharField(blank=True, db_default="", default="", max_length=200),
        ),
        migrations.AddField(
            model_name="candidate",
            name="summary",
            field=models.CharField(blank=True, db_default="", default="", max_length=2000),
        ),
    ]
