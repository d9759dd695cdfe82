"""Deploy as code: render.yaml, Procfile, Dockerfile and `make run` run the process types of
emploiplus.processes, and each process type, started as the blueprint starts it, comes up,
does its job and stops cleanly on SIGTERM.

The process tests build each service's environment from render.yaml alone (its variable
names and values; the secrets Render would ask for get test values; Key Value → the test
Redis; Supabase's DATABASE_URL → the test database), with production settings (DEBUG=0).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest
import yaml

from accounts.testing import token_for
from emploiplus import processes
from emploiplus.testing import BASE_DIR, database_url_for_tests, free_port

BLUEPRINT = yaml.safe_load((BASE_DIR / "render.yaml").read_text())
SERVICES = {s["name"]: s for s in BLUEPRINT["services"]}
GROUPS = {g["name"]: g for g in BLUEPRINT.get("envVarGroups", [])}
# CONTRACT §2 (the fallbacks REDIS_HOST/…, ONE_SIGNAL_* and EMAIL_* are not needed there).
CONTRACT_VARIABLES = [
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "CORS_ALLOWED_ORIGINS",
    "PORT",
    "SUPABASE_URL",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_JWKS_URL",
    "SUPABASE_WEBHOOK_SECRET",
    "SUPABASE_SERVICE_ROLE_KEY",
    "ONESIGNAL_APP_ID",
    "ONESIGNAL_API_KEY",
    "ONESIGNAL_API_URL",
    "JWT_SECRET",
    "EMAIL_URL",
    "MATCH_MIN_SCORE",
]
SECRETS = [
    "DATABASE_URL",
    "SECRET_KEY",
    "SUPABASE_JWT_SECRET",
    "SUPABASE_WEBHOOK_SECRET",
    "SUPABASE_SERVICE_ROLE_KEY",
    "ONESIGNAL_API_KEY",
    "JWT_SECRET",
    "EMAIL_URL",
    "SENTRY_DSN",
    "METRICS_TOKEN",
]
TEST_JWT_SECRET = os.environ["SUPABASE_JWT_SECRET"]  # settings_test's, so token_for() signs for the server


def procfile() -> dict[str, str]:
    entries = {}
    for line in (BASE_DIR / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, pending = [], ""
    for raw in (BASE_DIR / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line[:-1].strip()}" if line.endswith("\\") else f"{pending} {line}"
        if not line.endswith("\\"):
            joined.append(pending.strip())
            pending = ""
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def service_variables(service: dict) -> list[dict]:
    variables = []
    for entry in service.get("envVars", []):
        if "fromGroup" in entry:
            variables += GROUPS[entry["fromGroup"]]["envVars"]
        else:
            variables.append(entry)
    return variables


def test_it_has_one_command_per_process_type_everywhere():
    commands = {name: p.command for name, p in processes.PROCESS_TYPES.items()}
    assert procfile() == commands
    started = {}
    for service in BLUEPRINT["services"]:
        if service["type"] == "keyvalue":
            continue
        started[service["name"]] = service["startCommand"]
        if "preDeployCommand" in service:
            assert service["preDeployCommand"] == commands["release"]
    assert started == {
        "emploiplus-web": commands["web"],
        "emploiplus-worker-notifications": commands["worker-notifications"],
        "emploiplus-worker-emails": commands["worker-emails"],
        "emploiplus-worker-sms": commands["worker-sms"],
        "emploiplus-cron": commands["cron"],
    }
    cmd = [args for instruction, args in dockerfile_instructions() if instruction == "CMD"]
    assert [" ".join(json.loads(cmd[-1]))] == [commands["web"]]
    # make run starts the same types through the same module.
    devstack = (BASE_DIR / "emploiplus" / "devstack.py").read_text()
    for args in ('_processes("release")', '_processes("web", "--host", "127.0.0.1")', '_processes("worker")'):
        assert args in devstack
    assert '_processes("cron")' in devstack


def test_the_blueprint_declares_every_contract_variable_and_asks_for_secrets():
    web = SERVICES["emploiplus-web"]
    variables = {v["key"]: v for v in service_variables(web)}
    assert set(CONTRACT_VARIABLES) <= set(variables)
    for name in SECRETS:
        entry = variables[name]
        assert entry.get("sync") is False or entry.get("generateValue") is True, name
        assert "value" not in entry, name
    assert variables["DATABASE_URL"].get("sync") is False  # Supabase's connection string, given by the user
    assert variables["DEBUG"]["value"] == "0"
    assert web["healthCheckPath"] == "/readyz"
    (redis,) = [s for s in BLUEPRINT["services"] if s["type"] == "keyvalue"]
    assert redis["maxmemoryPolicy"] == "noeviction"
    assert variables["REDIS_URL"]["fromService"] == {
        "type": "keyvalue",
        "name": redis["name"],
        "property": "connectionString",
    }
    # Every other service gets what it needs from the web service or the group, no second prompt.
    for service in BLUEPRINT["services"]:
        if service["type"] != "worker":
            continue
        for entry in service_variables(service):
            assert "sync" not in entry, (service["name"], entry["key"])
            source = entry.get("fromService", {})
            if "envVarKey" in source:
                assert source["name"] == web["name"] and source["envVarKey"] in variables


def test_the_dockerfile_is_multi_stage_slim_non_root_and_collects_static(tmp_path):
    instructions = dockerfile_instructions()
    stages = [args for instruction, args in instructions if instruction == "FROM"]
    assert len(stages) >= 2 and all("-slim" in stage.split()[0] for stage in stages)
    users = [args for instruction, args in instructions if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    user_at = max(i for i, (instruction, _) in enumerate(instructions) if instruction == "USER")
    assert [i for i, (instruction, _) in enumerate(instructions) if instruction == "CMD"][-1] > user_at
    (collect,) = [args for instruction, args in instructions if instruction == "RUN" and "collectstatic" in args]
    # Docker cannot build here (no engine): run the image's collectstatic step as written, in
    # a scratch data directory, to prove the settings it gives are enough.
    step = collect.split("&&")[0]
    env = {"PATH": os.environ["PATH"], "EMPLOIPLUS_DATA_DIR": str(tmp_path), "HOME": str(tmp_path)}
    result = subprocess.run(
        ["bash", "-c", step.replace("python ", f"{shlex.quote(sys.executable)} ", 1)],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "static" / "admin" / "css" / "base.css").exists()


# --- the process types, started as the blueprint starts them --------------------------------
def blueprint_env(service_name: str, **overrides: str) -> dict[str, str]:
    """The environment Render would give `service_name`, with test values for the secrets."""
    values: dict[str, str] = {}
    web = SERVICES["emploiplus-web"]
    given = {  # what the operator would type at the prompts (sync: false)
        "DATABASE_URL": database_url_for_tests(),
        "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
        "SUPABASE_WEBHOOK_SECRET": "test-webhook-secret",
        "ALLOWED_HOSTS": "127.0.0.1",
    }
    generated: dict[str, str] = {}

    def resolve(entry: dict, service: dict) -> str | None:
        if "value" in entry:
            return str(entry["value"])
        if entry.get("generateValue"):
            return generated.setdefault(entry["key"], secrets.token_urlsafe(32))
        if entry.get("sync") is False:
            return given.get(entry["key"])
        source = entry["fromService"]
        if source["type"] == "keyvalue":
            return os.environ["REDIS_URL"]
        assert source["name"] == web["name"]
        (origin,) = [e for e in service_variables(web) if e.get("key") == source["envVarKey"]]
        return resolve(origin, web)

    service = SERVICES[service_name]
    for entry in service_variables(service):
        value = resolve(entry, service)
        if value is not None:
            values[entry["key"]] = value
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", str(BASE_DIR)), "LANG": "C.UTF-8", **values}
    env.pop("PYTHON_VERSION", None)  # Render's build setting, not the app's
    env.update(overrides)
    return env


@contextlib.contextmanager
def started(service_name: str, **overrides: str) -> Iterator[subprocess.Popen]:
    """The service's start command, as the blueprint gives it; killed (group) if still running at the end."""
    command = shlex.split(SERVICES[service_name]["startCommand"])
    assert command[0] == "python"
    proc = subprocess.Popen(
        [sys.executable, *command[1:]],
        cwd=BASE_DIR,
        env=blueprint_env(service_name, **overrides),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    """SIGTERM to the process only (as a platform does), then its output."""
    proc.send_signal(signal.SIGTERM)
    try:
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, output


def wait_until(check, what: str, proc: subprocess.Popen, seconds: float = 60):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode} before {what}:\n{proc.stdout.read()}")
        result = check()
        if result:
            return result
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError(f"{what} did not happen:\n{proc.communicate()[0]}")


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()
    except OSError:
        return 0, {}, b""


