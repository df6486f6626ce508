"""`python -m tools.policy_check`'s arguments and errors, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.policy_check", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_bad_arguments_are_one_line_each_and_exit_2(tmp_path):
    not_json = tmp_path / "policy.json"
    not_json.write_text("{levels: all}")
    bad_level = tmp_path / "level.json"
    bad_level.write_text('{"all": "strict"}')
    cases = {
        ("staging",): "unknown stack 'staging'; choose from production, test",
        ("--config", str(tmp_path / "missing.json")): "No such file or directory",
        ("--config", str(not_json)): "not JSON",
        ("--config", str(bad_level)): "strict",
        ("--project-dir", str(tmp_path)): "no Pulumi.yaml",
    }
    for args, words in cases.items():
        result = _check(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stdout == "", (args, result.stdout)
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and words in lines[0], (args, lines)
        assert lines[0].startswith("python -m tools.policy_check: ")
