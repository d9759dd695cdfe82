"""The small French demo dataset of `make run`'s first run (`manage.py dev_seed`).

Named personas a newcomer can act as (`manage.py dev_token --as camille` or `--as company`),
their companies and job offers, a conversation between a candidate and a recruiter, and —
around them — a few dozen generated candidates, jobs, posts, likes and comments from
`manage.py seed_demo`. Rows are written directly (no matching run, no notification sent):
seeding is silent. Everything here refuses to run with DEBUG off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from io import StringIO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import transaction
from django.utils import timezone

DEMO_DOMAIN = "demo.emploiplus.local"
ADMIN_EMAIL = "admin@emploiplus.local"


@dataclass(frozen=True)
class Persona:
    key: str
    full_name: str
    role: str  # candidate | company
    company: str = ""
    job_title: str = ""
    skills: tuple[str, ...] = ()
    level: str = ""
    location: str = ""
    salary_min: int | None = None

    @property
    def email(self) -> str:
        return f"{self.key}@{DEMO_DOMAIN}"


PERSONAS = [
    Persona("camille.martin", "Camille Martin", "candidate", job_title="Développeuse Python",
            skills=("python", "django", "postgresql", "docker"), level="mid", location="Lyon", salary_min=42000),
    Persona("lucas.bernard", "Lucas Bernard", "candidate", job_title="Développeur front-end React",
            skills=("react", "typescript", "css", "figma"), level="junior", location="Paris", salary_min=36000),
    Persona("ines.haddad", "Inès Haddad", "candidate", job_title="Data analyst",
            skills=("sql", "python", "excel"), level="senior", location="Toulouse", salary_min=48000),
    Persona("sophie.leroy", "Sophie Leroy", "company", company="Atelier Numérique"),
    Persona("karim.benali", "Karim Benali", "company", company="Horizon Santé"),
]  # fmt: skip

JOBS = [
    ("Atelier Numérique", "Développeur·se back-end Python H/F", "Lyon", "CDI", ("python", "django", "postgresql"),
     "mid", 40000, 50000,
     "Atelier Numérique conçoit des services publics numériques. Vous rejoindrez l'équipe API (Django, "
     "PostgreSQL) à Lyon, deux jours de télétravail par semaine."),
    ("Atelier Numérique", "Intégrateur·rice web React", "Paris", "alternance", ("react", "css", "typescript"),
     "entry", 18000, 22000,
     "Alternance de 24 mois : intégration des maquettes Figma de nos produits en React et TypeScript."),
    ("Horizon Santé", "Data analyst santé", "Toulouse", "CDD", ("sql", "excel", "python"), "mid", 38000, 45000,
     "Analyse des parcours patients de nos cliniques partenaires ; tableaux de bord SQL pour les équipes médicales."),
]  # fmt: skip

POSTS = [
    ("sophie.leroy", "Nous recrutons !",
     "Atelier Numérique recrute un·e développeur·se Python à Lyon. Écrivez-moi si le service public numérique "
     "vous intéresse !"),
    ("camille.martin", "",
     "Retour sur le meetup Django de Lyon hier soir : de super échanges sur les tests et la qualité du code."),
    ("karim.benali", "Portes ouvertes",
     "Journée portes ouvertes chez Horizon Santé à Toulouse samedi : venez rencontrer nos équipes data."),
]  # fmt: skip

CONVERSATION = [
    ("sophie.leroy", "Bonjour Camille, votre profil Python nous intéresse beaucoup pour notre équipe API à Lyon."),
    ("camille.martin", "Bonjour Sophie, merci ! Le poste est-il ouvert au télétravail ?"),
    ("sophie.leroy", "Oui, deux jours par semaine. Seriez-vous disponible pour un échange jeudi ?"),
]

# Generated around the personas by seed_demo (small: seconds on a laptop).
GENERATED = {"users": 40, "companies": 4, "jobs": 20, "posts": 60, "likes": 200, "comments": 40}

ROLE_DEFAULTS = {"candidate": "camille.martin", "company": "sophie.leroy", "admin": None}


def require_debug(what: str) -> None:
    if not settings.DEBUG:
        raise CommandError(f"{what} only runs with DEBUG=1 (development); it is refused in production.")


def is_seeded() -> bool:
    from accounts.models import User

    return User.objects.filter(email=PERSONAS[0].email).exists()


def user_for(who: str):
    """A demo user by e-mail, persona key (`camille.martin`, `camille`) or role
    (candidate, company, admin)."""
    from accounts.models import Role, User

    who = who.strip()
    if who in ROLE_DEFAULTS:
        if who == "admin":
            user = User.objects.filter(role=Role.ADMIN, is_active=True).order_by("created_at").first()
            if user is None:
                raise CommandError("no admin user yet: run `python manage.py dev_admin` first.")
            return user
        who = ROLE_DEFAULTS[who]
    candidates = [who] if "@" in who else [f"{who}@{DEMO_DOMAIN}"]
    if "@" not in who:
        candidates += [p.email for p in PERSONAS if p.key.split(".")[0] == who.lower()]
    user = User.objects.filter(email__in=candidates, is_active=True).first()
    if user is None:
        known = ", ".join(p.email for p in PERSONAS)
        raise CommandError(f"no active user {who!r}. Demo users: {known} (or a role: candidate, company, admin).")
    return user


@transaction.atomic
def seed() -> dict[str, int]:
    """Personas, their jobs, posts and conversation, then generated data around them."""
    from accounts.models import Candidate, Company, Role, User
    from feed.models import Post
    from matching.models import Job
    from messaging.models import ConversationParticipant, Message
    from messaging.services import conversation_get_or_create_direct

    require_debug("Demo seeding")
    now = timezone.now()
    companies = {name: Company.objects.create(name=name, website="https://example.org") for name in
                 {p.company for p in PERSONAS if p.company}}  # fmt: skip
    users = {}
    for p in PERSONAS:
        users[p.key] = User.objects.create_user(
            email=p.email, full_name=p.full_name, role=p.role, company=companies.get(p.company)
        )
        if p.role == Role.CANDIDATE:
            Candidate.objects.create(
                user=users[p.key], skills=list(p.skills), experience_level=p.level, location=p.location,
                job_title=p.job_title, target_salary_min=p.salary_min,
            )  # fmt: skip
    recruiters = {p.company: users[p.key] for p in PERSONAS if p.company}
    for company, title, location, job_type, skills, level, low, high, description in JOBS:
        Job.objects.create(
            company=companies[company], created_by=recruiters[company], title=title, location=location,
            job_type=job_type, required_skills=list(skills), experience_level=level, salary_min=low,
            salary_max=high, description=description, status="active", notification_status="sent",
            notification_sent_at=now,
        )  # fmt: skip
    for key, title, content in POSTS:
        Post.objects.create(user=users[key], title=title, content=content)
    conversation, _ = conversation_get_or_create_direct(
        user=users["sophie.leroy"], other_user_id=users["camille.martin"].pk
    )
    last = None
    for i, (key, content) in enumerate(CONVERSATION):
        other = "camille.martin" if key == "sophie.leroy" else "sophie.leroy"
        last = Message.objects.create(
            conversation=conversation, sender=users[key], recipient=users[other], content=content
        )
        Message.objects.filter(pk=last.pk).update(created_at=now - timedelta(minutes=30 - 10 * i))
    conversation.last_message = last
    conversation.last_message_at = now - timedelta(minutes=10)
    conversation.save(update_fields=["last_message", "last_message_at"])
    ConversationParticipant.objects.filter(conversation=conversation).update(last_read_at=now - timedelta(minutes=10))
    call_command("seed_demo", seed=14, stdout=StringIO(), **GENERATED)
    return {"personas": len(PERSONAS), "jobs": len(JOBS) + GENERATED["jobs"], "posts": len(POSTS) + GENERATED["posts"]}
