"""A staff login for development without `createsuperuser`'s prompts.

    python manage.py dev_admin [--email admin@emploiplus.local]

Creates (or resets) a superuser with a fresh random password and prints it once.
Refused unless DEBUG is on: production admins are granted in the database by staff.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from emploiplus.management.commands.dev_seed import admin_with_new_password


class Command(BaseCommand):
    help = "Create or reset a development superuser and print its password (DEBUG only)."

    def add_arguments(self, parser):
        parser.add_argument("--email", default="admin@emploiplus.local")

    def handle(self, *args, email: str, **options):
        if not settings.DEBUG:
            raise CommandError("dev_admin only runs with DEBUG=1.")
        password = admin_with_new_password(email)
        self.stdout.write(f"Staff login: {email} / {password}  →  http://127.0.0.1:{settings.PORT}/admin/")
