"""`make test` must not pass on checks that did not run: no tests collected, or tests skipped."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_pytest(tmp_path: Path, body: str, **env: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(body)
    # -p tests.conftest loads this suite's hooks for a file outside tests/.
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "tests.conftest", "-c", os.devnull,
         "--rootdir", str(tmp_path), str(tmp_path)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True, text=True, timeout=120)


SKIPPING = "import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('tool missing')\n"


def test_a_skip_fails_under_make_test(tmp_path):
    result = run_pytest(tmp_path, SKIPPING, JAMJAM_NO_SKIP="1")
    assert result.returncode == 1, result.stdout
    assert "skipped under JAMJAM_NO_SKIP=1 (make test)" in result.stdout
    assert "tool missing" in result.stdout


def test_a_skip_is_only_a_skip_for_a_bare_pytest(tmp_path):
    result = run_pytest(tmp_path, SKIPPING, JAMJAM_NO_SKIP="")
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout


def test_make_test_sets_the_switch_and_fails_on_no_tests():
    recipe = (ROOT / "Makefile").read_text().split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "JAMJAM_NO_SKIP=1 $(PY) -m pytest" in recipe
    assert "$$status -eq 5" in recipe and "exit 1" in recipe
