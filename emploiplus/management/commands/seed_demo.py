"""Realistic French demo data, generated inside PostgreSQL (fast enough for millions of rows).

    python manage.py seed_demo --users 1000 --jobs 200 --posts 5000 [--likes 20000]
                               [--companies 20] [--comments 0] [--seed 42]

* `--users N`: N candidates (a `users` row with role candidate + a `candidates` profile:
  job title, skills from a real tech vocabulary in the normalised form of
  matching.skills, experience level, French city, target salary).
* `--companies N` (default: one per 20 jobs): companies, each with one recruiter user.
* `--jobs N`: job offers of those companies (CDI/CDD/stage/alternance/freelance/interim,
  French titles and descriptions, required skills, salaries by level; 85 % active).
* `--posts N`: newsfeed posts by random users (French texts from templates; some with a
  title or an image; two pinned; 0.5 % soft-deleted and 0.1 % hidden, as in real life).
* `--likes N` / `--comments N`: random likes (unique per user and post: duplicates
  drawn at random are skipped, so slightly fewer than N may be created) and comments.

Additive, not idempotent: every run adds new rows (e-mails carry a per-run tag), and the
posts, likes and comments of a run go to all users and posts already there, so
`seed_demo --users 0 --likes 1000000` adds likes to existing data. Rows are made by
`INSERT … SELECT … FROM generate_series()` in batches, with every trigger enabled (search
vectors, counters): the data is exactly what the application would have written.
`--seed` makes the drawn values (not the UUIDs) reproducible.
"""

from __future__ import annotations

import time
import uuid

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

BATCH = 100_000


def _words(text: str) -> list[str]:
    return text.split()


