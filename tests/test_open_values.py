"""What SPEC (and SYSTEMS.md) leave open may change in a stack file without a test edit, and a bad
value is one line (issue 16 point 6).

Each project is copied (its stack files and offline.yaml as files, the program linked); the
copies' stack files get other good values for what the documents leave open: containers'
memory and pids limits, read-only and user, every image pin (one pinned by digest), the log
upload's minute, the image scan's schedule, the alert thresholds, the Debian release. Then what
a user would run holds: each stack renders, the policy pack passes as it passed before, each new
value is what the plan shows, and `python -m tools.plan` / `python -m tools.policy_check` over
the copies exit 0. Bad values (a limit of 0, a `latest` image, a four-field schedule, an
unsupported release) are each one line naming the key with a fix, and exit 2 through both
commands, while the good stacks beside them still plan.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from tests.config_helpers import configured, derive_stack, edit_stack, project_copy
from tools.plan import project_policy_config
from tools.policy_check import check
from tools.render import ROOT, RenderedStack, load_project, render

EXAMPLES = sorted(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))
PROJECTS = {"jamjam": ROOT, **{p.name: p for p in EXAMPLES}}
CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"


def _digest(seed: str) -> str:
    # Built here, not written out: a made-up digest of the right shape.
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


# jamjam's stacks: SPEC fixes none of these. The upload stays hourly (SPEC's "every hour"),
# on another minute.
JAMJAM_CHANGES: dict[str, dict[str, Any]] = {
    "production": {
        "containers.echo.memoryMb": 768,
        "containers.signaling.pidsLimit": 128,
        "containers.signaling.readOnlyRootfs": True,
        "containers.signaling.user": "1000:1000",
        "containers.cloudflared.memoryMb": 256,
        "containers.cloudflared.pidsLimit": 64,
        "images.signaling": "ghcr.io/koeda/jamjam-signaling-server:0.1.1",
        "images.echo": "ghcr.io/koeda/jamjam-echo-server:0.2.0",
        "images.cloudflared": f"cloudflare/cloudflared@{_digest('cloudflared')}",
        "logArchive.schedule": "17 * * * *",
        "operations.imageScanSchedule": "45 5 * * 3",
        "operations.diskAlertPercent": 70,
        "operations.memoryAlertPercent": 85,
    },
    "test": {
        "containers.signaling.memoryMb": 1024,
        "containers.echo.pidsLimit": 300,
        "images.echo": f"ghcr.io/koeda/jamjam-echo-server@{_digest('echo')}",
        "images.cloudflared": "cloudflare/cloudflared:2025.12.0",
        "operations.imageScan": True,
        "operations.imageScanSchedule": "0 2 * * 0",
        "operations.diskAlertPercent": 90,
        "vpsDebianVersion": 12,
    },
}


def _example_changes(project: Path) -> dict[str, dict[str, Any]]:
    """Every image of every stack re-pinned (the database's by tag and digest), and the other
    Debian release: what SYSTEMS.md leaves open in the keys an example has."""
    changes: dict[str, dict[str, Any]] = {}
    for stack in load_project(project).stacks:
        values: dict[str, Any] = {"vpsDebianVersion": 12}
        for role, reference in configured(stack, "images", project_dir=project).items():
            values[f"images.{role}"] = (f"{reference}@{_digest(reference)}" if role == "db"
                                        else f"{reference}-r2")
        changes[stack] = values
    return changes


CHANGES = {"jamjam": JAMJAM_CHANGES,
           **{p.name: _example_changes(p) for p in EXAMPLES}}


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def _project_dirs(copies: dict[str, Path]) -> list[str]:
    return [arg for copy in copies.values() for arg in ("--project-dir", str(copy))]


def _copies(root: Path, edit: Callable[[str, Path], None]) -> dict[str, Path]:
    """Project name -> a copy of it under ``root``, which ``edit(name, copy)`` changed."""
    copies = {}
    for name, project in PROJECTS.items():
        copies[name] = project_copy(project, root / name)
        edit(name, copies[name])
    return copies


@pytest.fixture(scope="module")
def changed(tmp_path_factory) -> dict[str, Path]:
    """Project name -> a copy whose stack files carry CHANGES."""
    def edit(name: str, copy: Path) -> None:
        for stack, values in CHANGES[name].items():
            edit_stack(copy, stack, values)
    return _copies(tmp_path_factory.mktemp("open-values"), edit)


def _cases() -> list[tuple[str, str]]:
    return [(name, stack) for name, project in PROJECTS.items()
            for stack in load_project(project).stacks]


def _advisories(stack: RenderedStack, project: Path) -> set[tuple[str, str | None]]:
    found = check(stack.stack, stack.resources, project_policy_config(project))
    assert [v.message for v in found if v.level == "mandatory"] == []
    return {(v.policy, v.resource) for v in found}


def _by_role(stack: RenderedStack, project: Path) -> dict[str, list[tuple[dict, str]]]:
    """Image role -> (inputs, pulled reference) of each container running that role's image."""
    pinned = configured(stack.stack, "images", project_dir=project)
    roles = {reference: role for role, reference in pinned.items()}
    urns = {r.urn: r for r in stack.resources}
    found: dict[str, list[tuple[dict, str]]] = {}
    for container in stack.of_type(CONTAINER):
        (pulled,) = [urns[u].inputs["name"] for u in container.options["dependencies"]
                     if urns[u].type == IMAGE]
        found.setdefault(roles[pulled], []).append((container.inputs, pulled))
    return found


@pytest.mark.parametrize("name,stack_name", _cases())
def test_changed_values_render_pass_the_pack_and_show_in_the_plan(changed, name, stack_name):
    project, copy = PROJECTS[name], changed[name]
    changes = CHANGES[name][stack_name]
    before = render(stack_name, project_dir=project)
    after = render(stack_name, project_dir=copy)
    # The pack passes, and flags nothing it did not flag before.
    assert _advisories(after, copy) <= _advisories(before, project)
    running = _by_role(after, copy)
    for key, value in changes.items():
        top, *path = key.split(".")
        if top == "images":
            (role,) = path
            assert [pulled for _, pulled in running[role]] == [value] * len(running[role])
        elif top == "containers":
            role, field = path
            for inputs, _ in running[role]:
                shown = {"memoryMb": inputs["memory"], "readOnlyRootfs": inputs.get("readOnly"),
                         "user": inputs.get("user")}
                if field == "pidsLimit":
                    limit = after.named(f"{inputs['name']}-pids-limit").inputs["create"]
                    assert f" --pids-limit {value} {inputs['name']}" in f" {limit}", key
                else:
                    assert shown[field] == value, key
        elif top == "vpsDebianVersion":
            assert f"\nDEBIAN_VERSION={value}\n" in after.named(
                next(r.name for r in after.of_type("command:remote:Command")
                     if r.name.endswith("-bootstrap"))).inputs["stdin"]
        else:
            assert _cron_shows(after, key, value), key


# Key -> (the cron file of the job it configures, a line there starts with this, {} the value).
_CRON = {
    "logArchive.schedule": ("upload-logs-to-r2", "{} "),
    "operations.imageScanSchedule": ("image-scan", "{} "),
    "operations.imageScan": ("image-scan", ""),
    "operations.diskAlertPercent": ("resource-alert", "JAMJAM_DISK_ALERT_PERCENT={}\n"),
    "operations.memoryAlertPercent": ("resource-alert", "JAMJAM_MEM_ALERT_PERCENT={}\n"),
}


def _cron_shows(stack: RenderedStack, key: str, value: Any) -> bool:
    """Whether the cron file of the job ``key`` configures is there and carries ``value``."""
    job, line = _CRON[key]
    content = stack.host_files().get(f"/etc/cron.d/jamjam-{job}")
    return content is not None and f"\n{line.format(value)}" in f"\n{content}"


def test_the_plan_and_the_policy_check_over_the_changed_copies_pass_and_show_them(changed):
    """As a user runs them: every project's copy in one process, exit 0, and the plan shows
    the new pins and limits (and, for files it ships, the changed file's digest)."""
    plan = _plan("tools.plan", *_project_dirs(changed))
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert plan.stderr == ""
    for name, stacks in CHANGES.items():
        for stack_name in stacks:
            assert f"Stack {stack_name} (project {load_project(PROJECTS[name]).name})" in plan.stdout
    for stack_name, values in JAMJAM_CHANGES.items():
        rendered = render(stack_name, project_dir=changed["jamjam"])
        for key, value in values.items():
            if key.startswith("images."):
                assert f"name: {value}\n" in plan.stdout, key
            elif key.endswith(".memoryMb"):
                assert f"memory: {value}\n" in plan.stdout, key
            elif key.endswith(".pidsLimit"):
                assert f"--pids-limit {value} jamjam-{key.split('.')[1]}\n" in plan.stdout, key
        for path, content in rendered.host_files().items():
            if path.startswith("/etc/cron.d/"):
                assert f"sha256 {hashlib.sha256(content.encode()).hexdigest()[:12]}" \
                    in plan.stdout, path
    for name in PROJECTS:
        if name != "jamjam":
            for values in CHANGES[name].values():
                for key, value in values.items():
                    if key.startswith("images."):
                        assert f"name: {value}\n" in plan.stdout, (name, key)
    policy = _plan("tools.policy_check", *_project_dirs(changed))
    assert policy.returncode == 0, policy.stderr[-3000:]
    assert "mandatory" not in policy.stdout


# --- bad values: one line each, exit 2 ---------------------------------------------------

# (stack it starts from, the one bad change, the key the line must name)
JAMJAM_BAD = {
    "memory0": ("production", {"containers.echo.memoryMb": 0}, "containers.echo.memoryMb"),
    "pids0": ("test", {"containers.signaling.pidsLimit": 0}, "containers.signaling.pidsLimit"),
    "latest": ("production", {"images.cloudflared": "cloudflare/cloudflared:latest"},
               "images.cloudflared"),
    "upload4": ("production", {"logArchive.schedule": "0 * * *"}, "logArchive.schedule"),
    "scan4": ("test", {"operations.imageScanSchedule": "30 4 * *"},
              "operations.imageScanSchedule"),
    "disk100": ("production", {"operations.diskAlertPercent": 100},
                "operations.diskAlertPercent"),
    "debian11": ("test", {"vpsDebianVersion": 11}, "vpsDebianVersion"),
}


def _repository(reference: str) -> str:
    """``reference`` without its tag and digest."""
    named = reference.split("@", 1)[0]
    last = named.rsplit("/", 1)[-1]
    return named.rsplit(":", 1)[0] if ":" in last else named


def _example_bad(project: Path) -> dict[str, tuple[str, dict[str, Any], str]]:
    base = load_project(project).stacks[0]
    role, reference = next(iter(configured(base, "images", project_dir=project).items()))
    repository = _repository(reference)
    return {
        "latest": (base, {f"images.{role}": f"{repository}:latest"}, f"images.{role}"),
        "debian11": (base, {"vpsDebianVersion": 11}, "vpsDebianVersion"),
    }


BAD = {"jamjam": JAMJAM_BAD, **{p.name: _example_bad(p) for p in EXAMPLES}}


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Path]:
    """Project name -> a copy with one more stack per bad value of BAD beside its own."""
    def edit(name: str, copy: Path) -> None:
        for stack, (base, change, _) in BAD[name].items():
            derive_stack(copy, base, stack, change)
    return _copies(tmp_path_factory.mktemp("bad-values"), edit)


