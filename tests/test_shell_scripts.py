"""Every shell file the program ships (or the benchmarks run) is shellcheck-clean and strict."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted((ROOT / "components/files").rglob("*.sh"))
ALL_SHELL = sorted({*SHIPPED, *(ROOT / "bench").glob("*.sh"), *(ROOT / ".ci").glob("*.sh"),
                    ROOT / ".ci/run"})
# The seed script is kept as it was, faults included, so the benchmark can compare with it.
AS_FOUND = {ROOT / "bench/original-upload-logs.sh"}


def test_shellcheck_is_installed():
    assert shutil.which("shellcheck"), "shellcheck is missing: run `bash .ci/system-packages.sh`"


def test_there_are_shipped_scripts():
    names = {p.name for p in SHIPPED}
    assert {"bootstrap.sh", "firewall.sh", "upload-logs-to-r2.sh"} <= names, names


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
