"""The SQL matcher and v_candidate_job_matches are one definition: they agree."""

import random
from decimal import Decimal

import pytest
from django.db import connection

from accounts.models import Candidate
from matching import selectors
from matching.models import Job

pytestmark = pytest.mark.django_db

VOCABULARY = ["react", "node.js", "python", "django", "sql", "docker", "aws", "java", "go", "figma", "seo", "excel"]
LEVELS = [None, "entry", "junior", "mid", "senior", "lead"]
SALARIES = [None, 25000, 35000, 45000, 60000]


def random_skills(rng: random.Random) -> list[str]:
    return rng.sample(VOCABULARY, rng.randint(0, 5))


def test_it_agrees_with_the_view_on_1000_random_pairs(make_user, acme):
    rng = random.Random(20261128)
    for i in range(50):
        user = make_user(f"cand{i}")
        Candidate.objects.filter(pk=user.pk).update(
            skills=random_skills(rng),
            experience_level=rng.choice(LEVELS),
            target_salary_min=rng.choice(SALARIES),
        )
    jobs = []
    for i in range(20):
        smin = rng.choice(SALARIES)
        smax = rng.choice([None, (smin or 20000) + 10000])
        jobs.append(
            Job.objects.create(
                company=acme,
                title=f"Job {i}",
                status="active",
                required_skills=random_skills(rng),
                experience_level=rng.choice(LEVELS),
                salary_min=smin,
                salary_max=smax,
            )
        )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT candidate_id, job_id, match_score, skill_score, experience_score, salary_score, "
            "matched_skills, missing_skills FROM v_candidate_job_matches"
        )
        view = {(row[0], row[1]): row[2:] for row in cursor.fetchall()}
    assert len(view) == 50 * 20 + 0  # 1,000 pairs (the fixtures add no candidate here)

    compared = 0
    for job in jobs:
        # threshold 0 and no prefilter: every pair, so every view row is compared.
        ours = {m.candidate_id: m for m in selectors.candidates_matching_job(job=job, threshold=0, prefilter=False)}
        for (candidate_id, job_id), expected in view.items():
            if job_id != job.id:
                continue
            m = ours[candidate_id]
            got = (m.score, m.skill_score, m.experience_score, m.salary_score, m.matched_skills, m.missing_skills)
            assert got == tuple(expected), (candidate_id, job.id)
            compared += 1
        # And with the production settings (threshold 60, GIN prefilter): exactly the view's rows ≥ 60.
        prod = {m.candidate_id: m.score for m in selectors.candidates_matching_job(job=job)}
        assert prod == {c: v[0] for (c, j), v in view.items() if j == job.id and v[0] >= Decimal("60")}
    assert compared == 1000

    # The candidate direction agrees too.
    candidate = Candidate.objects.first()
    mine = {m.job_id: m.score for m in selectors.jobs_matching_candidate(candidate=candidate, threshold=0)}
    assert mine == {j: v[0] for (c, j), v in view.items() if c == candidate.pk}


def test_it_uses_the_gin_index_for_the_prefilter(acme):
    job = Job(company=acme, title="x", status="active", required_skills=["react"])
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # tiny table: make the index choice visible
        cursor.execute("EXPLAIN " + selectors.job_match_query(job)[0], selectors.job_match_params(job))
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "idx_match_profiles_skills_gin" in plan


def _by_functions(job, threshold):
    """The per-row function form (match_skill_score, match_matched_skills …) with the GIN prefilter."""
    return _by_form(job, threshold, selectors.FORM_FUNCTIONS)


def _by_form(job, threshold, form):
    params = selectors.job_match_params(job, threshold=threshold)
    sql = selectors.candidates_for_job_sql(prefilter=True, skills=job.required_skills, form=form)
    with selectors.matching_cursor() as cursor:
        cursor.execute(sql + " ORDER BY score DESC, candidate_id", params)
        return [selectors.Match(*row) for row in cursor.fetchall()]


