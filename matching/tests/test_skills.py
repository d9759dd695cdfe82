import pytest

from matching.models import SkillAlias
from matching.skills import fold, same_skills, skill_key, skill_normalize, skills_normalize

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("React", "react"),
        ("react.js", "react"),
        ("ReactJS", "react"),
        ("  REACT JS ", "react"),
        ("Node", "node.js"),
        ("nodejs", "node.js"),
        ("Node.JS", "node.js"),
        ("Postgres", "postgresql"),
        ("PostgreSQL", "postgresql"),
        ("Postgre SQL", "postgresql"),
        ("JS", "javascript"),
        ("TS", "typescript"),
        ("C++", "c++"),
        ("C#", "c#"),
        (".NET", ".net"),
        ("Gestion de Projet", "gestion de projet"),
        ("Comptabilité", "comptabilite"),
        ("Machine-Learning", "machine learning"),
        ("Développement   Web", "developpement web"),
        ("developpement_web", "developpement web"),
    ],
)
def test_it_normalises_case_accents_spacing_punctuation_and_aliases(raw, expected):
    assert skill_normalize(raw) == expected


def test_it_dedupes_drops_blanks_and_keeps_first_seen_order():
    raw = ["ReactJS", "", "  ", "Node", "react", "node.js", "Docker"]
    assert skills_normalize(raw) == ["react", "node.js", "docker"]
    assert skills_normalize("React, Node.js ,docker") == ["react", "node.js", "docker"]
    assert skills_normalize(None) == []


def test_it_compares_skill_sets_after_normalisation():
    assert same_skills(["React", "Node"], ["node.js", "reactjs", "react.js"])
    assert not same_skills(["React"], ["React", "Vue"])


def test_it_picks_up_an_alias_added_in_the_admin_at_once(client, root):
    assert skill_normalize("Reactivité") == "reactivite"
    client.force_login(root)
    response = client.post(
        "/admin/matching/skillalias/add/", {"alias": "Réactivité", "canonical": "Soft Skills"}, follow=True
    )
    assert response.status_code == 200
    alias = SkillAlias.objects.get(canonical="soft skills")
    assert alias.alias == "reactivite"  # stored as its comparison key
    assert skill_normalize("Reactivité") == "soft skills"
    alias.delete()
    assert skill_normalize("Reactivité") == "reactivite"


def test_it_seeds_the_alias_table_in_a_migration():
    assert SkillAlias.objects.filter(alias="reactjs", canonical="react").exists()
    assert SkillAlias.objects.filter(alias="nodejs", canonical="node.js").exists()
    assert SkillAlias.objects.count() > 100


def test_fold_and_key():
    assert fold(" Élan—Vital ") == "elan—vital"
    assert skill_key("Node.JS") == "nodejs"


def test_it_renormalises_stored_skills_after_an_alias_is_added(alice, acme):
    from django.core.management import call_command

    from matching.testing import make_job, set_profile

    set_profile(alice, skills=["vuejs3", "python"])  # stored before the alias existed
    job = make_job(acme, required_skills=["vuejs3"])
    SkillAlias.objects.create(alias="vuejs3", canonical="vue.js")
    call_command("skills_renormalize")
    alice.candidate.refresh_from_db()
    job.refresh_from_db()
    assert alice.candidate.skills == ["vue.js", "python"]
    assert job.required_skills == ["vue.js"]


def test_it_normalises_skills_saved_in_the_job_admin(client, root, acme, django_capture_on_commit_callbacks):
    from matching.models import Job

    client.force_login(root)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/matching/job/add/",
            {
                "company": str(acme.pk),
                "title": "Admin job",
                "description": "",
                "location": "",
                "job_type": "CDI",
                "required_skills": "ReactJS,Node",
                "experience_level": "",
                "status": "active",
                "notification_status": "pending",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    job = Job.objects.get(title="Admin job")
    assert job.required_skills == ["react", "node.js"]
    assert job.notification_status == "queued"
