"""Create the pgvector extension (if this role may) and the embedding tables, now.

For a database that gained pgvector after `migrate` ran (migration 0009 created nothing
then). Idempotent; prints the resulting state."""

from django.core.management.base import BaseCommand, CommandError

from matching import semantic


class Command(BaseCommand):
    help = "Create the semantic-matching tables where the server has pgvector (idempotent)."

    def handle(self, *args, **options):
        state = semantic.setup()
        if not state.enabled:
            raise CommandError(f"semantic matching is off: {state.reason}")
        self.stdout.write("semantic matching is on; run `python manage.py semantic_backfill` to embed existing rows")
