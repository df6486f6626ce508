"""OS updates: the apt and systemd snippets are parsed by the real apt-config and
systemd-analyze."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.ops_helpers import FILES, FIXTURES

UPGRADES = FILES / "unattended-upgrades"


def _apt_config(tmp_path: Path, parts: dict[str, str]) -> str:
    """Everything apt (and unattended-upgrades, which reads apt's config) sees, from the real
    apt-config reading only the given apt.conf.d parts."""
    parts_dir = tmp_path / "apt.conf.d"
    parts_dir.mkdir()
    for name, text in parts.items():
        (parts_dir / name).write_text(text)
    (tmp_path / "apt.conf").write_text(f'Dir::Etc::parts "{parts_dir}/";\n'
                                       f'Dir::Etc::main "{tmp_path}/empty.conf";\n')
    (tmp_path / "empty.conf").write_text("")
    return subprocess.run(["apt-config", "dump"], env={**os.environ, "APT_CONFIG": str(tmp_path / "apt.conf")},
                          capture_output=True, text=True, check=True).stdout


def _rendered(reboot: str) -> str:
    # As components/operations.py fills the template.
    return ((UPGRADES / "52jamjam-unattended-upgrades").read_text()
            .replace("@AUTOMATIC_REBOOT@", reboot).replace("@REBOOT_TIME@", "03:30"))


@pytest.mark.parametrize("distro", ["ops_50unattended-upgrades", "ops_50unattended-upgrades.ubuntu"])
def test_only_security_origins_remain_after_the_distribution_defaults(tmp_path, distro):
    dump = _apt_config(tmp_path, {
        "20auto-upgrades": (UPGRADES / "20auto-upgrades").read_text(),
        "50unattended-upgrades": (FIXTURES / distro).read_text(),
        "52jamjam-unattended-upgrades": _rendered("false"),
    })
    origins = [line.split('"')[1] for line in dump.splitlines()
               if line.startswith(("Unattended-Upgrade::Origins-Pattern:: ",
                                   "Unattended-Upgrade::Allowed-Origins:: "))]
    assert origins and all("security" in origin.lower() for origin in origins), origins
    assert "origin=Debian,codename=${distro_codename},label=Debian" not in origins
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in dump
    assert 'Unattended-Upgrade::Automatic-Reboot-Time "03:30";' in dump
    assert 'APT::Periodic::Unattended-Upgrade "1";' in dump
    assert 'APT::Periodic::Update-Package-Lists "1";' in dump


def test_reboot_follows_the_template(tmp_path):
    dump = _apt_config(tmp_path, {"52jamjam-unattended-upgrades": _rendered("true")})
    assert 'Unattended-Upgrade::Automatic-Reboot "true";' in dump
    assert "@" not in _rendered("true")


def test_the_upgrade_run_and_reboot_fall_in_the_maintenance_window():
    timer = (UPGRADES / "apt-daily-upgrade-window.conf").read_text()
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
