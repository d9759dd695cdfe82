"""Newsfeed pagination (issue 7): keyset cursor versus OFFSET, page 1 and deep pages.

Every sample is one full HTTP request through Django's test client, in process: the
middleware stack, Supabase JWT verification, the Redis rate limiter, DRF and the JSON
rendering of 20 posts with author, company and `liked_by_me` (no network socket; a real
daphne adds its own constant cost to both variants alike).

Variants, interleaved request by request so machine noise hits them equally:
- `keyset`: `GET /api/feed/?limit=20&cursor=<position>` (the real endpoint);
- `offset`: the same page through `OFFSET k` over the same index order (pinned posts,
  then `created_at DESC, id DESC`) — the naive pagination the original guide used, given
  the same indexes, so the comparison isolates the pagination technique.
Depths: page 1, a page 50,000 posts deep, and (when the data allows) 90 % deep.

Data: seed_demo into the bench database, topped up to the sizes asked for (the data is
kept between runs). Sizes by environment: BENCH_POSTS (default 100,000), BENCH_LIKES
(300,000), BENCH_USERS (50,000), BENCH_JOBS (10,000); the full issue scale is
BENCH_POSTS=1000000 BENCH_LIKES=10000000 BENCH_USERS=1000000 BENCH_JOBS=100000.
BENCH_SCALE scales the number of samples (1.0 = 300 requests per variant and depth; 30 at
the 90 % depth, where each OFFSET request reads most of the table).
"""

from __future__ import annotations

import os
import time

from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import override_settings
from django.urls import clear_url_caches, include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.testing import auth_header
from bench.common import Result, summarize
from emploiplus.pagination import encode_cursor, parse_limit
from feed.selectors import FEED_COLUMNS, _fetch, feed_entry_shape

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
LIMIT = 20
DEEP = 50_000


def _env_int(name: str, default: int) -> int:
    return int(float(os.environ.get(name, default)))


WANT = {
    "posts": _env_int("BENCH_POSTS", 100_000),
    "likes": _env_int("BENCH_LIKES", 300_000),
    "users": _env_int("BENCH_USERS", 50_000),
    "jobs": _env_int("BENCH_JOBS", 10_000),
}


