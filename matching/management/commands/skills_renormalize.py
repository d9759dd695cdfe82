"""Re-apply skill normalisation (aliases) to every stored candidate and job skill array."""

from django.core.management.base import BaseCommand

from matching.services import skills_renormalize_all


class Command(BaseCommand):
    help = "Re-normalise candidates.skills and jobs.required_skills after the alias table changed."

    def handle(self, *args, **options):
        changed = skills_renormalize_all()
        self.stdout.write(f"updated {changed['candidates']} candidate(s) and {changed['jobs']} job(s)")
