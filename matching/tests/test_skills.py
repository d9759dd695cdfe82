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
    root.is_superuser = True
    root.save()
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