def _count(sql: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def data_sizes() -> dict[str, int]:
    return {
        "posts": _count("SELECT count(*) FROM posts"),
        "visible_posts": _count("SELECT count(*) FROM v_newsfeed_feed"),
        "likes": _count("SELECT count(*) FROM post_likes"),
        "users": _count("SELECT count(*) FROM candidates"),
        "jobs": _count("SELECT count(*) FROM jobs"),
        "active_jobs": _count("SELECT count(*) FROM jobs WHERE status = 'active' AND deleted_at IS NULL"),
    }


def ensure_data() -> dict[str, int]:
    """Top the bench database up to the sizes asked for with seed_demo; return the sizes."""
    have = data_sizes()
    missing = {
        "users": max(0, WANT["users"] - have["users"]),
        "jobs": max(0, WANT["jobs"] - have["jobs"]),
        "posts": max(0, WANT["posts"] - have["posts"]),
    }
    if any(missing.values()):
        print(f"    seeding {missing} …", flush=True)
        started = time.perf_counter()
        call_command("seed_demo", seed=7, verbosity=0, **missing)
        print(f"    seeded in {time.perf_counter() - started:.1f} s", flush=True)
    likes = max(0, WANT["likes"] - _count("SELECT count(*) FROM post_likes"))
    if likes > 1000:
        print(f"    seeding {likes} likes …", flush=True)
        started = time.perf_counter()
        call_command("seed_demo", likes=likes, verbosity=0)
        print(f"    seeded in {time.perf_counter() - started:.1f} s", flush=True)
    with connection.cursor() as cursor:
        # As autovacuum would have done by then: fresh statistics, GIN pending lists merged
        # into the indexes (bulk inserts leave them full), visibility map set.
        for table in ("posts", "jobs", "candidates", "users"):
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    return data_sizes()


class FeedOffsetApi(APIView):
    """The naive alternative: OFFSET over the same order and indexes as the keyset."""

    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"))
        offset = int(request.query_params.get("offset", 0))
        sql = f"""
            SELECT * FROM (
                (SELECT {FEED_COLUMNS} FROM v_newsfeed_feed AS f WHERE f.is_pinned
                 ORDER BY f.created_at DESC, f.id DESC LIMIT %(end)s)
                UNION ALL
                (SELECT {FEED_COLUMNS} FROM v_newsfeed_feed AS f WHERE NOT f.is_pinned
                 ORDER BY f.created_at DESC, f.id DESC LIMIT %(end)s)
            ) AS page
            OFFSET %(offset)s LIMIT %(n)s
        """
        params = {"viewer": request.user.pk, "offset": offset, "n": limit + 1, "end": offset + limit + 1}
        rows = _fetch(sql, params)
        results = [feed_entry_shape(r) for r in rows[:limit]]
        return Response({"results": results, "next_offset": offset + limit if len(rows) > limit else None})


urlpatterns = [
    path("api/", include("feed.urls")),
    path("api/feed-offset/", FeedOffsetApi.as_view()),
]


def _cursor_at(depth: int) -> str | None:
    """The keyset cursor a client holds after reading `depth` posts."""
    if depth == 0:
        return None
    sql = f"""
        SELECT is_pinned, created_at, id FROM (
            (SELECT f.is_pinned, f.created_at, f.id FROM v_newsfeed_feed AS f WHERE f.is_pinned
             ORDER BY f.created_at DESC, f.id DESC)
            UNION ALL
            (SELECT f.is_pinned, f.created_at, f.id FROM v_newsfeed_feed AS f WHERE NOT f.is_pinned
             ORDER BY f.created_at DESC, f.id DESC)
        ) AS page OFFSET {depth - 1} LIMIT 1
    """
    with connection.cursor() as cursor:
        cursor.execute(sql)
        pinned, created_at, post_id = cursor.fetchone()
    return encode_cursor("feed", {"p": pinned, "t": created_at.isoformat(), "i": str(post_id)})


def run() -> list[Result]:
    sizes = ensure_data()
    size = f"{sizes['visible_posts']:,} posts, {sizes['likes']:,} likes"
    print(f"    data: {sizes}", flush=True)
    viewer = User.objects.filter(role="candidate", is_active=True).order_by("created_at").first()
    headers = auth_header(viewer)
    n = max(20, int(300 * SCALE))
    depths = [0, DEEP]
    if sizes["visible_posts"] * 0.9 > DEEP * 2:
        depths.append(int(sizes["visible_posts"] * 0.9) // LIMIT * LIMIT)
    depths = [d for d in depths if d + LIMIT <= sizes["visible_posts"]]

    results: list[Result] = []
    with override_settings(ROOT_URLCONF=__name__, RATE_LIMIT_PER_MINUTE=10**9, ALLOWED_HOSTS=["testserver"]):
        clear_url_caches()
        client = Client()
        for depth in depths:
            cursor = _cursor_at(depth)
            keyset_params = {"limit": LIMIT, **({"cursor": cursor} if cursor else {})}
            offset_params = {"limit": LIMIT, "offset": depth}
            # Same page from both variants (sanity check of the comparison).
            a = client.get("/api/feed/", keyset_params, headers=headers).json()["results"]
            b = client.get("/api/feed-offset/", offset_params, headers=headers).json()["results"]
            assert [x["id"] for x in a] == [x["id"] for x in b], "keyset and OFFSET pages differ"
            samples: dict[str, list[float]] = {"keyset": [], "offset": []}
            for _ in range(5):  # warm-up
                client.get("/api/feed/", keyset_params, headers=headers)
                client.get("/api/feed-offset/", offset_params, headers=headers)
            # The 90 %-deep OFFSET page reads most of the table per request: fewer samples.
            for _ in range(n if depth <= DEEP else max(20, n // 10)):
                for variant, url, params in (
                    ("keyset", "/api/feed/", keyset_params),
                    ("offset", "/api/feed-offset/", offset_params),
                ):
                    started = time.perf_counter()
                    response = client.get(url, params, headers=headers)
                    samples[variant].append(time.perf_counter() - started)
                    assert response.status_code == 200
            label = "page 1" if depth == 0 else f"{depth:,} posts deep"
            keyset = summarize("feed", f"keyset, {label}", size, samples["keyset"], limit=LIMIT)
            offset = summarize("feed", f"OFFSET, {label}", size, samples["offset"], limit=LIMIT)
            offset.extra["ratio_offset_over_keyset_median"] = round(offset.median_ms / keyset.median_ms, 2)
            results += [keyset, offset]
    clear_url_caches()
    return results
