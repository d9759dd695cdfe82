"""REST side of auth: /api/me/, 401/403 bodies, role permissions, rate limits, CORS, admin."""

from __future__ import annotations

import time
import uuid

import jwt
import pytest
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts.models import Candidate, Role, User
from accounts.permissions import IsAdmin, IsCandidate, IsCompany, IsOwner
from accounts.testing import make_token
from accounts.tests.conftest import claims

pytestmark = pytest.mark.django_db

ME = "/api/me/"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --- /api/me/ -----------------------------------------------------------------------------
def test_it_returns_the_callers_profile(api, auth, rita, acme):
    response = api.get(ME, headers=auth(rita))
    assert response.status_code == 200
    assert response.json() == {
        "id": str(rita.pk),
        "email": "rita@example.test",
        "full_name": "Rita",
        "avatar_url": "",
        "role": "company",
        "company_id": str(acme.pk),
        "is_staff": False,
        "created_at": response.json()["created_at"],
    }


def test_it_creates_the_user_on_the_first_request(api):
    sub = str(uuid.uuid4())
    token = make_token(sub, email="new@example.test", user_metadata={"role": "entreprise", "full_name": "Léa"})
    response = api.get(ME, headers=bearer(token))
    assert response.status_code == 200
    assert response.json()["role"] == "company"
    assert response.json()["full_name"] == "Léa"
    assert User.objects.get(pk=sub).email == "new@example.test"
    assert not Candidate.objects.filter(pk=sub).exists()


def test_it_creates_an_empty_candidate_profile_for_a_new_candidate(api):
    sub = str(uuid.uuid4())
    assert api.get(ME, headers=bearer(make_token(sub, user_role="candidat"))).json()["role"] == "candidate"
    assert Candidate.objects.get(pk=sub).skills == []


def test_it_does_not_make_an_admin_from_user_metadata_over_http(api):
    sub = str(uuid.uuid4())
    response = api.get(ME, headers=bearer(make_token(sub, user_role="admin")))
    assert response.json()["role"] == "candidate"
    assert User.objects.get(pk=sub).role == Role.CANDIDATE


def test_it_makes_an_admin_from_app_metadata_over_http(api):
    sub = str(uuid.uuid4())
    response = api.get(ME, headers=bearer(make_token(sub, app_role="admin")))
    assert response.json()["role"] == "admin"
    assert response.json()["is_staff"] is False


# --- 401 bodies ----------------------------------------------------------------------------
def assert_401(response, code):
    assert response.status_code == 401, response.content
    body = response.json()
    assert body["code"] == code
    assert set(body) == {"detail", "code"}
    assert response["WWW-Authenticate"].startswith('Bearer realm="api"')
    return response


def test_it_answers_token_missing_without_a_token(api):
    response = assert_401(api.get(ME), "token_missing")
    assert "error=" not in response["WWW-Authenticate"]


def test_it_answers_token_missing_for_an_empty_bearer(api):
    assert_401(api.get(ME, headers={"Authorization": "Bearer "}), "token_missing")
    assert_401(api.get(ME, headers={"Authorization": "Bearer"}), "token_missing")


def test_it_answers_token_missing_for_another_scheme(api):
    assert_401(api.get(ME, headers={"Authorization": "Basic YWxpY2U6cGFzcw=="}), "token_missing")


def test_it_answers_token_expired(api, alice):
    response = assert_401(api.get(ME, headers=bearer(make_token(alice.pk, expires_in=-3600))), "token_expired")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_it_answers_token_invalid_for_garbage(api):
    response = assert_401(api.get(ME, headers=bearer("garbage")), "token_invalid")
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_it_answers_token_invalid_for_a_wrong_secret(api, alice):
    token = make_token(alice.pk, secret="another-secret-that-is-long-enough-for-hs256")
    assert_401(api.get(ME, headers=bearer(token)), "token_invalid")


def test_it_answers_token_invalid_for_the_service_role_key(api, settings):
    now = int(time.time())
    key = jwt.encode(
        {"iss": "supabase", "role": "service_role", "iat": now, "exp": now + 10**8},
        settings.SUPABASE_JWT_SECRET,
        algorithm="HS256",
    )
    assert_401(api.get(ME, headers=bearer(key)), "token_invalid")


