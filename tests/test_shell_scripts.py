"""Every shell file the program ships (or the benchmarks run, or the tests use as a fake tool) is
shellcheck-clean and strict."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "components/files").rglob("*.sh"))
# The fake tools have no extension: they stand in for `docker`, `apt-get` and the like.
FAKES = sorted((ROOT / "tests/fixtures/bin").iterdir())
ALL_SHELL = sorted({*SHIPPED, *(ROOT / "bench").glob("*.sh"), *(ROOT / ".ci").glob("*.sh"),
                    ROOT / ".ci/run", *FAKES})
# The seed script is kept as it was, faults included, so the benchmark can compare with it.
AS_FOUND = {ROOT / "bench/original-upload-logs.sh"}


def test_shellcheck_is_installed():
    assert shutil.which("shellcheck"), "shellcheck is missing: run `bash .ci/system-packages.sh`"


def test_there_are_shipped_scripts():
    names = {p.name for p in SHIPPED}
    assert {"bootstrap.sh", "firewall.sh", "upload-logs-to-r2.sh"} <= names, names


def test_fake_tools_are_executable_shell():
    """tests/ops_helpers.py puts them on PATH as they are; a Python or mode-less fake would run
    unlinted or not at all."""
    assert {"docker", "trivy", "apt-get", "dpkg", "dpkg-query", "systemctl", "logger"} <= \
        {p.name for p in FAKES}
    for path in FAKES:
        assert os.access(path, os.X_OK), f"{path} is not executable"


@pytest.mark.parametrize("path", ALL_SHELL, ids=lambda p: str(p.relative_to(ROOT)))
def test_shellcheck_clean(path):
    result = subprocess.run(["shellcheck", "-x", "-S", "style", str(path)], capture_output=True,
                            text=True, timeout=60, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", [p for p in ALL_SHELL if p not in AS_FOUND],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_strict_mode(path):
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n"), "bash, found through PATH"
    assert re.search(r"^set -euo pipefail$", text, re.M), "set -euo pipefail"
