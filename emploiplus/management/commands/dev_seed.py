"""The first run of `make run`: French demo data, an admin login, how to get a token.

    python manage.py dev_seed

On an empty database: creates the demo dataset (emploiplus.demo: named personas,
companies, jobs, posts, a conversation, plus seed_demo's generated data), an admin account
with a fresh password, and prints — once — how to log in and how to get a token. Later
runs change nothing and print one line. Refused unless DEBUG is on.
"""

import secrets

from django.conf import settings
from django.core.management.base import BaseCommand

from accounts.models import Role, User
from emploiplus import demo


def admin_with_new_password(email: str = demo.ADMIN_EMAIL) -> str:
    """Create or reset the development superuser; return its new password."""
    password = secrets.token_urlsafe(12)
    user = User.objects.filter(email=email).first()
    if user is None:
        User.objects.create_superuser(email=email, password=password, full_name="Admin (dev)")
    else:
        user.is_staff = user.is_superuser = True
        user.role = Role.ADMIN
        user.set_password(password)
        user.save()
    return password


class Command(BaseCommand):
    help = "Add the demo dataset on the first run and print how to log in (DEBUG only)."

    def handle(self, *args, **options):
        demo.require_debug("dev_seed (demo data)")
        base = f"http://127.0.0.1:{settings.PORT}"
        if demo.is_seeded():
            self.stdout.write(
                f"Demo data present. Admin: `python manage.py dev_admin` (new password); "
                f"token: `python manage.py dev_token --as candidate`; start page: {base}/"
            )
            return
        counts = demo.seed()
        password = admin_with_new_password()
        people = "\n".join(f"      {p.email:<38} {p.full_name} ({p.role})" for p in demo.PERSONAS)
        self.stdout.write(
            f"""
==========================================================================
 Emploi+ — first run: demo data added ({counts["personas"]} named users, {counts["jobs"]} jobs, {counts["posts"]} posts)
 Start page   {base}/   (API docs, admin, RQ dashboard, demo chat)
 Admin        {base}/admin/   {demo.ADMIN_EMAIL} / {password}
              (shown once; `python manage.py dev_admin` sets a new one)
 A token      python manage.py dev_token --as camille      (or: candidate, company, admin, an e-mail)
 Demo users
{people}
 Then try the README's "First ten minutes".
==========================================================================
"""
        )