def test_it_refuses_a_deactivated_user(api, auth, alice):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert_401(api.get(ME, headers=auth(alice)), "user_inactive")


def test_it_accepts_es256_tokens_over_http(api, jwks_server, ec_key, alice):
    response = api.get(ME, headers=bearer(ec_key.sign(claims(str(alice.pk), email=alice.email))))
    assert response.status_code == 200
    assert response.json()["id"] == str(alice.pk)


# --- permissions (403) ---------------------------------------------------------------------
class Thing:
    def __init__(self, user_id):
        self.user_id = user_id


def view_with(*permissions, owner=None):
    class ProbeApi(APIView):
        permission_classes = [IsAuthenticated, *permissions]

        def get(self, request):
            if owner is not None:
                self.check_object_permissions(request, Thing(owner))
            return Response({"ok": True, "user": str(request.user.pk)})

    return ProbeApi.as_view()


def call(view, user=None, token=None):
    headers = {}
    if user is not None:
        headers["HTTP_AUTHORIZATION"] = f"Bearer {make_token(user.pk, email=user.email or '', **(token or {}))}"
    return view(APIRequestFactory().get("/probe/", **headers))


@pytest.mark.parametrize(
    ("permission", "allowed"),
    [(IsCandidate, {"alice", "root"}), (IsCompany, {"rita", "root"}), (IsAdmin, {"root"})],
)
def test_it_enforces_roles_with_403_forbidden(permission, allowed, alice, rita, root):
    view = view_with(permission)
    for name, user in {"alice": alice, "rita": rita, "root": root}.items():
        response = call(view, user, {"app_role": "admin"} if name == "root" else {})
        response.render()
        if name in allowed:
            assert response.status_code == 200, name
        else:
            assert response.status_code == 403, name
            assert response.data == {"detail": "Rôle insuffisant pour cette action.", "code": "forbidden"}


def test_it_refuses_admin_endpoints_to_a_user_metadata_admin(alice):
    response = call(view_with(IsAdmin), alice, {"user_role": "admin"})
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.role == Role.CANDIDATE


def test_it_opens_admin_endpoints_to_an_app_metadata_admin(make_user):
    dana = make_user("dana")
    assert call(view_with(IsAdmin), dana, {"app_role": "admin"}).status_code == 200


def test_it_answers_401_not_403_to_anonymous_callers_of_role_endpoints():
    response = call(view_with(IsAdmin))
    assert response.status_code == 401
    assert response.data["code"] == "token_missing"


def test_it_enforces_ownership(alice, bob, root):
    view = view_with(IsOwner, owner=alice.pk)
    assert call(view, alice).status_code == 200
    response = call(view, bob)
    assert response.status_code == 403
    assert response.data["code"] == "forbidden"
    assert call(view, root, {"app_role": "admin"}).status_code == 200


def test_it_enforces_ownership_for_a_user_created_by_this_very_request():
    sub = uuid.uuid4()
    view = view_with(IsOwner, owner=sub)
    request = APIRequestFactory().get("/probe/", HTTP_AUTHORIZATION=f"Bearer {make_token(sub)}")
    assert view(request).status_code == 200


# --- rate limits -----------------------------------------------------------------------------
def test_it_allows_120_requests_a_minute_and_answers_the_121st_with_429(api, auth, alice, bob):
    headers = auth(alice)
    statuses = [api.get(ME, headers=headers).status_code for _ in range(120)]
    assert statuses == [200] * 120
    response = api.get(ME, headers=headers)
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["code"] == "throttled"
    # Another user from the same IP has a budget of its own.
    assert api.get(ME, headers=auth(bob)).status_code == 200


