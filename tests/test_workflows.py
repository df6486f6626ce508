"""The GitHub workflows: actionlint finds nothing, and they do what the team relies on.

actionlint runs for real (it also runs shellcheck on every `run:` script when shellcheck is
installed, which `make test` ensures). The structural checks pin the promises a reviewer can't
see from a green run: each stack is previewed with the policy pack, production waits for its
environment's approval, and no secret is written into a file.
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
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
STACKS = {"test", "production"}
SECRET_REF = re.compile(r"^\$\{\{\s*secrets\.[A-Z][A-Z0-9_]*\s*\}\}$")


def _actionlint() -> str:
    found = shutil.which("actionlint", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if not found:
        pytest.fail("actionlint is not installed: `make test` installs it from requirements-dev.txt")
    return found


def _load(name: str) -> dict:
    document = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _steps(job: dict, action: str) -> list[dict]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(action + "@")]


def test_the_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["main.yml", "pull-request.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_finds_nothing(path):
    result = subprocess.run([_actionlint(), "-no-color", "-format", "{{json .}}", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, "\n".join(
        f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in findings) or result.stderr


def test_pull_requests_run_the_offline_gate_without_secrets():
    workflow = _load("pull-request.yml")
    assert "pull_request" in workflow["on"]
    offline = workflow["jobs"]["offline"]
    commands = "\n".join(s.get("run", "") for s in offline["steps"])
    assert ".ci/run" in commands and "make plan" in commands
    assert "secrets." not in yaml.safe_dump(offline)
    [python] = _steps(offline, "actions/setup-python")
    assert python["with"]["python-version"] == "3.11"


def test_each_stack_is_previewed_with_the_policy_pack_and_a_pr_comment():
    preview = _load("pull-request.yml")["jobs"]["preview"]
    assert set(preview["strategy"]["matrix"]["stack"]) == STACKS
    assert preview["needs"] == "offline"
    assert "matrix.stack" in preview["concurrency"]["group"]
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write"}
    [pulumi] = _steps(preview, "pulumi/actions")
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["policyPacks"] == "policies"
    assert pulumi["with"]["comment-on-pr"] is True


def test_main_deploys_test_then_production_behind_its_environment():
    jobs = _load("main.yml")["jobs"]
    assert _load("main.yml")["on"] == {"push": {"branches": ["main"]}}
    ups = {}
    for name, job in jobs.items():
        for step in _steps(job, "pulumi/actions"):
            assert step["with"]["command"] == "up" and step["with"]["policyPacks"] == "policies"
            ups[step["with"]["stack-name"]] = (name, job)
    assert set(ups) == STACKS
    test_name, test_job = ups["test"]
    production_name, production_job = ups["production"]
    assert test_job["needs"] == "offline"
    assert production_job["needs"] == test_name
    assert production_job["environment"]["name"] == "production"
    for stack, (_, job) in ups.items():
        assert stack in job["concurrency"]["group"]
        assert job["concurrency"]["cancel-in-progress"] is False, "never cancel an update half-way"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_minimal(path):
    workflow = _load(path.name)
    assert workflow["permissions"] == {"contents": "read"}
    for job in workflow["jobs"].values():
        assert set(job.get("permissions", {}).items()) <= {("contents", "read"),
                                                            ("pull-requests", "write")}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_secrets_come_only_from_repository_or_environment_secrets(path):
    text = path.read_text()
    for pattern in (r"-----BEGIN", r"\bpul-[0-9a-f]{20,}", r"\bgh[pousr]_[A-Za-z0-9]{20,}",
                    r"\beyJ[A-Za-z0-9_-]{16,}", r"(?i)passphrase\s*:"):
        assert not re.search(pattern, text), f"{path.name} holds something secret-looking: {pattern}"

    def walk(node, key=""):
        if isinstance(node, dict):
            for k, v in node.items():
                yield from walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                yield from walk(v, key)
        else:
            yield key, node

    for key, value in walk(_load(path.name)):
        if re.search(r"TOKEN|SECRET|PASSWORD|PRIVATE|KEY", key, re.I) and key != "github-token":
            assert SECRET_REF.match(str(value)), f"{path.name}: {key} must come from secrets"
        if key == "github-token":
            assert value == "${{ secrets.GITHUB_TOKEN }}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actions_are_pinned_to_a_release(path):
    for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
        assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", uses), f"{uses} is not pinned"
