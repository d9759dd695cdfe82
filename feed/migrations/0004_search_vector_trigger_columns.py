"""Fix: recompute posts.search_vector only when the text changes.

Migration 0002 created `trg_posts_search_vector` as BEFORE INSERT OR UPDATE, so every
like, comment or share (whose counter trigger UPDATEs the post row) re-ran
to_tsvector() over the whole post while holding the post's row lock: wasted CPU on the
hottest write path and longer lock waits under concurrent likes. Limiting the trigger to
`UPDATE OF title, content` keeps the vector exact (it depends on nothing else).
"""

from django.db import migrations

FORWARD = """
DROP TRIGGER IF EXISTS trg_posts_search_vector ON posts;
CREATE TRIGGER trg_posts_search_vector
    BEFORE INSERT OR UPDATE OF title, content ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_search_vector_update();
"""

REVERSE = """
DROP TRIGGER IF EXISTS trg_posts_search_vector ON posts;
CREATE TRIGGER trg_posts_search_vector
    BEFORE INSERT OR UPDATE ON posts
    FOR EACH ROW EXECUTE FUNCTION posts_search_vector_update();
"""


class Migration(migrations.Migration):
    dependencies = [("feed", "0003_posts_feed_index")]

    operations = [migrations.RunSQL(FORWARD, REVERSE)]