def json_lines(output: str) -> list[dict]:
    """Every line of a LOG_FORMAT=json process is one JSON object."""
    records = []
    for line in output.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except ValueError:
                raise AssertionError(f"not a JSON line: {line!r}") from None
    return records


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_serves_the_web_process_type_from_the_blueprint_and_stops_on_sigterm(alice):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with started("emploiplus-web", PORT=str(port)) as proc:
        wait_until(lambda: get(f"{base}/readyz")[0] == 200, "/readyz = 200", proc)
        # The probe answers whatever Host the platform's checker uses (not in ALLOWED_HOSTS).
        assert get(f"{base}/readyz", {"Host": "10.0.0.7:10000"})[0] == 200
        status, headers, body = get(f"{base}/api/me/", {"Authorization": f"Bearer {token_for(alice)}"})
        assert status == 200 and json.loads(body)["email"] == alice.email
        request_id = headers["x-request-id"]
        assert get(f"{base}/admin/login/", {"Host": "evil.example"})[0] == 400  # other paths keep the host check
        code, output = stop(proc)
    assert code == 0, output
    records = json_lines(output)
    (access,) = [r for r in records if r.get("logger") == "emploiplus.access" and r.get("path") == "/api/me/"]
    assert access["request_id"] == request_id and access["user_id"] == str(alice.pk) and access["status"] == 200
    messages = [r.get("message", "") for r in records]
    assert f"web: 2 server process(es) on 0.0.0.0:{port}" in messages  # WEB_CONCURRENCY of the blueprint
    assert "SIGTERM: stopping 2 server process(es)" in messages


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("queue", ["notifications", "emails", "sms"])
def test_it_runs_a_pool_of_workers_per_queue_and_stops_them_on_sigterm(queue):
    import django_rq
    from rq.worker import Worker

    service = f"emploiplus-worker-{queue}"
    variables = {v["key"]: v for v in service_variables(SERVICES[service])}
    size = int(variables[f"QUEUE_CONCURRENCY_{queue.upper()}"]["value"])
    rq_queue = django_rq.get_queue(queue)

    def registered():
        workers = Worker.all(connection=rq_queue.connection, queue=rq_queue)
        return len(workers) == size and all(w.queue_names() == [queue] for w in workers)

    with started(service) as proc:
        wait_until(registered, f"{size} workers registered on {queue}", proc)
        job = rq_queue.enqueue("emploiplus.tests.jobs_for_tests.add", 2, 3)
        wait_until(lambda: job.get_status(refresh=True) == "finished", "the job ran", proc)
        assert job.return_value() == 5
        code, output = stop(proc)
    assert code == 0, output
    assert Worker.count(connection=rq_queue.connection, queue=rq_queue) == 0
    json_lines(output)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_it_runs_the_cron_process_type_with_its_jobs_registered():
    from rq.cron import CronScheduler

    from emploiplus.redis import get_redis

    connection = get_redis()
    with started("emploiplus-cron") as proc:
        schedulers = wait_until(lambda: CronScheduler.all(connection), "a cron scheduler registered", proc)
        (scheduler,) = schedulers
        assert sorted(job.func_name for job in scheduler.get_jobs()) == [
            "matching.jobs.refresh_materialized_views",
            "matching.jobs.sweep_embeddings",
            "matching.jobs.sweep_pending_jobs",
            "notifications.jobs.notifications_sweep",
            "webhooks.jobs.sweep_events",
        ]
        code, output = stop(proc)
    assert code == 0, output
    assert CronScheduler.all(connection) == []
    json_lines(output)


