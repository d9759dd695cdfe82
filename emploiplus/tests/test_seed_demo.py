"""seed_demo: the rows it adds and that they look like real French data."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.db import connection

from accounts.models import Candidate, Company, User
from emploiplus.management.commands.seed_demo import CITIES, FAMILIES
from feed.models import Comment, Post, PostLike
from matching.models import Job
from matching.skills import skill_normalize

pytestmark = pytest.mark.django_db

VOCABULARY = {t.split("|")[1] for titles, _ in FAMILIES for t in titles} | {s for _, skills in FAMILIES for s in skills}


def _seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def test_it_adds_realistic_french_data():
    output = _seed(users=50, jobs=10, posts=100, likes=200, comments=30, companies=3, seed=7)
    assert "done in" in output

    assert Company.objects.count() == 3
    assert User.objects.filter(role="company", company__isnull=False).count() == 3
    assert User.objects.filter(role="candidate").count() == 50
    assert Candidate.objects.count() == 50
    assert Job.objects.count() == 10
    assert Post.objects.count() == 100
    assert 0 < PostLike.objects.count() <= 200
    assert Comment.objects.count() == 30

    for candidate in Candidate.objects.select_related("user"):
        assert len(candidate.user.full_name.split()) >= 2
        assert candidate.location in CITIES
        assert 2 <= len(candidate.skills) <= 6
        assert set(candidate.skills) <= VOCABULARY
        assert all(skill_normalize(s) == s for s in candidate.skills)  # stored normalised
        assert candidate.experience_level in ("entry", "junior", "mid", "senior", "lead")
        if candidate.target_salary_min is not None:
            assert 20000 <= candidate.target_salary_min <= candidate.target_salary_max <= 100000
        assert candidate.search_vector  # filled by the trigger

    for job in Job.objects.all():
        assert job.job_type in ("CDI", "CDD", "stage", "alternance", "freelance", "interim")
        assert job.location in CITIES
        assert set(job.required_skills) <= VOCABULARY and job.required_skills
        assert job.status in ("active", "closed", "draft")
        assert job.created_by.company_id == job.company_id
        assert "{" not in job.description and len(job.description) > 100
        if job.salary_min is not None:
            assert job.salary_min <= job.salary_max
        if job.job_type in ("stage", "alternance"):
            assert job.experience_level == "entry"

    words = " ".join(Post.objects.values_list("content", flat=True))
    assert "{" not in words
    assert any(w in words for w in ("recrute", "poste", "équipe", "candidats", "merci", "Merci"))
    assert Post.objects.filter(is_pinned=True).count() == 2

    # Counters kept by the triggers agree with the rows.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM posts p"
            " WHERE likes_count <> (SELECT count(*) FROM post_likes l WHERE l.post_id = p.id)"
            " OR comments_count <> (SELECT count(*) FROM comments c WHERE c.post_id = p.id AND c.deleted_at IS NULL)"
        )
        assert cursor.fetchone()[0] == 0


def test_it_is_additive_and_searchable(api, auth, rita):
    _seed(users=20, jobs=5, posts=30, seed=1)
    _seed(users=20, jobs=5, posts=30, seed=1)
    assert Candidate.objects.count() == 40
    assert Job.objects.count() == 10
    assert Post.objects.count() == 60
    active = Job.objects.filter(status="active").first()
    word = active.title.split()[0]
    results = api.get("/api/search/", {"q": word, "type": "jobs"}, headers=auth(rita)).json()["results"]
    assert str(active.pk) in [r["id"] for r in results]


def test_it_refuses_negative_counts():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        _seed(users=-1)
