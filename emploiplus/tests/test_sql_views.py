"""The SQL layer answers what CONTRACT §3 and §7 say, on real PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import Candidate, Role
from feed.models import Comment, Post, PostLike, PostShare
from matching.models import Job

pytestmark = pytest.mark.django_db


def rows(sql: str, params=None) -> list[dict]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def candidate(make_user, name, **profile) -> Candidate:
    user = make_user(name)
    Candidate.objects.filter(pk=user.pk).update(**profile)
    return Candidate.objects.get(pk=user.pk)


def job(company, **fields) -> Job:
    fields.setdefault("title", "Développeur")
    fields.setdefault("status", "active")
    return Job.objects.create(company=company, **fields)


def scores(job_id) -> dict[str, dict]:
    found = rows("SELECT * FROM v_candidate_job_matches WHERE job_id = %s", [job_id])
    return {str(r["candidate_id"]): r for r in found}


class TestCandidateJobMatchesView:
    def test_it_scores_hand_computed_cases(self, make_user, acme):
        j = job(
            acme,
            required_skills=["python", "django", "postgresql"],
            experience_level="mid",
            salary_min=40000,
            salary_max=50000,
        )
        partial = candidate(
            make_user, "partial", skills=["python", "django"], experience_level="senior", target_salary_min=45000
        )
        none = candidate(make_user, "none", skills=[], experience_level="junior")
        full = candidate(
            make_user,
            "full",
            skills=["python", "django", "postgresql", "react"],
            experience_level="mid",
            target_salary_min=60000,
        )
        found = scores(j.id)

        # skill 100·2/3, experience 100 (senior ≥ mid), salary 100 (45k ≤ 50k): 33.33 + 30 + 20
        assert found[str(partial.pk)]["match_score"] == Decimal("83.3")
        assert found[str(partial.pk)]["skill_score"] == Decimal("66.7")
        assert found[str(partial.pk)]["matched_skills"] == ["django", "python"]
        assert found[str(partial.pk)]["missing_skills"] == ["postgresql"]
        assert found[str(partial.pk)]["company_name"] == "Acme SAS"
        # zero overlap → skill 0 (not NULL); junior < mid → 50; unknown salary → 100: 0 + 15 + 20
        assert found[str(none.pk)]["skill_score"] == Decimal("0.0")
        assert found[str(none.pk)]["match_score"] == Decimal("35.0")
        assert found[str(none.pk)]["matched_skills"] == []
        # every skill, same level, asks 60k > 50k max → salary 50: 50 + 30 + 10
        assert found[str(full.pk)]["match_score"] == Decimal("90.0")
        assert found[str(full.pk)]["salary_score"] == Decimal("50")

    def test_it_orders_levels_by_rank_not_alphabetically(self, make_user, acme):
        # "lead" < "mid" alphabetically, but lead is the higher level.
        j = job(acme, required_skills=["go"], experience_level="mid")
        lead = candidate(make_user, "lead", skills=["go"], experience_level="lead")
        entry = candidate(make_user, "entry", skills=["go"], experience_level="entry")
        unknown = candidate(make_user, "unknown", skills=["go"])
        found = scores(j.id)
        assert found[str(lead.pk)]["experience_score"] == Decimal("100")
        assert found[str(entry.pk)]["experience_score"] == Decimal("50")
        assert found[str(unknown.pk)]["experience_score"] == Decimal("50")

    def test_it_uses_salary_min_when_the_job_has_no_max(self, make_user, acme):
        j = job(acme, required_skills=["go"], salary_min=30000)
        above = candidate(make_user, "above", skills=["go"], target_salary_min=35000)
        below = candidate(make_user, "below", skills=["go"], target_salary_min=30000)
        no_target = candidate(make_user, "notarget", skills=["go"])
        found = scores(j.id)
        assert found[str(above.pk)]["salary_score"] == Decimal("50")
        assert found[str(below.pk)]["salary_score"] == Decimal("100")
        assert found[str(no_target.pk)]["salary_score"] == Decimal("100")

    def test_it_gives_skill_zero_to_a_job_without_skills(self, make_user, acme):
        j = job(acme, required_skills=[])
        c = candidate(make_user, "any", skills=["python"])
        assert scores(j.id)[str(c.pk)]["match_score"] == Decimal("50.0")

    def test_it_leaves_out_inactive_deleted_and_draft_rows(self, make_user, acme):
        active_job = job(acme, required_skills=["go"])
        draft = job(acme, required_skills=["go"], status="draft")
        deleted_job = job(acme, required_skills=["go"], deleted_at=timezone.now())
        ok = candidate(make_user, "ok", skills=["go"])
        inactive = candidate(make_user, "inactive", skills=["go"], is_active=False)
        deleted = candidate(make_user, "deleted", skills=["go"], deleted_at=timezone.now())
        gone_user = candidate(make_user, "gone", skills=["go"])
        gone_user.user.is_active = False
        gone_user.user.save()

        assert set(scores(active_job.id)) == {str(ok.pk)}
        assert scores(draft.id) == {}
        assert scores(deleted_job.id) == {}
        everyone = {str(c.pk) for c in (ok, inactive, deleted, gone_user)}
        assert everyone - set(scores(active_job.id)) == {str(inactive.pk), str(deleted.pk), str(gone_user.pk)}


class TestNewsfeedView:
    def test_it_returns_counters_author_and_company(self, make_user, rita, alice, bob):
        post = Post.objects.create(user=rita, title="Nous recrutons", content="Rejoignez Acme")
        PostLike.objects.create(post=post, user=alice)
        PostLike.objects.create(post=post, user=bob)
        Comment.objects.create(post=post, user=alice, content="Super !")
        Comment.objects.create(post=post, user=bob, content="Supprimé", deleted_at=timezone.now())
        PostShare.objects.create(post=post, user=bob)

        (row,) = rows("SELECT * FROM v_newsfeed_feed WHERE id = %s", [post.id])
        assert (row["likes_count"], row["comments_count"], row["shares_count"]) == (2, 1, 1)
        assert row["author_full_name"] == "Rita"
        assert row["author_role"] == Role.COMPANY
        assert row["company_name"] == "Acme SAS"

    def test_it_hides_deleted_hidden_and_inactive_authors_posts(self, make_user, alice):
        visible = Post.objects.create(user=alice, content="visible")
        Post.objects.create(user=alice, content="deleted", deleted_at=timezone.now())
        Post.objects.create(user=alice, content="hidden", is_hidden=True)
        inactive = make_user("ghost", is_active=False)
        Post.objects.create(user=inactive, content="inactive author")

        assert [r["id"] for r in rows("SELECT id FROM v_newsfeed_feed")] == [visible.id]


class TestSearchView:
    def search(self, text: str, kind: str = "job") -> list[str]:
        found = rows(
            "SELECT title FROM v_search_optimized "
            "WHERE kind = %s AND search_vector @@ plainto_tsquery('french', f_unaccent(%s))",
            [kind, text],
        )
        return [r["title"] for r in found]

    def test_it_finds_a_job_by_a_stemmed_french_word(self, acme):
        job(acme, title="Poste backend", description="Nous recherchons un développeur Python expérimenté.")
        job(acme, title="Comptable", description="Gestion de la paie.")
        assert self.search("développeurs") == ["Poste backend"]
        assert self.search("developpeur") == ["Poste backend"]  # without accents
        assert self.search("comptabilité") == []

    def test_it_covers_posts_and_candidates(self, make_user, alice):
        Post.objects.create(user=alice, title="Mon expérience", content="Retour sur mes années de développement mobile")
        Candidate.objects.filter(pk=alice.pk).update(job_title="Ingénieure données", skills=["python"])
        assert self.search("developpement", kind="post") == ["Mon expérience"]
        assert self.search("ingénieur", kind="candidate") == ["Alice"]

    def test_it_excludes_inactive_jobs(self, acme):
        job(acme, title="Brouillon", description="développeur", status="draft")
        assert self.search("développeur") == []


class TestUpdatedAtTrigger:
    def test_it_moves_updated_at_on_any_update(self, acme):
        j = job(acme)
        old = timezone.now() - dt.timedelta(days=365)
        with connection.cursor() as cursor:
            cursor.execute("UPDATE jobs SET updated_at = %s, title = 'x' WHERE id = %s", [old, j.id])
            cursor.execute("SELECT updated_at, now() FROM jobs WHERE id = %s", [j.id])
            updated_at, now = cursor.fetchone()
        assert updated_at == now  # the trigger overwrote the value the UPDATE tried to set
        assert updated_at > old

    def test_it_has_a_trigger_on_every_table_with_updated_at(self):
        missing = rows(
            """
            SELECT c.table_name FROM information_schema.columns AS c
            JOIN information_schema.tables AS t USING (table_schema, table_name)
            WHERE c.table_schema = 'public' AND c.column_name = 'updated_at' AND t.table_type = 'BASE TABLE'
              AND NOT EXISTS (
                SELECT 1 FROM pg_trigger AS tg
                WHERE tg.tgrelid = (quote_ident(c.table_name))::regclass
                  AND tg.tgname = 'trg_' || c.table_name || '_updated_at'
              )
            """
        )
        assert missing == []

    def test_it_does_not_count_a_like_as_an_edit_of_the_post(self, alice, bob):
        post = Post.objects.create(user=alice, content="bonjour")
        old = timezone.now() - dt.timedelta(days=30)
        Post.objects.filter(pk=post.pk).update(updated_at=old)
        PostLike.objects.create(post=post, user=bob)
        post.refresh_from_db()
        assert post.likes_count == 1
        assert post.updated_at == old
        Post.objects.filter(pk=post.pk).update(content="bonjour à tous")
        post.refresh_from_db()
        assert post.updated_at > old


class TestReadOnlyModels:
    def test_it_reads_the_views_through_the_orm(self, make_user, acme, alice):
        from emploiplus.models import CandidateJobScore, NewsfeedEntry, SearchEntry

        j = job(acme, title="Développeur Django", required_skills=["django"])
        c = candidate(make_user, "dj", skills=["django"], experience_level="mid")
        post = Post.objects.create(user=alice, content="Bonjour")

        score = CandidateJobScore.objects.select_related("job").get(candidate_id=c.pk, job=j)
        assert score.match_score == Decimal("100.0")
        assert score.job.title == "Développeur Django"
        assert NewsfeedEntry.objects.get(pk=post.pk).author_full_name == "Alice"
        assert SearchEntry.objects.filter(kind="job", object_id=j.pk).exists()

    def test_it_refuses_writes(self, alice):
        from emploiplus.models import NewsfeedEntry

        post = Post.objects.create(user=alice, content="Bonjour")
        entry = NewsfeedEntry.objects.get(pk=post.pk)
        with pytest.raises(TypeError, match="read-only"):
            entry.save()
        with pytest.raises(TypeError, match="read-only"):
            entry.delete()


class TestSearchVectorTriggers:
    @pytest.mark.parametrize(
        ("table", "other_column", "text_column"),
        [("candidates", "notifications_enabled", "job_title"), ("jobs", "matching_candidates_count", "title")],
    )
    def test_it_recomputes_the_vector_only_when_its_text_changes(
        self, make_user, acme, table, other_column, text_column
    ):
        row_id = make_user("vector").pk if table == "candidates" else job(acme, title="Développeur").pk
        value = "false" if other_column == "notifications_enabled" else "7"
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {table} SET search_vector = NULL, {other_column} = {value} WHERE id = %s", [row_id])
            cursor.execute(f"SELECT search_vector FROM {table} WHERE id = %s", [row_id])
            assert cursor.fetchone() == (None,)  # not a text change: the trigger did not run
            cursor.execute(f"UPDATE {table} SET {text_column} = 'Ingénieur logiciel' WHERE id = %s", [row_id])
            cursor.execute(f"SELECT search_vector::text FROM {table} WHERE id = %s", [row_id])
            assert "'ingenieur'" in cursor.fetchone()[0]
