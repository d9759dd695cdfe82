"""Development-only files under `.data/` (EMPLOIPLUS_DATA_DIR), read by settings.py.

- `dev-jwt-secret`: the HS256 secret that stands in for SUPABASE_JWT_SECRET when it is unset
  and DEBUG is on, so `make run` works without a Supabase project and `manage.py dev_token`
  can sign tokens the server accepts. Generated once (0600), shared by every process of the
  checkout. Its value starts with DEV_SECRET_PREFIX: with DEBUG off, settings refuse to start
  with such a secret.
- `devstack.env`: written by `make run` while it runs (DATABASE_URL, REDIS_URL, DEBUG, PORT of
  the stack it started, embedded servers included), removed when it stops. A `manage.py`
  command typed in another terminal of the checkout reads it when DATABASE_URL is unset,
  so `python manage.py dev_token --as …` talks to the running stack.

No Django imports: settings.py imports this module.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

DEV_SECRET_PREFIX = "emploiplus-dev-"  # noqa: S105 - a marker, not a secret
DEV_SECRET_FILE = "dev-jwt-secret"  # noqa: S105 - a file name
STACK_ENV_FILE = "devstack.env"


def dev_jwt_secret(data_dir: Path) -> str:
    """The checkout's development JWT secret, created on first use (atomically: the first of
    several processes starting together wins, the others read its value)."""
    path = data_dir / DEV_SECRET_FILE
    with contextlib.suppress(FileNotFoundError):
        value = path.read_text().strip()
        if value.startswith(DEV_SECRET_PREFIX):
            return value
    data_dir.mkdir(parents=True, exist_ok=True)
    value = DEV_SECRET_PREFIX + secrets.token_urlsafe(32)
    tmp = data_dir / f".{DEV_SECRET_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    try:
        os.link(tmp, path)  # fails if another process created it meanwhile
    except FileExistsError:
        value = path.read_text().strip()
    finally:
        tmp.unlink()
    return value


def is_dev_secret(value: str) -> bool:
    return value.startswith(DEV_SECRET_PREFIX)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def running_stack_env(data_dir: Path) -> Path | None:
    """`devstack.env` when the `make run` that wrote it is still running."""
    path = data_dir / STACK_ENV_FILE
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    pids = [line.split("=", 1)[1] for line in lines if line.startswith("DEVSTACK_PID=")]
    if not pids or not pids[0].isdigit() or not _alive(int(pids[0])):
        return None
    return path


def write_stack_env(data_dir: Path, values: dict[str, str]) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / STACK_ENV_FILE
    tmp = data_dir / f".{STACK_ENV_FILE}.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write("# Written by `make run` while it runs; removed when it stops.\n")
        handle.write(f"DEVSTACK_PID={os.getpid()}\n")
        for name, value in values.items():
            handle.write(f"{name}={value}\n")
    tmp.replace(path)
    return path


def remove_stack_env(data_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (data_dir / STACK_ENV_FILE).unlink()
