"""The original frontend's Socket.IO code (the guide's Step 6), with the real socket.io-client
v4 from npm, against real server processes: it connects unchanged and everything it uses works."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from accounts.testing import token_for
from emploiplus.testing import asgi_server, rq_worker, run_node
from matching.testing import envelope, set_profile, sign
from messaging.models import Message
from messaging.services import conversation_get_or_create_direct
from notifications.models import Notification

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

JS = Path(__file__).parent / "js"


def observations(lines: list[dict]) -> dict:
    merged: dict = {}
    for line in lines:
        assert "failed" not in line, line
        merged.update(line)
    return merged


@pytest.mark.parametrize("server", ["uvicorn", "daphne"])
def test_the_guides_step_6_frontend_connects_unchanged_and_everything_works(node, server, alice, bob, acme):
    set_profile(alice, skills=["python"], experience_level="mid")
    conversation, _ = conversation_get_or_create_direct(user=alice, other_user_id=bob.pk)
    job = {
        "id": str(uuid.uuid4()),
        "company_id": str(acme.pk),
        "title": "Développeuse Python",
        "required_skills": ["Python"],
        "status": "active",
    }
    body = json.dumps(envelope(job)).encode()
    with asgi_server(server=server) as (address, _proc), rq_worker("notifications"):
        obs = observations(
            run_node(
                JS / "step6.js",
                URL=f"http://{address}",
                TOKEN_A=token_for(alice),
                TOKEN_B=token_for(bob),
                CONV=str(conversation.pk),
                WEBHOOK_BODY=body.decode(),
                WEBHOOK_SIG=sign(body),
            )
        )
    assert obs["done"] is True
    assert obs["sameEngine"] is True  # three namespaces, one Engine.IO connection
    assert obs["transport"] == "websocket"  # started with polling, upgraded
    assert obs["initialPresence"] == {"online": []}
    assert obs["userOnline"]["userId"] == str(bob.pk) and obs["userOnline"]["email"] == bob.email
    assert obs["joinAck"] == obs["bobJoinAck"] == {"conversationId": str(conversation.pk)}
    assert (obs["userTyping"]["userId"], obs["userTyping"]["isTyping"]) == (str(alice.pk), True)
    ack, received = obs["sendAck"], obs["newMessage"]
    assert (ack["clientMessageId"], ack["duplicate"], ack["content"]) == ("c1", False, "Bonjour Bob")
    assert (received["id"], received["senderId"], received["content"]) == (ack["id"], str(alice.pk), "Bonjour Bob")
    assert obs["messageSent"]["id"] == ack["id"]
    assert obs["messagesRead"]["userId"] == str(bob.pk) and obs["messagesRead"]["messageIds"] == [ack["id"]]
    assert obs["messageDeleted"]["messageId"] == ack["id"]
    assert obs["forbiddenAck"]["error"]["code"] == "forbidden"
    assert obs["errorEvent"]["event"] == "send_message" and obs["errorEvent"]["error"]["code"] == "invalid_content"
    assert obs["webhookStatus"] == 202
    assert obs["notification"]["data"]["jobId"] == job["id"]
    assert obs["userOffline"]["userId"] == str(bob.pk)
    assert obs["connectError"]["data"] == {"code": "token_invalid"} and obs["intruderConnected"] is False
    message = Message.objects.get(pk=ack["id"])
    assert message.read_at is not None and message.deleted_at is not None
    assert Notification.objects.filter(user=alice, type="job_match", data__jobId=job["id"]).count() == 1
