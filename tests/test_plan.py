"""`make plan`'s command, run as a user runs it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _plan(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.plan", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tree() -> subprocess.CompletedProcess:
    return _plan()


def test_plan_prints_both_stacks_and_passes_the_policies(tree):
    assert tree.returncode == 0, tree.stderr[-2000:]
    out = tree.stdout
    assert "Stack production (project jamjam)" in out and "Stack test (project jamjam)" in out
    assert "jamjam-signaling  (docker:index/container:Container)" in out
    assert "Example values stood in for operator-only keys:" in out
    assert "vpsAddress=203.0.113.10" in out and "sshPrivateKey=[secret]" in out
    assert "signalingUrl: wss://signaling-jamjam.koeda.me" in out
    assert "Policies" in out


def test_plan_masks_every_secret(tree):
    out = tree.stdout
    assert "[secret]" in out
    for secret in ("mock-tunnel-connector-token", "EXAMPLE OPENSSH PRIVATE KEY",
                   "mock-api-token-value", "secret_access_key = "):
        assert secret not in out


def test_plan_json_is_the_same_content():
    result = _plan("test", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["stack"] == "test"
    names = {r["name"] for r in document["resources"]}
    assert {"jamjam-echo", "signaling-tunnel", "vps-firewall"} <= names
    tunnel = next(r for r in document["resources"] if r["name"] == "signaling-tunnel")
    assert tunnel["inputs"]["tunnelSecret"] == "[secret]"
    assert document["examples"]["vpsAddress"] == "203.0.113.20"
    assert isinstance(document["violations"], list)


def test_unknown_stack_is_a_clear_error():
    result = _plan("staging")
    assert result.returncode == 2
    assert "unknown stack 'staging'" in result.stderr


# --- config errors, through the entry point `make plan` uses --------------------------------

from test_settings import BAD_INPUTS, LINES  # noqa: E402

from tools.render import load_project, stack_config  # noqa: E402

_OWN_FILES = {"offline.yaml", ".git", ".venv", ".pytest_cache", "__pycache__"}


def _project_copy(directory: Path) -> Path:
    """jamjam's program with its own stack files and stand-ins, for a plan to point at."""
    directory.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name not in _OWN_FILES and not entry.name.startswith("Pulumi."):
            (directory / entry.name).symlink_to(entry)
    (directory / "Pulumi.yaml").symlink_to(ROOT / "Pulumi.yaml")
    return directory


def _write_stack(directory: Path, stack: str, config: dict) -> None:
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}))


@pytest.fixture(scope="module")
def bad_stacks(tmp_path_factory) -> tuple[subprocess.CompletedProcess, dict[str, tuple]]:
    """One stack per bad input of tests/test_settings.py plus the real production stack, all
    planned by one `python -m tools.plan --project-dir <copy>`."""
    directory = _project_copy(tmp_path_factory.mktemp("plan") / "jamjam")
    jamjam = load_project(ROOT)
    production = stack_config("production")
    stand_ins = {"production": jamjam.stand_ins_for("production")}
    secret_stand_ins = {"production": jamjam.stand_ins_for("production", secret=True)}
    cases = {}
    for index, (change, key, words) in enumerate(BAD_INPUTS):
        stack = f"case{index:02d}"
        cases[stack] = (key, words)
        change = dict(change)
        removed = set(change.pop("remove", []))
        config = {k: v for k, v in production.items() if k.split(":", 1)[1] not in removed}
        stand_ins[stack] = {k: v for k, v in stand_ins["production"].items() if k not in removed}
        secret_stand_ins[stack] = {k: v for k, v in secret_stand_ins["production"].items()
                                   if k not in removed}
        for name, value in change.items():
            if isinstance(value, dict) and set(value) == {"secret"}:
                # A secret reaches the program as the CLI hands it over once decrypted.
                secret_stand_ins[stack][name] = value["secret"]
            else:
                config[f"jamjam:{name}"] = value
        _write_stack(directory, stack, config)
    _write_stack(directory, "production", production)
    (directory / "offline.yaml").write_text(yaml.safe_dump(
        {"standIns": stand_ins, "secretStandIns": secret_stand_ins}))
    # Run from the copy, as a user runs `make plan` from the project: lines name Pulumi.<stack>.yaml.
    return _plan("--project-dir", str(directory), cwd=directory), cases


def test_plan_reports_every_bad_stack_on_its_own_one_line_per_bad_key(bad_stacks):
    result, cases = bad_stacks
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.splitlines()
    for stack, (key, words) in cases.items():
        mine = [line for line in lines if line.startswith(f"Pulumi.{stack}.yaml: ")]
        assert len(mine) == LINES.get((key, words), 1), (stack, key, mine)
        assert mine[0].startswith(f"Pulumi.{stack}.yaml: {key}: "), mine
        assert words in mine[0] and f"; fix: pulumi config " in mine[0], mine
        assert f"--stack {stack}" in mine[0], mine
    assert len(lines) == sum(LINES.get(case, 1) for case in cases.values()), lines
    assert "hunter2" not in result.stderr
    # The good stack among them is still planned in full.
    assert "Stack production (project jamjam)" in result.stdout
    assert "Stack case" not in result.stdout