@pytest.mark.django_db(transaction=True)
def test_it_runs_the_release_command_of_the_blueprint():
    env = blueprint_env("emploiplus-web")
    command = shlex.split(SERVICES["emploiplus-web"]["preDeployCommand"])
    result = subprocess.run(
        [sys.executable, *command[1:]], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "No migrations to apply" in result.stdout


def test_it_refuses_a_busy_port_in_one_line():
    from emploiplus.servers import listening_socket

    with listening_socket("127.0.0.1", 0) as busy:
        port = busy.getsockname()[1]
        env = blueprint_env("emploiplus-web", PORT=str(port), DATABASE_URL="postgres://x@127.0.0.1:1/x")
        result = subprocess.run(
            [sys.executable, "-m", "emploiplus.processes", "web", "--host", "127.0.0.1"],
            cwd=BASE_DIR,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 2
    assert re.fullmatch(r"configuration error: cannot listen on 127\.0\.0\.1:\d+ .*PORT.*\n", result.stderr)


@pytest.mark.parametrize(("server", "module"), [("uvicorn", "emploiplus.servers"), ("daphne", "daphne")])
def test_it_runs_the_asgi_server_chosen_in_one_place(server, module, monkeypatch):
    monkeypatch.setenv("ASGI_SERVER", server)
    argv = processes.WEB_SERVER(type("Sock", (), {"fileno": lambda self: 7})(), python="py")
    assert argv[:3] == ["py", "-m", module] and argv[argv.index("--fd") + 1] == "7"
    assert argv[-1] == "emploiplus.asgi:application"
    assert ("-v" in argv) == (server == "daphne")  # daphne's own access log off
