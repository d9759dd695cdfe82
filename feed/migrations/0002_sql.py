"""PostgreSQL layer of the feed: exact counters, search vector, v_newsfeed_feed and
v_search_optimized (named by the guide but never defined there)."""

from django.db import migrations

from emploiplus.sql import search_vector_trigger, updated_at_trigger

COUNTERS = """
-- likes_count / comments_count / shares_count are changed only here, by one atomic
-- UPDATE per row change, so they stay exact under any concurrency and whoever writes
-- the rows (API, admin, Supabase clients).
CREATE FUNCTION posts_likes_count_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE posts SET likes_count = likes_count + 1 WHERE id = NEW.post_id;
    ELSE
        UPDATE posts SET likes_count = likes_count - 1 WHERE id = OLD.post_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER trg_post_likes_count AFTER INSERT OR DELETE ON post_likes
    FOR EACH ROW EXECUTE FUNCTION posts_likes_count_sync();

CREATE FUNCTION posts_shares_count_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE posts SET shares_count = shares_count + 1 WHERE id = NEW.post_id;
    ELSE
        UPDATE posts SET shares_count = shares_count - 1 WHERE id = OLD.post_id;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER trg_post_shares_count AFTER INSERT OR DELETE ON post_shares
    FOR EACH ROW EXECUTE FUNCTION posts_shares_count_sync();

-- Comments count while not soft-deleted.
CREATE FUNCTION posts_comments_count_sync() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    delta integer := 0;
BEGIN
    IF TG_OP = 'INSERT' THEN
        delta := CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE 0 END;
        UPDATE posts SET comments_count = comments_count + delta WHERE id = NEW.post_id AND delta <> 0;
    ELSIF TG_OP = 'DELETE' THEN
        delta := CASE WHEN OLD.deleted_at IS NULL THEN -1 ELSE 0 END;
        UPDATE posts SET comments_count = comments_count + delta WHERE id = OLD.post_id AND delta <> 0;
    ELSE
        delta := (CASE WHEN NEW.deleted_at IS NULL THEN 1 ELSE 0 END)
               - (CASE WHEN OLD.deleted_at IS NULL THEN 1 ELSE 0 END);
        UPDATE posts SET comments_count = comments_count + delta WHERE id = NEW.post_id AND delta <> 0;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER trg_comments_count AFTER INSERT OR DELETE OR UPDATE OF deleted_at ON comments
    FOR EACH ROW EXECUTE FUNCTION posts_comments_count_sync();
"""

COUNTERS_REVERSE = """
DROP TRIGGER IF EXISTS trg_comments_count ON comments;
DROP FUNCTION IF EXISTS posts_comments_count_sync();
DROP TRIGGER IF EXISTS trg_post_shares_count ON post_shares;
DROP FUNCTION IF EXISTS posts_shares_count_sync();
DROP TRIGGER IF EXISTS trg_post_likes_count ON post_likes;
DROP FUNCTION IF EXISTS posts_likes_count_sync();
"""

NEWSFEED_VIEW = """
-- Visible posts with their author and company. A plain join on posts, so a keyset
-- predicate on (created_at, id) and ORDER BY is_pinned DESC, created_at DESC, id DESC
-- use the posts indexes.
CREATE VIEW v_newsfeed_feed WITH (security_invoker = true) AS
SELECT
    p.id,
    p.user_id,
    p.title,
    p.content,
    p.image_urls,
    p.is_pinned,
    p.likes_count,
    p.comments_count,
    p.shares_count,
    p.created_at,
    p.updated_at,
    u.full_name AS author_full_name,
    u.avatar_url AS author_avatar_url,
    u.role AS author_role,
    u.company_id,
    comp.name AS company_name,
    comp.logo_url AS company_logo_url
FROM posts AS p
JOIN users AS u ON u.id = p.user_id
LEFT JOIN companies AS comp ON comp.id = u.company_id
WHERE p.deleted_at IS NULL AND NOT p.is_hidden AND u.is_active;
"""

SEARCH_VIEW = """
-- One row per searchable object. `id` is "<kind>:<object id>" (unique); query with
-- search_vector @@ to_tsquery('french', f_unaccent(...)).
CREATE VIEW v_search_optimized WITH (security_invoker = true) AS
SELECT
    'job:' || j.id::text AS id,
    'job'::text AS kind,
    j.id AS object_id,
    j.title,
    left(j.description, 280) AS snippet,
    j.search_vector,
    j.created_at
FROM jobs AS j
WHERE j.status = 'active' AND j.deleted_at IS NULL
UNION ALL
SELECT
    'post:' || p.id::text,
    'post',
    p.id,
    coalesce(nullif(p.title, ''), left(p.content, 80)),
    left(p.content, 280),
    p.search_vector,
    p.created_at
FROM posts AS p
JOIN users AS u ON u.id = p.user_id
WHERE p.deleted_at IS NULL AND NOT p.is_hidden AND u.is_active
UNION ALL
SELECT
    'candidate:' || c.id::text,
    'candidate',
    c.id,
    coalesce(nullif(u.full_name, ''), c.job_title),
    left(c.job_title || ' · ' || array_to_string(c.skills, ', ') || ' · ' || c.location, 280),
    c.search_vector,
    c.created_at
FROM candidates AS c
JOIN users AS u ON u.id = c.id
WHERE c.is_active AND c.deleted_at IS NULL AND u.is_active;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("emploiplus", "0001_sql_foundation"),
        ("accounts", "0002_sql"),
        ("matching", "0002_sql"),
        ("feed", "0001_initial"),
    ]

    operations = [
        # A like or comment changes only counters: that is not an edit of the post.
        updated_at_trigger(
            "posts",
            when="(OLD.title, OLD.content, OLD.image_urls, OLD.is_pinned, OLD.is_hidden, OLD.deleted_at) "
            "IS DISTINCT FROM (NEW.title, NEW.content, NEW.image_urls, NEW.is_pinned, NEW.is_hidden, NEW.deleted_at)",
        ),
        updated_at_trigger("comments"),
        search_vector_trigger("posts", [("NEW.title", "A"), ("NEW.content", "B")]),
        migrations.RunSQL(COUNTERS, COUNTERS_REVERSE),
        migrations.RunSQL(NEWSFEED_VIEW, "DROP VIEW IF EXISTS v_newsfeed_feed;"),
        migrations.RunSQL(SEARCH_VIEW, "DROP VIEW IF EXISTS v_search_optimized;"),
    ]
