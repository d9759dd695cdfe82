"""The frontend's Socket.IO client (socket.io-client, from the npm registry), installed into
`<data dir>/node` — never committed. The tests and benchmarks run it under Node; the DEBUG
chat page (`/dev/chat/`) serves its browser bundle. Settings-free: `make run` calls it before
Django is set up.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent / "sio" / "js"
BROWSER_BUNDLE = Path("node_modules") / "socket.io-client" / "dist" / "socket.io.min.js"


def install(data_dir: Path) -> Path:
    """`npm ci` from emploiplus/sio/js into `data_dir/node` unless that lock is installed
    already; returns its node_modules. RuntimeError without node and npm."""
    if not (shutil.which("node") and shutil.which("npm")):
        raise RuntimeError("node and npm are needed (Node 20)")
    target = Path(data_dir) / "node"
    lock = (PACKAGE / "package-lock.json").read_bytes()
    stamp = target / f".installed-{hashlib.sha256(lock).hexdigest()[:16]}"
    if not stamp.exists():
        target.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(PACKAGE / name, target / name)
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],  # noqa: S607 - npm from PATH
            cwd=target,
            check=True,
            timeout=300,
        )
        for old in target.glob(".installed-*"):
            old.unlink()
        stamp.touch()
    return target / "node_modules"


def browser_bundle(data_dir: Path) -> Path:
    return Path(data_dir) / "node" / BROWSER_BUNDLE