def test_it_gives_the_function_forms_answer_with_the_fast_forms(make_user, acme):
    """The fast forms (containment operators on skill ids, score and skills looked up per
    mask or per overlap) return the same rows, every column, as the per-row functions —
    duplicates, skills nobody has and many skills included."""
    rng = random.Random(7)
    for i in range(60):
        user = make_user(f"cand{i}")
        Candidate.objects.filter(pk=user.pk).update(
            skills=random_skills(rng),
            experience_level=rng.choice(LEVELS),
            target_salary_min=rng.choice(SALARIES),
            notifications_enabled=rng.random() > 0.2,
        )
    job_skills = [
        ["react"],
        ["react", "react", "python"],  # a duplicate counts once, as in match_skill_score
        ["python", "django", "sql", "docker", "aws"],
        VOCABULARY,  # 12 distinct skills: up to 4,096 masks
        ["cobol"],  # nobody has it
        ["python", "cobol", "sql"],  # one skill nobody has among known ones
        [],  # no skill: nobody can pass 50
    ]
    compared = 0
    for i, required in enumerate(job_skills):
        job = Job.objects.create(
            company=acme,
            title=f"Job {i}",
            status="active",
            required_skills=required,
            experience_level=rng.choice(LEVELS),
            salary_min=30000,
            salary_max=rng.choice([None, 40000]),
        )
        many = len(set(required)) > selectors.MAX_MASK_SKILLS
        expected_form = selectors.FORM_OVERLAP if many else selectors.FORM_MASK
        assert selectors.job_match_form(required, prefilter=True) == expected_form
        for threshold in (50.5, 55, 60, 62.5, 75, 90, 100):
            reference = _by_functions(job, threshold)
            assert selectors.candidates_matching_job(job=job, threshold=threshold) == reference, (required, threshold)
            for form in (selectors.FORM_MASK, selectors.FORM_OVERLAP):  # each fast form, whatever the job
                assert _by_form(job, threshold, form) == reference, (required, threshold, form)
            compared += len(reference)
    assert compared > 100  # the comparison is not vacuous


def test_it_keeps_the_function_form_for_jobs_with_more_skills_than_mask_bits(make_user, acme):
    many = [f"skill{i}" for i in range(selectors.MAX_OVERLAP_SKILLS + 1)]
    user = make_user("wide")
    Candidate.objects.filter(pk=user.pk).update(skills=many, experience_level="mid")
    job = Job.objects.create(company=acme, title="Wide", status="active", required_skills=many)
    sql, _ = selectors.job_match_query(job)
    assert "match_skill_score_from_overlap" not in sql
    (match,) = selectors.candidates_matching_job(job=job)
    assert (match.candidate_id, match.score, match.missing_skills) == (user.pk, Decimal("100.0"), [])


def test_it_scores_everyone_when_the_threshold_allows_zero_overlap(make_user, acme):
    """At 50 a candidate without any common skill can match: the fast form is not used."""
    user = make_user("nobody")
    Candidate.objects.filter(pk=user.pk).update(skills=["figma"], experience_level="lead")
    job = Job.objects.create(company=acme, title="Go", status="active", required_skills=["go"])
    assert "match_skill_score_from_overlap" not in selectors.job_match_query(job, threshold=50)[0]
    (match,) = selectors.candidates_matching_job(job=job, threshold=50)
    assert (match.candidate_id, match.score, match.matched_skills, match.missing_skills) == (
        user.pk,
        Decimal("50.0"),
        [],
        ["go"],
    )


def test_it_finds_every_experience_and_salary_part_in_the_fast_forms_combinations():
    """The fast form scores each (overlap, experience, salary) combination once, with the
    parts taking 50 or 100. If match_experience_score / match_salary_score ever return
    another value, this fails (and the fast form must grow its combinations)."""
    levels = [None, "entry", "junior", "mid", "senior", "lead"]
    salaries = [None, 0, 29999, 30000, 30001, 45000, 50000, 50001, 2**31 - 1]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT array_agg(DISTINCT match_experience_score(c, j)) "
            "FROM unnest(%s::text[]) AS c, unnest(%s::text[]) AS j",
            [levels, levels],
        )
        (experience,) = cursor.fetchone()
        cursor.execute(
            "SELECT array_agg(DISTINCT match_salary_score(c, mn, mx)) "
            "FROM unnest(%s::int[]) AS c, unnest(%s::int[]) AS mn, unnest(%s::int[]) AS mx",
            [salaries, salaries, salaries],
        )
        (salary,) = cursor.fetchone()
    assert set(experience) == {Decimal(50), Decimal(100)}
    assert set(salary) == {Decimal(50), Decimal(100)}
