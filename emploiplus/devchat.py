"""`/dev/chat/` (DEBUG only): two users chatting in one page through Socket.IO, with the very
socket.io-client the frontend uses (served from the npm install in `.data/node`).

Each half of the page is one user: its token is minted here for the demo users (DEBUG only,
signed with the development secret), its three namespaces connect as the guide's Step 6
code does, and a message typed on one side appears on the other. `?a=<email>&b=<email>`
picks other users (they get a direct conversation); the default is the demo conversation.
"""

from __future__ import annotations

import json
from html import escape

from django.conf import settings
from django.http import FileResponse, Http404, HttpResponse
from django.views.decorators.http import require_GET

from emploiplus import jsclient

PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8"><title>Emploi+ — chat de démonstration</title>
<style>body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;color:#222}main{display:flex;gap:1.5rem}
section{flex:1;border:1px solid #ccc;border-radius:6px;padding:1rem}ol{min-height:12rem;padding-left:1.2rem}
.state{color:#666;font-size:13px}</style></head><body>
<h1>Chat de démonstration (Socket.IO)</h1>
<main>__PANES__</main>
<script src="/dev/socket.io.min.js"></script>
<script>
const CONVERSATION = __CONVERSATION__;
for (const pane of document.querySelectorAll("section")) {
  const token = pane.dataset.token, log = pane.querySelector("ol"), state = pane.querySelector(".state");
  const messages = io("/messages", { auth: { token } });
  const presence = io("/presence", { auth: { token } });
  const show = (text, cls) => {
    const li = document.createElement("li"); li.textContent = text; li.className = cls; log.append(li);
  };
  messages.on("connect", () => {
    state.textContent = "connecté (" + messages.io.engine.transport.name + ")";
    messages.io.engine.on("upgrade", (t) => { state.textContent = "connecté (" + t.name + ")"; });
    messages.emit("join_conversation", { conversationId: CONVERSATION });
  });
  messages.on("connect_error", (e) => { state.textContent = "refusé : " + e.message; });
  messages.on("new_message", (m) => show(m.senderEmail + " : " + m.content, "message"));
  messages.on("user_typing", (t) => { state.textContent = t.email + " écrit…"; });
  presence.on("user_online", (u) => show(u.email + " est en ligne", "presence"));
  presence.on("user_offline", (u) => show(u.userId + " est hors ligne", "presence"));
  pane.querySelector("form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = pane.querySelector("input");
    messages.emit("send_message", { conversationId: CONVERSATION, content: input.value }, (ack) => {
      if (ack && ack.error) show("erreur : " + ack.error.message, "error");
    });
    input.value = "";
  });
  pane.querySelector("input").addEventListener(
    "input", () => messages.emit("typing", { conversationId: CONVERSATION, isTyping: true }));
}
</script></body></html>
"""

PANE = """<section data-token="{token}" data-user="{email}"><h2>{name}</h2><p class="state">connexion…</p>
<ol></ol><form><input name="content" autocomplete="off" placeholder="Votre message" required>
<button type="submit">Envoyer</button></form></section>"""


def _require_debug() -> None:
    if not settings.DEBUG:
        raise Http404("Development page (DEBUG only).")


def _users(request):
    from accounts.models import User
    from emploiplus import demo

    a = request.GET.get("a") or demo.PERSONAS[0].email
    b = request.GET.get("b") or next(p.email for p in demo.PERSONAS if p.role == "company")
    users = [User.objects.filter(email=email, is_active=True).first() for email in (a, b)]
    if None in users or users[0] == users[1]:
        raise Http404("Two active users are needed (?a=<email>&b=<email>; `make run` seeds demo users).")
    return users


@require_GET
def chat(request):
    from accounts.testing import token_for
    from messaging.services import conversation_get_or_create_direct

    _require_debug()
    a, b = _users(request)
    conversation, _ = conversation_get_or_create_direct(user=a, other_user_id=b.pk)
    panes = "".join(
        PANE.format(token=escape(token_for(u)), email=escape(u.email), name=escape(u.full_name or u.email))
        for u in (a, b)
    )
    page = PAGE.replace("__PANES__", panes).replace("__CONVERSATION__", json.dumps(str(conversation.pk)))
    return HttpResponse(page)


@require_GET
def client_bundle(request):
    _require_debug()
    bundle = jsclient.browser_bundle(settings.DATA_DIR)
    if not bundle.exists():
        raise Http404("socket.io-client is not installed: `make run` installs it when Node.js is present.")
    return FileResponse(bundle.open("rb"), content_type="text/javascript")
