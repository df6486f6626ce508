"""README's recipes walked as a user would: adding a container to jamjam is its spec in
jamjam_app.py plus its image pin in each stack file, and nothing else (no role list, no
README row, no test edit); the plan, the policy pack and the one-line errors follow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.config_helpers import edit_stack, project_copy
from tools.render import ROOT

# A digest built here, not written: no token-shaped literals in the repository.
SIDECAR_IMAGE = "registry.example/jamjam-sidecar:1.0.0@sha256:" + "5e" * 32
SIDECAR_SPEC = '''
    sidecar = ContainerSpec(
        role="sidecar", name="jamjam-sidecar", image=config.images["sidecar"], host=HOST,
        command=("sleep", "infinity"),
        healthcheck=Healthcheck(("pgrep", "sleep")),
    )
'''


def _with_sidecar(tmp_path: Path, pin_in: tuple[str, ...] = ("production", "test")) -> Path:
    copy = project_copy(ROOT, tmp_path / "jamjam")
    module = copy / "jamjam_app.py"
    source = (ROOT / "jamjam_app.py").read_text()
    anchor = "    tunnel = cloudflared("
    assert anchor in source and "(signaling, echo, tunnel))" in source
    source = source.replace(anchor, SIDECAR_SPEC + anchor, 1).replace(
        "(signaling, echo, tunnel))", "(signaling, echo, tunnel, sidecar))", 1)
    module.unlink()
    module.write_text(source)
    for stack in pin_in:
        edit_stack(copy, stack, {"images.sidecar": SIDECAR_IMAGE})
    return copy


def _run(tool: str, copy: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", tool, "--project-dir", str(copy), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_a_container_is_its_spec_and_its_pin(tmp_path):
    copy = _with_sidecar(tmp_path)
    plan = _run("tools.plan", copy)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert plan.stdout.count("jamjam-sidecar") >= 2, "in both stacks"
    # A digest pin shows as the image it is, not as a shipped file.
    assert SIDECAR_IMAGE in plan.stdout
    assert "Policies, mandatory" not in plan.stdout
    check = _run("tools.policy_check", copy)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]


def test_overrides_reach_the_new_container_by_its_role(tmp_path):
    copy = _with_sidecar(tmp_path)
    edit_stack(copy, "test", {"containers.sidecar.memoryMb": 64})
    plan = _run("tools.plan", copy, "test", "--json")
    assert plan.returncode == 0, plan.stderr[-3000:]
    (sidecar,) = [r for r in json.loads(plan.stdout)["resources"]
                  if r["type"] == "docker:index/container:Container"
                  and r["name"] == "jamjam-sidecar"]
    assert sidecar["inputs"]["memory"] == 64 and sidecar["inputs"]["memorySwap"] == 64


def test_a_missing_pin_is_one_line_naming_the_key(tmp_path):
    copy = _with_sidecar(tmp_path, pin_in=("production",))
    plan = _run("tools.plan", copy)
    assert plan.returncode == 2
    (line,) = plan.stderr.strip().splitlines()
    line = line.removeprefix(f"{copy}/")
    assert line.startswith("Pulumi.test.yaml: jamjam:images.sidecar: is not set; fix: pulumi "
                           "config set --stack test --path 'jamjam:images.sidecar' ")
    assert "Project jamjam" in plan.stdout or "production" in plan.stdout, "production still plans"


def test_a_pin_no_container_uses_and_an_unknown_role_are_refused(tmp_path):
    copy = project_copy(ROOT, tmp_path / "jamjam")
    edit_stack(copy, "test", {"images.sidecar": SIDECAR_IMAGE,
                              "containers.sidecar.memoryMb": 64})
    plan = _run("tools.plan", copy, "test")
    assert plan.returncode == 2
    lines = [line.removeprefix(f"{copy}/") for line in plan.stderr.strip().splitlines()]
    assert len(lines) == 2, lines
    assert lines[0].startswith("Pulumi.test.yaml: jamjam:images.sidecar: is not the image of "
                               "any container")
    assert lines[1].startswith("Pulumi.test.yaml: jamjam:containers.sidecar: is not a known "
                               "role")
    assert "pulumi config rm --stack test --path 'jamjam:images.sidecar'" in lines[0]


def test_a_copied_example_renamed_carries_none_of_its_names(tmp_path):
    """README "Start a new project" on thinkRing, whose names all derive from its project
    name: a copy renamed in Pulumi.yaml and in what its operator sets (the stack file and the
    pack's config: hostname, bucket, image repositories) declares nothing named thinkring."""
    import shutil
    copy = tmp_path / "examples" / "acme-web"
    shutil.copytree(ROOT / "examples" / "thinkring", copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("Pulumi.yaml", "Pulumi.production.yaml", "policy-config.json"):
        path = copy / name
        path.write_text(path.read_text().replace("thinkring", "acme-web"))
    # Pulumi.yaml's runtime virtualenv is relative to the example's place in this tree.
    (tmp_path / ".venv").symlink_to(ROOT / ".venv")
    plan = _run("tools.plan", copy, "--json")
    assert plan.returncode == 0, plan.stderr[-3000:]
    document = json.loads(plan.stdout)
    assert document["project"] == "acme-web"
    containers = {r["inputs"]["name"] for r in document["resources"]
                  if r["type"] == "docker:index/container:Container"}
    assert containers == {"acme-web-frontend", "acme-web-backend", "acme-web-db",
                          "acme-web-cloudflared"}
    assert "thinkring" not in json.dumps(document).lower()
    check = _run("tools.policy_check", copy)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
