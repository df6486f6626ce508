"""tools.setup_stack: what a stack lacks, the exact commands, and what it runs with a CLI.

Offline (no `pulumi` on PATH) it must print the commands; with a CLI it runs them. The CLI here
is tests/fixtures/fake-pulumi/pulumi, which records every call's argv and stdin and edits the
stack file as the real CLI does, so the tests can prove what would run and that no secret value
ever reaches a command line.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import settings
from tools import setup_stack

ROOT = Path(__file__).resolve().parent.parent
FAKE = ROOT / "tests" / "fixtures" / "fake-pulumi"
NS = settings.NAMESPACE
# The system tools the tool may need, and never a real pulumi.
BASE_PATH = os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"])


def _project(tmp_path: Path, stack: str = "production", document: dict | None = None) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "Pulumi.yaml", project / "Pulumi.yaml")
    if document is None:
        shutil.copy(ROOT / f"Pulumi.{stack}.yaml", project / f"Pulumi.{stack}.yaml")
    else:
        (project / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(document))
    return project


def _run(args: list[str], fake: bool = False, stdin: str = "", env: dict | None = None,
         tmp_path: Path | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("PULUMI_", "FAKE_"))}
    environ["PATH"] = (f"{FAKE}{os.pathsep}{BASE_PATH}" if fake else BASE_PATH)
    if fake:
        log = tmp_path / "fake-log"
        log.mkdir(exist_ok=True)
        environ["FAKE_PULUMI_LOG"] = str(log)
    environ.update(env or {})
    return subprocess.run([sys.executable, "-m", "tools.setup_stack", *args], cwd=ROOT,
                          env=environ, input=stdin, capture_output=True, text=True, timeout=120)


def _calls(tmp_path: Path) -> list[dict]:
    path = tmp_path / "fake-log" / "calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _host_key() -> str:
    return "ssh-ed25519 " + base64.b64encode(secrets.token_bytes(51)).decode()


def _private_key() -> str:
    # Shaped as settings wants it (a PRIVATE KEY marker), built at run time, not a real key.
    body = base64.b64encode(secrets.token_bytes(48)).decode()
    return f"-----BEGIN OPENSSH {'PRIVATE'} KEY-----\n{body}\n-----END OPENSSH PRIVATE KEY-----\n"


def _complete(stack: str = "production") -> dict:
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    config = document["config"]
    config[f"{NS}:vpsAddress"] = "198.51.100.7"
    config[f"{NS}:cloudflareAccountId"] = secrets.token_hex(16)
    config[f"{NS}:cloudflareZoneId"] = secrets.token_hex(16)
    for key in settings.SECRET_KEYS:
        config[f"{NS}:{key}"] = {"secure": "v1:" + secrets.token_hex(8)}
    config[f"{NS}:ssh"]["hostKey"] = _host_key()
    return {"encryptionsalt": "v1:" + secrets.token_hex(8), **document}


# ----- bad arguments ---------------------------------------------------------------------------

@pytest.mark.parametrize("args, names", [
    ([], "stack"),
    (["prod"], "'prod'"),
    (["production", "--bogus"], "--bogus"),
    (["production", "extra"], "extra"),
    (["production", "--project-dir", "/nonexistent"], "--project-dir"),
])
def test_bad_arguments_get_one_line_and_exit_2(args, names):
    result = _run(args)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert names in result.stderr and "python -m tools.setup_stack" in result.stderr


def test_a_broken_stack_file_is_one_line_and_exit_2(tmp_path):
    project = _project(tmp_path)
    (project / "Pulumi.production.yaml").write_text("config: [unclosed\n")
    result = _run(["production", "--project-dir", str(project)])
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Pulumi.production.yaml" in result.stderr
    assert "git checkout -- Pulumi.production.yaml" in result.stderr


# ----- offline: the exact commands ------------------------------------------------------------

@pytest.mark.parametrize("stack", ["production", "test"])
def test_offline_a_fresh_stack_gets_every_command(tmp_path, stack):
    project = _project(tmp_path, stack)
    result = _run([stack, "--project-dir", str(project)])
    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert f"pulumi stack init {stack} --secrets-provider passphrase" in out
    for key in settings.OPERATOR_KEYS:
        assert f"pulumi config set --stack {stack} {NS}:{key} <value>" in out
    for key in settings.SECRET_KEYS:
        assert f"pulumi config set --stack {stack} --secret {NS}:{key} <" in out
    assert f"pulumi config set --stack {stack} --path {NS}:ssh.hostKey" in out
    # settings decides what is required: the webhook is optional, the SSH key is not.
    assert f"{stack} lacks: {NS}:sshPrivateKey is not set" in out
    assert f"{stack} optional: {NS}:alertWebhookUrl is not set" in out
    assert "no `pulumi` CLI on PATH" in out
    assert (project / f"Pulumi.{stack}.yaml").read_text() == \
        (ROOT / f"Pulumi.{stack}.yaml").read_text(), "offline, nothing is changed"


def test_offline_a_complete_stack_lacks_nothing(tmp_path):
    project = _project(tmp_path, document=_complete())
    result = _run(["production", "--check", "--project-dir", str(project)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "production: nothing lacking" in result.stdout
    assert "lacks" not in result.stdout


def test_pulumi_cloud_needs_no_encryption_salt(tmp_path):
    document = _complete()
    del document["encryptionsalt"]
    project = _project(tmp_path, document=document)
    cloud = _run(["production", "--check", "--project-dir", str(project)],
                 env={"PULUMI_BACKEND_URL": "https://api.pulumi.com"})
    assert cloud.returncode == 0, cloud.stdout
    diy = _run(["production", "--check", "--project-dir", str(project)],
               env={"PULUMI_BACKEND_URL": "s3://state?endpoint=example.invalid"})
    assert diy.returncode == 1
    assert "pulumi stack init production --secrets-provider passphrase" in diy.stdout


def test_a_plaintext_secret_is_moved_to_an_encrypted_one(tmp_path):
    document = _complete()
    webhook = "https://example.invalid/webhook/" + secrets.token_hex(6)
    document["config"][f"{NS}:alertWebhookUrl"] = webhook
    project = _project(tmp_path, document=document)
    result = _run(["production", "--check", "--project-dir", str(project)])
    assert result.returncode == 1
    assert f"{NS}:alertWebhookUrl is stored in plaintext" in result.stdout
    assert f"pulumi config rm --stack production {NS}:alertWebhookUrl" in result.stdout
    assert f"pulumi config set --stack production --secret {NS}:alertWebhookUrl" in result.stdout
    assert webhook not in result.stdout + result.stderr
    assert result.stdout.count("lacks:") == 1, "one gap, one fix"


def test_a_wrong_host_key_is_set_again_with_path(tmp_path):
    document = _complete()
    document["config"][f"{NS}:ssh"]["hostKey"] = "not-a-key"
    project = _project(tmp_path, document=document)
    result = _run(["production", "--check", "--project-dir", str(project)])
    assert result.returncode == 1
    assert f"production lacks: {NS}:ssh.hostKey: must be the host's public key" in result.stdout
    assert f"pulumi config set --stack production --path {NS}:ssh.hostKey <value>" in result.stdout


def test_a_wrong_committed_setting_of_another_kind_is_left_to_a_person(tmp_path):
    document = _complete()
    document["config"][f"{NS}:echoDelayMs"] = 0
    project = _project(tmp_path, document=document)
    result = _run(["production", "--check", "--project-dir", str(project)])
    assert result.returncode == 1
    assert f"production lacks: {NS}:echoDelayMs: must be a whole number" in result.stdout
    assert "edit Pulumi.production.yaml" in result.stdout


def test_a_wrong_committed_value_is_reported_with_settings_own_line(tmp_path):
    document = _complete()
    document["config"][f"{NS}:vpsAddress"] = "127.0.0.1"
    project = _project(tmp_path, document=document)
    result = _run(["production", "--check", "--project-dir", str(project)])
    assert result.returncode == 1
    assert f"production lacks: {NS}:vpsAddress: must be the VPS's reachable address" in result.stdout
    assert f"pulumi config set --stack production {NS}:vpsAddress <value>" in result.stdout


def test_the_host_key_name_is_one_settings_validates():
    """The tool's spelling of the host key is the one settings reads (it rejects a bad value)."""
    document = yaml.safe_load((ROOT / "Pulumi.production.yaml").read_text())
    check = setup_stack.value_check("production", document, ".".join(setup_stack.HOST_KEY_PATH),
                                    False)
    assert check("not a key").startswith(f"{setup_stack.HOST_KEY}:")
    assert check(_host_key()) is None


