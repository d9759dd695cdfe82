"""GET /api/search/: French stemming, prefixes, accents, ranking, privacy, hostile input."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from accounts.models import Candidate
from emploiplus.search import build_tsquery, tokenize
from feed.models import Post
from matching.models import Job

pytestmark = pytest.mark.django_db


def _search(api, auth, user, q, type_=None, **params):
    query = {"q": q, **params}
    if type_:
        query["type"] = type_
    return api.get("/api/search/", query, headers=auth(user))


def _ids(response):
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["results"]]


@pytest.fixture
def job(acme, rita):
    return Job.objects.create(
        company=acme,
        created_by=rita,
        title="Développeur Python senior",
        description="Rejoignez notre équipe data à Lyon. Télétravail partiel.",
        location="Lyon",
        job_type="CDI",
        required_skills=["python", "django", "postgresql"],
        status="active",
    )


@pytest.mark.parametrize(
    "q",
    [
        "développeur",  # exact
        "developpeur",  # without accents
        "DÉVELOPPEUR",  # case
        "développeurs",  # plural: stemmed
        "dévelop",  # prefix while typing
        "devel",
        "développeur python",  # several words: all must match
        "python dévelop",
    ],
)
def test_it_finds_a_job_the_french_way(api, auth, alice, job, q):
    results = _search(api, auth, alice, q, "jobs").json()["results"]
    assert [r["id"] for r in results] == [str(job.pk)]
    assert results[0]["type"] == "job"
    assert results[0]["title"] == "Développeur Python senior"
    assert results[0]["snippet"].startswith("Rejoignez notre équipe")


@pytest.mark.parametrize("q", ["équipe", "equipes", "télétravail", "teletrav", "lyon", "django"])
def test_it_searches_description_location_and_skills(api, auth, alice, job, q):
    assert _ids(_search(api, auth, alice, q, "jobs")) == [str(job.pk)]


@pytest.mark.parametrize("q", ["comptable", "développeur java", "pythonista"])
def test_it_does_not_find_what_is_not_there(api, auth, alice, job, q):
    assert _ids(_search(api, auth, alice, q, "jobs")) == []


def test_it_does_not_find_draft_closed_or_deleted_jobs(api, auth, alice, job):
    Job.objects.filter(pk=job.pk).update(status="closed")
    assert _ids(_search(api, auth, alice, "python", "jobs")) == []
    Job.objects.filter(pk=job.pk).update(status="active", deleted_at=timezone.now())
    assert _ids(_search(api, auth, alice, "python", "jobs")) == []


def test_it_ranks_a_title_match_above_a_description_match(api, auth, alice, bob, make_post):
    in_content = make_post(alice, "Nous cherchons un développeur pour notre start-up.", title="Annonce", minutes_ago=5)
    in_title = make_post(bob, "Rejoignez-nous à Bordeaux.", title="Développeuse recherchée", minutes_ago=60 * 24 * 200)
    unrelated = make_post(bob, "Le marché de l'emploi à Lille.", title="Marché")
    results = _search(api, auth, alice, "développeu", "posts").json()["results"]
    # The title match wins although it is 200 days older (recency at most halves a score).
    assert [r["id"] for r in results] == [str(in_title.pk), str(in_content.pk)]
    assert results[0]["score"] > results[1]["score"] > 0
    assert str(unrelated.pk) not in [r["id"] for r in results]


def test_it_ranks_newer_first_between_equal_matches(api, auth, alice, make_post):
    old = make_post(alice, "Offre de stage en marketing", minutes_ago=60 * 24 * 90)
    new = make_post(alice, "Offre de stage en marketing", minutes_ago=10)
    assert _ids(_search(api, auth, alice, "stage marketing", "posts")) == [str(new.pk), str(old.pk)]


def test_it_never_finds_deleted_hidden_or_inactive_authors_posts(api, auth, alice, bob, charlie, make_post):
    visible = make_post(alice, "Recrutement infirmier à Toulouse")
    make_post(alice, "Recrutement infirmier supprimé", deleted_at=timezone.now())
    make_post(alice, "Recrutement infirmier masqué", is_hidden=True)
    make_post(charlie, "Recrutement infirmier d'un compte désactivé")
    charlie.is_active = False
    charlie.save()
    assert _ids(_search(api, auth, bob, "infirmier", "posts")) == [str(visible.pk)]


def test_it_keeps_candidates_private_to_recruiters_and_admins(api, auth, alice, bob, rita, root, job):
    Candidate.objects.filter(pk=bob.pk).update(
        job_title="Développeur backend", skills=["python", "go"], location="Marseille"
    )
    Candidate.objects.filter(pk=alice.pk).update(job_title="Comptable", location="Paris")

    refused = _search(api, auth, alice, "développeur", "candidates")
    assert refused.status_code == 403
    assert refused.json()["code"] == "forbidden"
    # Without a type, a candidate gets jobs and posts only.
    assert {r["type"] for r in _search(api, auth, alice, "développeur").json()["results"]} == {"job"}

    for recruiter in (rita, root):
        results = _search(api, auth, recruiter, "developpeur", "candidates").json()["results"]
        assert [r["id"] for r in results] == [str(bob.pk)]
        assert results[0]["title"] == "Bob"
    mixed = _search(api, auth, rita, "développeur").json()["results"]
    assert {r["type"] for r in mixed} == {"job", "candidate"}


@pytest.mark.parametrize(
    "q",
    [
        "'",
        "''",
        "python'",
        "dév & | !",
        "développeur & python",
        "!python",
        "python:*",
        "python:* | java",
        "(python",
        "python <-> django",
        "'; DROP TABLE posts; --",
        "1' OR '1'='1",
        "\\x00\\",
        "python\x00",
        "%_%",
        "développeur\\",
        "&&&& ||||",
        "ü" * 50,
        "a b c d e f g h i j k l m n o p",
        "😀 python 😀",
    ],
)
def test_it_survives_hostile_input(api, auth, alice, job, q):
    response = _search(api, auth, alice, q, "jobs")
    assert response.status_code in (200, 400), response.content
    body = response.json()
    if response.status_code == 400:
        assert body["code"] in ("query_too_short", "query_too_long")
    else:
        assert isinstance(body["results"], list)
    assert Job.objects.filter(pk=job.pk).exists()


def test_it_treats_operators_as_separators(api, auth, alice, job):
    for q in ("développeur & python", "python:*", "!python", "développeur|python", "'python'"):
        assert _ids(_search(api, auth, alice, q, "jobs")) == [str(job.pk)], q


@pytest.mark.parametrize(
    ("q", "code"),
    [
        ("", "query_too_short"),
        ("a", "query_too_short"),
        ("  a  ", "query_too_short"),
        ("!!", "query_too_short"),
        ("a b", "query_too_short"),
        ("x" * 10_000, "query_too_long"),
        ("développeur " * 20, "query_too_long"),
    ],
)
def test_it_answers_a_clear_400_for_too_short_or_too_long_queries(api, auth, alice, q, code):
    response = _search(api, auth, alice, q)
    assert response.status_code == 400
    assert response.json()["code"] == code
    assert response.json()["detail"]


def test_it_refuses_an_unknown_type(api, auth, alice):
    response = _search(api, auth, alice, "python", "users")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_type"


def test_it_pages_results_with_a_signed_cursor(api, auth, alice, make_post):
    posts = [make_post(alice, f"Stage de développement numéro {i}", minutes_ago=i) for i in range(7)]
    first = _search(api, auth, alice, "stage", "posts", limit=4).json()
    second = _search(api, auth, alice, "stage", "posts", limit=4, cursor=first["next_cursor"]).json()
    assert [r["id"] for r in first["results"] + second["results"]] == [str(p.pk) for p in posts]
    assert second["next_cursor"] is None
    other_query = _search(api, auth, alice, "développement", "posts", cursor=first["next_cursor"])
    assert other_query.status_code == 400
    assert other_query.json()["code"] == "invalid_cursor"


def test_it_builds_the_tsquery_from_words_only():
    assert tokenize("L'Œuvre du Développeur C++ & node.js!") == ["oeuvre", "du", "developpeur", "c++", "node.js"]
    sql, params = build_tsquery("'java':* & développeu")
    assert sql == "(to_tsquery('french', %s) && (to_tsquery('french', %s) || to_tsquery('simple', %s)))"
    assert params == ["'java':*", "'developpeu':*", "'developpe' | 'developp' | 'develop'"]
    # Earlier words are complete: no truncations for them.
    assert build_tsquery("développeuse java")[1] == ["'developpeuse':*", "'java':*"]


@pytest.mark.parametrize("q", ["développeuse", "développeu", "developpe", "dévelo"])
def test_it_finds_words_the_stemmer_cut_while_the_user_types(api, auth, alice, make_post, q):
    post = make_post(alice, "Développeuse recherchée")  # indexed as 'developp'
    assert _ids(_search(api, auth, alice, q, "posts")) == [str(post.pk)]


def test_it_offers_django_expressions_for_other_search_boxes(acme, job):
    from emploiplus.search import search_matches, search_rank

    other = Job.objects.create(company=acme, title="Chef de projet", description="Python apprécié", status="active")
    found = (
        Job.objects.filter(search_matches("python"))
        .annotate(rank=search_rank("python"))
        .order_by("-rank")
        .values_list("pk", flat=True)
    )
    assert list(found) == [job.pk, other.pk]
    with pytest.raises(ValueError):
        search_matches("python", vector="search_vector; DROP TABLE jobs")
    assert Post.objects.filter(search_matches("python")).count() == 0
    assert dt.datetime  # keep the import for readers of the ranking test


def test_it_ranks_the_newest_window_whether_or_not_the_recent_slice_fills_it(api, auth, alice, make_post, monkeypatch):
    from feed import selectors

    monkeypatch.setattr(selectors, "SEARCH_WINDOW", 3)
    old_title = make_post(alice, "Rien à voir", title="Alternance en marketing", minutes_ago=60 * 24 * 100)
    recent = [make_post(alice, f"Une alternance numéro {i}", minutes_ago=60 * 24 * 3 * i + 1) for i in range(2)]
    # No slice holds 3 matches (window of 3): the whole table is searched.
    found = _ids(_search(api, auth, alice, "alternance", "posts"))
    assert found == [str(old_title.pk), str(recent[0].pk), str(recent[1].pk)]  # title match first

    newer = make_post(alice, "Encore une alternance", minutes_ago=5)
    make_post(alice, "Alternance d'il y a 40 jours", minutes_ago=60 * 24 * 40)
    # Now the last 7 days hold a full window (3 newest): the old post is outside the window.
    found = _ids(_search(api, auth, alice, "alternance", "posts"))
    assert sorted(found) == sorted([str(newer.pk), str(recent[0].pk), str(recent[1].pk)])