def test_policy_check_reports_config_errors_the_same_way(bad_stacks):
    result, cases = bad_stacks
    plan_dir = Path(result.args[result.args.index("--project-dir") + 1])
    check = subprocess.run([sys.executable, "-m", "tools.policy_check", "--project-dir",
                            str(plan_dir), "case00", "production", "case10"], cwd=plan_dir,
                           capture_output=True, text=True, timeout=120)
    assert check.returncode == 2, check.stderr
    assert "Traceback" not in check.stderr
    assert [line.split(": ")[0] for line in check.stderr.splitlines()] == [
        "Pulumi.case00.yaml", "Pulumi.case10.yaml"]
    assert "Stack production:" in check.stdout
    # Over every bad input, the policy check says exactly what the plan says.
    every = subprocess.run([sys.executable, "-m", "tools.policy_check", "--project-dir",
                            str(plan_dir)], cwd=plan_dir, capture_output=True, text=True,
                           timeout=300)
    assert every.returncode == 2
    assert every.stderr == result.stderr


def _counts(stack: str) -> dict[str, int]:
    # Derived from the render, not hard-coded: the header must agree with what is registered.
    from tools.render import render
    rendered = render(stack)
    custom = sum(r.custom for r in rendered.resources)
    return {"resources": custom, "components": len(rendered.resources) - custom}


def test_plan_header_counts_components_and_labels_made_up_values(tree):
    out = tree.stdout
    counts = _counts("production")
    assert counts["resources"] > 0 and counts["components"] > 0
    assert (f"Stack production (project jamjam): {counts['resources']} resources in "
            f"{counts['components']} components") in out
    tunnel_id = next(line for line in out.splitlines() if line.strip().startswith("tunnelId:"))
    assert tunnel_id.endswith("[stand-in]")
    images = [line for line in out.splitlines() if " image: sha256:" in line]
    assert images and all(line.endswith("[stand-in]") for line in images)
    echo_env = next(line for line in out.splitlines() if "RUST_LOG=info" in line)
    assert "[stand-in]" not in echo_env


def test_plan_json_names_the_made_up_values():
    document = json.loads(_plan("production", "--json").stdout)
    assert document["counts"] == _counts("production")
    assert document["standIns"]["outputs.tunnelId"] == "id of signaling-tunnel"
    assert document["standIns"]["jamjam-signaling.image"].startswith("digest of ")


