"""The GitHub workflows: actionlint finds nothing, and they do what the team relies on.

actionlint runs for real (it also runs shellcheck on every `run:` script when shellcheck is
installed, which `make test` ensures). The structural checks pin the promises a reviewer can't
see from a green run: the CLI matches the SDK, every stack is previewed with the policy pack and
the PR hears about a failed preview, production waits for an approval and rolls back when its
`up` fails, drift is checked nightly, and secrets reach steps only through `env:`. The scripts
the workflows run (.github/actions/setup/*.sh, .github/scripts/*.sh) run here for real: a real
ssh-agent, a loopback webhook, and tests/fixtures/fake-pulumi standing in for the CLI.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

import settings
from tools import last_good_deploy, setup_stack
from tools.render import STACKS as RENDER_STACKS

ROOT = Path(__file__).resolve().parent.parent
GITHUB = ROOT / ".github"
WORKFLOWS = sorted((GITHUB / "workflows").glob("*.yml"))
ACTION = GITHUB / "actions" / "setup" / "action.yml"
SCRIPTS = sorted([*(GITHUB / "actions").rglob("*.sh"), *(GITHUB / "scripts").glob("*.sh")])
FAKE = ROOT / "tests" / "fixtures" / "fake-pulumi"
STACKS = set(RENDER_STACKS)
NS = settings.NAMESPACE
SECRET_REF = re.compile(r"^\$\{\{\s*secrets\.([A-Z][A-Z0-9_]*)\s*\}\}$")
SETUP = "./.github/actions/setup"
PULUMI_RUN = re.compile(r"\bpulumi (up|preview|refresh|stack|config|login)\b|tools\.last_good")
ALWAYS = re.compile(r"always\(\)|failure\(\)|!\s*cancelled\(\)")


def _actionlint() -> str:
    found = shutil.which("actionlint", path=os.pathsep.join(
        [str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    if not found:
        pytest.fail("actionlint is not installed: `make test` installs it from requirements-dev.txt")
    return found


def _load(name: str) -> dict:
    document = yaml.safe_load((GITHUB / "workflows" / name).read_text())
    # YAML 1.1 reads the key `on` as True.
    document["on"] = document.pop(True, document.get("on"))
    return document


def _action() -> dict:
    return yaml.safe_load(ACTION.read_text())


def _steps(job: dict, action: str) -> list[dict]:
    return [s for s in job.get("steps", []) if str(s.get("uses", "")).startswith(action + "@")]


def _step(job: dict, step_id: str) -> dict:
    [step] = [s for s in job["steps"] if s.get("id") == step_id]
    return step


def _index(job: dict, step: dict) -> int:
    return next(i for i, s in enumerate(job["steps"]) if s is step)


def _all_jobs():
    for path in WORKFLOWS:
        for name, job in _load(path.name)["jobs"].items():
            yield f"{path.name}:{name}", job


def _pin(requirements: Path, package: str) -> str:
    [version] = re.findall(rf"^{re.escape(package)}==(\S+)", requirements.read_text(), re.M)
    return version


def test_the_workflows_exist():
    assert [p.name for p in WORKFLOWS] == ["drift.yml", "main.yml", "pull-request.yml"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_actionlint_finds_nothing(path):
    result = subprocess.run([_actionlint(), "-no-color", "-format", "{{json .}}", str(path)],
                            capture_output=True, text=True, cwd=ROOT, timeout=120)
    findings = json.loads(result.stdout or "[]")
    assert findings == [] and result.returncode == 0, "\n".join(
        f"{f['filepath']}:{f['line']}:{f['column']}: {f['message']} [{f['kind']}]"
        for f in findings) or result.stderr


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_workflow_scripts_are_shellcheck_clean_and_strict(path):
    result = subprocess.run(["shellcheck", "-x", "-S", "style", str(path)], capture_output=True,
                            text=True, timeout=60, cwd=path.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


# ----- one setup, one CLI version ------------------------------------------------------------

def test_the_cli_is_pinned_to_the_sdk():
    sdk = _pin(ROOT / "requirements.txt", "pulumi")
    assert _pin(ROOT / "policies" / "requirements.txt", "pulumi") == sdk
    [install] = _steps(_action()["runs"], "pulumi/actions")
    assert str(install["with"]["pulumi-version"]) == sdk
    assert "command" not in install["with"], "the action only installs the CLI"
    for name, job in _all_jobs():
        assert not _steps(job, "pulumi/actions"), f"{name}: install the CLI through {SETUP}"


def test_the_composite_action_does_the_whole_setup():
    action = _action()
    assert action["runs"]["using"] == "composite"
    assert set(action["inputs"]) == {"stack"} and action["inputs"]["stack"]["required"] is True
    steps = action["runs"]["steps"]
    runs = [s.get("run", "") for s in steps]
    [python] = _steps(action["runs"], "actions/setup-python")
    assert python["with"]["python-version"] == "3.11"
    # The pack's requirements from its own directory, as the CLI installs them (their `-e ..`
    # is resolved against the working directory).
    assert any(".venv/bin/pip install" in r and "(cd policies && venv/bin/pip install" in r
               and "-r requirements.txt)" in r for r in runs)
    assert any(r.startswith("pulumi login") for r in runs)
    assert any("tools.setup_stack" in r and "--check" in r for r in runs)
    assert any("ssh-from-stack.sh" in r for r in runs)
    order = [next(i for i, r in enumerate(runs) if word in r)
             for word in ("check-secrets.sh", "pulumi login", "tools.setup_stack", "ssh-from")]
    assert order == sorted(order), "secrets, then login, then preflight, then ssh"
    for step in steps:
        if "run" in step:
            assert step["shell"] == "bash"


def test_the_composite_actions_scripts_are_shellcheck_clean(tmp_path):
    """actionlint checks workflows' `run:` scripts, not a composite action's: this does."""
    for index, step in enumerate(_action()["runs"]["steps"]):
        if "run" not in step:
            continue
        script = tmp_path / f"step-{index}.sh"
        script.write_text("#!/usr/bin/env bash\nset -eo pipefail\n" + step["run"])
        result = subprocess.run(["shellcheck", "-S", "style", str(script)], capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, step.get("name", index) + result.stdout


def test_every_job_that_runs_pulumi_uses_the_composite_action():
    jobs = set()
    for name, job in _all_jobs():
        runs = [(i, s.get("run", "")) for i, s in enumerate(job.get("steps", []))]
        pulumi_steps = [i for i, run in runs if PULUMI_RUN.search(run)]
        if not pulumi_steps:
            continue
        jobs.add(name)
        setups = [i for i, s in enumerate(job["steps"]) if s.get("uses") == SETUP]
        assert len(setups) == 1 and setups[0] < min(pulumi_steps), name
        stack = job["steps"][setups[0]]["with"]["stack"]
        assert stack in STACKS or stack == "${{ matrix.stack }}", name
        text = yaml.safe_dump(job)
        for repeated in ("ssh-agent", "ssh-add", "known_hosts", "setup-python"):
            assert repeated not in text, f"{name} repeats setup the composite action does"
    assert jobs == {"pull-request.yml:preview", "main.yml:up-test", "main.yml:up-production",
                    "drift.yml:drift"}


# ----- secrets ------------------------------------------------------------------------------------

def _walk(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, (*path, str(k)))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, (*path, str(i)))
    else:
        yield path, node


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_secrets_reach_steps_only_through_env(path):
    text = path.read_text()
    for pattern in (r"-----BEGIN", r"\bpul-[0-9a-f]{20,}", r"\bgh[pousr]_[A-Za-z0-9]{20,}",
                    r"\beyJ[A-Za-z0-9_-]{16,}",
                    r"(?i)passphrase\s*:\s*(?!\$\{\{\s*secrets\.)\S"):
        assert not re.search(pattern, text), f"{path.name} holds something secret-looking: {pattern}"
    document = yaml.safe_load(text)
    for where, value in _walk(document):
        value = str(value)
        if where[-1] == "run":
            # Neither secrets nor any other expression is pasted into a script: a value with a
            # quote in it could run as code, and a secret would sit in the script text.
            assert "${{" not in value, f"{path.name} {'.'.join(where)}: use env: instead"
        if re.search(r"\$\{\{[^}]*\bsecrets\.", value):
            assert len(where) >= 2 and where[-2] == "env" and SECRET_REF.match(value), \
                f"{path.name} {'.'.join(where)}: secrets only as whole env values"
            assert SECRET_REF.match(value)[1] == where[-1], "the env name is the secret's name"


def _needed_secrets() -> set[str]:
    script = (GITHUB / "actions" / "setup" / "check-secrets.sh").read_text()
    return set(re.findall(r"^\s*need ([A-Z_]+)$", script, re.M))


def test_jobs_with_secrets_name_their_environment_and_pass_what_setup_checks():
    needed = _needed_secrets()
    assert needed == {"PULUMI_ACCESS_TOKEN", "PULUMI_CONFIG_PASSPHRASE", "AWS_ACCESS_KEY_ID",
                      "AWS_SECRET_ACCESS_KEY", "CLOUDFLARE_API_TOKEN"}
    for name, job in _all_jobs():
        env = job.get("env", {})
        if any("secrets." in str(v) for v in env.values()):
            # Environment-scoped secrets (each stack's passphrase) resolve only with this.
            assert "environment" in job, f"{name} reads secrets without naming its environment"
        if any(s.get("uses") == SETUP for s in job.get("steps", [])):
            assert needed | {"PULUMI_BACKEND_URL"} <= set(env), f"{name} lacks secrets in env"


@pytest.mark.parametrize("name", ["pull-request.yml", "main.yml"])
def test_offline_jobs_get_no_secrets(name):
    offline = _load(name)["jobs"]["offline"]
    commands = "\n".join(s.get("run", "") for s in offline["steps"])
    assert ".ci/run" in commands and "make plan" in commands
    assert "secrets." not in yaml.safe_dump(offline) and "environment" not in offline


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_permissions_are_minimal(path):
    workflow = _load(path.name)
    assert workflow["permissions"] == {"contents": "read"}
    for job in workflow["jobs"].values():
        assert set(job.get("permissions", {}).items()) <= {("contents", "read"),
                                                            ("pull-requests", "write")}


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_actions_are_pinned_to_a_release(path):
    for uses in re.findall(r"uses:\s*(\S+)", path.read_text()):
        if uses == SETUP:
            continue
        assert re.search(r"@(v\d+(\.\d+)*|[0-9a-f]{40})$", uses), f"{uses} is not pinned"


# ----- pull requests --------------------------------------------------------------------------

def test_each_stack_is_previewed_with_its_own_secrets_and_the_policy_pack():
    preview = _load("pull-request.yml")["jobs"]["preview"]
    assert set(preview["strategy"]["matrix"]["stack"]) == STACKS
    assert preview["needs"] == "offline"
    assert preview["if"] == "github.event.pull_request.head.repo.full_name == github.repository"
    assert preview["environment"] == {"name": "${{ matrix.stack }}", "deployment": False}
    assert "matrix.stack" in preview["concurrency"]["group"]
    assert preview["permissions"] == {"contents": "read", "pull-requests": "write"}
    step = _step(preview, "preview")
    assert 'pulumi preview --stack "$STACK" --policy-pack policies' in step["run"]
    assert step["env"]["STACK"] == "${{ matrix.stack }}"
    assert "continue-on-error" not in step, "a failed preview fails the job"


def test_a_failed_preview_is_still_commented_on_the_pull_request():
    preview = _load("pull-request.yml")["jobs"]["preview"]
    [comment] = _steps(preview, "actions/github-script")
    assert ALWAYS.search(comment["if"]), "the comment step must run when the preview failed"
    assert _index(preview, comment) > _index(preview, _step(preview, "preview"))
    assert comment["env"]["OUTCOME"] == "${{ steps.preview.outcome }}"
    script = comment["with"]["script"]
    assert "jamjam-preview-${STACK}.txt" in script and "jamjam-setup-${STACK}.txt" in script
    assert "updateComment" in script and "createComment" in script
    assert "tee \"$RUNNER_TEMP/jamjam-preview-$STACK.txt\"" in _step(preview, "preview")["run"]
    assert "jamjam-setup-$STACK.txt" in ACTION.read_text()


def test_the_comment_script_is_valid_javascript(tmp_path):
    """github-script runs the script as the body of an async function; a typo would only show
    on a real pull request, so node parses it here the same way."""
    preview = _load("pull-request.yml")["jobs"]["preview"]
    [comment] = _steps(preview, "actions/github-script")
    source = tmp_path / "comment.js"
    source.write_text("(async function (github, context, core, require) {\n"
                      + comment["with"]["script"] + "\n});\n")
    node = shutil.which("node")
    assert node, "node is missing: run `bash .ci/system-packages.sh`"
    result = subprocess.run([node, "--check", str(source)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


# ----- main: approval, deploy, rollback -------------------------------------------------------

def test_main_deploys_test_then_production_behind_an_approval():
    workflow = _load("main.yml")
    assert workflow["on"] == {"push": {"branches": ["main"]}}
    jobs = workflow["jobs"]
    assert jobs["up-test"]["needs"] == "offline"
    assert jobs["approve-production"]["needs"] == "up-test"
    assert jobs["approve-production"]["environment"]["name"] == "production-approval"
    assert "env" not in jobs["approve-production"], "the approval environment holds no secrets"
    assert jobs["up-production"]["needs"] == "approve-production"
    assert jobs["up-test"]["environment"]["name"] == "test"
    assert jobs["up-production"]["environment"]["name"] == "production"
    for stack in STACKS:
        job = jobs[f"up-{stack}"]
        ups = [s for s in job["steps"] if f"pulumi up --yes --stack {stack} --policy-pack policies"
               in s.get("run", "")]
        assert ups, f"up-{stack} runs pulumi up with the policy pack"
        assert job["concurrency"] == {"group": f"pulumi-up-{stack}", "cancel-in-progress": False}


def test_a_failed_production_up_rolls_back_alerts_and_fails():
    job = _load("main.yml")["jobs"]["up-production"]
    up = _step(job, "up")
    assert up["continue-on-error"] is True and "pulumi up --yes --stack production" in up["run"]
    failed = "steps.up.outcome == 'failure'"
    last_good = _step(job, "last-good")
    assert last_good["if"] == failed
    assert "tools.last_good_deploy production --not \"$GITHUB_SHA\"" in last_good["run"]
    rollback = _step(job, "rollback")
    assert rollback["if"] == f"{failed} && steps.last-good.outputs.commit != ''"
    assert rollback["env"]["GOOD"] == "${{ steps.last-good.outputs.commit }}"
    assert "git worktree add --detach" in rollback["run"]
    assert "pulumi up --yes --stack production --policy-pack policies" in rollback["run"]
    [alert] = [s for s in job["steps"] if "ci-alert.sh production" in s.get("run", "")]
    assert alert["if"] == failed and alert["env"]["ROLLBACK"] == "${{ steps.rollback.outcome }}"
    assert job["env"]["ALERT_WEBHOOK_URL"] == "${{ secrets.ALERT_WEBHOOK_URL }}"
    final = job["steps"][-1]
    assert final["if"] == failed and "exit 1" in final["run"]
    order = [_index(job, s) for s in (up, last_good, rollback, alert, final)]
    assert order == sorted(order)
    checkout = _steps(job, "actions/checkout")[0]
    assert checkout["with"]["fetch-depth"] == 0, "the rollback needs older commits"


# ----- drift ----------------------------------------------------------------------------------

def test_drift_is_checked_nightly_per_stack_without_writing_state():
    workflow = _load("drift.yml")
    [schedule] = workflow["on"]["schedule"]
    minute, hour, *rest = schedule["cron"].split()
    assert rest == ["*", "*", "*"] and minute.isdigit() and hour.isdigit(), "once a night"
    assert "workflow_dispatch" in workflow["on"]
    job = workflow["jobs"]["drift"]
    assert set(job["strategy"]["matrix"]["stack"]) == STACKS
    assert job["strategy"]["fail-fast"] is False, "one stack's drift never hides the other's"
    assert job["environment"] == {"name": "${{ matrix.stack }}", "deployment": False}
    refresh, preview = _step(job, "refresh"), _step(job, "preview")
    assert "pulumi refresh --preview-only --expect-no-changes" in refresh["run"]
    assert "pulumi preview --refresh --expect-no-changes" in preview["run"]
    text = yaml.safe_dump(job)
    assert "--yes" not in text and "pulumi up" not in text, "the drift check never writes"
    drifted = "steps.refresh.outcome == 'failure' || steps.preview.outcome == 'failure'"
    assert refresh["continue-on-error"] is True and preview["continue-on-error"] is True
    [alert] = [s for s in job["steps"] if "ci-alert.sh" in s.get("run", "")]
    assert alert["if"] == drifted and '"$STACK" drift' in alert["run"]
    assert job["steps"][-1]["if"] == drifted and "exit 1" in job["steps"][-1]["run"]


# ----- the scripts, run for real --------------------------------------------------------------

def _fake_env(tmp_path: Path, **extra: str) -> dict:
    log = tmp_path / "fake-log"
    log.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "FAKE_", "SSH_"))}
    env.update(PATH=os.pathsep.join([str(FAKE), str(Path(sys.executable).parent), "/usr/bin",
                                     "/bin"]),
               FAKE_PULUMI_LOG=str(log), FAKE_PULUMI_LOGGED_IN="1", HOME=str(tmp_path / "home"),
               RUNNER_TEMP=str(tmp_path), GITHUB_ENV=str(tmp_path / "github-env"))
    env.update(extra)
    (tmp_path / "home").mkdir(exist_ok=True)
    return env


def _stack_with_key(tmp_path: Path, ssh_port: int) -> tuple[str, str]:
    """A project dir whose stack config holds a fresh key (fake-encrypted) and host key."""
    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    host_key = " ".join((key.with_suffix(".pub")).read_text().split()[:2])
    private = key.read_text()
    key.unlink()
    document = {"config": {
        f"{NS}:vpsAddress": "198.51.100.7",
        f"{NS}:ssh": {"user": "jamjam", "hostKey": host_key, "port": ssh_port},
        f"{NS}:sshPrivateKey": {"secure": "fake:" + private.encode().hex()},
    }}
    (tmp_path / "Pulumi.production.yaml").write_text(yaml.safe_dump(document))
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(key.with_suffix(".pub"))],
                                 capture_output=True, text=True, check=True).stdout.split()[1]
    return host_key, fingerprint


@pytest.mark.parametrize("ssh_port, pattern", [(2222, "[198.51.100.7]:2222"),
                                               (22, "198.51.100.7")])
def test_ssh_from_stack_loads_the_stacks_key_into_an_agent(tmp_path, ssh_port, pattern):
    host_key, fingerprint = _stack_with_key(tmp_path, ssh_port)
    env = _fake_env(tmp_path, FAKE_PULUMI_STACKS="production")
    result = subprocess.run(["bash", str(GITHUB / "actions/setup/ssh-from-stack.sh"), "production"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    exported = dict(line.split("=", 1) for line in
                    (tmp_path / "github-env").read_text().splitlines()) if result.returncode == 0 else {}
    try:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "home/.ssh/known_hosts").read_text() == f"{pattern} {host_key}\n"
        listed = subprocess.run(["ssh-add", "-l"], env={**env, **exported}, capture_output=True,
                                text=True, timeout=10)
        assert fingerprint in listed.stdout
        calls = [json.loads(line)["argv"] for line in
                 (tmp_path / "fake-log/calls.jsonl").read_text().splitlines()]
        assert ["config", "get", "--stack", "production", f"{NS}:sshPrivateKey"] in calls
        assert "PRIVATE KEY" not in result.stdout + result.stderr
        on_disk = [p for p in tmp_path.rglob("*") if p.is_file()
                   and "PRIVATE KEY" in p.read_text(errors="replace")]
        assert on_disk == [], "the key went from the config to the agent through a pipe only"
    finally:
        if "SSH_AGENT_PID" in exported:
            subprocess.run(["kill", exported["SSH_AGENT_PID"]], check=False)


def test_ssh_from_stack_names_a_missing_host_key(tmp_path):
    _stack_with_key(tmp_path, 22)
    document = yaml.safe_load((tmp_path / "Pulumi.production.yaml").read_text())
    del document["config"][f"{NS}:ssh"]["hostKey"]
    (tmp_path / "Pulumi.production.yaml").write_text(yaml.safe_dump(document))
    result = subprocess.run(["bash", str(GITHUB / "actions/setup/ssh-from-stack.sh"), "production"],
                            cwd=tmp_path, env=_fake_env(tmp_path, FAKE_PULUMI_STACKS="production"),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{setup_stack.HOST_KEY} is not set for stack production" in result.stderr
    assert "python -m tools.setup_stack production" in result.stderr
    assert not (tmp_path / "github-env").exists()


def test_ssh_from_stack_reads_the_keys_settings_reads():
    script = (GITHUB / "actions/setup/ssh-from-stack.sh").read_text()
    read = set(re.findall(r"\bget (?:--path )?([a-z]+:[\w.]+)", script))
    assert read == {f"{NS}:vpsAddress", f"{NS}:sshPrivateKey", setup_stack.HOST_KEY,
                    f"{NS}:ssh.port"}
    assert "vpsAddress" in settings.OPERATOR_KEYS and "sshPrivateKey" in settings.SECRET_KEYS


@pytest.mark.parametrize("backend, present, missing", [
    ("s3://jamjam-state?endpoint=example.invalid", {"CLOUDFLARE_API_TOKEN"},
     ["PULUMI_CONFIG_PASSPHRASE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]),
    ("https://api.pulumi.com", {"CLOUDFLARE_API_TOKEN"}, ["PULUMI_ACCESS_TOKEN"]),
    ("", {"PULUMI_ACCESS_TOKEN"}, ["CLOUDFLARE_API_TOKEN"]),
    ("s3://jamjam-state", {"PULUMI_CONFIG_PASSPHRASE", "AWS_ACCESS_KEY_ID",
                           "AWS_SECRET_ACCESS_KEY", "CLOUDFLARE_API_TOKEN"}, []),
])
def test_check_secrets_names_each_missing_secret_and_no_value(backend, present, missing):
    values = {name: "value-" + secrets.token_hex(8) for name in present}
    env = {"PATH": "/usr/bin:/bin", "PULUMI_BACKEND_URL": backend, **values}
    result = subprocess.run(["bash", str(GITHUB / "actions/setup/check-secrets.sh"), "production"],
                            env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == (1 if missing else 0), result.stdout
    named = re.findall(r"::(\w+) is not set for stack production", result.stdout)
    assert named == missing
    for value in values.values():
        assert value not in result.stdout + result.stderr


def test_check_secrets_with_no_backend_at_all_names_both_roads():
    result = subprocess.run(["bash", str(GITHUB / "actions/setup/check-secrets.sh"), "test"],
                            env={"PATH": "/usr/bin:/bin", "CLOUDFLARE_API_TOKEN": "x"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "neither PULUMI_BACKEND_URL (the R2 state bucket) nor PULUMI_ACCESS_TOKEN" in result.stdout
    assert result.stdout.count("::error") == 1


class _Webhook(http.server.BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Webhook.received.append({"path": self.path, "json": json.loads(body)})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_ci_alert_posts_through_the_hosts_sender_and_never_shows_the_url(tmp_path):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Webhook.received.clear()
    path = "/api/webhooks/" + secrets.token_hex(10)
    url = f"http://127.0.0.1:{server.server_port}{path}"
    try:
        result = subprocess.run(
            ["bash", str(GITHUB / "scripts/ci-alert.sh"), "production", "deploy",
             "pulumi up of abc1234 failed; rolled back to def5678"],
            env={"PATH": "/usr/bin:/bin", "ALERT_WEBHOOK_URL": url}, capture_output=True,
            text=True, timeout=60)
    finally:
        server.shutdown()
    assert result.returncode == 0, result.stderr
    assert _Webhook.received == [{"path": path, "json": {"content": (
        "[production/github-actions] ALERT deploy: pulumi up of abc1234 failed; rolled back "
        "to def5678")}}]
    assert path not in result.stdout + result.stderr
    assert list(tmp_path.iterdir()) == []


def test_ci_alert_without_a_webhook_says_so_and_does_not_fail():
    result = subprocess.run(["bash", str(GITHUB / "scripts/ci-alert.sh"), "test", "drift", "x"],
                            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0
    assert "ALERT_WEBHOOK_URL is not set" in result.stdout
    assert "[test/github-actions] ALERT drift: x" in result.stdout


def _sha() -> str:
    return secrets.token_hex(20)


def test_last_good_deploy_skips_failed_dirty_and_same_commit_updates():
    failed, good, older = _sha(), _sha(), _sha()
    history = [
        {"kind": "update", "result": "failed", "environment": {"git.head": failed}},
        {"kind": "update", "result": "succeeded",
         "environment": {"git.head": failed, "git.dirty": "false"}},
        {"kind": "refresh", "result": "succeeded", "environment": {"git.head": _sha()}},
        {"kind": "update", "result": "succeeded",
         "environment": {"git.head": _sha(), "git.dirty": "true"}},
        {"kind": "update", "result": "succeeded", "environment": {}},
        {"kind": "update", "result": "succeeded",
         "environment": {"git.head": good, "git.dirty": "false"}},
        {"kind": "update", "result": "succeeded", "environment": {"git.head": older}},
    ]
    assert last_good_deploy.last_good(history, failed) == good
    assert last_good_deploy.last_good(history[:5], failed) is None


def test_last_good_deploy_asks_the_stack_history(tmp_path):
    failed, good = _sha(), _sha()
    (tmp_path / "history.json").write_text(json.dumps([
        {"kind": "update", "result": "failed", "environment": {"git.head": failed}},
        {"kind": "update", "result": "succeeded",
         "environment": {"git.head": good, "git.dirty": "false"}},
    ]))
    env = _fake_env(tmp_path, FAKE_PULUMI_HISTORY=str(tmp_path / "history.json"))
    command = [sys.executable, "-m", "tools.last_good_deploy", "production", "--not"]
    result = subprocess.run([*command, failed], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60)
    assert (result.returncode, result.stdout) == (0, good + "\n"), result.stderr
    [call] = [json.loads(line)["argv"] for line in
              (tmp_path / "fake-log/calls.jsonl").read_text().splitlines()]
    assert call[:5] == ["stack", "history", "--stack", "production", "--json"]
    none = subprocess.run([*command, good], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)
    assert (none.returncode, none.stdout) == (1, "")
    assert "no earlier successful deploy of production" in none.stderr
    bad = subprocess.run([*command, "HEAD"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "40-hex" in bad.stderr


# ----- README agrees -----------------------------------------------------------------------------

def _readme_section(title: str) -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end != -1 else None]


def test_readme_names_every_ci_secret_and_the_backend_url_the_workflows_use():
    road = _readme_section("Deploying for real")
    used = {m[1] for path in WORKFLOWS for m in re.finditer(
        r"secrets\.([A-Z][A-Z0-9_]*)", path.read_text()) if m[1] != "GITHUB_TOKEN"}
    for name in sorted(used):
        assert f"`{name}`" in road, f"README 'Deploying for real' does not name {name}"
    assert re.search(r"s3://[^ `]+\?endpoint=[^ `]+\.r2\.cloudflarestorage\.com&region=auto"
                     r"&s3ForcePathStyle=true", road)
    assert "python -m tools.setup_stack" in road
    for environment in ("test", "production", "production-approval"):
        assert f"`{environment}`" in road
