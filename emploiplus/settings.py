"""Emploi+ settings: everything comes from the environment (CONTRACT §2).

A `.env` file next to manage.py is read if present. The guide's older variable names
(`REDIS_HOST`/`REDIS_PORT`/`REDIS_PASSWORD`, `ONE_SIGNAL_APP_ID`/`ONE_SIGNAL_API_KEY`)
still work as fallbacks. Configuration mistakes raise `ImproperlyConfigured` with one
clear sentence; `manage.py` and the dev stack print it as a single line.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from urllib.parse import quote

import environ
from django.core.exceptions import ImproperlyConfigured

from emploiplus import devenv

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").exists():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# Development files (the embedded servers' data, the development JWT secret): `.data/`.
DATA_DIR = Path(env.str("EMPLOIPLUS_DATA_DIR", default=str(BASE_DIR / ".data")))
# A command typed next to a running `make run` talks to the stack it started (embedded
# PostgreSQL/Redis included): the dev stack writes their URLs there while it runs.
if not env.str("DATABASE_URL", default=""):
    _stack_env = devenv.running_stack_env(DATA_DIR)
    if _stack_env is not None:
        environ.Env.read_env(_stack_env, overwrite=False)


def _first(*names: str, default: str = "") -> str:
    """The value of the first variable in `names` that is set and non-empty."""
    for name in names:
        value = env.str(name, default="")
        if value:
            return value
    return default


def _csv(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env.str(name, default=default).split(",") if item.strip()]


DEBUG = env.bool("DEBUG", default=False)
TESTING = env.bool("EMPLOIPLUS_TESTING", default=False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if DEBUG or TESTING:
        SECRET_KEY = "dev-only-insecure-secret-key-do-not-use-in-production"  # noqa: S105
    else:
        raise ImproperlyConfigured("SECRET_KEY is not set (required when DEBUG is off).")

ALLOWED_HOSTS = _csv("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if (DEBUG or TESTING) else "")
# Render gives every web service its public host name: allowed without listing it.
RENDER_EXTERNAL_HOSTNAME = env.str("RENDER_EXTERNAL_HOSTNAME", default="")
if RENDER_EXTERNAL_HOSTNAME and RENDER_EXTERNAL_HOSTNAME not in ALLOWED_HOSTS:
    ALLOWED_HOSTS.append(RENDER_EXTERNAL_HOSTNAME)
CORS_ALLOWED_ORIGINS = _csv("CORS_ALLOWED_ORIGINS")
PORT = env.int("PORT", default=8000)
# ASGI server processes of the `web` process type (`make run` too), on one socket.
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=1)
if WEB_CONCURRENCY < 1:
    raise ImproperlyConfigured("WEB_CONCURRENCY must be ≥ 1.")
# The ASGI server of `make run` and deployments (emploiplus.servers reads the same variable
# before Django is set up): uvicorn, or daphne.
ASGI_SERVER = env.str("ASGI_SERVER", default="uvicorn")
if ASGI_SERVER not in ("uvicorn", "daphne"):
    raise ImproperlyConfigured(f"ASGI_SERVER must be uvicorn or daphne, got {ASGI_SERVER!r}.")
# Seconds a stopping `web` gives its servers to finish before killing them (keep it under
# the platform's grace period: Render's maxShutdownDelaySeconds, 30 by default).
WEB_SHUTDOWN_SECONDS = env.float("WEB_SHUTDOWN_SECONDS", default=25.0)

# --- Database -------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default="")
if not DATABASE_URL:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set: run through `make run` / `make test` (embedded PostgreSQL) "
        "or export DATABASE_URL=postgres://user:pass@host:5432/dbname."
    )
if not DATABASE_URL.startswith(("postgres://", "postgresql://")):
    raise ImproperlyConfigured(
        f"DATABASE_URL must point to PostgreSQL (postgres://…), got {DATABASE_URL.split(':', 1)[0][:20]!r}."
    )
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _db = environ.Env.db_url_config(DATABASE_URL)
except Exception as exc:  # django-environ raises several types for bad URLs
    raise ImproperlyConfigured(f"DATABASE_URL is malformed ({exc}).") from exc
if not _db.get("NAME"):
    raise ImproperlyConfigured("DATABASE_URL is malformed (no database name).")
_db.setdefault("OPTIONS", {})
_db["OPTIONS"].setdefault("connect_timeout", 5)
# A connection the network stopped carrying (a partition, a host cut off, a failover that drops
# packets instead of closing) fails instead of waiting: libpq's TCP keepalives find a dead idle
# one, `tcp_user_timeout` ends one whose sent data stays unacknowledged for 10 s. The request
# then answers 503 `unavailable` (emploiplus/exceptions.py) instead of hanging for as long as the
# partition lasts — the kernel alone gives up after ~15 min (emploiplus/tests/test_several_hosts.py,
# README "Faults"). A slow but reachable server acknowledges at once: long statements are not
# affected. Parameters in DATABASE_URL (`?tcp_user_timeout=…`) win; Unix sockets ignore them.
for _name, _value in (
    ("keepalives", 1),
    ("keepalives_idle", 10),
    ("keepalives_interval", 5),
    ("keepalives_count", 3),
    ("tcp_user_timeout", 10_000),
):
    _db["OPTIONS"].setdefault(_name, _value)
# Under ASGI every request's sync code runs in its own thread, so per-thread persistent
# connections (CONN_MAX_AGE) would open one connection per request and leak them.
# A psycopg pool per process instead: connections are borrowed per request and returned.
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=22)
# Threads of a server process that hold a connection at once: Django's HTTP stack
# (emploiplus.handlers) and the WebSocket consumers' database work (emploiplus.effects.run_sync);
# two spares (the thread-sensitive executor, a management task) come on top.
HTTP_THREADS = env.int("HTTP_THREADS", default=16)
WS_DB_THREADS = env.int("WS_DB_THREADS", default=4)
# The event loop's own connections for the message hot path (emploiplus/postgres/aio.py),
# on top of the pool above.
WS_DB_LOOP_CONNECTIONS = env.int("WS_DB_LOOP_CONNECTIONS", default=4)
if HTTP_THREADS < 1 or WS_DB_THREADS < 1 or WS_DB_LOOP_CONNECTIONS < 1:
    raise ImproperlyConfigured("HTTP_THREADS, WS_DB_THREADS and WS_DB_LOOP_CONNECTIONS must be ≥ 1.")
if DB_POOL_MAX_SIZE > 0 and HTTP_THREADS + WS_DB_THREADS + 2 > DB_POOL_MAX_SIZE:
    raise ImproperlyConfigured(
        f"HTTP_THREADS ({HTTP_THREADS}) + WS_DB_THREADS ({WS_DB_THREADS}) + 2 exceeds "
        f"DB_POOL_MAX_SIZE ({DB_POOL_MAX_SIZE}): requests would wait for a database connection."
    )
# Seconds a thread waits for a pooled connection before the request is answered 503
# (the database unreachable, or the pool exhausted).
DB_POOL_TIMEOUT_SECONDS = env.float("DB_POOL_TIMEOUT_SECONDS", default=10.0)
# Longest a statement may run (a lock held, a runaway query) before PostgreSQL cancels it and
# the request answers 503 like an outage (emploiplus/exceptions.py); 0 = no limit. render.yaml
# sets it for the web service only: migrations, workers and backfills keep no limit.
DB_STATEMENT_TIMEOUT_SECONDS = env.float("DB_STATEMENT_TIMEOUT_SECONDS", default=0.0)
if DB_STATEMENT_TIMEOUT_SECONDS < 0:
    raise ImproperlyConfigured("DB_STATEMENT_TIMEOUT_SECONDS must be ≥ 0.")
if DB_STATEMENT_TIMEOUT_SECONDS > 0:
    _db["OPTIONS"]["options"] = f"-c statement_timeout={int(DB_STATEMENT_TIMEOUT_SECONDS * 1000)}"
# Django's backend with a pool check that survives a restarted server (emploiplus/postgres/base.py).
_db["ENGINE"] = "emploiplus.postgres"
if DB_POOL_MAX_SIZE > 0:
    _db["CONN_MAX_AGE"] = 0
    # Each connection is checked as it leaves the pool; a dead one (the server restarted
    # since it was opened) is replaced instead of failing a request.
    _db["OPTIONS"]["pool"] = {"min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": DB_POOL_TIMEOUT_SECONDS}
else:
    _db["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
    _db["CONN_HEALTH_CHECKS"] = True  # persistent connections: checked before a request's first query
_db["TEST"] = {"NAME": env.str("TEST_DATABASE_NAME", default="") or None}
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis ----------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL:
    _redis_host = env.str("REDIS_HOST", default="")
    if _redis_host:
        _redis_password = env.str("REDIS_PASSWORD", default="")
        _auth = f":{quote(_redis_password, safe='')}@" if _redis_password else ""
        REDIS_URL = f"redis://{_auth}{_redis_host}:{env.int('REDIS_PORT', default=6379)}/0"
if not REDIS_URL:
    raise ImproperlyConfigured(
        "REDIS_URL is not set: run through `make run` / `make test` (embedded Redis) "
        "or export REDIS_URL=redis://host:6379/0 (REDIS_HOST/REDIS_PORT/REDIS_PASSWORD also work)."
    )
if not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ImproperlyConfigured(
        f"REDIS_URL is malformed: expected redis://, rediss:// or unix://, got {REDIS_URL[:12]!r}."
    )

# Prefix of every key this deployment writes (channel layer, rate limits, presence),
# so two test runs or two deployments can share one Redis.
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="emploiplus")

# channels_redis, receiving with one reader per process (emploiplus.effects.ChannelLayer,
# docs/messaging.md); `channels_redis` selects the stock layer (same keys and format).
CHANNEL_LAYER_RECEIVE = env.str("CHANNEL_LAYER_RECEIVE", default="batched")
if CHANNEL_LAYER_RECEIVE not in ("batched", "channels_redis"):
    raise ImproperlyConfigured(
        f"CHANNEL_LAYER_RECEIVE must be batched or channels_redis, got {CHANNEL_LAYER_RECEIVE!r}."
    )
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": {
            "batched": "emploiplus.effects.ChannelLayer",
            "channels_redis": "channels_redis.core.RedisChannelLayer",
        }[CHANNEL_LAYER_RECEIVE],
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    # Above channels_redis' 5 s blocking pop: redis-py 8's default read
                    # timeout would otherwise kill every idle consumer (close 1011).
                    "socket_timeout": 30,
                    # redis-py 8 pools refuse more than 100 connections by default, which a
                    # burst of a few hundred joins/sends on one process reaches.
                    "max_connections": 1000,
                }
            ],
            "prefix": f"{REDIS_KEY_PREFIX}:asgi",
            # channels_redis queues every message for all of one process's connections
            # under ONE key and drops silently past `capacity`: size it for a process.
            "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=100_000),
            "expiry": 60,
            "group_expiry": 86400,
        },
    }
}

# Socket.IO (emploiplus.sio): Engine.IO v4 heartbeat and the largest payload a client may send.
SOCKETIO_PING_INTERVAL = env.float("SOCKETIO_PING_INTERVAL", default=25.0)
SOCKETIO_PING_TIMEOUT = env.float("SOCKETIO_PING_TIMEOUT", default=20.0)
SOCKETIO_MAX_PAYLOAD = env.int("SOCKETIO_MAX_PAYLOAD", default=1_000_000)

# Presence (messaging.presence): connection heartbeats in Redis. A killed process's
# users go offline within TTL + heartbeat.
PRESENCE_TTL_SECONDS = env.float("PRESENCE_TTL_SECONDS", default=30.0)
PRESENCE_HEARTBEAT_SECONDS = env.float("PRESENCE_HEARTBEAT_SECONDS", default=10.0)

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{REDIS_KEY_PREFIX}:cache",
        # An unreachable Redis must fail fast (callers fall back to the database), not hang.
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 5},
    }
}

# --- Queues (django-rq) ---------------------------------------------------------------
RQ_DEFAULT_TIMEOUT = 600
RQ_QUEUES = {
    name: {"URL": REDIS_URL, "DEFAULT_TIMEOUT": RQ_DEFAULT_TIMEOUT} for name in ("notifications", "emails", "sms")
}
RQ_SHOW_ADMIN_LINK = True
# Enqueue when asked: emploiplus.effects already waits for the commit (django-rq's default
# would defer again, with a non-robust on_commit of its own).
# Our queue and worker classes: request ids into jobs, job metrics, quiet routine jobs.
RQ = {"COMMIT_MODE": "auto", "QUEUE_CLASS": "emploiplus.workers.Queue", "WORKER_CLASS": "emploiplus.workers.Worker"}
# Workers of `python -m emploiplus.processes worker <queue>` (one pool per queue).
QUEUE_CONCURRENCY = {
    "notifications": env.int("QUEUE_CONCURRENCY_NOTIFICATIONS", default=5),
    "emails": env.int("QUEUE_CONCURRENCY_EMAILS", default=2),
    "sms": env.int("QUEUE_CONCURRENCY_SMS", default=3),
}
if min(QUEUE_CONCURRENCY.values()) < 1:
    raise ImproperlyConfigured("QUEUE_CONCURRENCY_NOTIFICATIONS, _EMAILS and _SMS must be ≥ 1.")

# --- Supabase / auth ------------------------------------------------------------------
SUPABASE_URL = env.str("SUPABASE_URL", default="").rstrip("/")
SUPABASE_JWT_SECRET = env.str("SUPABASE_JWT_SECRET", default="")
if devenv.is_dev_secret(SUPABASE_JWT_SECRET) and not DEBUG:
    raise ImproperlyConfigured(
        "SUPABASE_JWT_SECRET is the development secret `make run` generated under .data/: "
        "with DEBUG off, set your Supabase project's JWT secret (or only SUPABASE_URL, for JWKS)."
    )
# Development without Supabase: a secret generated once under .data/, so `make run` and
# `manage.py dev_token` work out of the box. Never with DEBUG off.
DEV_JWT_SECRET = not SUPABASE_JWT_SECRET and DEBUG and not TESTING
if DEV_JWT_SECRET:
    SUPABASE_JWT_SECRET = devenv.dev_jwt_secret(DATA_DIR)
SUPABASE_JWKS_URL = env.str(
    "SUPABASE_JWKS_URL",
    default=f"{SUPABASE_URL}/auth/v1/.well-known/jwks.json" if SUPABASE_URL else "",
)
SUPABASE_WEBHOOK_SECRETS = _csv("SUPABASE_WEBHOOK_SECRET")
SUPABASE_SERVICE_ROLE_KEY = env.str("SUPABASE_SERVICE_ROLE_KEY", default="")
SUPABASE_JWT_AUDIENCE = env.str("SUPABASE_JWT_AUDIENCE", default="authenticated")
SUPABASE_ALLOW_ANONYMOUS = env.bool("SUPABASE_ALLOW_ANONYMOUS", default=False)
JWT_LEEWAY_SECONDS = env.int("JWT_LEEWAY_SECONDS", default=30)
JWKS_REFRESH_COOLDOWN_SECONDS = env.int("JWKS_REFRESH_COOLDOWN_SECONDS", default=30)
JWT_SECRET = env.str("JWT_SECRET", default="")  # legacy {id, role} tokens
# Per-process cache of the user behind a verified token (0 disables). A deactivation made
# elsewhere than through save()/delete() in this process takes effect within this delay.
AUTH_USER_CACHE_SECONDS = env.float("AUTH_USER_CACHE_SECONDS", default=5.0)

# --- OneSignal, email, matching -------------------------------------------------------
ONESIGNAL_APP_ID = _first("ONESIGNAL_APP_ID", "ONE_SIGNAL_APP_ID")
ONESIGNAL_API_KEY = _first("ONESIGNAL_API_KEY", "ONE_SIGNAL_API_KEY")
ONESIGNAL_API_URL = env.str("ONESIGNAL_API_URL", default="https://api.onesignal.com").rstrip("/")
ONESIGNAL_SMS_FROM = env.str("ONESIGNAL_SMS_FROM", default="")
ONESIGNAL_TIMEOUT_SECONDS = env.float("ONESIGNAL_TIMEOUT_SECONDS", default=10.0)

EMAIL_URL = env.str("EMAIL_URL", default="")
if EMAIL_URL:
    try:
        vars().update(environ.Env.email_url_config(EMAIL_URL))
    except Exception as exc:
        raise ImproperlyConfigured(f"EMAIL_URL is malformed ({exc}).") from exc
else:
    EMAIL_BACKEND = env.str(
        "EMAIL_BACKEND",
        default="django.core.mail.backends.smtp.EmailBackend"
        if env.str("EMAIL_HOST", default="")
        else "django.core.mail.backends.console.EmailBackend",
    )
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Emploi+ <no-reply@emploiplus.local>")

MATCH_MIN_SCORE = env.float("MATCH_MIN_SCORE", default=60.0)
# Sweeps (emploiplus.cron, every minute): active jobs still `pending` after this long (a lost
# webhook delivery) or `queued` (a lost enqueue, a dead worker), re-matches still requested.
MATCHING_SWEEP_AFTER_SECONDS = env.int("MATCHING_SWEEP_AFTER_SECONDS", default=120)
MATCHING_STUCK_AFTER_SECONDS = env.int("MATCHING_STUCK_AFTER_SECONDS", default=900)
# Stored webhook events still `received` (their job was lost) / `processing` (dead worker).
WEBHOOK_SWEEP_AFTER_SECONDS = env.int("WEBHOOK_SWEEP_AFTER_SECONDS", default=60)
WEBHOOK_STUCK_AFTER_SECONDS = env.int("WEBHOOK_STUCK_AFTER_SECONDS", default=900)

# --- Notification pipeline (docs/notifications.md) -----------------------------------------
# Recipients per provider call / per delivery job (OneSignal documents 2000 ids per call).
NOTIFICATIONS_PUSH_BATCH_SIZE = env.int("NOTIFICATIONS_PUSH_BATCH_SIZE", default=2000)
NOTIFICATIONS_SMS_BATCH_SIZE = env.int("NOTIFICATIONS_SMS_BATCH_SIZE", default=2000)
NOTIFICATIONS_EMAIL_BATCH_SIZE = env.int("NOTIFICATIONS_EMAIL_BATCH_SIZE", default=100)  # one SMTP session
# Explicit recipient lists up to this size are stored in the caller's transaction; larger
# ones (and every role/filter audience) are resolved and stored by the worker.
NOTIFICATIONS_INLINE_MAX = env.int("NOTIFICATIONS_INLINE_MAX", default=20)
# Provider retries (429, 5xx, timeouts): exponential backoff from the base, never sooner
# than the provider's Retry-After, at most this many attempts in total.
NOTIFICATIONS_RETRY_BASE_SECONDS = env.float("NOTIFICATIONS_RETRY_BASE_SECONDS", default=2.0)
NOTIFICATIONS_RETRY_MAX_SECONDS = env.float("NOTIFICATIONS_RETRY_MAX_SECONDS", default=300.0)
NOTIFICATIONS_MAX_ATTEMPTS = env.int("NOTIFICATIONS_MAX_ATTEMPTS", default=6)
# Deliveries still pending after this long with no live job are queued again by the sweep.
NOTIFICATIONS_STALE_SECONDS = env.int("NOTIFICATIONS_STALE_SECONDS", default=600)

# Semantic matching (issue 15, docs/matching.md): French embeddings in pgvector. `auto` uses
# it when the database has the pgvector extension, `off` disables it everywhere.
SEMANTIC_MATCHING = env.str("SEMANTIC_MATCHING", default="auto").strip().lower()
if SEMANTIC_MATCHING not in ("auto", "off"):
    raise ImproperlyConfigured(f"SEMANTIC_MATCHING must be 'auto' or 'off', got {SEMANTIC_MATCHING!r}.")
# hybrid = rules weight × CONTRACT §7 score + semantic weight × semantic_score (both 0–100).
MATCH_HYBRID_RULES_WEIGHT = env.float("MATCH_HYBRID_RULES_WEIGHT", default=0.5)
MATCH_HYBRID_SEMANTIC_WEIGHT = env.float("MATCH_HYBRID_SEMANTIC_WEIGHT", default=0.5)
if (
    MATCH_HYBRID_RULES_WEIGHT < 0
    or MATCH_HYBRID_SEMANTIC_WEIGHT < 0
    or (MATCH_HYBRID_RULES_WEIGHT + MATCH_HYBRID_SEMANTIC_WEIGHT <= 0)
):
    raise ImproperlyConfigured("MATCH_HYBRID_RULES_WEIGHT and MATCH_HYBRID_SEMANTIC_WEIGHT must be ≥ 0, not both 0.")
# Off: notifications use MATCH_MIN_SCORE on the §7 score only. On: candidates whose hybrid
# score reaches MATCH_HYBRID_MIN_SCORE are notified too.
MATCH_HYBRID_NOTIFY = env.bool("MATCH_HYBRID_NOTIFY", default=False)
MATCH_HYBRID_MIN_SCORE = env.float("MATCH_HYBRID_MIN_SCORE", default=60.0)
# A profile the skill rules miss enters a hybrid list when its semantic_score reaches this.
SEMANTIC_MIN_SCORE = env.float("SEMANTIC_MIN_SCORE", default=25.0)
# Nearest neighbours read from the HNSW index per ranking, and the index's search breadth.
SEMANTIC_NEIGHBOURS = env.int("SEMANTIC_NEIGHBOURS", default=200)
SEMANTIC_EF_SEARCH = env.int("SEMANTIC_EF_SEARCH", default=200)

# Largest request body the API and webhooks accept (CONTRACT §8: over 1 MiB → 413).
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024

# --- Rate limits ----------------------------------------------------------------------
RATE_LIMIT_PER_MINUTE = env.int("RATE_LIMIT_PER_MINUTE", default=120)
# Number of trusted reverse proxies in front of us: the client IP is taken that many
# hops from the right of X-Forwarded-For. 0 = ignore X-Forwarded-For.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
WS_EVENTS_PER_10_SECONDS = env.int("WS_EVENTS_PER_10_SECONDS", default=50)

# --- Django ---------------------------------------------------------------------------
INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "channels",
    "django_rq",
    "emploiplus",
    "accounts",
    "matching",
    "feed",
    "messaging",
    "notifications",
    "webhooks",
]

MIDDLEWARE = [
    "emploiplus.request_context.RequestMiddleware",  # request id, metrics, probes (first: sees everything)
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # /static/ (collectstatic) without a separate server
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.common.CommonMiddleware",
    # Sessions, CSRF, authentication, messages: for the admin's cookie pages only.
    "emploiplus.middleware.CookieSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# The admin's checks look for the session/auth/messages middleware by name; they run inside
# CookieSessionMiddleware (emploiplus/middleware.py says why).
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "emploiplus.urls"
ASGI_APPLICATION = "emploiplus.asgi.application"
WSGI_APPLICATION = None
AUTH_USER_MODEL = "accounts.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "fr-fr"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"  # collectstatic writes here; WhiteNoise serves it
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG  # make run serves the admin's files without collectstatic

CORS_EXPOSE_HEADERS = ["Retry-After"]

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.SupabaseJWTAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["emploiplus.parsers.JSONParser"],  # DRF's, deep nesting → 400
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.UserOrIPRateThrottle"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "emploiplus.exceptions.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SPECTACULAR_SETTINGS = {
    "TITLE": "Emploi+ API",
    "DESCRIPTION": "REST API of the Emploi+ job platform (see docs/CONTRACT.md).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The error answers of the shared layers, on every operation that can give them.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "emploiplus.schema.document_error_responses",
    ],
}

# --- Logs, errors, metrics (emploiplus.logs, emploiplus.sentry, emploiplus.metrics) -------------
LOG_FORMAT = env.str("LOG_FORMAT", default="console").lower()
if LOG_FORMAT not in ("console", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be console or json, got {LOG_FORMAT!r}.")
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "emploiplus.logs.ContextFilter"},
        "routine": {"()": "emploiplus.logs.RoutineFilter"},
    },
    "formatters": {
        "console": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "emploiplus.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context", "routine"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

SENTRY_DSN = env.str("SENTRY_DSN", default="")
SENTRY_ENVIRONMENT = env.str("SENTRY_ENVIRONMENT", default="development" if DEBUG else "production")
# The deployed commit: Render sets RENDER_GIT_COMMIT on every service.
SENTRY_RELEASE = env.str("SENTRY_RELEASE", default="") or env.str("RENDER_GIT_COMMIT", default="")
SENTRY_SEND_PII = env.bool("SENTRY_SEND_PII", default=False)
SENTRY_TRACES_SAMPLE_RATE = env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0)
# Bearer token that /metrics requires (unset: /metrics answers 503).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Set by emploiplus.processes for the processes it starts (web, worker, cron, release).
PROCESS_TYPE = env.str("EMPLOIPLUS_PROCESS_TYPE", default="")

if not DEBUG and not TESTING:
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

if SENTRY_DSN:
    from emploiplus import sentry as _sentry

    _sentry.init(
        dsn=SENTRY_DSN,
        environment=SENTRY_ENVIRONMENT,
        release=SENTRY_RELEASE,
        send_pii=SENTRY_SEND_PII,
        traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE,
        process_type=PROCESS_TYPE,
    )
