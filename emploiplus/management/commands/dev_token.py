"""A signed access token for a demo user, to try the API and the WebSockets without Supabase.

    python manage.py dev_token --as camille.martin@demo.emploiplus.local
    python manage.py dev_token --as candidate          # or company, admin; or a persona: camille
    python manage.py dev_token --as sophie --expires-in 7200

Prints only the token (so `TOKEN=$(python manage.py dev_token --as candidate)` works). It is
shaped like a Supabase access token (sub, aud=authenticated, email, app_metadata.role) and
signed with SUPABASE_JWT_SECRET — the development secret under .data/ when unset. Refused
unless DEBUG is on.
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.testing import token_for
from emploiplus import demo


class Command(BaseCommand):
    help = "Print a signed access token for a demo user (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--as", dest="who", required=True, help="e-mail, persona (camille) or role")
        parser.add_argument("--expires-in", type=int, default=3600, help="seconds (default 3600)")

    def handle(self, *args, who: str, expires_in: int, **options):
        demo.require_debug("dev_token")
        if not 60 <= expires_in <= 7 * 86400:
            raise CommandError("--expires-in must be between 60 and 604800 seconds.")
        user = demo.user_for(who)
        self.stdout.write(token_for(user, expires_in=expires_in))
