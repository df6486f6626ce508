"""OS updates: what the program and os-updates.sh do to a host, run for real in a temporary
root. The program's own commands (rendered under mocks) are run there with `sudo -n` dropped
and / moved to the temporary root; apt-get, dpkg-query and systemctl are the fakes in
tests/fixtures/bin, the fake apt-get doing to /etc/apt/apt.conf.d what Debian's package does.
What apt and systemd make of the files is read by the real apt-config and systemd-analyze."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.ops_helpers import (FILES, FIXTURES, Apt, Host, apt, host,  # noqa: F401
                               receiver)
from tools.render import RenderedStack

UPGRADES = FILES / "unattended-upgrades"
APT_FILE = "/etc/apt/apt.conf.d/52jamjam-unattended-upgrades"
DROPIN = "/etc/systemd/system/apt-daily-upgrade.timer.d/jamjam-os-updates.conf"
DISTRO_20 = FIXTURES / "ops_20auto-upgrades"
DISTRO_50 = FIXTURES / "ops_50unattended-upgrades"
RELOAD = ["systemctl daemon-reload", "systemctl restart apt-daily-upgrade.timer"]


def _apt_config(tmp_path: Path, parts: dict[str, str] | Path) -> str:
    """Everything apt (and unattended-upgrades, which reads apt's config) sees, from the real
    apt-config reading only the given apt.conf.d parts (a dict, or a directory of them)."""
    if isinstance(parts, Path):
        parts_dir = parts
    else:
        parts_dir = tmp_path / "apt.conf.d"
        parts_dir.mkdir()
        for name, text in parts.items():
            (parts_dir / name).write_text(text)
    (tmp_path / "apt.conf").write_text(f'Dir::Etc::parts "{parts_dir}/";\n'
                                       f'Dir::Etc::main "{tmp_path}/empty.conf";\n')
    (tmp_path / "empty.conf").write_text("")
    return subprocess.run(["apt-config", "dump"],
                          env={**os.environ, "APT_CONFIG": str(tmp_path / "apt.conf")},
                          capture_output=True, text=True, check=True).stdout


def _rendered(reboot: str) -> str:
    # As components/operations.py fills the template.
    return ((UPGRADES / "52jamjam-unattended-upgrades").read_text()
            .replace("@AUTOMATIC_REBOOT@", reboot).replace("@REBOOT_TIME@", "03:30"))


def _origins(dump: str) -> list[str]:
    return [line.split('"')[1] for line in dump.splitlines()
            if line.startswith(("Unattended-Upgrade::Origins-Pattern:: ",
                                "Unattended-Upgrade::Allowed-Origins:: "))]


# --- what apt makes of the settings -------------------------------------------------------

@pytest.mark.parametrize("distro", ["ops_50unattended-upgrades", "ops_50unattended-upgrades.ubuntu"])
def test_only_security_origins_remain_after_the_distribution_defaults(tmp_path, distro):
    dump = _apt_config(tmp_path, {
        "20auto-upgrades": DISTRO_20.read_text(),
        "50unattended-upgrades": (FIXTURES / distro).read_text(),
        "52jamjam-unattended-upgrades": _rendered("false"),
    })
    origins = _origins(dump)
    assert origins and all("security" in origin.lower() for origin in origins), origins
    assert "origin=Debian,codename=${distro_codename},label=Debian" not in origins
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump
    assert 'Unattended-Upgrade::Automatic-Reboot-Time "03:30";' in dump
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump


def test_the_jamjam_file_wins_over_a_distribution_that_turned_updates_off(tmp_path):
    """Its settings live in a file of its own, read after 10periodic and 20auto-upgrades, so
    they need not edit those files to take effect."""
    off = 'APT::Periodic::Update-Package-Lists "0";\nAPT::Periodic::Unattended-Upgrade "0";\n'
    dump = _apt_config(tmp_path, {"10periodic": off, "20auto-upgrades": off,
                                  "50unattended-upgrades": DISTRO_50.read_text(),
                                  "52jamjam-unattended-upgrades": _rendered("false")})
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump


def test_reboot_follows_the_template(tmp_path):
    dump = _apt_config(tmp_path, {"52jamjam-unattended-upgrades": _rendered("true")})
    assert 'Unattended-Upgrade::Automatic-Reboot "true";' in dump
    assert "@" not in _rendered("true")


# --- a host, before and after -------------------------------------------------------------

@dataclass
class Machine:
    """A temporary root laid out like a Debian host, with the fake apt's package database."""
    host: Host
    apt: Apt
    root: Path

    def snapshot(self) -> dict[str, tuple]:
        """Every path under the root: kind, mode and content (what "exactly as before" means)."""
        found = {}
        for path in sorted(self.root.rglob("*")):
            rel = "/" + str(path.relative_to(self.root))
            stat = path.lstat()
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                found[rel] = ("dir", oct(stat.st_mode & 0o7777))
            else:
                found[rel] = ("file", oct(stat.st_mode & 0o7777), path.read_bytes())
        return found

    def file(self, path: str) -> Path:
        return self.root / path.lstrip("/")

    def systemctl(self) -> list[str]:
        path = Path(self.host.env["FAKE_SYSTEMCTL_CALLS"])
        calls = path.read_text().splitlines() if path.exists() else []
        path.unlink(missing_ok=True)
        return calls

    def script(self, *args: str) -> subprocess.CompletedProcess:
        return self.host.run("os-updates.sh", *args)

    def command(self, text: str, stdin: str) -> None:
        """One of the program's remote commands, as the host would run it, under the root."""
        text = text.replace("sudo -n ", "")
        text = re.sub(r"(?<![\w/.-])/(etc|usr|var)/", lambda m: f"{self.root}/{m.group(1)}/", text)
        result = subprocess.run(["bash", "-c", text], input=stdin, env=self.host.env,
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, (text, result.stderr)


@pytest.fixture
def machine(host, apt) -> Machine:
    root = host.root / "root"
    for directory in ("etc/apt/apt.conf.d", "etc/systemd/system", "usr/local/sbin", "var/lib"):
        (root / directory).mkdir(parents=True)
    host.fake("systemctl", "dpkg")
    host.env.update(JAMJAM_ROOT=str(root), FAKE_ROOT=str(root),
                    FAKE_UU_20=str(DISTRO_20), FAKE_UU_50=str(DISTRO_50),
                    FAKE_SYSTEMCTL_CALLS=str(host.root / "systemctl-calls"))
    return Machine(host, apt, root)


def _debian_with_automatic_updates(machine: Machine) -> None:
    machine.apt.installed("unattended-upgrades")
    shutil.copy(DISTRO_20, machine.file("/etc/apt/apt.conf.d/20auto-upgrades"))
    shutil.copy(DISTRO_50, machine.file("/etc/apt/apt.conf.d/50unattended-upgrades"))


def _os_updates(stack: RenderedStack) -> list:
    """The program's OS updates resources, in the order it registers (and creates) them."""
    found = [r for r in stack.resources
             if r.name.startswith("ops-upgrades-") or r.name == "ops-os-updates"]
    assert [r.name for r in found][-1] == "ops-os-updates"
    return found


def _up(machine: Machine, stack: RenderedStack) -> None:
    for resource in _os_updates(stack):
        machine.command(resource.inputs["create"], resource.inputs["stdin"])


def _destroy(machine: Machine, stack: RenderedStack) -> None:
    """Deleted in reverse: what `pulumi up` does once operations.osUpdates is false."""
    for resource in reversed(_os_updates(stack)):
        machine.command(resource.inputs["delete"], "")


def test_the_program_writes_no_file_of_the_distribution(production):
    """One owner per file: Pulumi writes and deletes only a file named for jamjam; the script
    is run with no paths to delete."""
    paths = {match for resource in production.resources
             for key in ("create", "update", "delete")
             for match in re.findall(r"/etc/apt/\S+", resource.inputs.get(key) or "")}
    assert paths == {APT_FILE, APT_FILE + ".pulumi-new"}, paths
    script = production.named("ops-os-updates")
    assert script.inputs["create"].endswith("/usr/local/sbin/jamjam-os-updates apply")
    assert script.inputs["delete"].startswith("sudo -n /usr/local/sbin/jamjam-os-updates remove &&")


def test_removal_restores_a_debian_host_byte_for_byte(machine, production):
    _debian_with_automatic_updates(machine)
    before = machine.snapshot()
    _up(machine, production)
    applied = machine.snapshot()
    assert set(applied) - set(before) == {
        APT_FILE, DROPIN, os.path.dirname(DROPIN), "/usr/local/sbin/jamjam-os-updates"}
    assert applied["/etc/apt/apt.conf.d/20auto-upgrades"] == before["/etc/apt/apt.conf.d/20auto-upgrades"]
    assert machine.systemctl() == RELOAD
    assert machine.apt.calls() == [], "the package was there: nothing installed"
    dump = _apt_config(machine.host.root, machine.file("/etc/apt/apt.conf.d"))
    assert all("security" in origin.lower() for origin in _origins(dump))

    _destroy(machine, production)
    assert machine.snapshot() == before
    assert machine.systemctl() == RELOAD, "systemd rereads the timer once the drop-in is gone"
    dump = _apt_config(machine.host.root, machine.file("/etc/apt/apt.conf.d"))
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump, \
        "the distribution's automatic updates are on again, as before"


def test_a_host_without_20auto_upgrades_is_left_without_it(machine, production):
    machine.apt.installed("unattended-upgrades")
    shutil.copy(DISTRO_50, machine.file("/etc/apt/apt.conf.d/50unattended-upgrades"))
    before = machine.snapshot()
    _up(machine, production)
    dump = _apt_config(machine.host.root, machine.file("/etc/apt/apt.conf.d"))
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump, "on while the job is on"
    _destroy(machine, production)
    assert machine.snapshot() == before


def test_a_host_without_the_package_gets_it_and_loses_it_again(machine, production):
    """The package's own files (20auto-upgrades, 50unattended-upgrades) come and go with it."""
    before = machine.snapshot()
    _up(machine, production)
    assert machine.apt.calls() == ["apt-get update -q", "apt-get install -y -q unattended-upgrades"]
    assert machine.file("/etc/apt/apt.conf.d/20auto-upgrades").exists()
    assert machine.file("/var/lib/jamjam/os-updates/unattended-upgrades-before").read_text() == \
        "not-installed\n"
    _destroy(machine, production)
    assert machine.apt.calls()[-1] == "dpkg --purge unattended-upgrades"
    assert machine.apt.status() == {}
    assert machine.snapshot() == before


def test_a_removed_package_goes_back_to_removed_with_its_settings(machine, production):
    """"deinstall ok config-files": removed earlier, settings kept; purging would lose them."""
    _debian_with_automatic_updates(machine)
    (machine.apt.dir / "status").write_text("unattended-upgrades\tdeinstall ok config-files\n")
    machine.file("/etc/apt/apt.conf.d/20auto-upgrades").write_text(
        'APT::Periodic::Unattended-Upgrade "0";\n')
    before = machine.snapshot()
    _up(machine, production)
    _destroy(machine, production)
    assert machine.apt.calls()[-1] == "dpkg --remove unattended-upgrades"
    assert machine.apt.status() == {"unattended-upgrades": "deinstall ok config-files"}
    assert machine.snapshot() == before


def test_a_package_something_else_now_needs_is_left_installed(machine, production):
    """Installed by apply, then another package came to depend on it: apt-get purge -y would
    have removed that one too. dpkg refuses; the package stays, the rest is undone."""
    _up(machine, production)
    machine.apt.installed("needs-unattended-upgrades")
    (machine.apt.dir / "depends").write_text("needs-unattended-upgrades\tunattended-upgrades\n")
    result = machine.script("remove")
    assert result.returncode == 0, result.stderr
    assert "needs-unattended-upgrades depends on unattended-upgrades" in result.stderr
    assert "dpkg would not --purge unattended-upgrades (see above); leaving it installed" in result.stderr
    assert machine.apt.status()["unattended-upgrades"] == "install ok installed"
    assert machine.apt.status()["needs-unattended-upgrades"] == "install ok installed"
    assert not machine.file(DROPIN).exists()
    assert not machine.file("/var/lib/jamjam").exists(), "nothing left to undo later"


def test_apply_twice_changes_nothing(machine):
    machine.apt.installed("unattended-upgrades")
    assert machine.script("apply").returncode == 0
    first = machine.snapshot()
    result = machine.script("apply")
    assert result.returncode == 0, result.stderr
    assert machine.snapshot() == first
    assert machine.apt.calls() == []
    assert machine.systemctl() == RELOAD * 2


def test_remove_without_apply_leaves_the_host_alone(machine):
    _debian_with_automatic_updates(machine)
    before = machine.snapshot()
    for _ in range(2):
        result = machine.script("remove")
        assert result.returncode == 0, result.stderr
    assert machine.snapshot() == before
    assert machine.apt.calls() == []


def test_an_install_that_failed_keeps_the_first_record(machine):
    """apply died after recording the host's state; dpkg now says something else
    ("half-installed"). The second apply must not overwrite what the host had."""
    record = machine.file("/var/lib/jamjam/os-updates/unattended-upgrades-before")
    record.parent.mkdir(parents=True)
    record.write_text("not-installed\n")
    (machine.apt.dir / "status").write_text("unattended-upgrades\tinstall reinstreq half-installed\n")
    assert machine.script("apply").returncode == 0
    assert record.read_text() == "not-installed\n"
    assert machine.script("remove").returncode == 0
    assert machine.apt.status() == {}


def test_a_damaged_record_leaves_the_package_installed(machine):
    """Not knowing what the host had, remove does not guess: it says so and uninstalls nothing."""
    machine.apt.installed("unattended-upgrades")
    record = machine.file("/var/lib/jamjam/os-updates/unattended-upgrades-before")
    record.parent.mkdir(parents=True)
    record.write_text("")
    result = machine.script("remove")
    assert result.returncode == 0, result.stderr
    assert "leaving unattended-upgrades installed" in result.stderr
    assert machine.apt.calls() == [] and not record.exists()
    assert machine.apt.status() == {"unattended-upgrades": "install ok installed"}


@pytest.mark.parametrize("args", [[], ["apply", "now"], ["remove", APT_FILE],
                                  ["remove", "/etc/apt/apt.conf.d/20auto-upgrades"], ["purge"]])
def test_bad_usage_exits_2_and_changes_nothing(machine, args):
    _debian_with_automatic_updates(machine)
    machine.script("apply")
    machine.systemctl()
    before = machine.snapshot()
    result = machine.script(*args)
    assert result.returncode == 2
    assert result.stderr == "usage: os-updates.sh apply | remove (for example: os-updates.sh apply)\n"
    assert machine.snapshot() == before and machine.systemctl() == []


# --- the maintenance window ---------------------------------------------------------------

def test_the_upgrade_run_and_reboot_fall_in_the_maintenance_window(machine):
    machine.apt.installed("unattended-upgrades")
    assert machine.script("apply").returncode == 0
    dropin = machine.file(DROPIN)
    assert oct(dropin.stat().st_mode & 0o777) == "0o644"
    timer = dropin.read_text()
    settings = [line.split("=", 1) for line in timer.splitlines()
                if "=" in line and not line.startswith("#")]
    assert settings[0] == ["OnCalendar", ""], "the distribution's schedule is cleared first"
    calendar = [value for key, value in settings if key == "OnCalendar" and value]
    assert calendar == ["*-*-* 03:00"]
    normalized = subprocess.run(["systemd-analyze", "calendar", calendar[0]],
                                capture_output=True, text=True, check=True).stdout
    assert "Normalized form: *-*-* 03:00:00" in normalized
    delay = dict(settings)["RandomizedDelaySec"]
    assert delay.endswith("m") and 0 < int(delay[:-1]) <= 30, \
        "the run starts early enough to finish before the 03:30 reboot"
    assert dict(settings)["Persistent"] == "false"
    assert "[Timer]" in timer.splitlines()
