"""docs/policies.md's recipe for adding a policy rule, walked for real.

The two files the recipe shows (a rule module and its test file) are taken from the doc itself,
written into a copy of the repository together with a mandatory twin of the rule, and the
policy tests run there in a fresh interpreter. The copy must pass all of them: the new rules'
own cases, and every pack-wide expectation (baselines, breaking cases per rule, levels, the
running analyzer, the real stacks), which is what "a one-file change" promises. The copy also
shows the pack picking the rules up at the levels their files give, in the analyzer and in the
offline runner.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RULE = "container-volumes-named"
STRICT = "container-volumes-named-strict"


def _readme_files() -> dict[str, str]:
    """docs/policies.md's "Add a rule" code blocks, keyed by the path on their first line."""
    doc = (ROOT / "docs" / "policies.md").read_text()
    section = doc.split("\n## Add a rule\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n# (\S+)\n(.*?)```", section, re.DOTALL)
    return {path: body for path, body in blocks}


def _strict(text: str) -> str:
    return (text.replace(f'"{RULE}"', f'"{STRICT}"')
                .replace("EnforcementLevel.ADVISORY", "EnforcementLevel.MANDATORY"))


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    files = _readme_files()
    assert set(files) == {"policies/jamjam_policies/volume_names.py",
                          "tests/test_policies_volume_names.py"}, "the recipe shows both files"
    target = tmp_path_factory.mktemp("recipe") / "repo"
    shutil.copytree(ROOT, target, ignore=shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", ".pytest_cache", "venv", "node_modules"))
    for path, text in files.items():
        (target / path).write_text(text)
        twin = path.replace("volume_names", "volume_names_strict")
        (target / twin).write_text(_strict(text))
    return target


def _run(copy: Path, *args: str, timeout: int = 540) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run([sys.executable, *args], cwd=copy, env=env, capture_output=True,
                          text=True, timeout=timeout)


PROBE = """
import json, sys
sys.path.insert(0, "policies")
from types import SimpleNamespace
from jamjam_policies import ALL_POLICIES
from tests.policy_fixtures import BASELINES, CONTAINER, ECHO, changed
from tools import policy_check

resources = [SimpleNamespace(type=t, name=n, urn=f"urn:pulumi:production::jamjam::{t}::{n}",
                             inputs=i, parent=None, provider=None)
             for n, (t, i) in BASELINES.items()]
broken = changed(ECHO, "volumes", [{"containerPath": "/data"}])
resources.append(SimpleNamespace(type=CONTAINER, name="anon", inputs=broken, parent=None,
                                 provider=None, urn="urn:pulumi:production::jamjam::x::anon"))
print(json.dumps({
    "levels": {p.name: p.enforcement_level.value for p in ALL_POLICIES},
    "reported": sorted({(v.policy, v.level) for v in policy_check.check("production", resources)}),
}))
"""


def test_the_pack_picks_the_new_rules_up_at_their_levels(copy):
    result = _run(copy, "-c", PROBE, timeout=120)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe["levels"][RULE] == "advisory" and probe["levels"][STRICT] == "mandatory"
    assert [RULE, "advisory"] in probe["reported"] and [STRICT, "mandatory"] in probe["reported"]
    # Nothing else changed level: every other rule is where the original pack has it.
    from tests.test_policies import LEVEL
    assert {k: v for k, v in probe["levels"].items() if k not in (RULE, STRICT)} == LEVEL


def test_the_policy_suite_stays_green_with_the_new_rules(copy):
    suite = sorted(str(p.relative_to(copy)) for p in (copy / "tests").glob("test_policies*.py")
                   if p.name != Path(__file__).name)  # this file would copy the copy
    assert "tests/test_policies_volume_names_strict.py" in suite
    result = _run(copy, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suite)
    tail = "\n".join(result.stdout.splitlines()[-25:])
    assert result.returncode == 0, f"{tail}\n{result.stderr[-2000:]}"
    collected = _run(copy, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider",
                     "tests/test_policies_volume_names.py", "tests/test_policies_volume_names_strict.py",
                     "tests/test_policies.py", timeout=120)
    assert "test_policies_volume_names_strict.py::test_each_way_to_break_it_is_reported" in collected.stdout
    assert f"test_compliant_baseline_passes[{STRICT}-jamjam-echo]" in collected.stdout


def test_a_rule_file_without_policies_is_refused_by_name(copy):
    (copy / "policies/jamjam_policies/half_done.py").write_text('"""Nothing yet."""\n')
    try:
        result = _run(copy, "-c", "import sys; sys.path.insert(0, 'policies'); import jamjam_policies",
                      timeout=120)
    finally:
        (copy / "policies/jamjam_policies/half_done.py").unlink()
    assert result.returncode != 0
    assert ("policies/jamjam_policies/half_done.py is a rule module but defines no POLICIES list"
            in result.stderr)
