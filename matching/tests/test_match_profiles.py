"""candidate_match_profiles: the matcher's narrow table, kept by triggers (migration 0007).

It must hold exactly one row per eligible candidate (candidate active and not deleted,
account active) with the candidate's current skills (as `skills` ids), level, salary and
notification flag — whatever wrote the base tables: the ORM, queryset updates, raw SQL,
bulk statements, deletes — and concurrent writers must not leave a row for an account
that was deactivated.
"""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime

import psycopg
import pytest
from django.db import connection

from accounts.models import Candidate, User
from matching.models import CandidateMatchProfile

VOCABULARY = ["react", "node.js", "python", "django", "sql", "docker", "aws", "java", "go", "figma"]

# What the table must contain, computed from the base tables.
EXPECTED = """
SELECT c.id, ARRAY(SELECT DISTINCT s FROM unnest(c.skills) AS s ORDER BY s), c.experience_level,
       c.target_salary_min, c.notifications_enabled
FROM candidates AS c JOIN users AS u ON u.id = c.id
WHERE c.is_active AND c.deleted_at IS NULL AND u.is_active
ORDER BY c.id
"""
# What it does contain, skill ids turned back into names.
ACTUAL = """
SELECT p.candidate_id,
       ARRAY(SELECT k.name FROM unnest(p.skill_ids) AS i (id) JOIN skills AS k ON k.id = i.id ORDER BY k.name),
       p.experience_level, p.target_salary_min, p.notifications_enabled
FROM candidate_match_profiles AS p
ORDER BY p.candidate_id
"""


def _snapshot(sql: str) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchall()


def assert_profiles_in_step():
    expected = _snapshot(EXPECTED)
    assert _snapshot(ACTUAL) == expected
    return expected


@pytest.mark.django_db
def test_it_holds_exactly_the_eligible_candidates_whatever_writes_the_base_tables(make_user):
    rng = random.Random(29)
    users = [make_user(f"cand{i}") for i in range(30)]
    assert len(assert_profiles_in_step()) == 30  # created through the ORM

    def some_skills():
        return rng.sample(VOCABULARY, rng.randint(0, 4)) + (["brand-new-skill"] if rng.random() < 0.1 else [])

    for step in range(60):
        user = rng.choice(users)
        kind = step % 8
        if kind == 0:  # ORM save of the whole row
            candidate = Candidate.objects.get(pk=user.pk)
            candidate.skills = some_skills()
            candidate.experience_level = rng.choice([None, "junior", "mid", "lead"])
            candidate.save()
        elif kind == 1:  # queryset update, several rows in one statement
            ids = [u.pk for u in rng.sample(users, 5)]
            Candidate.objects.filter(pk__in=ids).update(target_salary_min=rng.choice([None, 30000, 45000]))
        elif kind == 2:  # raw SQL
            with connection.cursor() as cursor:
                cursor.execute("UPDATE candidates SET skills = %s WHERE id = %s", [some_skills(), user.pk])
        elif kind == 3:  # soft delete / undelete
            deleted = None if rng.random() < 0.5 else datetime.now(UTC)
            Candidate.objects.filter(pk=user.pk).update(deleted_at=deleted)
        elif kind == 4:  # candidate (de)activated
            Candidate.objects.filter(pk=user.pk).update(is_active=rng.random() < 0.6)
        elif kind == 5:  # account (de)activated through the ORM (saves every column)
            account = User.objects.get(pk=user.pk)
            account.is_active = rng.random() < 0.6
            account.save()
        elif kind == 6:  # notifications switched
            Candidate.objects.filter(pk=user.pk).update(notifications_enabled=rng.random() < 0.5)
        else:  # an update touching nothing the matcher reads changes nothing
            Candidate.objects.filter(pk=user.pk).update(location=f"Ville {step}")
        assert_profiles_in_step()

    # Every kind of step changed the table at least once, so the comparison above is not vacuous.
    eligible = assert_profiles_in_step()
    assert 0 < len(eligible) < 30

    # Deleting candidates (and their accounts) removes their rows.
    doomed = [u.pk for u in users[:10]]
    Candidate.objects.filter(pk__in=doomed).delete()
    User.objects.filter(pk__in=doomed).delete()
    assert not CandidateMatchProfile.objects.filter(candidate_id__in=doomed).exists()
    assert_profiles_in_step()


@pytest.mark.django_db
def test_it_keeps_skill_ids_stable_and_shares_them_between_candidates(make_user):
    alice, bob = make_user("alice"), make_user("bob")
    Candidate.objects.filter(pk=alice.pk).update(skills=["react", "python"])
    Candidate.objects.filter(pk=bob.pk).update(skills=["python"])
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM skills WHERE name = 'python'")
        (python_id,) = cursor.fetchone()
    Candidate.objects.filter(pk=alice.pk).update(skills=["sql"])  # python leaves alice, keeps its id
    assert CandidateMatchProfile.objects.get(pk=bob.pk).skill_ids == [python_id]
    assert python_id not in CandidateMatchProfile.objects.get(pk=alice.pk).skill_ids


@pytest.mark.django_db
def test_it_is_closed_to_the_api_roles():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relrowsecurity FROM pg_class WHERE relname IN ('skills', 'candidate_match_profiles')"
        )
        assert dict(cursor.fetchall()) == {"skills": True, "candidate_match_profiles": True}


def _connect() -> psycopg.Connection:
    return psycopg.connect(**connection.get_connection_params())


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first", ["candidate edit", "account deactivation"])
def test_a_concurrent_profile_edit_and_account_deactivation_leave_no_row(make_user, first):
    """Each transaction's trigger reads the other's row as it was before the other
    committed. Without the refresh's FOR SHARE on users, the candidate edit that commits
    last would re-insert the row of an account deactivated meanwhile."""
    user = make_user("racer")
    edit = ("UPDATE candidates SET skills = ARRAY['go'] WHERE id = %s", [user.pk])
    deactivate = ("UPDATE users SET is_active = false WHERE id = %s", [user.pk])
    leader_sql, follower_sql = (edit, deactivate) if first == "candidate edit" else (deactivate, edit)

    with _connect() as leader, _connect() as follower:
        leader.execute(*leader_sql)  # its trigger has run; not committed
        done = threading.Event()

        def follow():
            follower.execute(*follower_sql)  # blocks on the leader's row lock or share lock
            follower.commit()
            done.set()

        thread = threading.Thread(target=follow)
        thread.start()
        time.sleep(0.3)
        assert not done.is_set(), "the second writer must wait for the first"
        leader.commit()
        thread.join(timeout=10)
        assert done.is_set()

    assert not CandidateMatchProfile.objects.filter(pk=user.pk).exists()
    assert_profiles_in_step()
