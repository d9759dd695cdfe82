"""Seed the skill alias table (editable afterwards in the admin).

Aliases are stored as comparison keys (matching.skills.skill_key: folded, only a–z 0–9
+ # kept), canonical names as stored skills. The list is frozen here on purpose: a
migration must not change meaning when matching/skills.py evolves. Reversing removes
only the rows this migration added (and that still point to the same canonical name).
"""

from django.db import migrations

# canonical skill → comparison keys that mean it
SEED: dict[str, list[str]] = {
    "react": ["reactjs", "react", "reactdotjs"],
    "react native": ["reactnative", "rn"],
    "node.js": ["node", "nodejs", "nodedotjs"],
    "javascript": ["js", "javascript", "ecmascript", "es6", "es2015", "vanillajs"],
    "typescript": ["ts", "typescript"],
    "postgresql": ["postgres", "postgresql", "postgre", "psql", "pgsql", "pg"],
    "mysql": ["mysql"],
    "mongodb": ["mongo", "mongodb"],
    "redis": ["redis"],
    "vue.js": ["vue", "vuejs", "vue2", "vue3"],
    "angular": ["angular", "angularjs", "angular2"],
    "next.js": ["next", "nextjs"],
    "nuxt.js": ["nuxt", "nuxtjs"],
    "express": ["express", "expressjs"],
    "nestjs": ["nest", "nestjs"],
    "python": ["python", "python3", "py"],
    "django": ["django", "djangorestframework", "drf"],
    "flask": ["flask"],
    "fastapi": ["fastapi"],
    "java": ["java", "java8", "java11", "java17"],
    "spring boot": ["springboot", "spring"],
    "kotlin": ["kotlin"],
    "swift": ["swift"],
    "c#": ["c#", "csharp"],
    "c++": ["c++", "cpp", "cplusplus"],
    ".net": ["net", "dotnet", "netcore", "dotnetcore", "aspnet", "aspnetcore"],
    "php": ["php", "php7", "php8"],
    "laravel": ["laravel"],
    "symfony": ["symfony"],
    "ruby on rails": ["rails", "rubyonrails", "ror"],
    "go": ["go", "golang"],
    "rust": ["rust"],
    "html": ["html", "html5"],
    "css": ["css", "css3"],
    "sass": ["sass", "scss"],
    "tailwind css": ["tailwind", "tailwindcss"],
    "graphql": ["graphql", "gql"],
    "rest api": ["rest", "restapi", "restful", "restfulapi", "apirest"],
    "docker": ["docker"],
    "kubernetes": ["kubernetes", "k8s", "kube"],
    "aws": ["aws", "amazonwebservices"],
    "google cloud": ["gcp", "googlecloud", "googlecloudplatform"],
    "azure": ["azure", "microsoftazure"],
    "ci/cd": ["cicd", "ci", "continuousintegration"],
    "git": ["git", "github", "gitlab"],
    "linux": ["linux", "unix"],
    "machine learning": ["machinelearning", "ml"],
    "intelligence artificielle": ["ia", "ai", "intelligenceartificielle", "artificialintelligence"],
    "data science": ["datascience"],
    "sql": ["sql"],
    "excel": ["excel", "msexcel", "microsoftexcel"],
    "figma": ["figma"],
    "ui/ux": ["uiux", "ux", "ui", "uxui", "uxdesign", "uidesign"],
    "seo": ["seo", "referencement", "referencementnaturel"],
    "gestion de projet": ["gestiondeprojet", "projectmanagement", "gestionprojet"],
    "agile": ["agile", "scrum", "kanban"],
    "anglais": ["anglais", "english"],
    "francais": ["francais", "french"],
    "comptabilite": ["comptabilite", "accounting"],
    "service client": ["serviceclient", "customerservice", "relationclient"],
}


def seed(apps, schema_editor):
    SkillAlias = apps.get_model("matching", "SkillAlias")
    for canonical, aliases in SEED.items():
        for alias in aliases:
            SkillAlias.objects.get_or_create(alias=alias, defaults={"canonical": canonical})


def unseed(apps, schema_editor):
    SkillAlias = apps.get_model("matching", "SkillAlias")
    for canonical, aliases in SEED.items():
        SkillAlias.objects.filter(alias__in=aliases, canonical=canonical).delete()


class Migration(migrations.Migration):
    dependencies = [("matching", "0002_sql")]

    operations = [migrations.RunPython(seed, unseed)]
