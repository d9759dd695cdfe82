"""Search (issue 7): GET /api/search/ over the seed_demo posts and jobs, median and p99.

Every sample is one full HTTP request through Django's test client, in process (auth,
rate limiter, DRF, JSON), like bench_feed. Queries are what people type in a French
job board, including partial words typed so far ("dévelop") and common words that match
a large share of the posts ("recrute", "stage").

Variants, interleaved request by request:
- `windowed` (the endpoint): rank (ts_rank × recency) the newest 1,000 matches;
- `rank all matches`: the naive alternative, ts_rank over every matching row, sorted.
Per type: `posts`, `jobs`, and no type (jobs + posts).

Data: bench_feed.ensure_data() (BENCH_POSTS, BENCH_JOBS, … — see bench_feed).
BENCH_SCALE scales the number of samples (1.0 = 20 rounds over the query list).
"""

from __future__ import annotations

import os
import time

from django.test import Client
from django.test.utils import override_settings
from django.urls import clear_url_caches, include, path
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.models import User
from accounts.testing import auth_header
from bench.bench_feed import ensure_data
from bench.common import Result, summarize
from emploiplus import search
from emploiplus.pagination import parse_limit
from feed import selectors

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
QUERIES = [
    "développeur python",
    "dévelop",
    "developpeur",
    "data scientist",
    "comptable lyon",
    "stage",
    "alternance marketing",
    "ingénieur devops",
    "react",
    "recrute",
    "certification aws",
    "télétravail",
    "chef de projet",
    "kubernetes docker",
    "paie",
    "bordeaux",
]


class SearchAllMatchesApi(APIView):
    """The naive alternative: rank every match of the query, then sort."""

    def get(self, request):
        limit = parse_limit(request.query_params.get("limit"))
        kinds = selectors.search_kinds_for(user=request.user, type_=request.query_params.get("type"))
        tsquery_sql, params = search.build_tsquery(request.query_params.get("q", ""))
        score = search.rank_sql("s.search_vector", "s.created_at", tsquery_sql)
        rows = selectors._fetch(
            f"""
            SELECT s.kind, s.object_id, s.title, s.snippet, s.created_at, {score} AS score
            FROM v_search_optimized AS s
            WHERE s.kind = ANY(%s) AND s.search_vector @@ {tsquery_sql}
            ORDER BY score DESC, s.created_at DESC, s.object_id
            LIMIT %s
            """,
            [*params, kinds, *params, limit],
        )
        return Response({"results": [{"type": r["kind"], "id": r["object_id"], "title": r["title"]} for r in rows]})


urlpatterns = [
    path("api/", include("feed.urls")),
    path("api/search-all-matches/", SearchAllMatchesApi.as_view()),
]


def run() -> list[Result]:
    sizes = ensure_data()
    print(f"    data: {sizes}", flush=True)
    size = f"{sizes['visible_posts']:,} posts, {sizes['active_jobs']:,} active jobs"
    viewer = User.objects.filter(role="candidate", is_active=True).order_by("created_at").first()
    headers = auth_header(viewer)
    rounds = max(2, int(20 * SCALE))
    results: list[Result] = []
    with override_settings(ROOT_URLCONF=__name__, RATE_LIMIT_PER_MINUTE=10**9, ALLOWED_HOSTS=["testserver"]):
        clear_url_caches()
        client = Client()
        for type_ in ("posts", "jobs", None):
            samples: dict[str, list[float]] = {"windowed": [], "all": []}
            per_query: dict[str, list[float]] = {q: [] for q in QUERIES}
            for q in QUERIES:  # warm-up, and a check that the endpoint answers
                params = {"q": q, "limit": 20, **({"type": type_} if type_ else {})}
                assert client.get("/api/search/", params, headers=headers).status_code == 200
                client.get("/api/search-all-matches/", params, headers=headers)
            for _ in range(rounds):
                for q in QUERIES:
                    params = {"q": q, "limit": 20, **({"type": type_} if type_ else {})}
                    for variant, url in (("windowed", "/api/search/"), ("all", "/api/search-all-matches/")):
                        started = time.perf_counter()
                        response = client.get(url, params, headers=headers)
                        elapsed = time.perf_counter() - started
                        assert response.status_code == 200, response.content
                        samples[variant].append(elapsed)
                        if variant == "windowed":
                            per_query[q].append(elapsed)
            label = type_ or "jobs+posts"
            slowest = sorted(per_query.items(), key=lambda kv: -sorted(kv[1])[len(kv[1]) // 2])[:3]
            windowed = summarize(
                "search",
                f"windowed, type={label}",
                size,
                samples["windowed"],
                queries=len(QUERIES),
                slowest_medians_ms={q: round(sorted(s)[len(s) // 2] * 1000, 1) for q, s in slowest},
            )
            naive = summarize("search", f"rank all matches, type={label}", size, samples["all"], queries=len(QUERIES))
            naive.extra["ratio_over_windowed_median"] = round(naive.median_ms / windowed.median_ms, 2)
            results += [windowed, naive]
    clear_url_caches()
    return results
