"""components/files/bootstrap.sh run for real, without touching this machine.

The script runs as the program ships it (components/host.py fills in the stack's Debian release)
on a host whose /etc/os-release says that release, unless a test says otherwise. The release
check runs first, against a fake os-release. The SSH step, the one that can lock an operator
out, runs against a copy of an sshd config in a temporary root (JAMJAM_ROOT) and is judged by
the real `sshd -t` / `sshd -T`. The user step runs
unchanged (real useradd, visudo and sudo) inside a private mount namespace where copies of /etc,
/home, /root and the login records are mounted over the real ones; the mounts vanish with the
process. The packages step needs apt and systemd on a real VPS and is not run here.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.bootstrap_helpers import filled_bootstrap

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "components/files/bootstrap.sh"
BOOTSTRAP = filled_bootstrap(13)
SETTING = "jamjam:vpsDebianVersion"
KEY_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeKeyForBootstrapTestsOnly operator@laptop\n"
OTHER_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAnotherFakeKeyJamjamAddedByHand jamjam@desk\n"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sshd -t, useradd and mounts need root")


def os_release(version: str = "13", codename: str = "trixie", distro: str = "debian",
               name: str = "Debian GNU/Linux") -> str:
    """/etc/os-release as Debian writes it (quoted and unquoted values both occur)."""
    return (f'PRETTY_NAME="{name} {version} ({codename})"\nNAME="{name}"\n'
            f'VERSION_ID="{version}"\nVERSION="{version} ({codename})"\n'
            f"VERSION_CODENAME={codename}\nID={distro}\n")


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
    (tmp_path / "etc/os-release").write_text(os_release())
    (etc / "sshd_config").write_text(
        f"Include {etc}/sshd_config.d/*.conf\n"
        f"HostKey {etc}/host_key\n"
        "PasswordAuthentication yes\n"
        "PermitRootLogin yes\n")
    return tmp_path


def run_ssh_step(root: Path, user: str = "jamjam",
                 script: Path = BOOTSTRAP) -> subprocess.CompletedProcess:
    env = {**os.environ, "JAMJAM_ROOT": str(root), "PATH": PATH}
    return subprocess.run(["bash", str(script), "--user", user, "--step", "ssh"], env=env,
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


@pytest.mark.parametrize("line, is_key", [
    ("# " + KEY_LINE, False),  # commented out
    ('from="198.51.100.0/24" ' + KEY_LINE, True),  # with options
])
def test_what_counts_as_a_key(fake_root, line, is_key):
    give_key(fake_root)
    (fake_root / "home/jamjam/.ssh/authorized_keys").write_text(line)
    assert run_ssh_step(fake_root).returncode == (0 if is_key else 1)


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


def test_a_key_sshd_would_ignore_is_not_a_key(fake_root):
    """StrictModes ignores an authorized_keys others can write: hardening would lock us out."""
    give_key(fake_root)
    (fake_root / "home/jamjam/.ssh/authorized_keys").chmod(0o666)
    result = run_ssh_step(fake_root)
    assert result.returncode == 1 and "sshd would ignore" in result.stderr
    assert not (fake_root / "etc/ssh/sshd_config.d/10-jamjam.conf").exists()


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


# --- the user step, in a private mount namespace --------------------------------------------

MOUNTS = {"etc": "/etc", "home": "/home", "root": "/root", "log": "/var/log", "mail": "/var/mail"}


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    """Copies of what useradd, usermod, visudo and sudo read and write."""
    assert shutil.which("unshare", path=PATH) and shutil.which("useradd", path=PATH), \
        "unshare (util-linux) and useradd (passwd) are needed"
    assert shutil.which("sudo", path=PATH), "sudo is needed to check the sudoers entry"
    # Other tests create and remove /etc/netns/* concurrently; nothing here needs it.
    shutil.copytree("/etc", tmp_path / "etc", symlinks=True,
                    ignore=shutil.ignore_patterns("netns"))
    for name in ("home", "log", "mail"):
        (tmp_path / name).mkdir()
    (tmp_path / "root").mkdir(mode=0o700)
    (tmp_path / "root/.ssh").mkdir(mode=0o700)
    (tmp_path / "root/.ssh/authorized_keys").write_text(KEY_LINE)
    (tmp_path / "etc/os-release").unlink()  # often a link into /usr/lib
    (tmp_path / "etc/os-release").write_text(os_release())
    return tmp_path


def in_sandbox(box: Path, script: str) -> subprocess.CompletedProcess:
    """Runs a bash script with the sandbox's copies mounted over the real directories."""
    mounts = "; ".join(f'mount --bind "{box / name}" "{target}"' for name, target in MOUNTS.items())
    env = {"PATH": PATH, "HOME": "/root", "BOOTSTRAP": str(BOOTSTRAP)}
    return subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-euc", f"{mounts}; {script}"],
        env=env, capture_output=True, text=True, timeout=30)


def user_step(box: Path) -> subprocess.CompletedProcess:
    return in_sandbox(box, 'bash "$BOOTSTRAP" --user jamjam --step user')


def snapshot(box: Path) -> dict[str, tuple[str, int]]:
    files = ["etc/passwd", "etc/group", "etc/shadow", "etc/gshadow", "etc/sudoers.d/jamjam",
             "home/jamjam/.ssh/authorized_keys"]
    return {name: (hashlib.sha256((box / name).read_bytes()).hexdigest(),
                   (box / name).stat().st_mtime_ns) for name in files}


