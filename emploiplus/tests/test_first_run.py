"""The first ten minutes: `make run` works without Supabase (development secret, demo data,
admin login printed once) and the README's newcomer steps work as written; with DEBUG off
the development tools are refused with one clear line each."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request

import pytest

from emploiplus.testing import BASE_DIR, database_url_for_tests, free_port

pytestmark = pytest.mark.django_db(transaction=True)


def clean_env(**extra: str) -> dict[str, str]:
    """A fresh terminal: no test settings, no secrets."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "EMPLOIPLUS_", "SUPABASE_", "ONESIGNAL_", "DATABASE_", "REDIS_", "DEBUG"))
    }
    env.update(extra)
    return env


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=clean_env(**env), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def production(**extra: str) -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": "s3cret-for-the-test",
        "DATABASE_URL": database_url_for_tests(),
        "REDIS_URL": os.environ["REDIS_URL"],
        **extra,
    }


@pytest.mark.parametrize(
    ("command", "name"),
    [
        (["dev_token", "--as", "candidate"], "dev_token"),
        (["dev_seed"], "dev_seed"),
        (["dev_listen", "--as", "camille"], "dev_listen"),
    ],
)
def test_it_refuses_the_development_tools_with_debug_off(command, name, tmp_path):
    result = manage(*command, **production(EMPLOIPLUS_DATA_DIR=str(tmp_path)))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"CommandError: {name}{' (demo data)' if name == 'dev_seed' else ''} only runs with DEBUG=1 (development); "
        "it is refused in production."
    ]
    assert result.stdout == ""


def test_it_refuses_to_start_in_production_with_the_development_secret(tmp_path):
    result = manage("check", **production(SUPABASE_JWT_SECRET="emploiplus-dev-abc", EMPLOIPLUS_DATA_DIR=str(tmp_path)))
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("configuration error: SUPABASE_JWT_SECRET is the development secret")


def test_it_generates_the_development_secret_once_and_only_in_debug(tmp_path):
    show = ["shell", "-c", "from django.conf import settings; print(settings.SUPABASE_JWT_SECRET)"]
    off = manage(*show, **production(EMPLOIPLUS_DATA_DIR=str(tmp_path)))
    assert off.returncode == 0 and off.stdout.strip().splitlines()[-1:] != ["emploiplus-dev-"]
    assert "emploiplus-dev-" not in off.stdout
    assert not (tmp_path / "dev-jwt-secret").exists()
    debug = {**production(EMPLOIPLUS_DATA_DIR=str(tmp_path)), "DEBUG": "1"}
    first, second = manage(*show, **debug), manage(*show, **debug)
    assert first.returncode == 0, first.stderr
    secret = first.stdout.strip().splitlines()[-1]
    assert (
        secret.startswith("emploiplus-dev-") and len(secret) > 40 and second.stdout.strip().splitlines()[-1] == secret
    )
    assert stat.S_IMODE((tmp_path / "dev-jwt-secret").stat().st_mode) == 0o600


def test_it_seeds_the_demo_data_once_and_signs_tokens_for_demo_users(settings, capsys):
    from django.core.management import call_command

    from accounts.models import User
    from accounts.tokens import verify_token
    from emploiplus import demo
    from feed.models import Post
    from matching.models import Job
    from messaging.models import Conversation, Message

    settings.DEBUG = True
    call_command("dev_seed")
    first = capsys.readouterr().out
    assert re.search(r"Admin +http://127\.0\.0\.1:\d+/admin/ +admin@emploiplus\.local / \S{12,}", first)
    assert "dev_token --as camille" in first
    counts = (User.objects.count(), Job.objects.count(), Post.objects.count(), Message.objects.count())
    assert counts[0] >= 45 and counts[1] == 23 and counts[2] >= 60 and counts[3] == 3
    (conversation,) = Conversation.objects.all()
    assert {p.email for p in conversation.participants.all()} == {
        "camille.martin@demo.emploiplus.local",
        "sophie.leroy@demo.emploiplus.local",
    }
    call_command("dev_seed")
    again = capsys.readouterr().out
    assert again.startswith("Demo data present.") and "admin@emploiplus.local /" not in again
    assert (User.objects.count(), Job.objects.count(), Post.objects.count(), Message.objects.count()) == counts

    for who, email in [
        ("candidate", "camille.martin@demo.emploiplus.local"),
        ("company", "sophie.leroy@demo.emploiplus.local"),
        ("ines", "ines.haddad@demo.emploiplus.local"),
        ("karim.benali@demo.emploiplus.local", "karim.benali@demo.emploiplus.local"),
    ]:
        call_command("dev_token", "--as", who)
        claims = verify_token(capsys.readouterr().out.strip())
        assert claims.email == email and claims.sub == str(User.objects.get(email=email).pk)
    call_command("dev_token", "--as", "admin")
    assert verify_token(capsys.readouterr().out.strip()).app_metadata["role"] == "admin"
    with pytest.raises(Exception, match="no active user 'nobody'"):
        call_command("dev_token", "--as", "nobody")
    assert demo.is_seeded()