FIRST_NAMES = _words(
    "Camille Léa Manon Chloé Emma Inès Jade Louise Sarah Lucie Zoé Juliette Clara Anaïs Océane Mathilde Pauline "
    "Élodie Margaux Alice Nathalie Sophie Isabelle Fatima Yasmine Aïcha Amandine Hélène Cécile Aurélie "
    "Lucas Hugo Louis Nathan Gabriel Léo Arthur Jules Raphaël Thomas Maxime Antoine Nicolas Julien Mathieu "
    "Guillaume Romain Théo Paul Mehdi Karim Yanis Rayan Adrien Baptiste François Sébastien Olivier Cédric Jérôme"
)
LAST_NAMES = _words(
    "Martin Bernard Dubois Thomas Robert Richard Petit Durand Leroy Moreau Simon Laurent Lefèbvre Michel Garcia "
    "David Bertrand Roux Vincent Fournier Morel Girard André Lefèvre Mercier Dupont Lambert Bonnet François "
    "Martinez Legrand Garnier Faure Rousseau Blanc Guérin Muller Henry Roussel Nicolas Perrin Morin Mathieu "
    "Clément Gauthier Dumont Lopez Fontaine Chevalier Robin Masson Sanchez Gérard Nguyen Boyer Denis Lemaire "
    "Duval Joly Gautier Roger Roche Roy Noël Meyer Lucas Meunier Jean Perez Marchand Dufour Blanchard Benali"
)
CITIES = [
    "Paris", "Lyon", "Marseille", "Toulouse", "Nice", "Nantes", "Montpellier", "Strasbourg", "Bordeaux",
    "Lille", "Rennes", "Reims", "Toulon", "Saint-Étienne", "Le Havre", "Grenoble", "Dijon", "Angers",
    "Nîmes", "Villeurbanne", "Clermont-Ferrand", "Le Mans", "Aix-en-Provence", "Brest", "Tours", "Amiens",
    "Limoges", "Annecy", "Perpignan", "Metz", "Besançon", "Orléans", "Rouen", "Mulhouse", "Caen", "Nancy",
    "Argenteuil", "Montreuil", "Roubaix", "Avignon", "Poitiers", "Pau", "La Rochelle", "Boulogne-Billancourt",
    "Nanterre", "Versailles", "Créteil", "Saint-Denis", "Sophia Antipolis", "Télétravail",
]  # fmt: skip
COMPANY_SUFFIXES = [
    "Conseil", "Technologies", "Solutions", "Digital", "Industrie", "Services", "Logistique", "Santé",
    "Finance", "& Associés", "Groupe", "Informatique", "Ingénierie", "Studio", "Labs", "Énergies", "Mobilité",
]  # fmt: skip
# Job families: French titles (each with its key skill) and the other skills they ask for,
# normalised like matching.skills stores them.
FAMILIES = [
    (
        ["Développeur Python|python", "Développeur back-end Java|java", "Ingénieur logiciel Go|go",
         "Développeur PHP Symfony|symfony", "Développeur .NET|.net", "Développeur back-end Node.js|node.js"],
        ["django", "fastapi", "flask", "spring boot", "laravel", "postgresql", "mysql", "redis", "docker",
         "rest api", "git", "sql", "c#"],
    ),
    (
        ["Développeur front-end React|react", "Développeur Vue.js|vue.js", "Intégrateur web|html",
         "Développeur Angular|angular", "Développeur front-end TypeScript|typescript"],
        ["javascript", "typescript", "html", "css", "sass", "tailwind css", "next.js", "nuxt.js", "figma", "git",
         "graphql"],
    ),
    (
        ["Développeur full-stack|node.js", "Développeur mobile React Native|react native",
         "Développeur iOS Swift|swift", "Développeur Android Kotlin|kotlin",
         "Développeur full-stack JavaScript|javascript"],
        ["express", "nestjs", "react", "typescript", "mongodb", "postgresql", "graphql", "git", "docker"],
    ),
    (
        ["Ingénieur DevOps|docker", "Administrateur systèmes Linux|linux", "Ingénieur cloud AWS|aws",
         "Ingénieur fiabilité (SRE)|kubernetes", "Architecte cloud Azure|azure"],
        ["kubernetes", "google cloud", "ci/cd", "git", "python", "go", "postgresql", "redis", "linux"],
    ),
    (
        ["Data scientist|data science", "Data analyst|sql", "Ingénieur machine learning|machine learning",
         "Data engineer|python", "Consultant business intelligence|excel"],
        ["python", "sql", "intelligence artificielle", "postgresql", "excel", "aws", "google cloud", "anglais"],
    ),
    (
        ["Product owner|agile", "Chef de projet digital|gestion de projet", "Designer UX/UI|ui/ux",
         "Scrum master|agile", "Product manager|gestion de projet"],
        ["figma", "anglais", "excel", "seo", "francais", "agile"],
    ),
    (
        ["Chargé de marketing digital|seo", "Responsable SEO|seo", "Commercial B2B|service client",
         "Chargé de clientèle|service client", "Community manager|seo", "Business developer|anglais"],
        ["excel", "anglais", "gestion de projet", "francais", "figma"],
    ),
    (
        ["Comptable|comptabilite", "Contrôleur de gestion|excel", "Assistant administratif et financier|excel",
         "Gestionnaire de paie|comptabilite", "Auditeur financier|comptabilite"],
        ["excel", "anglais", "francais", "sql", "gestion de projet"],
    ),
]  # fmt: skip
LEVELS = [("entry", 3), ("junior", 5), ("mid", 6), ("senior", 4), ("lead", 2)]
SALARY_BY_LEVEL = {"entry": 26000, "junior": 32000, "mid": 40000, "senior": 52000, "lead": 65000}
JOB_TYPES = [("CDI", 11), ("CDD", 3), ("stage", 2), ("alternance", 2), ("freelance", 1), ("interim", 1)]
CONTRACT_WORDS = {
    "CDI": "CDI",
    "CDD": "CDD",
    "stage": "stage",
    "alternance": "alternance",
    "freelance": "freelance",
    "interim": "intérim",
}
JOB_DESCRIPTIONS = [
    "{entreprise} recherche un·e {titre} pour renforcer son équipe à {ville}. Vous participerez à la conception "
    "et au développement de nos produits, en lien avec les équipes métier. Compétences attendues : {competences}. "
    "Poste en {contrat}, télétravail partiel possible.",
    "Au sein d'une équipe à taille humaine basée à {ville}, vous prendrez en charge des projets variés pour nos "
    "clients grands comptes. Environnement technique : {competences}. Rémunération selon profil, tickets "
    "restaurant, mutuelle prise en charge à 70 %.",
    "Rejoignez {entreprise} ! Dans le cadre de notre croissance, nous ouvrons un poste en {contrat} à "
    "{ville} pour un·e {titre}. Vous maîtrisez {competences} et aimez le travail en équipe. Processus de "
    "recrutement en trois étapes.",
    "Mission : faire évoluer nos outils internes et accompagner nos utilisateurs au quotidien. Profil recherché : "
    "{titre} à l'aise avec {competences}, autonome et rigoureux·se. Poste basé à {ville}, en {contrat}.",
]
POST_TEMPLATES = [
    ("Nouveau départ", "Ravi·e d'annoncer que je rejoins {entreprise} en tant que {titre} à {ville} ! Hâte de "
     "relever ce nouveau défi avec une équipe aussi motivée."),
    ("Nous recrutons !", "{entreprise} recrute un·e {titre} en {contrat} à {ville}. Compétences recherchées : "
     "{competence} et {competence2}. Envoyez-moi un message si vous êtes intéressé·e !"),
    ("Meetup {competence}", "Retour sur le meetup {competence} de {ville} hier soir : des échanges passionnants "
     "sur les bonnes pratiques, la qualité du code et l'avenir de nos métiers."),
    ("", "Après trois mois de formation en {competence}, je cherche un poste en {contrat} comme {titre} "
     "à {ville}. Toutes les recommandations sont les bienvenues, merci pour vos partages !"),
    ("Conseil carrière", "Conseil du jour pour les candidats : adaptez votre CV à chaque offre et mettez en avant "
     "vos projets concrets en {competence}. Les recruteurs lisent d'abord vos réalisations."),
    ("", "Notre équipe de {ville} s'agrandit ! Nous cherchons des profils {competence} motivés pour accompagner "
     "notre croissance. Le télétravail est possible deux jours par semaine."),
    ("", "Quelles sont selon vous les compétences clés d'un·e {titre} aujourd'hui ? Pour moi : {competence}, "
     "{competence2} et beaucoup de curiosité. Vos avis en commentaire ?"),
    ("", "Dernier jour chez {entreprise} aujourd'hui. Merci à toute l'équipe pour cette belle expérience à "
     "{ville}, j'ai énormément appris sur {competence}."),
    ("Webinaire", "Webinaire gratuit jeudi prochain : comment réussir son entretien pour un poste en tant que "
     "{titre}. Inscriptions ouvertes, le lien est en commentaire."),
    ("Certification", "Je viens d'obtenir ma certification {competence} ! Prochaine étape : un poste en tant que "
     "{titre} à {ville}. Merci à celles et ceux qui m'ont aidé à réviser."),
    ("", "Journée portes ouvertes chez {entreprise} à {ville} samedi : venez découvrir nos métiers et rencontrer "
     "nos équipes {competence}. Entrée libre."),
    ("", "Petite victoire du jour : notre application a passé le cap des 10 000 utilisateurs. Bravo à l'équipe "
     "{competence} de {ville} pour ce travail remarquable !"),
]  # fmt: skip
COMMENTS = [
    "Félicitations, très belle nouvelle !",
    "Bravo et bonne continuation 👏",
    "Merci pour le partage, c'est très utile.",
    "Je suis intéressé·e, je vous envoie un message.",
    "Super initiative, j'y serai !",
    "Tout à fait d'accord avec toi.",
    "Est-ce que le poste est ouvert au télétravail ?",
    "Quel est le salaire proposé ?",
    "Je partage avec mon réseau.",
    "Excellent conseil, merci !",
]


