"""`/`: a small start page (no framework) pointing at what there is to try."""

from __future__ import annotations

from html import escape

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.http import require_GET

LINKS = [
    ("/api/docs/", "Documentation de l'API", "OpenAPI 3, essayable dans le navigateur (schéma : /api/schema/)"),
    ("/admin/", "Administration", "tous les modèles ; connexion du personnel"),
    ("/admin/rq/", "Tableau de bord RQ", "files, jobs, échecs, relance"),
]
DEV_LINKS = [("/dev/chat/", "Chat de démonstration", "deux utilisateurs de démo, messages en temps réel")]

PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Emploi+ API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:42rem;margin:3rem auto;padding:0 1rem;color:#222}}
a{{color:#0b57d0}}li{{margin:.4rem 0}}code{{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}}</style>
</head><body>
<h1>Emploi+ — API</h1>
<ul>
{links}
</ul>
{dev}
</body></html>
"""

DEV_HELP = """<h2>Développement</h2>
<p>Un jeton pour un utilisateur de démo :
<code>python manage.py dev_token --as camille</code> (ou <code>candidate</code>, <code>company</code>,
<code>admin</code>, une adresse e-mail), puis <code>Authorization: Bearer &lt;jeton&gt;</code>.
Connexion à l'administration : <code>python manage.py dev_admin</code>.</p>"""


@require_GET
def home(request):
    links = LINKS + (DEV_LINKS if settings.DEBUG else [])
    items = "\n".join(
        f'<li><a href="{escape(href)}">{escape(title)}</a> — {escape(what)}</li>' for href, title, what in links
    )
    return HttpResponse(PAGE.format(links=items, dev=DEV_HELP if settings.DEBUG else ""))