def test_it_serves_a_start_page_linking_what_to_try(client, settings):
    settings.DEBUG = True
    page = client.get("/").content.decode()
    for href in ("/api/docs/", "/admin/", "/admin/rq/", "/dev/chat/"):
        assert f'href="{href}"' in page
    settings.DEBUG = False
    page = client.get("/").content.decode()
    assert 'href="/api/docs/"' in page and "/dev/chat/" not in page and "dev_token" not in page


# --- make run, then the README's steps as written --------------------------------------------
def readme_steps() -> str:
    text = (BASE_DIR / "README.md").read_text()
    section = text[text.index("### First ten minutes") :]
    return section[section.index("```sh\n") + 6 : section.index("\n```", section.index("```sh\n"))]


@pytest.mark.slow
def test_a_newcomer_sees_a_message_and_a_job_notification_arrive(tmp_path):
    port = free_port()
    data = tmp_path / "data"
    stack = subprocess.Popen(
        [sys.executable, "-m", "emploiplus.devstack", "run"],
        cwd=BASE_DIR,
        env=clean_env(
            DATABASE_URL=database_url_for_tests(),
            REDIS_URL=os.environ["REDIS_URL"],
            EMPLOIPLUS_DATA_DIR=str(data),
            PORT=str(port),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    listener = None
    try:
        for _ in range(600):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    if response.status == 200 and (data / "devstack.env").exists():
                        break
            except OSError:
                pass
            assert stack.poll() is None, stack.communicate()[0]
            time.sleep(0.2)
        assert (data / "dev-jwt-secret").exists()  # no SUPABASE_JWT_SECRET: the development one
        # A new terminal knows only the checkout (its data directory): no URL, no secret, no DEBUG.
        terminal = clean_env(EMPLOIPLUS_DATA_DIR=str(data))
        script = readme_steps().replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        listen, rest = script.split("\n\n", 1)
        listen_command = [line for line in listen.splitlines() if not line.startswith("#")]
        listener = subprocess.Popen(
            ["bash", "-c", "\n".join(listen_command)],
            cwd=BASE_DIR,
            env=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        assert "listening as camille.martin@demo.emploiplus.local" in listener.stdout.readline()
        steps = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", rest], cwd=BASE_DIR, env=terminal, capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip
        assert steps.returncode == 0, steps.stderr
        assert '"status":"active"' in steps.stdout.replace(" ", "")
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (
            any(line.startswith("notifications notification ") for line in seen)
            and any(line.startswith("messages new_message ") for line in seen)
        ):
            line = listener.stdout.readline()
            assert line, f"the listener stopped: {seen}"
            seen.append(line.strip())
        (message,) = [line for line in seen if line.startswith("messages new_message ")]
        assert "Bonjour Camille !" in message
        (notification,) = [line for line in seen if line.startswith("notifications notification ")]
        assert '"type": "job_match"' in notification and "Développeuse Django" in notification
    finally:
        if listener is not None and listener.poll() is None:
            os.killpg(listener.pid, signal.SIGTERM)
            listener.wait(30)
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGINT)
        try:
            output, _ = stack.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(stack.pid, signal.SIGKILL)
            output, _ = stack.communicate()
    assert stack.returncode == 0, output
    assert "first run: demo data added" in output and output.count("admin@emploiplus.local /") == 1
    assert not (data / "devstack.env").exists()
