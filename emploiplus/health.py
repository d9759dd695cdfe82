"""Liveness and readiness probes (no authentication, no rate limit).

`/healthz` says the process answers. `/readyz` checks what a request needs: the
database, Redis and that every migration is applied; on failure it answers 503 and
names what failed. It also lists missing optional secrets (features that will refuse
work until they are set) without failing readiness.
"""

from __future__ import annotations

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from emploiplus.redis import get_redis


def healthz(request):
    return JsonResponse({"status": "ok"})


def _check_database() -> str | None:
    try:
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database unreachable: {type(exc).__name__}"
    return None


def _check_migrations() -> str | None:
    try:
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    except Exception as exc:
        return f"migrations unknown: {type(exc).__name__}"
    if plan:
        return f"{len(plan)} migration(s) not applied"
    return None


def _check_redis() -> str | None:
    try:
        get_redis().ping()
    except Exception as exc:
        return f"redis unreachable: {type(exc).__name__}"
    return None


def missing_configuration() -> list[str]:
    missing = []
    if not (settings.SUPABASE_JWT_SECRET or settings.SUPABASE_JWKS_URL or settings.JWT_SECRET):
        missing.append("SUPABASE_JWT_SECRET or SUPABASE_JWKS_URL (user authentication)")
    if not settings.SUPABASE_WEBHOOK_SECRETS:
        missing.append("SUPABASE_WEBHOOK_SECRET (webhooks answer 503)")
    if not (settings.ONESIGNAL_APP_ID and settings.ONESIGNAL_API_KEY):
        missing.append("ONESIGNAL_APP_ID / ONESIGNAL_API_KEY (push and SMS are not sent)")
    return missing


def _semantic_status() -> dict:
    from matching import semantic

    try:
        return semantic.status().as_dict()
    except Exception as exc:
        return {"enabled": False, "reason": f"status unknown: {type(exc).__name__}"}


@require_GET
def readyz(request):
    checks = {"database": _check_database(), "redis": _check_redis()}
    checks["migrations"] = _check_migrations() if checks["database"] is None else "skipped: database unreachable"
    failed = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "ok" if not failed else "unavailable",
        "checks": {name: (problem or "ok") for name, problem in checks.items()},
        "missing_configuration": missing_configuration(),
        # Optional feature (issue 15): never fails readiness, says why it is off.
        "semantic_matching": _semantic_status() if checks["database"] is None else {"enabled": False},
    }
    return JsonResponse(body, status=503 if failed else 200)
