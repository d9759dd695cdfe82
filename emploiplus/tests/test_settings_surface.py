"""One settings surface: every variable of the README's Configuration table is read in
emploiplus/settings.py and takes effect, and every variable settings.py reads is in the table.

The table is parsed (backticked names in each row's first cell), so the docs cannot drift:
a new variable needs a README row and an entry in CHECKS below (value to set, the setting it
must change, the value expected).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from emploiplus.testing import BASE_DIR

# Read by settings.py but not for operators (set by emploiplus/settings_test.py).
INTERNAL = {"EMPLOIPLUS_TESTING"}

BASE_ENV = {
    "DATABASE_URL": "postgres://u:p@db.example:5433/emploi",
    "REDIS_URL": "redis://r.example:6390/3",
    "SECRET_KEY": "k" * 50,
    "DEBUG": "0",
    "ALLOWED_HOSTS": "api.example",
}

# name → (group, extra environment, expression on `settings`, expected value). Variables of
# one group are set together in one process; groups exist where variables exclude each other.
CHECKS: dict[str, tuple[str, dict[str, str], str, object]] = {
    "DATABASE_URL": (
        "main",
        {},
        "settings.DATABASES['default']['NAME'], settings.DATABASES['default']['PORT']",
        ["emploi", 5433],
    ),
    "REDIS_URL": ("main", {}, "settings.REDIS_URL", "redis://r.example:6390/3"),
    "REDIS_HOST": (
        "redis-parts",
        {"REDIS_HOST": "r2.example", "REDIS_PORT": "6391", "REDIS_PASSWORD": "s3cr/t"},
        "settings.REDIS_URL",
        "redis://:s3cr%2Ft@r2.example:6391/0",
    ),
    "REDIS_PORT": ("redis-parts", {}, "settings.CACHES['default']['LOCATION']", "redis://:s3cr%2Ft@r2.example:6391/0"),
    "REDIS_PASSWORD": (
        "redis-parts",
        {},
        "settings.RQ_QUEUES['notifications']['URL']",
        "redis://:s3cr%2Ft@r2.example:6391/0",
    ),
    "SECRET_KEY": ("main", {}, "settings.SECRET_KEY", "k" * 50),
    "DEBUG": ("debug", {"DEBUG": "1"}, "settings.DEBUG", True),
    "ALLOWED_HOSTS": ("main", {}, "settings.ALLOWED_HOSTS", ["api.example"]),
    "CORS_ALLOWED_ORIGINS": (
        "main",
        {"CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example"},
        "settings.CORS_ALLOWED_ORIGINS",
        ["https://a.example", "https://b.example"],
    ),
    "PORT": ("main", {"PORT": "8123"}, "settings.PORT", 8123),
    "SUPABASE_URL": (
        "main",
        {"SUPABASE_URL": "https://p.supabase.co/"},
        "settings.SUPABASE_URL",
        "https://p.supabase.co",
    ),
    "SUPABASE_JWT_SECRET": (
        "main",
        {"SUPABASE_JWT_SECRET": "jwt-secret"},
        "settings.SUPABASE_JWT_SECRET",
        "jwt-secret",
    ),
    "SUPABASE_JWKS_URL": (
        "main",
        {"SUPABASE_JWKS_URL": "https://keys.example/jwks"},
        "settings.SUPABASE_JWKS_URL",
        "https://keys.example/jwks",
    ),
    "SUPABASE_WEBHOOK_SECRET": (
        "main",
        {"SUPABASE_WEBHOOK_SECRET": "new,old"},
        "settings.SUPABASE_WEBHOOK_SECRETS",
        ["new", "old"],
    ),
    "SUPABASE_SERVICE_ROLE_KEY": (
        "main",
        {"SUPABASE_SERVICE_ROLE_KEY": "srk"},
        "settings.SUPABASE_SERVICE_ROLE_KEY",
        "srk",
    ),
    "ONESIGNAL_APP_ID": ("main", {"ONESIGNAL_APP_ID": "app-1"}, "settings.ONESIGNAL_APP_ID", "app-1"),
    "ONE_SIGNAL_APP_ID": ("guide-names", {"ONE_SIGNAL_APP_ID": "app-2"}, "settings.ONESIGNAL_APP_ID", "app-2"),
    "ONESIGNAL_API_KEY": ("main", {"ONESIGNAL_API_KEY": "key-1"}, "settings.ONESIGNAL_API_KEY", "key-1"),
    "ONE_SIGNAL_API_KEY": ("guide-names", {"ONE_SIGNAL_API_KEY": "key-2"}, "settings.ONESIGNAL_API_KEY", "key-2"),
    "ONESIGNAL_API_URL": (
        "main",
        {"ONESIGNAL_API_URL": "https://os.example/"},
        "settings.ONESIGNAL_API_URL",
        "https://os.example",
    ),
    "JWT_SECRET": ("main", {"JWT_SECRET": "legacy"}, "settings.JWT_SECRET", "legacy"),
    "EMAIL_URL": (
        "main",
        {"EMAIL_URL": "smtp+tls://u:p@mail.example:587"},
        "settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS",
        ["mail.example", 587, True],
    ),
    "EMAIL_BACKEND": (
        "email-parts",
        {"EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend"},
        "settings.EMAIL_BACKEND",
        "django.core.mail.backends.locmem.EmailBackend",
    ),
    "EMAIL_HOST": ("email-parts", {"EMAIL_HOST": "smtp.example"}, "settings.EMAIL_HOST", "smtp.example"),
    "EMAIL_PORT": ("email-parts", {"EMAIL_PORT": "2525"}, "settings.EMAIL_PORT", 2525),
    "EMAIL_HOST_USER": ("email-parts", {"EMAIL_HOST_USER": "mailer"}, "settings.EMAIL_HOST_USER", "mailer"),
    "EMAIL_HOST_PASSWORD": ("email-parts", {"EMAIL_HOST_PASSWORD": "pw"}, "settings.EMAIL_HOST_PASSWORD", "pw"),
    "EMAIL_USE_TLS": ("email-parts", {"EMAIL_USE_TLS": "1"}, "settings.EMAIL_USE_TLS", True),
    "EMAIL_USE_SSL": ("email-parts-ssl", {"EMAIL_USE_SSL": "1"}, "settings.EMAIL_USE_SSL", True),
    "EMAIL_TIMEOUT": ("main", {"EMAIL_TIMEOUT": "3"}, "settings.EMAIL_TIMEOUT", 3),
    "DEFAULT_FROM_EMAIL": (
        "main",
        {"DEFAULT_FROM_EMAIL": "Jobs <jobs@example.org>"},
        "settings.DEFAULT_FROM_EMAIL",
        "Jobs <jobs@example.org>",
    ),
    "MATCH_MIN_SCORE": ("main", {"MATCH_MIN_SCORE": "75"}, "settings.MATCH_MIN_SCORE", 75.0),
    "SEMANTIC_MATCHING": ("main", {"SEMANTIC_MATCHING": "OFF"}, "settings.SEMANTIC_MATCHING", "off"),
    "MATCH_HYBRID_RULES_WEIGHT": (
        "main",
        {"MATCH_HYBRID_RULES_WEIGHT": "0.7"},
        "settings.MATCH_HYBRID_RULES_WEIGHT",
        0.7,
    ),
    "MATCH_HYBRID_SEMANTIC_WEIGHT": (
        "main",
        {"MATCH_HYBRID_SEMANTIC_WEIGHT": "0.3"},
        "settings.MATCH_HYBRID_SEMANTIC_WEIGHT",
        0.3,
    ),
    "MATCH_HYBRID_NOTIFY": ("main", {"MATCH_HYBRID_NOTIFY": "1"}, "settings.MATCH_HYBRID_NOTIFY", True),
    "MATCH_HYBRID_MIN_SCORE": ("main", {"MATCH_HYBRID_MIN_SCORE": "70"}, "settings.MATCH_HYBRID_MIN_SCORE", 70.0),
    "SEMANTIC_MIN_SCORE": ("main", {"SEMANTIC_MIN_SCORE": "40"}, "settings.SEMANTIC_MIN_SCORE", 40.0),
    "SEMANTIC_NEIGHBOURS": ("main", {"SEMANTIC_NEIGHBOURS": "300"}, "settings.SEMANTIC_NEIGHBOURS", 300),
    "SEMANTIC_EF_SEARCH": ("main", {"SEMANTIC_EF_SEARCH": "120"}, "settings.SEMANTIC_EF_SEARCH", 120),
    "SUPABASE_JWT_AUDIENCE": ("main", {"SUPABASE_JWT_AUDIENCE": "mobile"}, "settings.SUPABASE_JWT_AUDIENCE", "mobile"),
    "SUPABASE_ALLOW_ANONYMOUS": ("main", {"SUPABASE_ALLOW_ANONYMOUS": "1"}, "settings.SUPABASE_ALLOW_ANONYMOUS", True),
    "JWT_LEEWAY_SECONDS": ("main", {"JWT_LEEWAY_SECONDS": "7"}, "settings.JWT_LEEWAY_SECONDS", 7),
    "JWKS_REFRESH_COOLDOWN_SECONDS": (
        "main",
        {"JWKS_REFRESH_COOLDOWN_SECONDS": "9"},
        "settings.JWKS_REFRESH_COOLDOWN_SECONDS",
        9,
    ),
    "AUTH_USER_CACHE_SECONDS": ("main", {"AUTH_USER_CACHE_SECONDS": "0.5"}, "settings.AUTH_USER_CACHE_SECONDS", 0.5),
    "RATE_LIMIT_PER_MINUTE": ("main", {"RATE_LIMIT_PER_MINUTE": "33"}, "settings.RATE_LIMIT_PER_MINUTE", 33),
    "TRUSTED_PROXY_COUNT": ("main", {"TRUSTED_PROXY_COUNT": "2"}, "settings.TRUSTED_PROXY_COUNT", 2),
    "WS_EVENTS_PER_10_SECONDS": ("main", {"WS_EVENTS_PER_10_SECONDS": "11"}, "settings.WS_EVENTS_PER_10_SECONDS", 11),
    "REDIS_KEY_PREFIX": (
        "main",
        {"REDIS_KEY_PREFIX": "ep2"},
        "settings.REDIS_KEY_PREFIX, settings.CHANNEL_LAYERS['default']['CONFIG']['prefix']",
        ["ep2", "ep2:asgi"],
    ),
    "CHANNEL_LAYER_CAPACITY": (
        "main",
        {"CHANNEL_LAYER_CAPACITY": "500"},
        "settings.CHANNEL_LAYERS['default']['CONFIG']['capacity']",
        500,
    ),
    "SOCKETIO_PING_INTERVAL": ("main", {"SOCKETIO_PING_INTERVAL": "5"}, "settings.SOCKETIO_PING_INTERVAL", 5.0),
    "SOCKETIO_PING_TIMEOUT": ("main", {"SOCKETIO_PING_TIMEOUT": "4"}, "settings.SOCKETIO_PING_TIMEOUT", 4.0),
    "SOCKETIO_MAX_PAYLOAD": ("main", {"SOCKETIO_MAX_PAYLOAD": "5000"}, "settings.SOCKETIO_MAX_PAYLOAD", 5000),
    "PRESENCE_TTL_SECONDS": ("main", {"PRESENCE_TTL_SECONDS": "12"}, "settings.PRESENCE_TTL_SECONDS", 12.0),
    "PRESENCE_HEARTBEAT_SECONDS": (
        "main",
        {"PRESENCE_HEARTBEAT_SECONDS": "3"},
        "settings.PRESENCE_HEARTBEAT_SECONDS",
        3.0,
    ),
    "DB_POOL_MAX_SIZE": (
        "main",
        {"DB_POOL_MAX_SIZE": "40"},
        "settings.DATABASES['default']['OPTIONS']['pool']['max_size']",
        40,
    ),
    "DB_STATEMENT_TIMEOUT_SECONDS": (
        "main",
        {"DB_STATEMENT_TIMEOUT_SECONDS": "2.5"},
        "settings.DATABASES['default']['OPTIONS']['options']",
        "-c statement_timeout=2500",
    ),
    "DB_POOL_TIMEOUT_SECONDS": (
        "main",
        {"DB_POOL_TIMEOUT_SECONDS": "2.5"},
        "settings.DATABASES['default']['OPTIONS']['pool']['timeout']",
        2.5,
    ),
    "DB_CONN_MAX_AGE": (
        "no-pool",
        {"DB_POOL_MAX_SIZE": "0", "DB_CONN_MAX_AGE": "60"},
        "settings.DATABASES['default']['CONN_MAX_AGE']",
        60,
    ),
    "HTTP_THREADS": ("main", {"HTTP_THREADS": "8"}, "settings.HTTP_THREADS", 8),
    "WS_DB_THREADS": ("main", {"WS_DB_THREADS": "6"}, "settings.WS_DB_THREADS", 6),
    "WS_DB_LOOP_CONNECTIONS": ("main", {"WS_DB_LOOP_CONNECTIONS": "2"}, "settings.WS_DB_LOOP_CONNECTIONS", 2),
    "WEB_CONCURRENCY": ("main", {"WEB_CONCURRENCY": "3"}, "settings.WEB_CONCURRENCY", 3),
    "ASGI_SERVER": ("main", {"ASGI_SERVER": "daphne"}, "settings.ASGI_SERVER", "daphne"),
    "CHANNEL_LAYER_RECEIVE": (
        "main",
        {"CHANNEL_LAYER_RECEIVE": "channels_redis"},
        "settings.CHANNEL_LAYERS['default']['BACKEND']",
        "channels_redis.core.RedisChannelLayer",
    ),
    "QUEUE_CONCURRENCY_NOTIFICATIONS": (
        "main",
        {"QUEUE_CONCURRENCY_NOTIFICATIONS": "7"},
        "settings.QUEUE_CONCURRENCY['notifications']",
        7,
    ),
    "QUEUE_CONCURRENCY_EMAILS": ("main", {"QUEUE_CONCURRENCY_EMAILS": "4"}, "settings.QUEUE_CONCURRENCY['emails']", 4),
    "QUEUE_CONCURRENCY_SMS": ("main", {"QUEUE_CONCURRENCY_SMS": "1"}, "settings.QUEUE_CONCURRENCY['sms']", 1),
    "MATCHING_SWEEP_AFTER_SECONDS": (
        "main",
        {"MATCHING_SWEEP_AFTER_SECONDS": "30"},
        "settings.MATCHING_SWEEP_AFTER_SECONDS",
        30,
    ),
    "MATCHING_STUCK_AFTER_SECONDS": (
        "main",
        {"MATCHING_STUCK_AFTER_SECONDS": "300"},
        "settings.MATCHING_STUCK_AFTER_SECONDS",
        300,
    ),
    "WEBHOOK_SWEEP_AFTER_SECONDS": (
        "main",
        {"WEBHOOK_SWEEP_AFTER_SECONDS": "20"},
        "settings.WEBHOOK_SWEEP_AFTER_SECONDS",
        20,
    ),
    "WEBHOOK_STUCK_AFTER_SECONDS": (
        "main",
        {"WEBHOOK_STUCK_AFTER_SECONDS": "200"},
        "settings.WEBHOOK_STUCK_AFTER_SECONDS",
        200,
    ),
    "NOTIFICATIONS_PUSH_BATCH_SIZE": (
        "main",
        {"NOTIFICATIONS_PUSH_BATCH_SIZE": "500"},
        "settings.NOTIFICATIONS_PUSH_BATCH_SIZE",
        500,
    ),
    "NOTIFICATIONS_SMS_BATCH_SIZE": (
        "main",
        {"NOTIFICATIONS_SMS_BATCH_SIZE": "400"},
        "settings.NOTIFICATIONS_SMS_BATCH_SIZE",
        400,
    ),
    "NOTIFICATIONS_EMAIL_BATCH_SIZE": (
        "main",
        {"NOTIFICATIONS_EMAIL_BATCH_SIZE": "50"},
        "settings.NOTIFICATIONS_EMAIL_BATCH_SIZE",
        50,
    ),
    "NOTIFICATIONS_INLINE_MAX": ("main", {"NOTIFICATIONS_INLINE_MAX": "5"}, "settings.NOTIFICATIONS_INLINE_MAX", 5),
    "NOTIFICATIONS_RETRY_BASE_SECONDS": (
        "main",
        {"NOTIFICATIONS_RETRY_BASE_SECONDS": "1"},
        "settings.NOTIFICATIONS_RETRY_BASE_SECONDS",
        1.0,
    ),
    "NOTIFICATIONS_RETRY_MAX_SECONDS": (
        "main",
        {"NOTIFICATIONS_RETRY_MAX_SECONDS": "60"},
        "settings.NOTIFICATIONS_RETRY_MAX_SECONDS",
        60.0,
    ),
    "NOTIFICATIONS_MAX_ATTEMPTS": (
        "main",
        {"NOTIFICATIONS_MAX_ATTEMPTS": "2"},
        "settings.NOTIFICATIONS_MAX_ATTEMPTS",
        2,
    ),
    "NOTIFICATIONS_STALE_SECONDS": (
        "main",
        {"NOTIFICATIONS_STALE_SECONDS": "90"},
        "settings.NOTIFICATIONS_STALE_SECONDS",
        90,
    ),
    "ONESIGNAL_SMS_FROM": (
        "main",
        {"ONESIGNAL_SMS_FROM": "+33600000000"},
        "settings.ONESIGNAL_SMS_FROM",
        "+33600000000",
    ),
    "ONESIGNAL_TIMEOUT_SECONDS": (
        "main",
        {"ONESIGNAL_TIMEOUT_SECONDS": "2.5"},
        "settings.ONESIGNAL_TIMEOUT_SECONDS",
        2.5,
    ),
    "SESSION_COOKIE_SECURE": ("main", {"SESSION_COOKIE_SECURE": "0"}, "settings.SESSION_COOKIE_SECURE", False),
    "CSRF_COOKIE_SECURE": ("main", {"CSRF_COOKIE_SECURE": "0"}, "settings.CSRF_COOKIE_SECURE", False),
    "LOG_LEVEL": ("main", {"LOG_LEVEL": "WARNING"}, "settings.LOGGING['root']['level']", "WARNING"),
    "EMPLOIPLUS_DATA_DIR": (
        "main",
        {"EMPLOIPLUS_DATA_DIR": "/srv/emploiplus-data"},
        "str(settings.DATA_DIR)",
        "/srv/emploiplus-data",
    ),
    "WEB_SHUTDOWN_SECONDS": ("main", {"WEB_SHUTDOWN_SECONDS": "12.5"}, "settings.WEB_SHUTDOWN_SECONDS", 12.5),
    "RENDER_EXTERNAL_HOSTNAME": (
        "render",
        {"RENDER_EXTERNAL_HOSTNAME": "emploiplus-web.onrender.com", "RENDER_GIT_COMMIT": "0123abc"},
        "settings.ALLOWED_HOSTS",
        ["api.example", "emploiplus-web.onrender.com"],
    ),
    "RENDER_GIT_COMMIT": ("render", {}, "settings.SENTRY_RELEASE", "0123abc"),
    "LOG_FORMAT": ("main", {"LOG_FORMAT": "json"}, "settings.LOGGING['handlers']['console']['formatter']", "json"),
    "SENTRY_DSN": ("main", {"SENTRY_DSN": "http://k@127.0.0.1:9/1"}, "settings.SENTRY_DSN", "http://k@127.0.0.1:9/1"),
    "SENTRY_ENVIRONMENT": ("main", {"SENTRY_ENVIRONMENT": "staging"}, "settings.SENTRY_ENVIRONMENT", "staging"),
    "SENTRY_RELEASE": ("main", {"SENTRY_RELEASE": "v1.2"}, "settings.SENTRY_RELEASE", "v1.2"),
    "SENTRY_SEND_PII": ("main", {"SENTRY_SEND_PII": "1"}, "settings.SENTRY_SEND_PII", True),
    "SENTRY_TRACES_SAMPLE_RATE": (
        "main",
        {"SENTRY_TRACES_SAMPLE_RATE": "0.25"},
        "settings.SENTRY_TRACES_SAMPLE_RATE",
        0.25,
    ),
    "METRICS_TOKEN": ("main", {"METRICS_TOKEN": "m-token"}, "settings.METRICS_TOKEN", "m-token"),
    "EMPLOIPLUS_PROCESS_TYPE": ("main", {"EMPLOIPLUS_PROCESS_TYPE": "cron"}, "settings.PROCESS_TYPE", "cron"),
    "TEST_DATABASE_NAME": (
        "main",
        {"TEST_DATABASE_NAME": "ci_db"},
        "settings.DATABASES['default']['TEST']['NAME']",
        "ci_db",
    ),
}
# Groups that must not see a variable of "main" that would mask theirs.
WITHOUT = {"redis-parts": {"REDIS_URL"}, "email-parts": {"EMAIL_URL"}, "email-parts-ssl": {"EMAIL_URL"}}


def documented() -> set[str]:
    readme = (BASE_DIR / "README.md").read_text()
    section = readme.split("## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]+)`", line.split("|")[1]))
    return names


def read_by_settings() -> set[str]:
    source = (BASE_DIR / "emploiplus" / "settings.py").read_text()
    names = set(re.findall(r"env\.(?:str|int|bool|float|path|list)\(\s*\"([A-Z][A-Z0-9_]+)\"", source))
    names |= set(re.findall(r"_csv\(\"([A-Z][A-Z0-9_]+)\"", source))
    for args in re.findall(r"_first\(([^)]*)\)", source):
        names |= set(re.findall(r"\"([A-Z][A-Z0-9_]+)\"", args))
    return names


def settings_in_a_process(env: dict[str, str], expressions: list[str]) -> dict[str, object]:
    code = (
        "import json, sys\n"
        "from django.conf import settings\n"
        "out = {}\n"
        "for e in json.loads(sys.argv[1]):\n"
        "    v = eval(e, {'settings': settings})\n"
        "    out[e] = list(v) if isinstance(v, tuple) else v\n"
        "print(json.dumps(out, default=str))\n"
    )
    environment = {"PATH": "/usr/bin:/bin", "DJANGO_SETTINGS_MODULE": "emploiplus.settings", **env}
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps(expressions)],
        cwd=BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_every_variable_read_by_settings_is_documented():
    undocumented = read_by_settings() - documented() - INTERNAL
    assert not undocumented, f"read in settings.py but not in README's Configuration table: {sorted(undocumented)}"


def test_every_documented_variable_has_a_check_here():
    unchecked = documented() - set(CHECKS)
    assert not unchecked, f"documented without an entry in CHECKS of this file: {sorted(unchecked)}"
    stale = set(CHECKS) - documented()
    assert not stale, f"CHECKS entries for variables the README no longer documents: {sorted(stale)}"


@pytest.mark.parametrize("group", sorted({check[0] for check in CHECKS.values()}))
def test_every_documented_variable_takes_effect(group):
    entries = {name: check for name, check in CHECKS.items() if check[0] == group}
    env = dict(BASE_ENV)
    if group != "main":
        # The group's own variables only, over a minimal valid configuration.
        env = {k: v for k, v in BASE_ENV.items() if k not in WITHOUT.get(group, set())}
    for _group, extra, _expr, _expected in entries.values():
        env.update(extra)
    got = settings_in_a_process(env, [expr for _g, _e, expr, _x in entries.values()])
    for name, (_group, _extra, expr, expected) in entries.items():
        assert got[expr] == expected, f"{name}: {expr} is {got[expr]!r}, expected {expected!r}"
