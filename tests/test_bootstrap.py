"""components/files/bootstrap.sh's SSH step run for real against a copy of an sshd config.

The package and user steps need apt, systemd and useradd on a real VPS; the SSH step is the
one that can lock an operator out, so it is the one run here, validated by the real `sshd -t`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = ROOT / "components/files/bootstrap.sh"
KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForBootstrapTestsOnly operator@laptop\n"


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    assert shutil.which("sshd") or Path("/usr/sbin/sshd").exists(), \
        "sshd is needed: run `bash .ci/system-packages.sh` (openssh-server)"
    # sshd -t insists on its privilege separation directory, which a booted host always has.
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    etc = tmp_path / "etc/ssh"
    etc.mkdir(parents=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(etc / "host_key")],
                   check=True)
    (etc / "sshd_config").write_text(
        f"Include {etc}/sshd_config.d/*.conf\n"
        f"HostKey {etc}/host_key\n"
        "PasswordAuthentication yes\n"
        "PermitRootLogin yes\n")
    return tmp_path


def run_ssh_step(root: Path, user: str = "jamjam") -> subprocess.CompletedProcess:
    env = {**os.environ, "JAMJAM_ROOT": str(root), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    return subprocess.run(["bash", str(BOOTSTRAP), "--user", user, "--step", "ssh"], env=env,
                          capture_output=True, text=True, timeout=30)


def effective(root: Path) -> dict[str, str]:
    """What sshd would actually use, from the real `sshd -T`."""
    result = subprocess.run(["/usr/sbin/sshd", "-T", "-f", str(root / "etc/ssh/sshd_config"),
                             "-C", "user=jamjam,host=client,addr=198.51.100.1"],
                            capture_output=True, text=True, timeout=30, check=True)
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


def give_key(root: Path) -> None:
    ssh = root / "home/jamjam/.ssh"
    ssh.mkdir(parents=True)
    (ssh / "authorized_keys").write_text(KEY_LINE)


def test_without_a_key_for_the_user_nothing_changes(fake_root):
    result = run_ssh_step(fake_root)
    assert result.returncode == 1
    assert "refusing to disable password and root login" in result.stderr
    assert not (fake_root / "etc/ssh/sshd_config.d/10-jamjam.conf").exists()
    assert effective(fake_root)["passwordauthentication"] == "yes", "the control case"


def test_a_commented_out_key_is_not_a_key(fake_root):
    give_key(fake_root)
    (fake_root / "home/jamjam/.ssh/authorized_keys").write_text("# " + KEY_LINE)
    assert run_ssh_step(fake_root).returncode == 1


def test_with_a_key_ssh_becomes_key_only_and_root_login_off(fake_root):
    give_key(fake_root)
    result = run_ssh_step(fake_root)
    assert result.returncode == 0, result.stderr
    settings = effective(fake_root)
    assert settings["passwordauthentication"] == "no"
    assert settings["kbdinteractiveauthentication"] == "no"
    assert settings["permitrootlogin"] == "no"
    assert settings["pubkeyauthentication"] == "yes"


def test_running_twice_changes_nothing(fake_root):
    give_key(fake_root)
    assert run_ssh_step(fake_root).returncode == 0
    drop_in = fake_root / "etc/ssh/sshd_config.d/10-jamjam.conf"
    first = drop_in.read_text(), drop_in.stat().st_mtime_ns
    assert run_ssh_step(fake_root).returncode == 0
    assert (drop_in.read_text(), drop_in.stat().st_mtime_ns) == first
    assert sorted(p.name for p in drop_in.parent.iterdir()) == ["10-jamjam.conf"]


def test_a_config_sshd_rejects_is_rolled_back(fake_root):
    give_key(fake_root)
    config = fake_root / "etc/ssh/sshd_config"
    config.write_text(config.read_text() + "NotAnOption yes\n")
    result = run_ssh_step(fake_root)
    assert result.returncode == 1 and "sshd rejected" in result.stderr
    assert not (fake_root / "etc/ssh/sshd_config.d/10-jamjam.conf").exists()


def test_a_config_without_the_include_is_refused(fake_root):
    give_key(fake_root)
    config = fake_root / "etc/ssh/sshd_config"
    config.write_text("\n".join(config.read_text().splitlines()[1:]) + "\n")
    result = run_ssh_step(fake_root)
    assert result.returncode == 1 and "does not include sshd_config.d" in result.stderr


@pytest.mark.parametrize("args", [[], ["--user", "root"], ["--user", "Bad Name"],
                                  ["--user", "jamjam", "--step", "reboot"]])
def test_bad_arguments_are_usage_errors(args):
    result = subprocess.run(["bash", str(BOOTSTRAP), *args], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "for example" in result.stderr