def test_it_rate_limits_anonymous_callers_per_ip_even_on_protected_endpoints(api, settings):
    settings.RATE_LIMIT_PER_MINUTE = 5
    statuses = [api.get(ME, REMOTE_ADDR="10.0.0.7").status_code for _ in range(5)]
    statuses += [api.get(ME, headers=bearer("forged"), REMOTE_ADDR="10.0.0.7").status_code]
    assert statuses == [401] * 5 + [429]
    assert api.get(ME, REMOTE_ADDR="10.0.0.8").status_code == 401  # another IP is unaffected


def test_it_counts_bad_tokens_against_the_ip(api, settings):
    settings.RATE_LIMIT_PER_MINUTE = 3
    statuses = [api.get(ME, headers=bearer(f"forged-{i}")).status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_it_ignores_x_forwarded_for_without_trusted_proxies(api, settings):
    settings.RATE_LIMIT_PER_MINUTE = 2
    settings.TRUSTED_PROXY_COUNT = 0
    statuses = [api.get(ME, HTTP_X_FORWARDED_FOR=f"203.0.113.{i}").status_code for i in range(3)]
    assert statuses == [401, 401, 429]  # spoofed addresses do not buy new budgets


def test_it_uses_the_client_ip_from_a_trusted_proxy(api, settings):
    settings.RATE_LIMIT_PER_MINUTE = 2
    settings.TRUSTED_PROXY_COUNT = 1
    # The proxy appends the peer address; anything further left is the client's own claim.
    first = [api.get(ME, HTTP_X_FORWARDED_FOR=f"1.1.1.{i}, 198.51.100.1").status_code for i in range(3)]
    assert first == [401, 401, 429]
    assert api.get(ME, HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 401


def test_it_does_not_rate_limit_health_endpoints(client, settings):
    settings.RATE_LIMIT_PER_MINUTE = 2
    assert [client.get("/healthz").status_code for _ in range(6)] == [200] * 6


# --- CORS --------------------------------------------------------------------------------------
def preflight(client, origin):
    return client.options(
        ME,
        HTTP_ORIGIN=origin,
        HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET",
        HTTP_ACCESS_CONTROL_REQUEST_HEADERS="authorization",
    )


def test_it_answers_a_preflight_from_an_allowed_origin(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.emploiplus.fr"]
    response = preflight(client, "https://app.emploiplus.fr")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://app.emploiplus.fr"
    assert "authorization" in response["Access-Control-Allow-Headers"]


def test_it_refuses_a_preflight_from_another_origin(client, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.emploiplus.fr"]
    response = preflight(client, "https://evil.example")
    assert "Access-Control-Allow-Origin" not in response


def test_it_exposes_retry_after_to_allowed_origins(api, auth, alice, settings):
    settings.CORS_ALLOWED_ORIGINS = ["https://app.emploiplus.fr"]
    settings.RATE_LIMIT_PER_MINUTE = 1
    api.get(ME, headers=auth(alice))
    response = api.get(ME, headers={**auth(alice), "Origin": "https://app.emploiplus.fr"})
    assert response.status_code == 429
    assert response["Access-Control-Allow-Origin"] == "https://app.emploiplus.fr"
    assert "retry-after" in response["Access-Control-Expose-Headers"].lower()


# --- admin site -----------------------------------------------------------------------------------
def test_it_keeps_token_admins_out_of_the_admin_site(client, make_user):
    dana = make_user("dana")
    token = make_token(dana.pk, app_role="admin")
    response = client.get("/admin/accounts/user/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_it_lets_staff_search_and_filter_users(client, root, alice, rita, acme):
    User.objects.filter(pk=root.pk).update(is_superuser=True)
    client.force_login(root)
    response = client.get("/admin/accounts/user/", {"q": "rita"})
    assert response.status_code == 200
    assert "rita@example.test" in response.content.decode()
    assert "alice@example.test" not in response.content.decode()
    response = client.get("/admin/accounts/user/", {"q": str(alice.pk)})
    assert "alice@example.test" in response.content.decode()
    response = client.get("/admin/accounts/user/", {"role__exact": "company"})
    assert "rita@example.test" in response.content.decode()
    assert "alice@example.test" not in response.content.decode()


def test_it_lets_staff_filter_candidates(client, root, alice, bob):
    Candidate.objects.filter(pk=bob.pk).update(experience_level="senior", notifications_enabled=False)
    User.objects.filter(pk=root.pk).update(is_superuser=True)
    client.force_login(root)
    response = client.get("/admin/accounts/candidate/", {"notifications_enabled__exact": "0"})
    assert response.status_code == 200
    assert "bob@example.test" in response.content.decode()
    assert "alice@example.test" not in response.content.decode()
    assert client.get(f"/admin/accounts/candidate/{bob.pk}/change/").status_code == 200
    assert client.get(f"/admin/accounts/user/{bob.pk}/change/").status_code == 200


# --- the short user cache ----------------------------------------------------------------------------
def test_it_sees_a_deactivation_saved_in_this_process_at_once(api, auth, alice, settings):
    settings.AUTH_USER_CACHE_SECONDS = 60
    assert api.get(ME, headers=auth(alice)).status_code == 200
    alice.is_active = False
    alice.save()
    assert_401(api.get(ME, headers=auth(alice)), "user_inactive")


def test_it_sees_changes_made_elsewhere_within_the_cache_ttl(api, auth, alice, settings):
    settings.AUTH_USER_CACHE_SECONDS = 0.3
    assert api.get(ME, headers=auth(alice)).json()["role"] == "candidate"
    User.objects.filter(pk=alice.pk).update(is_active=False)  # no signal: like another process
    assert api.get(ME, headers=auth(alice)).status_code == 200  # stale for at most the TTL
    time.sleep(0.35)
    assert_401(api.get(ME, headers=auth(alice)), "user_inactive")


def test_it_bypasses_the_cache_when_app_metadata_changes_the_role(api, auth, alice, settings):
    settings.AUTH_USER_CACHE_SECONDS = 60
    assert api.get(ME, headers=auth(alice)).json()["role"] == "candidate"
    assert api.get(ME, headers=auth(alice, app_role="admin")).json()["role"] == "admin"
    assert User.objects.get(pk=alice.pk).role == Role.ADMIN


def test_it_queries_the_database_every_time_with_the_cache_off(api, auth, alice, settings):
    settings.AUTH_USER_CACHE_SECONDS = 0
    assert api.get(ME, headers=auth(alice)).status_code == 200
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert_401(api.get(ME, headers=auth(alice)), "user_inactive")


# --- legacy tokens over HTTP ----------------------------------------------------------------------------
LEGACY_SECRET = "legacy-node-jwt-secret-0123456789abcdef"


def legacy(user_id, role):
    now = int(time.time())
    payload = {"id": str(user_id), "role": role, "iat": now, "exp": now + 600}
    return jwt.encode(payload, LEGACY_SECRET, algorithm="HS256")


def test_it_accepts_legacy_tokens_only_with_jwt_secret_and_never_as_admin(api, settings):
    sub = uuid.uuid4()
    settings.JWT_SECRET = ""
    assert_401(api.get(ME, headers=bearer(legacy(sub, "company"))), "token_invalid")
    settings.JWT_SECRET = LEGACY_SECRET
    response = api.get(ME, headers=bearer(legacy(sub, "company")))
    assert response.status_code == 200
    assert response.json()["role"] == "company"
    other = uuid.uuid4()
    assert api.get(ME, headers=bearer(legacy(other, "admin"))).json()["role"] == "candidate"
    assert User.objects.get(pk=other).role == Role.CANDIDATE


def test_it_normalises_skills_typed_in_the_candidate_admin(client, root, alice):
    from accounts.models import Candidate

    client.force_login(root)
    url = f"/admin/accounts/candidate/{alice.pk}/change/"
    form = {
        "user": str(alice.pk),
        "skills": "ReactJS,Node.js, Postgres",
        "experience_level": "mid",
        "location": "Lyon",
        "job_title": "",
        "target_salary_min": "",
        "target_salary_max": "",
        "notifications_enabled": "on",
        "is_active": "on",
        "deleted_at_0": "",
        "deleted_at_1": "",
    }
    response = client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Candidate.objects.get(pk=alice.pk).skills == ["react", "node.js", "postgresql"]