def test_user_step_creates_the_user_with_docker_sudo_and_the_admins_keys(sandbox):
    result = user_step(sandbox)
    assert result.returncode == 0, result.stderr
    checks = in_sandbox(sandbox, "id -nG jamjam; sudo -l -U jamjam; "
                                 "stat -c '%U %a %n' /home/jamjam/.ssh /home/jamjam/.ssh/authorized_keys "
                                 "/etc/sudoers.d/jamjam; ls -a /etc/sudoers.d")
    assert checks.returncode == 0, checks.stderr
    out = checks.stdout
    assert "docker" in out.splitlines()[0].split()
    assert "(ALL) NOPASSWD: ALL" in out, "sudo -n must work for Pulumi"
    assert "jamjam 700 /home/jamjam/.ssh" in out
    assert "jamjam 600 /home/jamjam/.ssh/authorized_keys" in out
    assert "root 440 /etc/sudoers.d/jamjam" in out
    assert ".jamjam." not in out, "no staged sudoers file left behind"
    assert (sandbox / "home/jamjam/.ssh/authorized_keys").read_text() == KEY_LINE
    assert not (Path("/home/jamjam").exists() or Path("/etc/sudoers.d/jamjam").exists()), \
        "the user step escaped the sandbox"


def test_user_step_twice_changes_nothing(sandbox):
    assert user_step(sandbox).returncode == 0
    first = snapshot(sandbox)
    result = user_step(sandbox)
    assert result.returncode == 0, result.stderr
    assert snapshot(sandbox) == first


def test_user_step_keeps_the_users_own_keys(sandbox):
    assert user_step(sandbox).returncode == 0
    (sandbox / "home/jamjam/.ssh/authorized_keys").write_text(OTHER_KEY)
    assert user_step(sandbox).returncode == 0
    assert (sandbox / "home/jamjam/.ssh/authorized_keys").read_text() == OTHER_KEY


def test_user_step_without_any_key_to_copy_fails_before_sudo(sandbox):
    (sandbox / "root/.ssh/authorized_keys").unlink()
    result = user_step(sandbox)
    assert result.returncode == 1 and "has none to copy" in result.stderr
    assert not (sandbox / "etc/sudoers.d/jamjam").exists()


def test_the_other_steps_refuse_a_test_root(tmp_path):
    env = {**os.environ, "JAMJAM_ROOT": str(tmp_path), "PATH": PATH}
    for step in ("packages", "user"):
        result = subprocess.run(["bash", str(BOOTSTRAP), "--user", "jamjam", "--step", step],
                                env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 1 and "ssh and docker only" in result.stderr


# --- the release check, before any step --------------------------------------------------

def _one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("bootstrap: "), stderr
    return lines[0]


def test_a_host_on_another_debian_release_is_refused_before_anything_changes(fake_root):
    give_key(fake_root)
    (fake_root / "etc/os-release").write_text(os_release("12", "bookworm"))
    result = run_ssh_step(fake_root)
    assert result.returncode == 1
    line = _one_line(result.stderr)
    assert f"this host runs Debian 12 but {SETTING} is 13" in line
    assert f"fix: pulumi config set {SETTING} 12 (or upgrade the host to Debian 13)" in line
    assert not (fake_root / "etc/ssh/sshd_config.d").exists(), "the ssh step ran anyway"
    assert effective(fake_root)["passwordauthentication"] == "yes"


def test_a_debian_12_script_runs_on_debian_12(fake_root, tmp_path):
    give_key(fake_root)
    (fake_root / "etc/os-release").write_text(os_release("12", "bookworm"))
    result = run_ssh_step(fake_root, script=filled_bootstrap(12))
    assert result.returncode == 0, result.stderr
    assert effective(fake_root)["passwordauthentication"] == "no"


@pytest.mark.parametrize("text,words", [
    (os_release("24.04", "noble", "ubuntu", "Ubuntu"),
     f"this host runs Ubuntu 24.04 (noble), not Debian; {SETTING} supports Debian 12 or 13"),
    (os_release("14", "forky"), f"this host runs Debian 14 but {SETTING} is 13"),
    ('ID=debian\nPRETTY_NAME="Debian GNU/Linux trixie/sid"\n',
     f"this host runs Debian without a VERSION_ID but {SETTING} is 13"),
])
def test_other_systems_are_refused_in_one_line(fake_root, text, words):
    give_key(fake_root)
    (fake_root / "etc/os-release").write_text(text)
    result = run_ssh_step(fake_root)
    assert result.returncode == 1 and words in _one_line(result.stderr)
    assert not (fake_root / "etc/ssh/sshd_config.d").exists()


def test_without_os_release_nothing_changes(fake_root):
    give_key(fake_root)
    (fake_root / "etc/os-release").unlink()
    result = run_ssh_step(fake_root)
    assert result.returncode == 1
    assert f"cannot read {fake_root}/etc/os-release" in _one_line(result.stderr)


def test_the_repository_copy_does_not_run_without_the_program(fake_root):
    """Only the program knows the stack's release; the file in the repository has
    placeholders and refuses to act on a guess."""
    give_key(fake_root)
    result = run_ssh_step(fake_root, script=SHIPPED)
    assert result.returncode == 1
    assert "has no Debian release filled in" in _one_line(result.stderr)
    assert not (fake_root / "etc/ssh/sshd_config.d").exists()


def test_the_user_step_is_refused_on_another_release_too(sandbox):
    (sandbox / "etc/os-release").write_text(os_release("12", "bookworm"))
    result = user_step(sandbox)
    assert result.returncode == 1 and "this host runs Debian 12" in result.stderr
    assert "jamjam" not in (sandbox / "etc/passwd").read_text()
