"""Semantic matching (issue 15): the model, the HNSW index at 100,000 profiles, the hybrid API,
and the evaluation set — every compared variant in the same run.

1. `embed texts`: texts per second through the model, one text per call (`single`, what a
   profile edit costs the worker) and batches of 128 (`batch`, the backfill), on the
   evaluation set's 312 real French texts.
2. `semantic eval` (a scratch database `<bench db>_eval`, the set alone): NDCG@10 and
   recall@20 of `rules (threshold)` (the §7 list as served), `rules (every profile)` (§7
   order over everyone) and `hybrid`, with the per-offer ranking time.
3. At N = 100,000 × BENCH_SCALE profiles (`bench-semantic-*` rows of the bench database,
   reused by a rerun): real texts composed from matching/eval/occupations.json (headline,
   1–3 summary phrases, 0–3 skills: ~1.6M distinct combinations), embedded by the model in
   batches (`generate`), stored by COPY, then
   - `hnsw build`: CREATE INDEX … USING hnsw (m 16, ef_construction 64,
     maintenance_work_mem 512MB), seconds and size;
   - `top 20 recall`: the index's top 20 vs exact search (sequential scan), for the 52
     offers of the set as queries, at ef_search 40 (pgvector's default) and 200 (ours);
   - `top 20 latency`: a job's 20 nearest profiles, index (ef_search 200) vs exact scan;
   - `hybrid api`: GET /api/jobs/{id}/matches/?rank=hybrid (and the rules list, same job)
     through a real ASGI server (`make run`'s default) with a company token, sequential requests.

Without pgvector on the bench server (CI's Debian PostgreSQL) the module runs itself in a
child process against an embedded PostgreSQL with pgvector (data in .data/bench-pgvector,
kept for reruns) and reports its rows.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from bench.common import Result, percentile, summarize

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
PROFILES = int(100_000 * SCALE)
SAMPLES = int(os.environ.get("BENCH_SEMANTIC_SAMPLES", "200"))
API_REQUESTS = int(os.environ.get("BENCH_SEMANTIC_API_REQUESTS", "60"))
TAG = "bench-semantic"
BASE_DIR = Path(__file__).resolve().parent.parent
CHILD_ENV = "EMPLOIPLUS_BENCH_SEMANTIC_CHILD"


def _ms(seconds: list[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50_ms": round(statistics.median(ms), 3), "p95_ms": round(percentile(ms, 95), 3)}


# --- 1. the model ---------------------------------------------------------------------


def bench_embedding(texts: list[str]) -> list[Result]:
    from matching import embeddings

    embeddings.encode(texts[:8])  # load
    single = []
    for text in texts[:120]:
        started = time.perf_counter()
        embeddings.encode([text])
        single.append(time.perf_counter() - started)
    batches = []
    for _ in range(3):
        for start in range(0, len(texts), 128):
            chunk = texts[start : start + 128]
            started = time.perf_counter()
            embeddings.encode(chunk)
            batches.append((time.perf_counter() - started) / len(chunk))
    size = f"{len(texts)} French texts (eval set)"
    return [
        summarize(
            "embed texts",
            "single (1 text per call)",
            size,
            single,
            texts_per_second=round(len(single) / sum(single), 1),
        ),
        summarize(
            "embed texts",
            "batch of 128 (per text)",
            size,
            batches,
            texts_per_second=round(1 / statistics.mean(batches), 1),
        ),
    ]


# --- 2. the evaluation set --------------------------------------------------------------


@contextmanager
def _scratch_database(suffix: str):
    """Switch Django's connection to `<bench db>_<suffix>` (created and migrated) and back."""
    import psycopg
    from django.core.management import call_command
    from django.db import connection

    original = connection.settings_dict["NAME"]
    name = f"{original}_{suffix}"
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')

    def switch(to: str) -> None:
        connection.close()
        if hasattr(connection, "close_pool"):
            connection.close_pool()
        connection.settings_dict["NAME"] = to

    switch(name)
    try:
        call_command("migrate", verbosity=0)
        yield
    finally:
        switch(original)
        with psycopg.connect(**params, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bench_evaluation() -> tuple[list[Result], list[str]]:
    from matching import embeddings, selectors, semantic
    from matching.eval import run
    from matching.eval.metrics import ndcg_at, recall_at
    from matching.models import Job

    with _scratch_database("eval"):
        semantic.reset_status_cache()
        data = run.load_into_database()
        run.embed_all(data)
        texts = [
            embeddings.job_text(title=j["title"], description=j["description"], required_skills=j["required_skills"])
            for j in data["jobs"]
        ] + [
            embeddings.candidate_text(headline=p["headline"], job_title="", summary=p["summary"], skills=p["skills"])
            for p in data["profiles"]
        ]
        profile_ids = {p["id"] for p in data["profiles"]}
        variants = {
            "rules (threshold)": lambda job: selectors.candidates_matching_job(job=job),
            "rules (every profile)": lambda job: selectors.candidates_matching_job(
                job=job, threshold=0, prefilter=False
            ),
            "hybrid": lambda job: semantic.job_ranked_candidates(job=job),
        }
        timings = {v: [] for v in variants}
        ranked = {v: {} for v in variants}
        jobs = list(Job.objects.filter(pk__in=[j["id"] for j in data["jobs"]]).order_by("pk"))
        for job in jobs:  # interleaved: each offer through every variant
            for variant, rank in variants.items():
                started = time.perf_counter()
                rows = rank(job)
                timings[variant].append(time.perf_counter() - started)
                ranked[variant][str(job.pk)] = [str(r.candidate_id) for r in rows if str(r.candidate_id) in profile_ids]
        size = f"{len(data['jobs'])} offers × {len(data['profiles'])} profiles, graded 0–3"
        results = []
        for variant in variants:
            per_job = ranked[variant]
            ndcg = statistics.mean(ndcg_at(per_job[j], data["relevance"][j], 10) for j in data["relevance"])
            recall = statistics.mean(recall_at(per_job[j], data["relevance"][j], 20) for j in data["relevance"])
            results.append(
                summarize(
                    "semantic eval",
                    variant,
                    size,
                    timings[variant],
                    ndcg_at_10=round(ndcg, 4),
                    recall_at_20=round(recall, 4),
                    weights=list(semantic.weights()),
                )
            )
        semantic.reset_status_cache()
    return results, texts


# --- 3. 100,000 profiles ----------------------------------------------------------------


def _compose_profiles(n: int, rng: random.Random) -> list[tuple[str, str, list[str]]]:
    """(embedded text, headline, normalised skills) of n profiles drawn like the eval set's."""
    from matching import embeddings
    from matching.eval.build import GENERIC_SKILLS, SOURCE
    from matching.skills import skills_normalize

    occupations = json.loads(SOURCE.read_text())["occupations"]
    profiles = []
    for _ in range(n):
        o = rng.choice(occupations)
        skills = [rng.choice(o["exact"] if rng.random() < 0.35 else o["other"]) for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.25:
            skills.append(rng.choice(GENERIC_SKILLS))
        phrases = rng.sample(o["phrases"], rng.randint(0 if rng.random() < 0.15 else 1, 3))
        headline = rng.choice(o["titles"])
        text = embeddings.candidate_text(headline=headline, job_title="", summary=" ".join(phrases), skills=skills)
        profiles.append((text, headline, skills_normalize(skills)))
    return profiles


def _count(cursor) -> int:
    cursor.execute("SELECT count(*) FROM candidate_embeddings WHERE source_hash LIKE %s", [f"{TAG}:%"])
    return cursor.fetchone()[0]


def ensure_population(n: int) -> dict[str, float]:
    """`n` tagged profiles with real embeddings (kept between runs); timings of what was done."""
    import psycopg
    from django.db import connection
    from pgvector.psycopg import register_vector

    from matching import embeddings

    done: dict[str, float] = {}
    with connection.cursor() as cursor:
        have = _count(cursor)
    if have >= n:
        return done
    rng = random.Random(have or 1)
    started = time.perf_counter()
    profiles = _compose_profiles(n - have, rng)
    texts = [p[0] for p in profiles]
    vectors = []
    for start in range(0, len(texts), 256):
        vectors.extend(embeddings.encode(texts[start : start + 256]))
    done["generate_embed_s"] = round(time.perf_counter() - started, 1)
    done["generate_texts_per_s"] = round(len(texts) / done["generate_embed_s"], 1)
    params = connection.get_connection_params()
    started = time.perf_counter()
    with psycopg.connect(**params) as raw:
        register_vector(raw)
        ids = [uuid.uuid4() for _ in texts]
        with raw.cursor() as cursor:
            with cursor.copy(
                "COPY users (id, password, is_superuser, full_name, avatar_url, role, is_active, is_staff, "
                "created_at, updated_at) FROM STDIN"
            ) as copy:
                for i in ids:
                    copy.write_row((i, "!", False, TAG, "", "candidate", True, False, "now", "now"))
            with cursor.copy(
                "COPY candidates (id, skills, experience_level, location, job_title, headline, summary, "
                "notifications_enabled, is_active, created_at, updated_at) FROM STDIN"
            ) as copy:
                for i, (_text, headline, skills) in zip(ids, profiles, strict=True):
                    level = rng.choice(["junior", "mid", "senior"])
                    copy.write_row((i, skills, level, "", "", headline, "", True, True, "now", "now"))
            with cursor.copy(
                "COPY candidate_embeddings (candidate_id, embedding, source_hash, source_updated_at, model, "
                "embedded_at) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["uuid", "vector", "varchar", "timestamptz", "varchar", "timestamptz"])
                stamp = datetime.now(UTC)
                for i, v in zip(ids, vectors, strict=True):
                    copy.write_row((i, v, f"{TAG}:{i.hex[:8]}", stamp, embeddings.MODEL_ID, stamp))
        raw.commit()
    done["store_s"] = round(time.perf_counter() - started, 1)
    return done


def bench_index(n: int, queries: dict[str, str]) -> list[Result]:
    """HNSW build, recall@20 vs exact, top-20 latency (index vs exact), on the bench table."""
    from django.db import connection

    size = f"{n:,} profiles × 512 d"
    results = []
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE candidate_embeddings")
        cursor.execute("DROP INDEX IF EXISTS idx_candidate_embeddings_hnsw")
        cursor.execute("SET maintenance_work_mem = '512MB'")
        started = time.perf_counter()
        cursor.execute(
            "CREATE INDEX idx_candidate_embeddings_hnsw ON candidate_embeddings "
            "USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
        )
        build = time.perf_counter() - started
        cursor.execute("RESET maintenance_work_mem")
        cursor.execute(
            "SELECT pg_relation_size('idx_candidate_embeddings_hnsw'), pg_relation_size('candidate_embeddings')"
        )
        index_bytes, table_bytes = cursor.fetchone()
    results.append(
        Result(
            "hnsw build",
            "m 16, ef_construction 64",
            size,
            1,
            round(build * 1000, 1),
            round(build * 1000, 1),
            {
                "build_s": round(build, 1),
                "index_mb": round(index_bytes / 2**20, 1),
                "table_mb": round(table_bytes / 2**20, 1),
            },
        )
    )
    top = "SELECT candidate_id FROM candidate_embeddings ORDER BY embedding <=> %s::vector LIMIT 20"
    vectors = list(queries.values())

    def run(sql_settings: list[str], vector: str) -> tuple[list[str], float]:
        with connection.cursor() as cursor:
            cursor.execute("BEGIN")
            for statement in sql_settings:
                cursor.execute(statement)
            started = time.perf_counter()
            cursor.execute(top, [vector])
            rows = [str(r[0]) for r in cursor.fetchall()]
            elapsed = time.perf_counter() - started
            cursor.execute("COMMIT")
        return rows, elapsed

    exact_settings = ["SET LOCAL enable_indexscan = off", "SET LOCAL max_parallel_workers_per_gather = 0"]
    exact = {}
    exact_times = []
    for vector in vectors:
        exact[vector], elapsed = run(exact_settings, vector)
        exact_times.append(elapsed)
    for ef in (40, 200):
        recalls, times = [], []
        for vector in vectors:
            rows, elapsed = run([f"SET LOCAL hnsw.ef_search = {ef}"], vector)
            recalls.append(len(set(rows) & set(exact[vector])) / 20)
            times.append(elapsed)
        results.append(
            summarize(
                "top 20 recall vs exact",
                f"hnsw ef_search {ef}",
                size,
                times,
                recall_at_20=round(statistics.mean(recalls), 4),
                min_recall=round(min(recalls), 3),
                queries=len(vectors),
                **_ms(times),
            )
        )
    # Latency: interleaved, SAMPLES queries drawn from the offers' vectors.
    rng = random.Random(7)
    index_t, exact_t = [], []
    for _ in range(SAMPLES):
        vector = rng.choice(vectors)
        index_t.append(run(["SET LOCAL hnsw.ef_search = 200"], vector)[1])
        if len(exact_t) < max(20, SAMPLES // 10):
            exact_t.append(run(exact_settings, vector)[1])
    results.append(summarize("top 20 latency", "hnsw index (ef_search 200)", size, index_t, **_ms(index_t)))
    results.append(summarize("top 20 latency", "exact scan (no index)", size, exact_t, **_ms(exact_t)))
    return results


def bench_api(n: int) -> list[Result]:
    """GET /api/jobs/{id}/matches/?rank=hybrid vs the rules list, through a real ASGI server (`make run`'s default)."""
    import http.client

    from accounts.models import Company, Role, User
    from accounts.testing import auth_header
    from emploiplus.testing import asgi_server
    from matching import semantic
    from matching.eval.build import SOURCE
    from matching.models import Job
    from matching.skills import skills_normalize

    occupation = json.loads(SOURCE.read_text())["occupations"][0]["job"]  # the front-end offer
    company, _ = Company.objects.get_or_create(name=f"{TAG} company")
    recruiter = User.objects.filter(email=f"recruiter@{TAG}.test").first() or User.objects.create_user(
        email=f"recruiter@{TAG}.test", role=Role.COMPANY, company=company
    )
    job, _ = Job.objects.get_or_create(
        company=company,
        title=occupation["title"],
        defaults={
            "description": occupation["description"],
            "required_skills": skills_normalize(occupation["required_skills"]),
            "experience_level": occupation["experience_level"],
            "status": "active",
        },
    )
    semantic.embed(kind=semantic.KIND_JOB, ids=[job.pk])
    headers = auth_header(recruiter)
    results = []
    with asgi_server(RATE_LIMIT_PER_MINUTE="1000000", EMPLOIPLUS_QUIET_SUBPROCESSES="1") as (address, _proc):
        host, port = address.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        times: dict[str, list[float]] = {"hybrid": [], "rules": []}
        counts = {}
        for i in range(API_REQUESTS + 3):
            for variant, query in (("hybrid", "?rank=hybrid&limit=20"), ("rules", "?limit=20")):
                started = time.perf_counter()
                conn.request("GET", f"/api/jobs/{job.pk}/matches/{query}", headers=headers)
                response = conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - started
                if response.status != 200:
                    raise RuntimeError(f"{variant}: {response.status} {body[:200]!r}")
                if i >= 3:  # warm-up
                    times[variant].append(elapsed)
                counts[variant] = len(json.loads(body)["results"])
        conn.close()
    size = f"{n:,} profiles, one offer, page of 20"
    for variant, label in (("hybrid", "?rank=hybrid (HNSW + §7)"), ("rules", "rules (§7 matcher)")):
        results.append(
            summarize(
                "hybrid api end-to-end", label, size, times[variant], results=counts[variant], **_ms(times[variant])
            )
        )
    return results


def _queries() -> dict[str, str]:
    """The 52 offers' vectors of the evaluation set, as pgvector text."""
    from matching import embeddings
    from matching.eval import run

    data = run.load_dataset()
    texts = [
        embeddings.job_text(title=j["title"], description=j["description"], required_skills=j["required_skills"])
        for j in data["jobs"]
    ]
    return {j["id"]: embeddings.to_pg(v) for j, v in zip(data["jobs"], embeddings.encode(texts), strict=True)}


def run_here() -> list[Result]:
    from matching import semantic

    semantic.reset_status_cache()
    if not semantic.enabled():
        raise RuntimeError(f"semantic matching is off on the bench database: {semantic.status().reason}")
    results, texts = bench_evaluation()
    results = bench_embedding(texts) + results
    generated = ensure_population(PROFILES)
    if generated:
        results.append(
            Result(
                "generate profiles",
                "compose + embed (batches of 256) + COPY",
                f"{PROFILES:,} profiles",
                PROFILES,
                0.0,
                0.0,
                generated,
            )
        )
    results += bench_index(PROFILES, _queries())
    results += bench_api(PROFILES)
    return results


def run() -> list[Result]:
    from matching import semantic

    semantic.reset_status_cache()
    if semantic.enabled() or os.environ.get(CHILD_ENV):
        return run_here()
    # No pgvector here: the same benchmark against an embedded PostgreSQL that has it.
    from emploiplus.devstack import embedded_postgres

    print(f"    (no pgvector on this server: {semantic.status().reason}; using an embedded PostgreSQL)", flush=True)
    out = Path(tempfile.mkstemp(prefix="bench-semantic-", suffix=".json")[1])
    with embedded_postgres(BASE_DIR / ".data" / "bench-pgvector") as uri:
        env = {**os.environ, "DATABASE_URL": uri, CHILD_ENV: "1"}
        subprocess.run([sys.executable, "-m", "bench.bench_semantic", str(out)], cwd=BASE_DIR, env=env, check=True)
    rows = json.loads(out.read_text())
    out.unlink()
    return [Result(**row) for row in rows]


def main(out: str) -> None:
    from bench.__main__ import _prepare_database

    _prepare_database()
    Path(out).write_text(json.dumps([r.as_dict() for r in run_here()]))


if __name__ == "__main__":
    main(sys.argv[1])