# ----- with a CLI: what it runs ---------------------------------------------------------------

def test_with_a_cli_it_runs_every_command_and_no_secret_reaches_argv(tmp_path):
    project = _project(tmp_path)
    key_file = tmp_path / "id_ed25519"
    private_key = _private_key()
    key_file.write_text(private_key)
    webhook = "https://example.invalid/api/webhooks/" + secrets.token_hex(8)
    account, zone, host_key = secrets.token_hex(16), secrets.token_hex(16), _host_key()
    answers = ["not-an-address",            # refused by settings, asked again
               "198.51.100.7", account, zone,
               f"@{key_file}", webhook,
               f"{host_key} root@vps"]      # the .pub file's comment is dropped
    result = _run(["production", "--project-dir", str(project)], fake=True, tmp_path=tmp_path,
                  stdin="\n".join(answers) + "\n",
                  env={"FAKE_PULUMI_URL": "s3://jamjam-state?endpoint=example.invalid"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is not an IP address" in result.stderr

    calls = _calls(tmp_path)
    argvs = [c["argv"] for c in calls]
    assert argvs[0] == ["whoami", "--json", "--non-interactive"]
    assert ["login"] in argvs
    assert ["stack", "init", "production", "--secrets-provider", "passphrase"] in argvs
    at = ["--stack", "production"]
    assert ["config", "set", *at, f"{NS}:vpsAddress", "198.51.100.7"] in argvs
    assert ["config", "set", *at, f"{NS}:cloudflareAccountId", account] in argvs
    assert ["config", "set", *at, f"{NS}:cloudflareZoneId", zone] in argvs
    assert ["config", "set", *at, "--path", f"{NS}:ssh.hostKey", host_key] in argvs
    assert not any("not-an-address" in a for argv in argvs for a in argv)

    stdin_of = {c["argv"][-1]: c["stdin"] for c in calls if "--secret" in c["argv"]}
    assert stdin_of == {f"{NS}:sshPrivateKey": private_key, f"{NS}:alertWebhookUrl": webhook}
    flat = "\n".join(" ".join(argv) for argv in argvs)
    for secret in (private_key, webhook, private_key.splitlines()[1]):
        assert secret not in flat, "a secret value reached a command line"
        assert secret not in result.stdout + result.stderr, "a secret value was printed"

    written = yaml.safe_load((project / "Pulumi.production.yaml").read_text())
    assert written["encryptionsalt"]
    assert all(set(written["config"][f"{NS}:{k}"]) == {"secure"} for k in settings.SECRET_KEYS)
    assert written["config"][f"{NS}:images"], "committed settings are kept"
    assert "production: nothing lacking" in result.stdout
    assert "commit Pulumi.production.yaml" in result.stdout


def _backend_with(stacks: str, **more: str) -> dict[str, str]:
    """The fake CLI's environment: logged in to an S3 backend that holds ``stacks``."""
    return {"FAKE_PULUMI_LOGGED_IN": "1", "FAKE_PULUMI_URL": "s3://jamjam-state",
            "FAKE_PULUMI_STACKS": stacks, **more}


def test_check_with_a_cli_only_reads(tmp_path):
    project = _project(tmp_path)
    result = _run(["production", "--check", "--project-dir", str(project)], fake=True,
                  tmp_path=tmp_path, env=_backend_with("test"))
    assert result.returncode == 1
    assert "production lacks: stack production does not exist in the backend" in result.stdout
    assert [c["argv"][:2] for c in _calls(tmp_path)] == [["whoami", "--json"], ["stack", "ls"]]


def test_a_failing_command_stops_the_run(tmp_path):
    document = _complete()
    for key in settings.OPERATOR_KEYS:
        del document["config"][f"{NS}:{key}"]
    project = _project(tmp_path, document=document)
    result = _run(["production", "--project-dir", str(project)], fake=True, tmp_path=tmp_path,
                  stdin="198.51.100.7\n",
                  env=_backend_with("production", FAKE_PULUMI_FAIL="config set"))
    assert result.returncode == 1
    assert "nothing after it was run" in result.stderr
    sets = [c for c in _calls(tmp_path) if c["argv"][:2] == ["config", "set"]]
    assert len(sets) == 1, "no command runs after the one that failed"


def test_a_stack_that_exists_without_its_salt_is_not_reinitialised(tmp_path):
    project = _project(tmp_path)
    result = _run(["production", "--check", "--project-dir", str(project)], fake=True,
                  tmp_path=tmp_path, env=_backend_with("production"))
    assert "has no encryptionsalt although the stack exists" in result.stdout
    assert "pulumi stack change-secrets-provider --stack production passphrase" in result.stdout
    assert "stack init" not in result.stdout
