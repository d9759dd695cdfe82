"""Every model of our apps is in the admin, and every admin page opens for staff."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.urls import reverse

OUR_APPS = ("accounts", "matching", "feed", "messaging", "notifications", "webhooks", "emploiplus")

pytestmark = pytest.mark.django_db


def our_models():
    return [m for label in OUR_APPS for m in apps.get_app_config(label).get_models()]


def test_it_registers_every_model():
    missing = [m._meta.label for m in our_models() if m not in admin.site._registry]
    assert missing == []


@pytest.mark.parametrize("model", our_models(), ids=lambda m: m._meta.label)
def test_it_opens_the_changelist_and_search(staff_client, model):
    if model not in admin.site._registry:
        pytest.fail(f"{model._meta.label} is not registered")
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    assert staff_client.get(url).status_code == 200
    if admin.site._registry[model].search_fields:
        assert staff_client.get(url, {"q": "alice"}).status_code == 200


def test_it_links_the_rq_dashboard_from_the_admin(staff_client):
    index = staff_client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert reverse("admin:django_rq_dashboard_changelist") in index.content.decode()
    assert staff_client.get(reverse("admin:django_rq_dashboard_changelist")).status_code == 200
    assert staff_client.get("/admin/rq/").status_code == 200


def test_it_keeps_non_staff_out(client, alice):
    client.force_login(alice)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
