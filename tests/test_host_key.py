"""The VPS's SSH host key is required for every project and stack, pinned on every remote
command's connection and on the Docker provider's ssh:// transport; a VPS presenting another
key is refused by a real ssh client using exactly the options the plan gives the provider."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from jamjam_infra.host import SshArgs
from tools.render import RenderedStack, render, reveal

ROOT = Path(__file__).resolve().parent.parent
PROJECTS = [ROOT, *sorted(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))]
COMMAND = "command:remote:Command"
PROVIDER = "pulumi:providers:docker"


def _name(project: Path) -> str:
    return "jamjam" if project == ROOT else project.name


@pytest.mark.parametrize("project", PROJECTS, ids=_name)
def test_a_stack_without_the_host_key_is_refused_in_one_line(project):
    with pytest.raises(Exception) as err:
        render("production", project_dir=project, remove=["ssh.hostKey"])
    lines = [line for line in str(err.value).splitlines() if "ssh.hostKey" in line]
    assert lines and lines[0].startswith(f"{_name(project)}:ssh.hostKey")
    assert "is not set" in lines[0] and "fix: pulumi config set" in lines[0]


@pytest.mark.parametrize("project", PROJECTS, ids=_name)
def test_every_connection_pins_the_stacks_host_key(project):
    stack: RenderedStack = render("production", project_dir=project)
    commands = stack.of_type(COMMAND)
    keys = {reveal(c.inputs["connection"]).get("hostKey") for c in commands}
    assert commands and len(keys) == 1 and next(iter(keys)).startswith("ssh-ed25519 ")
    (key,) = keys
    for provider in stack.of_type(PROVIDER):
        inputs = reveal(provider.inputs)
        opts = json.loads(inputs["sshOpts"]) if isinstance(inputs["sshOpts"], str) \
            else inputs["sshOpts"]
        address = inputs["host"].split("@")[1].rsplit(":", 1)[0]
        assert opts == _ssh(address, 22, key).docker_ssh_opts
        assert "StrictHostKeyChecking=yes" in opts and "UserKnownHostsFile=/dev/null" in opts
        assert opts[-1] == f"KnownHostsCommand=/bin/echo {address} {key}"


def _ssh(host: str, port: int, host_key: str) -> SshArgs:
    return SshArgs(host=host, port=port, user="nobody", initial_user="root", private_key="",
                   host_key=host_key)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def sshd(tmp_path):
    """A real sshd on loopback presenting a host key of its own."""
    if os.geteuid() != 0 or not Path("/usr/sbin/sshd").exists():
        pytest.skip("needs root and openssh-server")
    key = tmp_path / "host_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    port = _free_port()
    config = tmp_path / "sshd_config"
    config.write_text(f"Port {port}\nListenAddress 127.0.0.1\nHostKey {key}\n"
                      "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                      f"PidFile {tmp_path / 'sshd.pid'}\nAuthorizedKeysFile /dev/null\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)],
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    try:
        yield port, " ".join(key.with_suffix(".pub").read_text().split()[:2])
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _provider_ssh(port: int, host_key: str) -> subprocess.CompletedProcess:
    """A real ssh with exactly the options the plan gives the Docker provider."""
    opts = _ssh("127.0.0.1", port, host_key).docker_ssh_opts
    return subprocess.run([shutil.which("ssh"), "-F", "/dev/null", *opts, "-o", "ConnectTimeout=5",
                           "-p", str(port), "nobody@127.0.0.1", "true"],
                          capture_output=True, text=True, timeout=30)


def test_another_host_key_fails_closed(sshd, tmp_path):
    port, real_key = sshd
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = " ".join(other.with_suffix(".pub").read_text().split()[:2])
    refused = _provider_ssh(port, wrong)
    assert refused.returncode == 255
    assert "Host key verification failed" in refused.stderr
    # With the VPS's own key ssh gets past the host key and stops only at authentication.
    accepted = _provider_ssh(port, real_key)
    assert accepted.returncode == 255
    assert "Host key verification failed" not in accepted.stderr
    assert "Permission denied" in accepted.stderr
