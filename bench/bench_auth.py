"""Authentication cost (issue 3): token verifications per second, and the latency the auth
layer adds to a trivial endpoint.

1. `verify_token` on HS256 and ES256 tokens (ES256 keys fetched once from a real local
   JWKS HTTP server, then cached): per-call median/p99 and verifications per second.
2. A trivial DRF endpoint through Django's test client (full middleware stack), the
   variants interleaved request by request so machine noise hits them equally:
   - `no auth`: authentication_classes = [], AllowAny (the baseline);
   - `auth (DB lookup)`: SupabaseJWTAuthentication + IsAuthenticated, the user loaded
     by primary key on every request (AUTH_USER_CACHE_SECONDS=0);
   - `auth (user cache 5 s, default)`: the same with AUTH_USER_CACHE_SECONDS=5;
   - `auth (cache) + Redis throttle`: the default stack, plus the Redis sliding-window
     throttle (one Lua call per request).
   The added latency is each variant's median minus the baseline's median.

Sizes: USERS users with one token each, requests cycle through them. BENCH_SCALE scales
the number of samples (1.0 = 5,000 verifications per algorithm and 3,000 requests per
variant).
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from django.test import Client
from django.test.utils import override_settings
from django.urls import clear_url_caches, path
from jwt.algorithms import ECAlgorithm
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import SupabaseJWTAuthentication, user_cache
from accounts.throttling import UserOrIPRateThrottle
from bench.common import Result, percentile, summarize

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
USERS = 100


class NoAuthApi(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []

    def get(self, request):
        return Response({"ok": True})


class AuthApi(APIView):
    authentication_classes = [SupabaseJWTAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list = []

    def get(self, request):
        return Response({"ok": True})


class AuthThrottleApi(AuthApi):
    throttle_classes = [UserOrIPRateThrottle]


urlpatterns = [
    path("noauth/", NoAuthApi.as_view()),
    path("auth/", AuthApi.as_view()),
    path("auth-throttle/", AuthThrottleApi.as_view()),
]


def _jwks_server(jwk: dict) -> tuple[ThreadingHTTPServer, str]:
    body = json.dumps({"keys": [jwk]}).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/auth/v1/.well-known/jwks.json"


def _claims(sub: str) -> dict:
    now = int(time.time())
    return {
        "sub": sub,
        "aud": "authenticated",
        "role": "authenticated",
        "email": f"{sub[:8]}@bench.test",
        "iat": now,
        "exp": now + 7200,
        "app_metadata": {"provider": "email"},
        "user_metadata": {},
    }


def _bench_verify(results: list[Result]) -> None:
    from django.conf import settings

    from accounts import jwks
    from accounts.tokens import verify_token

    n = max(200, int(5000 * SCALE))
    private = ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(private.public_key(), as_dict=True), "kid": "bench-ec", "alg": "ES256", "use": "sig"}
    server, url = _jwks_server(jwk)
    try:
        with override_settings(SUPABASE_JWKS_URL=url, SUPABASE_URL=""):
            jwks.reset_cache()
            subs = [str(uuid.uuid4()) for _ in range(100)]
            tokens = {
                "HS256": [jwt.encode(_claims(s), settings.SUPABASE_JWT_SECRET, algorithm="HS256") for s in subs],
                "ES256": [
                    jwt.encode(_claims(s), private, algorithm="ES256", headers={"kid": "bench-ec"}) for s in subs
                ],
            }
            verify_token(tokens["ES256"][0])  # the one JWKS fetch
            for alg, batch in tokens.items():
                samples = []
                for i in range(n):
                    token = batch[i % len(batch)]
                    started = time.perf_counter()
                    verify_token(token)
                    samples.append(time.perf_counter() - started)
                total = sum(samples)
                results.append(
                    summarize(
                        "auth.verify_token",
                        alg,
                        "100 distinct tokens, cached JWKS",
                        samples,
                        per_second=round(n / total),
                        jwks_fetches=jwks.fetch_count(),
                    )
                )
    finally:
        server.shutdown()
        jwks.reset_cache()


def _bench_endpoint(results: list[Result]) -> None:
    from accounts.models import User
    from accounts.testing import token_for

    n = max(300, int(3000 * SCALE))
    users = list(User.objects.filter(email__endswith="@bench-auth.test")[:USERS])
    if len(users) < USERS:
        User.objects.bulk_create(
            [
                User(email=f"u{i}-{uuid.uuid4().hex[:6]}@bench-auth.test", full_name=f"U{i}")
                for i in range(USERS - len(users))
            ]
        )
        users = list(User.objects.filter(email__endswith="@bench-auth.test")[:USERS])
    headers = [{"HTTP_AUTHORIZATION": f"Bearer {token_for(u, expires_in=7200)}"} for u in users]
    client = Client(HTTP_HOST="localhost")
    variants = {
        "no auth (baseline)": ("/noauth/", 0, False),
        "auth (DB lookup)": ("/auth/", 0, True),
        "auth (user cache 5 s, default)": ("/auth/", 5, True),
        "auth (cache) + Redis throttle": ("/auth-throttle/", 5, True),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    with override_settings(ROOT_URLCONF="bench.bench_auth", RATE_LIMIT_PER_MINUTE=10**9):
        clear_url_caches()
        user_cache.clear()
        for i in range(n + 50):
            for name, (url, ttl, with_token) in variants.items():
                extra = headers[i % len(headers)] if with_token else {}
                with override_settings(AUTH_USER_CACHE_SECONDS=ttl):
                    started = time.perf_counter()
                    response = client.get(url, **extra)
                    elapsed = time.perf_counter() - started
                assert response.status_code == 200, (name, response.status_code, response.content[:200])
                if i >= 50:  # warm-up rounds discarded
                    samples[name].append(elapsed)
    clear_url_caches()
    user_cache.clear()
    base = statistics.median(samples["no auth (baseline)"])
    size = f"{USERS} users, HS256, Django test client"
    for name, values in samples.items():
        median = statistics.median(values)
        results.append(
            summarize(
                "auth.endpoint",
                name,
                size,
                values,
                added_median_ms=round((median - base) * 1000, 3),
                added_p99_ms=round((percentile(values, 99) - percentile(samples["no auth (baseline)"], 99)) * 1000, 3),
            )
        )


def run() -> list[Result]:
    results: list[Result] = []
    _bench_verify(results)
    _bench_endpoint(results)
    return results