def test_plan_piped_into_head_exits_quietly():
    process = subprocess.Popen([sys.executable, "-m", "tools.plan", "production"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = process.stdout.readline()
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert first.startswith(b"Stack production")
    assert process.returncode == 0 and err == b"", err.decode()


def test_make_plan_json_writes_json_only(tmp_path):
    result = subprocess.run(["make", "--no-print-directory", "plan-json", f"PY={sys.executable}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [d["stack"] for d in json.loads(result.stdout)] == ["production", "test"]


DEMO_MAIN = """
import pulumi
import pulumi_random

import settings

config = pulumi.Config()
pulumi_random.RandomBytes("salt", length=config.get_int("length"))
pulumi.export("greeting", config.require("greeting"))
pulumi.export("address", config.require("address"))
pulumi.export("settingsModule", settings.WHOSE)
"""


def test_any_project_dir_renders_with_its_own_name_defaults_and_stand_ins(tmp_path):
    # Nested in a copy of jamjam, as examples/<name>/ are in this repository.
    outer = _project_copy(tmp_path / "jamjam")
    for name in ("offline.yaml", "Pulumi.test.yaml"):
        (outer / name).symlink_to(ROOT / name)
    demo = outer / "nested-demo"
    demo.mkdir()
    (demo / "Pulumi.yaml").write_text(yaml.safe_dump({
        "name": "demo", "runtime": "python",
        "config": {"demo:greeting": {"type": "string", "default": "hello"},
                   "length": 16}}))
    (demo / "Pulumi.staging.yaml").write_text(yaml.safe_dump({"config": {"demo:length": 8}}))
    (demo / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": {"demo:greeting": "hi"}}))
    (demo / "offline.yaml").write_text(yaml.safe_dump({"standIns": {"*": {"address": "198.51.100.7"}}}))
    (demo / "__main__.py").write_text(DEMO_MAIN)
    # A module named like one of jamjam's: the demo must get its own even after jamjam ran.
    (demo / "settings.py").write_text('WHOSE = "demo"\n')
    script = ("import json, sys\n"
              "from tools.render import render\n"
              f"render('test', project_dir={str(outer)!r})\n"
              f"stacks = [render(s, project_dir={str(demo)!r}) for s in ('dev', 'staging')]\n"
              f"render('test', project_dir={str(outer)!r})\n"
              "render('test')\n"
              "print(json.dumps([[s.project, s.stack, s.outputs, s.examples,"
              " s.named('salt').inputs] for s in stacks]))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    dev, staging = json.loads(result.stdout)
    assert dev[:2] == ["demo", "dev"] and staging[:2] == ["demo", "staging"]
    assert dev[2] == {"greeting": "hi", "address": "198.51.100.7", "settingsModule": "demo"}
    assert staging[2]["greeting"] == "hello"
    assert dev[3] == {"address": "198.51.100.7"}
    assert dev[4]["length"] == 16 and staging[4]["length"] == 8
    plan = _plan("--project-dir", str(demo), "--project-dir", str(ROOT))
    assert plan.returncode == 0, plan.stderr[-2000:]
    headers = [line.split(":")[0] for line in plan.stdout.splitlines() if line.startswith("Stack ")]
    assert headers == ["Stack dev (project demo)", "Stack staging (project demo)",
                       "Stack production (project jamjam)", "Stack test (project jamjam)"]
    assert "staging" in _plan("--project-dir", str(demo), "nope").stderr


def test_unreadable_stack_file_is_one_line_and_the_other_stack_still_plans(tmp_path):
    directory = _project_copy(tmp_path / "jamjam")
    (directory / "offline.yaml").symlink_to(ROOT / "offline.yaml")
    (directory / "Pulumi.production.yaml").symlink_to(ROOT / "Pulumi.production.yaml")
    (directory / "Pulumi.test.yaml").write_text("config:\n  jamjam:zone: [koeda.me\n")
    result = _plan("--project-dir", str(directory), cwd=directory)
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Pulumi.test.yaml: line 3: not valid YAML" in result.stderr
    assert "Stack production (project jamjam)" in result.stdout


def test_a_digest_pinned_image_shows_as_the_image_not_as_a_shipped_file(tmp_path):
    # Over 100 characters and no spaces, as a file summary once took it for (issue 16 point 9).
    digest = "sha256:" + hashlib.sha256(b"a cloudflared build").hexdigest()
    pinned = f"ghcr.io/koeda/jamjam-signaling-server:0.1.0@{digest}"
    assert len(pinned) > 100
    directory = _project_copy(tmp_path / "jamjam")
    (directory / "offline.yaml").symlink_to(ROOT / "offline.yaml")
    production = stack_config("production")
    production["jamjam:images"] = {**production["jamjam:images"], "signaling": pinned}
    _write_stack(directory, "production", production)
    result = _plan("--project-dir", str(directory), "production", cwd=directory)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"name: {pinned}" in result.stdout, "the pinned image is not shown as itself"
    assert "bytes, sha256" not in "".join(line for line in result.stdout.splitlines()
                                          if "jamjam-signaling-server" in line)
    # Shipped files still read as a summary, not their whole text.
    assert "bytes, sha256" in result.stdout


def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}")
    return text[start:text.index("\n## ", start + 1)]


def test_readme_error_example_is_what_the_plan_prints(tmp_path):
    section = _readme_section("Configuration reference")
    example = section.split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    directory = _project_copy(tmp_path / "jamjam")
    (directory / "offline.yaml").symlink_to(ROOT / "offline.yaml")
    config = stack_config("test")
    config["jamjam:echoDelayMs"] = "soon"
    config["jamjam:port"] = 8080
    _write_stack(directory, "test", config)
    result = _plan("--project-dir", str(directory), "test", cwd=directory)
    assert result.returncode == 2
    assert result.stderr.splitlines() == example
    # From elsewhere, each line names the stack file by the path that reaches it.
    elsewhere = subprocess.run(
        [sys.executable, "-m", "tools.plan", "--project-dir", str(directory), "test"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=120)
    assert elsewhere.stderr.splitlines() == [f"jamjam/{line}" for line in example]


def test_readme_config_reference_names_every_key():
    import settings
    section = _readme_section("Configuration reference")
    for spec in settings.TOP_LEVEL:
        assert f"`jamjam:{spec.key}" in section, spec.key
        # operations.* is also described in docs/operations.md, whose table names each switch.
        where = ((ROOT / "docs" / "operations.md").read_text() if spec.key == "operations"
                 else section)
        for item in getattr(spec, "fields", ()):
            assert any(form in where for form in (f"`{item.key}`", f".{item.key}`",
                                                  f"`.{item.key}")), f"{spec.key}.{item.key}"
