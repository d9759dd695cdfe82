"""`make bench` / `python -m bench [name …]`: run the benchmarks, print a table, write
bench/results/latest.json.

Each benchmark is a module `bench/bench_<name>.py` with `run() -> list[Result]`.
Benchmarks run against a dedicated database `<DATABASE_URL name>_bench` (created and
migrated here) so demo data never lands in the development database.
Sizes can be scaled with BENCH_SCALE (1.0 = the sizes the issues ask for).
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _bench_database_url() -> str:
    import environ

    url = os.environ["DATABASE_URL"]
    config = environ.Env.db_url_config(url)
    bench_name = f"{config['NAME']}_bench"
    head, _, tail = url.partition("?")
    base = head.rsplit("/", 1)[0]
    return f"{base}/{bench_name}" + (f"?{tail}" if tail else "")


def _prepare_database() -> None:
    import psycopg

    os.environ["DATABASE_URL"] = _bench_database_url()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings_test")
    import django
    from django.db import connection

    django.setup()
    name = connection.settings_dict["NAME"]
    params = connection.get_connection_params()
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def main(argv: list[str]) -> int:
    from bench.common import machine

    modules = pkgutil.iter_modules([str(Path(__file__).parent)])
    available = sorted(m.name[len("bench_") :] for m in modules if m.name.startswith("bench_"))
    selected = argv or available
    unknown = set(selected) - set(available)
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; available: {', '.join(available)}")
        return 2
    _prepare_database()
    rows = []
    for name in selected:
        print(f"--- {name}", flush=True)
        started = time.time()
        module = importlib.import_module(f"bench.bench_{name}")
        for result in module.run():
            rows.append(result.as_dict())
            print(
                f"{result.benchmark:<34} {result.variant:<28} {result.size:<28} n={result.n:<6} "
                f"median={result.median_ms:>9.3f} ms  p99={result.p99_ms:>9.3f} ms  {result.extra or ''}",
                flush=True,
            )
        print(f"    ({time.time() - started:.1f} s)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "latest.json"
    previous = json.loads(out.read_text()) if out.exists() else {"results": []}
    kept = [r for r in previous.get("results", []) if r["benchmark"] not in {row["benchmark"] for row in rows}]
    out.write_text(json.dumps({"machine": machine(), "results": kept + rows}, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
