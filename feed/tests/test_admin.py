"""Moderation from the admin: hide/unhide and pin/unpin change what the feed shows."""

from __future__ import annotations

import pytest
from django.urls import reverse

from feed.models import Post

pytestmark = pytest.mark.django_db


def _action(staff_client, action, *posts):
    url = reverse("admin:feed_post_changelist")
    response = staff_client.post(url, {"action": action, "_selected_action": [str(p.pk) for p in posts]})
    assert response.status_code == 302


def test_it_hides_and_unhides_a_post_from_the_admin(staff_client, api, auth, alice, bob, make_post):
    post = make_post(alice, "Contenu signalé")
    other = make_post(alice, "Contenu correct")

    _action(staff_client, "hide", post)
    assert Post.objects.get(pk=post.pk).is_hidden
    feed = [p["id"] for p in api.get("/api/feed/", headers=auth(bob)).json()["results"]]
    assert feed == [str(other.pk)]
    assert api.get("/api/search/", {"q": "signalé", "type": "posts"}, headers=auth(bob)).json()["results"] == []

    _action(staff_client, "unhide", post)
    assert not Post.objects.get(pk=post.pk).is_hidden
    assert len(api.get("/api/feed/", headers=auth(bob)).json()["results"]) == 2


def test_it_pins_from_the_admin_and_lists_counters(staff_client, api, auth, alice, bob, make_post):
    old = make_post(alice, "Annonce importante", minutes_ago=600)
    make_post(alice, "Récent")
    _action(staff_client, "pin", old)
    assert api.get("/api/feed/", headers=auth(bob)).json()["results"][0]["id"] == str(old.pk)

    api.post(f"/api/posts/{old.pk}/like/", headers=auth(bob))
    page = staff_client.get(reverse("admin:feed_post_changelist"), {"is_pinned__exact": "1"})
    assert page.status_code == 200
    assert "Annonce importante" in page.content.decode()
    assert "Récent" not in page.content.decode()

    _action(staff_client, "soft_delete", old)
    assert Post.objects.get(pk=old.pk).deleted_at is not None
    assert staff_client.get(reverse("admin:feed_post_changelist"), {"deleted": "yes"}).status_code == 200


def test_it_keeps_non_staff_out_of_moderation(client, alice, make_post):
    post = make_post(alice)
    client.force_login(alice)
    response = client.post(reverse("admin:feed_post_changelist"), {"action": "hide", "_selected_action": [post.pk]})
    assert response.status_code == 302
    assert not Post.objects.get(pk=post.pk).is_hidden
