"""Start-up checks: configuration, database and Redis, each failure as one clear line.

Run by the dev stack before migrating (`python -m emploiplus.devstack run`) and usable
on its own: `python -m emploiplus.preflight`.
"""

from __future__ import annotations

import os
import sys


def problems() -> list[str]:
    import psycopg
    from django.db import connection

    from emploiplus.redis import get_redis

    found = []
    try:
        # A direct connection, not the pool: one attempt, one clear answer.
        params = {k: v for k, v in connection.get_connection_params().items() if k not in ("pool", "cursor_factory")}
        psycopg.connect(**params).close()
    except Exception as exc:
        found.append(f"cannot connect to PostgreSQL ({type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]})")
    try:
        get_redis().ping()
    except Exception as exc:
        found.append(f"cannot reach Redis ({type(exc).__name__}: {str(exc).strip()[:200]})")
    return found


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "emploiplus.settings")
    from django.core.exceptions import ImproperlyConfigured

    try:
        import django

        django.setup()
    except ImproperlyConfigured as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        sys.exit(2)
    found = problems()
    for problem in found:
        sys.stderr.write(f"configuration error: {problem}\n")
    if found:
        sys.exit(2)


if __name__ == "__main__":
    main()