def _weighted(pairs: list[tuple[str, int]]) -> list[str]:
    return [value for value, weight in pairs for _ in range(weight)]


class Command(BaseCommand):
    help = "Add realistic French demo data (users/candidates, companies, jobs, posts, likes, comments)."

    def add_arguments(self, parser):
        parser.add_argument("--users", type=int, default=0, help="candidate users to create")
        parser.add_argument("--jobs", type=int, default=0)
        parser.add_argument("--posts", type=int, default=0)
        parser.add_argument("--likes", type=int, default=0)
        parser.add_argument("--comments", type=int, default=0)
        parser.add_argument("--companies", type=int, default=None, help="default: one per 20 jobs")
        parser.add_argument("--seed", type=int, default=None, help="make drawn values reproducible")
        parser.add_argument("--batch", type=int, default=BATCH, help=f"rows per INSERT (default {BATCH})")

    def handle(self, *args, **opts):
        for name in ("users", "jobs", "posts", "likes", "comments", "batch"):
            if opts[name] < 0:
                raise CommandError(f"--{name} must be ≥ 0")
        companies = opts["companies"]
        if companies is None:
            companies = max(1, opts["jobs"] // 20) if opts["jobs"] else 0
        if companies < 0:
            raise CommandError("--companies must be ≥ 0")
        self.batch = max(1, opts["batch"])
        self.counts = {name: opts[name] for name in ("users", "jobs", "posts", "likes", "comments")}
        self.slots: dict[str, int] = {}
        self.run = uuid.uuid4().hex[:8]
        self.verbose = opts["verbosity"] >= 1
        started = time.perf_counter()
        with connection.cursor() as cursor:
            self.cursor = cursor
            cursor.execute("SET max_parallel_workers_per_gather = 0")  # one random() stream
            cursor.execute("SET synchronous_commit = off")  # demo data: no fsync wait per batch
            if opts["seed"] is not None:
                cursor.execute("SELECT setseed(%s)", [(opts["seed"] % 1999) / 1000 - 0.999])
            self._vocabulary()
            self._step("companies (+ one recruiter each)", companies, self._companies)
            self._step("candidates", opts["users"], self._candidates)
            self._step("jobs", opts["jobs"], self._jobs)
            self._step("posts", opts["posts"], self._posts)
            if opts["posts"]:
                self._pin()
            self._step("likes", opts["likes"], self._likes)
            self._step("comments", opts["comments"], self._comments)
            cursor.execute("ANALYZE users, companies, candidates, jobs, posts, post_likes, comments")
        self._say(f"seed_demo run {self.run}: done in {time.perf_counter() - started:.1f} s")

    # --- plumbing ------------------------------------------------------------------------

    def _say(self, message: str) -> None:
        if self.verbose:
            self.stdout.write(message)

    def _step(self, label: str, count: int, fn) -> None:
        """Insert `count` rows with `fn(n)`, one committed batch of ≤ --batch rows at a time."""
        if count <= 0:
            return
        started = time.perf_counter()
        done = 0
        while done < count:
            n = min(self.batch, count - done)
            with transaction.atomic():
                fn(n)
            done += n
            if done < count:
                self._say(f"    {label}: {done}/{count} ({time.perf_counter() - started:.1f} s)")
        self._say(f"  {label}: {count} in {time.perf_counter() - started:.1f} s")

    def _vocabulary(self) -> None:
        """Small temp tables the INSERT … SELECT statements draw from."""
        c = self.cursor
        c.execute("DROP TABLE IF EXISTS demo_families")
        c.execute("CREATE TEMP TABLE demo_families (fid int PRIMARY KEY, titles text[], skills text[])")
        for fid, (titles, skills) in enumerate(FAMILIES, start=1):
            c.execute("INSERT INTO demo_families VALUES (%s, %s, %s)", [fid, titles, skills])
        self.vocab = {
            "first": FIRST_NAMES,
            "last": LAST_NAMES,
            "cities": CITIES,
            "suffixes": COMPANY_SUFFIXES,
            "levels": _weighted(LEVELS),
            "job_types": _weighted(JOB_TYPES),
            "families": len(FAMILIES),
            "job_desc": JOB_DESCRIPTIONS,
            "post_titles": [t for t, _ in POST_TEMPLATES],
            "post_bodies": [b for _, b in POST_TEMPLATES],
            "comments": COMMENTS,
            "contract_keys": list(CONTRACT_WORDS),
            "contract_words": list(CONTRACT_WORDS.values()),
            "run": self.run,
        }

    def _pool(self, name: str, sql: str) -> int:
        """A temp table `name(idx, id, …)` numbered 1..n from `sql`, for random picks."""
        c = self.cursor
        c.execute(f"DROP TABLE IF EXISTS {name}")
        c.execute(f"CREATE TEMP TABLE {name} AS SELECT row_number() OVER () AS idx, q.* FROM ({sql}) AS q")
        c.execute(f"CREATE UNIQUE INDEX ON {name} (idx)")
        c.execute(f"ANALYZE {name}")
        c.execute(f"SELECT count(*) FROM {name}")
        return c.fetchone()[0]

    # --- generators (each inserts n rows and returns n) -----------------------------------

    def _companies(self, n: int) -> int:
        self.cursor.execute(
            """
            WITH draw AS MATERIALIZED (
                SELECT g,
                       (%(last)s::text[])[1 + floor(random() * cardinality(%(last)s::text[]))::int] AS nom,
                       (%(suffixes)s::text[])[1 + floor(random() * cardinality(%(suffixes)s::text[]))::int] AS suffix,
                       (%(first)s::text[])[1 + floor(random() * cardinality(%(first)s::text[]))::int] AS prenom,
                       now() - random() * interval '3 years' AS created
                FROM generate_series(1, %(n)s) AS g
            ), comp AS (
                INSERT INTO companies (id, name, logo_url, website, created_at, updated_at)
                SELECT gen_random_uuid(), nom || ' ' || suffix, '',
                       'https://www.' || lower(translate(nom || '-' || g, 'éèêëàâîïôöûüç ', 'eeeeaaiioouuc-'))
                           || '.example.fr',
                       created, created
                FROM draw
                RETURNING id, name, created_at
            )
            INSERT INTO users (id, password, is_superuser, email, full_name, avatar_url, role, company_id,
                               is_active, is_staff, created_at, updated_at)
            SELECT gen_random_uuid(), '!demo', false,
                   'recruteur-' || %(run)s || '-' || comp.id || '@demo.emploiplus.local',
                   (%(first)s::text[])[1 + floor(random() * cardinality(%(first)s::text[]))::int] || ' '
                       || (%(last)s::text[])[1 + floor(random() * cardinality(%(last)s::text[]))::int],
                   '', 'company', comp.id, true, false, comp.created_at, comp.created_at
            FROM comp
            """,
            {**self.vocab, "n": n},
        )
        return n

    def _candidates(self, n: int) -> int:
        self.cursor.execute(
            """
            WITH draw AS MATERIALIZED (
                SELECT g,
                       gen_random_uuid() AS id,
                       (%(first)s::text[])[1 + floor(random() * cardinality(%(first)s::text[]))::int] AS prenom,
                       (%(last)s::text[])[1 + floor(random() * cardinality(%(last)s::text[]))::int] AS nom,
                       (%(cities)s::text[])[1 + floor(random() * cardinality(%(cities)s::text[]))::int] AS ville,
                       (%(levels)s::text[])[1 + floor(random() * cardinality(%(levels)s::text[]))::int] AS niveau,
                       1 + floor(random() * %(families)s)::int AS fid,
                       2 + floor(random() * 5)::int AS k,
                       random() AS r,
                       random() AS rt,
                       floor(random() * 8)::int AS rs,
                       now() - random() * interval '2 years' AS created
                FROM generate_series(1, %(n)s) AS g
            ), u AS (
                INSERT INTO users (id, password, is_superuser, email, full_name, avatar_url, role, company_id,
                                   is_active, is_staff, created_at, updated_at)
                SELECT id, '!demo', false, 'candidat-' || %(run)s || '-' || id || '@demo.emploiplus.local',
                       prenom || ' ' || nom,
                       CASE WHEN r < 0.3 THEN 'https://i.pravatar.cc/150?u=' || id ELSE '' END,
                       'candidate', NULL, r >= 0.01, false, created, created
                FROM draw
            )
            INSERT INTO candidates (id, skills, experience_level, location, job_title, target_salary_min,
                                    target_salary_max, notifications_enabled, is_active, deleted_at,
                                    created_at, updated_at)
            SELECT d.id,
                   array_prepend(t.main, ARRAY(
                       SELECT s FROM unnest(f.skills) AS s WHERE s <> t.main ORDER BY random() LIMIT d.k - 1)),
                   d.niveau, d.ville, t.title,
                   CASE WHEN d.r < 0.8 THEN t.base END,
                   CASE WHEN d.r < 0.8 THEN t.base + 8000 END,
                   d.r < 0.9, d.r >= 0.02, NULL, d.created, d.created
            FROM draw AS d
            JOIN demo_families AS f ON f.fid = d.fid
            CROSS JOIN LATERAL (
                SELECT split_part(f.titles[1 + floor(d.rt * cardinality(f.titles))::int], '|', 1) AS title,
                       split_part(f.titles[1 + floor(d.rt * cardinality(f.titles))::int], '|', 2) AS main,
                       (CASE d.niveau WHEN 'entry' THEN 26000 WHEN 'junior' THEN 32000 WHEN 'mid' THEN 40000
                        WHEN 'senior' THEN 52000 ELSE 65000 END + 1000 * d.rs)::int AS base
            ) AS t
            """,
            {**self.vocab, "n": n},
        )
        return n

    def _jobs(self, n: int) -> int:
        if not hasattr(self, "company_pool"):
            self.company_pool = self._pool(
                "demo_company_pool",
                "SELECT c.id, c.name, (SELECT u.id FROM users AS u WHERE u.company_id = c.id AND u.role = 'company' "
                "ORDER BY u.created_at LIMIT 1) AS recruiter FROM companies AS c",
            )
            if not self.company_pool:
                raise CommandError("jobs need companies: pass --companies N (or create some first)")
        self.cursor.execute(
            """
            WITH draw AS MATERIALIZED (
                SELECT g,
                       1 + floor(random() * %(pool)s)::int AS ci,
                       1 + floor(random() * %(families)s)::int AS fid,
                       (%(cities)s::text[])[1 + floor(random() * cardinality(%(cities)s::text[]))::int] AS ville,
                       (%(levels)s::text[])[1 + floor(random() * cardinality(%(levels)s::text[]))::int] AS niveau,
                       (%(job_types)s::text[])[1 + floor(random() * cardinality(%(job_types)s::text[]))::int] AS jt,
                       (%(job_desc)s::text[])[1 + floor(random() * cardinality(%(job_desc)s::text[]))::int] AS tpl,
                       2 + floor(random() * 4)::int AS k,
                       random() AS r,
                       random() AS r2,
                       random() AS rt,
                       floor(random() * 6)::int AS rs,
                       floor(random() * 8)::int AS rs2,
                       now() - power(random(), 1.5) * interval '120 days' AS created
                FROM generate_series(1, %(n)s) AS g
            ), picked AS (
                SELECT d.*, c.id AS company_id, c.name AS company_name, c.recruiter, f.skills AS family_skills,
                       split_part(f.titles[1 + floor(d.rt * cardinality(f.titles))::int], '|', 1) AS titre,
                       split_part(f.titles[1 + floor(d.rt * cardinality(f.titles))::int], '|', 2) AS main,
                       CASE WHEN d.jt IN ('stage', 'alternance') THEN 'entry' ELSE d.niveau END AS lvl
                FROM draw AS d
                JOIN demo_company_pool AS c ON c.idx = d.ci
                JOIN demo_families AS f ON f.fid = d.fid
            ), shaped AS MATERIALIZED (
                SELECT p.*,
                       array_prepend(p.main, ARRAY(
                           SELECT s FROM unnest(p.family_skills) AS s WHERE s <> p.main ORDER BY random() LIMIT p.k - 1
                       )) AS skills,
                       (CASE WHEN p.jt = 'stage' THEN 7000 WHEN p.jt = 'alternance' THEN 14000
                        ELSE CASE p.lvl WHEN 'entry' THEN 26000 WHEN 'junior' THEN 32000 WHEN 'mid' THEN 40000
                        WHEN 'senior' THEN 52000 ELSE 65000 END + 1000 * p.rs END)::int AS base
                FROM picked AS p
            )
            INSERT INTO jobs (id, company_id, created_by_id, title, description, location, job_type, required_skills,
                              experience_level, salary_min, salary_max, status, deleted_at, notification_status,
                              notification_sent_at, matching_candidates_count, created_at, updated_at)
            SELECT gen_random_uuid(), company_id, recruiter,
                   titre || CASE WHEN r2 < 0.5 THEN ' H/F' ELSE '' END,
                   replace(replace(replace(replace(replace(tpl,
                       '{entreprise}', company_name), '{titre}', lower(left(titre, 1)) || substr(titre, 2)),
                       '{ville}', ville), '{competences}', array_to_string(skills, ', ')),
                       '{contrat}', (%(contract_words)s::text[])[array_position(%(contract_keys)s::text[], jt)]),
                   ville, jt, skills,
                   lvl,
                   CASE WHEN r2 < 0.85 THEN base END,
                   CASE WHEN r2 < 0.85 THEN base + CASE WHEN jt IN ('stage', 'alternance') THEN 2000
                        ELSE 6000 + 1000 * rs2 END END,
                   CASE WHEN r < 0.85 THEN 'active' WHEN r < 0.95 THEN 'closed' ELSE 'draft' END,
                   NULL,
                   CASE WHEN r < 0.85 THEN 'sent' ELSE 'pending' END,
                   CASE WHEN r < 0.85 THEN created + interval '2 minutes' END,
                   0, created, created
            FROM shaped
            """,
            {**self.vocab, "n": n, "pool": self.company_pool},
        )
        return n

    def _author_pool(self) -> int:
        if not hasattr(self, "author_pool"):
            self.author_pool = self._pool(
                "demo_author_pool", "SELECT id, full_name, company_id FROM users WHERE is_active AND role <> 'admin'"
            )
            self.company_names = self._pool("demo_company_names", "SELECT name FROM companies")
            if not self.author_pool:
                raise CommandError("posts, likes and comments need users: pass --users N")
        return self.author_pool

    def _slot(self, name: str) -> dict[str, int]:
        """Which of the step's batches this is, to lay rows out in time order."""
        done = self.slots.setdefault(name, 0)
        self.slots[name] = done + 1
        return {"slot": done, "slots": max(1, -(-self.counts[name] // self.batch))}

    def _posts(self, n: int) -> int:
        authors = self._author_pool()
        self.cursor.execute(
            """
            WITH draw AS MATERIALIZED (
                SELECT g,
                       1 + floor(random() * %(authors)s)::int AS ai,
                       1 + floor(random() * greatest(%(companies)s, 1))::int AS ci,
                       1 + floor(random() * cardinality(%(post_bodies)s::text[]))::int AS ti,
                       1 + floor(random() * %(families)s)::int AS fid,
                       (%(cities)s::text[])[1 + floor(random() * cardinality(%(cities)s::text[]))::int] AS ville,
                       (%(contract_words)s::text[])[1 + floor(random() * cardinality(%(contract_words)s::text[]))::int]
                           AS contrat,
                       random() AS r,
                       random() AS rt,
                       random() AS rs,
                       random() AS rs2,
                       -- Chronological batches, rows in time order within a batch: the table
                       -- grows in created_at order as a real feed does (physical order and
                       -- the created_at index correlate), more posts recently.
                       now() - power(1 - (%(slot)s + random()) / %(slots)s, 1.3) * interval '365 days' AS created
                FROM generate_series(1, %(n)s) AS g
            ), shaped AS (
                SELECT d.*, a.id AS author,
                       coalesce(cn.name, 'Emploi+') AS entreprise,
                       split_part(f.titles[1 + floor(d.rt * cardinality(f.titles))::int], '|', 1) AS titre,
                       split_part(f.titles[1 + floor(d.rt * cardinality(f.titles))::int], '|', 2) AS competence,
                       f.skills[1 + floor(d.rs2 * cardinality(f.skills))::int] AS competence2
                FROM draw AS d
                JOIN demo_author_pool AS a ON a.idx = d.ai
                JOIN demo_families AS f ON f.fid = d.fid
                LEFT JOIN demo_company_names AS cn ON cn.idx = d.ci
            )
            INSERT INTO posts (id, user_id, title, content, image_urls, is_pinned, is_hidden, likes_count,
                               comments_count, shares_count, deleted_at, created_at, updated_at)
            SELECT gen_random_uuid(), author,
                   CASE WHEN r < 0.45 THEN replace((%(post_titles)s::text[])[ti], '{competence}', competence)
                        ELSE '' END,
                   replace(replace(replace(replace(replace(replace((%(post_bodies)s::text[])[ti],
                       '{entreprise}', entreprise), '{titre}', lower(left(titre, 1)) || substr(titre, 2)),
                       '{ville}', ville),
                       '{competence2}', competence2), '{competence}', competence), '{contrat}', contrat),
                   CASE WHEN r < 0.2 THEN ARRAY['https://picsum.photos/seed/' || g || '/800/450'] ELSE '{}' END,
                   false, r > 0.999, 0, 0, 0,
                   CASE WHEN r > 0.994 AND r <= 0.999 THEN created + interval '1 day' END,
                   created, created
            FROM shaped
            ORDER BY created
            """,
            {**self.vocab, "n": n, "authors": authors, "companies": self.company_names, **self._slot("posts")},
        )
        return n

    def _pin(self) -> None:
        """Two pinned announcements, as an admin would pin them (when none is pinned yet)."""
        self.cursor.execute(
            "UPDATE posts SET is_pinned = true WHERE NOT EXISTS (SELECT 1 FROM posts WHERE is_pinned) AND id IN "
            "(SELECT id FROM posts WHERE deleted_at IS NULL AND NOT is_hidden ORDER BY created_at DESC LIMIT 2)"
        )

    def _post_pool(self) -> int:
        if not hasattr(self, "post_pool"):
            self.post_pool = self._pool(
                "demo_post_pool", "SELECT id FROM posts WHERE deleted_at IS NULL AND NOT is_hidden ORDER BY random()"
            )
            if not self.post_pool:
                raise CommandError("likes and comments need posts: pass --posts N")
        return self.post_pool

    def _likes(self, n: int) -> int:
        posts, authors = self._post_pool(), self._author_pool()
        # Popular posts get more likes: a skewed draw over a randomly ordered pool.
        self.cursor.execute(
            """
            INSERT INTO post_likes (id, post_id, user_id, created_at)
            SELECT gen_random_uuid(), p.id, a.id, now() - random() * interval '300 days'
            FROM (
                SELECT 1 + floor(power(random(), 2) * %(posts)s)::int AS pi,
                       1 + floor(random() * %(authors)s)::int AS ai
                FROM generate_series(1, %(n)s)
                OFFSET 0
            ) AS d
            JOIN demo_post_pool AS p ON p.idx = d.pi
            JOIN demo_author_pool AS a ON a.idx = d.ai
            ON CONFLICT (post_id, user_id) DO NOTHING
            """,
            {"n": n, "posts": posts, "authors": authors},
        )
        return n

    def _comments(self, n: int) -> int:
        posts, authors = self._post_pool(), self._author_pool()
        self.cursor.execute(
            """
            INSERT INTO comments (id, post_id, user_id, content, deleted_at, created_at, updated_at)
            SELECT gen_random_uuid(), p.id, a.id, (%(comments)s::text[])[d.ci], NULL, d.created, d.created
            FROM (
                SELECT 1 + floor(power(random(), 2) * %(posts)s)::int AS pi,
                       1 + floor(random() * %(authors)s)::int AS ai,
                       1 + floor(random() * cardinality(%(comments)s::text[]))::int AS ci,
                       now() - random() * interval '300 days' AS created
                FROM generate_series(1, %(n)s)
                OFFSET 0
            ) AS d
            JOIN demo_post_pool AS p ON p.idx = d.pi
            JOIN demo_author_pool AS a ON a.idx = d.ai
            """,
            {"n": n, "posts": posts, "authors": authors, "comments": COMMENTS},
        )
        return n
