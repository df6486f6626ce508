"""`make test` and `make check` must not pass on checks that did not run: no tests collected,
or tests skipped. `make check` leaves out the whole rehearsals and nothing else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def make(target: str, *, addopts: str) -> subprocess.CompletedProcess:
    """`make TARGET` as a developer runs it, this venv's python, PYTEST_ADDOPTS added to
    pytest's arguments. -o: the dev requirements count as installed (the suite runs on them).
    One worker for `make check`: what is checked here is the recipe, not the spread."""
    return subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.requirements-dev", target,
         f"PY={sys.executable}", "CHECK_WORKERS=1"],
        cwd=ROOT, env={**os.environ, "PYTEST_ADDOPTS": addopts, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("target", ["test", "check"])
def test_make_fails_when_pytest_collects_nothing(target):
    result = make(target, addopts="--ignore-glob=*/test_*.py")
    assert result.returncode != 0, result.stdout
    assert f"make {target}: pytest collected no tests" in result.stderr


@pytest.mark.parametrize("target", ["test", "check"])
def test_make_counts_a_skip_as_a_failure(target, tmp_path):
    (tmp_path / "test_sample.py").write_text(SKIPPING)
    result = make(target, addopts=f"-p tests.conftest --rootdir {tmp_path} {tmp_path}")
    assert result.returncode != 0, result.stdout
    assert "skipped under JAMJAM_NO_SKIP=1 (make test)" in result.stdout
    assert "tool missing" in result.stdout


def _collected(result: subprocess.CompletedProcess) -> set[str]:
    assert result.returncode == 0, result.stdout + result.stderr
    return {line for line in result.stdout.splitlines() if line.startswith("tests/")}


def test_make_check_runs_everything_but_the_rehearsals_and_make_test_everything():
    marked = _collected(subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         "-m", "rehearsal"], cwd=ROOT, capture_output=True, text=True, timeout=300))
    # Each whole rehearsal, jamjam's and the examples', is one of them (a few minutes each).
    for name in ("test_rehearsal_run.py::test_a_whole_rehearsal_passes_and_leaves_nothing",
                 "test_rehearsal_run.py::test_ctrl_c_mid_apply_cleans_up",
                 "test_rehearsal_examples.py::test_a_whole_example_rehearsal_passes_and_leaves_nothing"):
        assert any(test.startswith(f"tests/{name}") for test in marked), (name, marked)
    everything = _collected(make("test", addopts="--collect-only -q -p no:cacheprovider"))
    check = _collected(make("check", addopts="--collect-only -q -p no:cacheprovider"))
    assert marked < everything
    assert check == everything - marked