def _one_line_each(stderr: str, broken: dict[str, Path]) -> None:
    lines = stderr.splitlines()
    for name, cases in BAD.items():
        namespace = load_project(PROJECTS[name]).name
        for stack, (_, _, key) in cases.items():
            prefix = f"{broken[name].resolve() / f'Pulumi.{stack}.yaml'}: "
            mine = [line for line in lines if line.startswith(prefix)]
            assert len(mine) == 1, (name, stack, mine)
            message = mine[0][len(prefix):]
            full = f"{namespace}:{key}"
            assert message.startswith(full) and message[len(full)] in ": ", (name, stack, mine)
            problem, fix = message.split("; fix: ", 1)
            assert fix.startswith("pulumi config set") and full in fix, (name, stack, mine)
    assert len(lines) == sum(len(cases) for cases in BAD.values()), lines
    assert "Traceback" not in stderr


def test_bad_values_are_one_line_each_with_a_fix_and_exit_2(broken):
    plan = _plan("tools.plan", *_project_dirs(broken))
    assert plan.returncode == 2, plan.stderr[-3000:]
    _one_line_each(plan.stderr, broken)
    # The stacks without a bad value still plan in full.
    for name, project in PROJECTS.items():
        for stack in load_project(project).stacks:
            assert f"Stack {stack} (project {load_project(project).name})" in plan.stdout
    policy = _plan("tools.policy_check", *_project_dirs(broken))
    assert policy.returncode == 2, policy.stderr[-3000:]
    assert policy.stderr == plan.stderr
