"""resource-alert.sh, run for real: `df -P` measures a real tmpfs, memory comes from a meminfo
file the test writes, alerts go through the real jamjam-alert.sh to a receiver on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.ops_helpers import free_port, host, receiver  # noqa: F401 (pytest fixtures)

@pytest.fixture
def disk(tmp_path):
    """A real 1 MiB tmpfs for `df -P` to measure (df is not faked): fill(kib) sets its usage."""
    mount = tmp_path / "rootfs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)

    def fill(kib: int) -> None:
        (mount / "data").write_bytes(b"\0" * kib * 1024)

    fill.path = mount
    yield fill
    subprocess.run(["umount", str(mount)], check=True)


def _meminfo(path: Path, total_kib: int, available_kib: int) -> None:
    path.write_text(f"MemTotal:       {total_kib} kB\nMemFree:          123456 kB\n"
                    f"MemAvailable:   {available_kib} kB\nBuffers:           81920 kB\n")


@pytest.fixture
def resources(host, disk):
    meminfo = host.root / "meminfo"
    _meminfo(meminfo, 4_000_000, 2_000_000)
    host.env.update(JAMJAM_DF_ROOT=str(disk.path), JAMJAM_MEMINFO=str(meminfo))
    return meminfo


def test_disk_alerts_once_per_incident_then_resolves_once(host, receiver, disk, resources):
    """84% (df's figure for 860 KiB of 1 MiB) against the default 80%: one alert over three
    hourly runs; 78% is under the threshold but inside the 5-point margin, so still open;
    49% sends one RESOLVED."""
    contents = []
    for kib, expected in [(500, []), (860, ["ALERT disk"]), (860, []), (860, []),
                          (792, []), (500, ["RESOLVED disk"]), (500, [])]:
        disk(kib)
        before = len(receiver.requests)
        result = host.run("resource-alert.sh")
        assert result.returncode == 0, result.stderr
        sent = receiver.contents()[before:]
        assert [" ".join(c.split()[1:3]).rstrip(":") for c in sent] == expected, (kib, sent)
        contents += sent
    assert contents[0].startswith(f"[production/vps1] ALERT disk: disk {disk.path} is 84% full (over 80%)")
    assert contents[1].startswith(f"[production/vps1] RESOLVED disk: disk {disk.path} is back to 49% full")


def test_memory_threshold_comes_from_the_environment(host, receiver, disk, resources):
    disk(100)
    _meminfo(resources, 4_000_000, 600_000)   # 85% used
    assert host.run("resource-alert.sh").returncode == 0
    assert receiver.requests == [], "85% is under the default 90%"
    result = host.run("resource-alert.sh", JAMJAM_MEM_ALERT_PERCENT="80")
    assert result.returncode == 0, result.stderr
    (content,) = receiver.contents()
    assert content.startswith("[production/vps1] ALERT memory: memory is 85% used (over 80%), 0.6 GiB of 3.8 GiB available")
    assert host.run("resource-alert.sh", JAMJAM_MEM_ALERT_PERCENT="80").returncode == 0
    assert len(receiver.requests) == 1
    _meminfo(resources, 4_000_000, 3_000_000)
    assert host.run("resource-alert.sh", JAMJAM_MEM_ALERT_PERCENT="80").returncode == 0
    assert receiver.contents()[1].startswith("[production/vps1] RESOLVED memory: memory is back to 25% used")


def test_an_undelivered_alert_is_sent_again_next_run(host, receiver, disk, resources):
    disk(860)
    good = (host.root / "alert-webhook").read_text()
    (host.root / "alert-webhook").write_text(f"http://127.0.0.1:{free_port()}/down\n")
    result = host.run("resource-alert.sh")
    assert result.returncode == 1
    assert "disk alert not delivered" in result.stderr
    assert len(host.alerts_logged()) == 1, "the alert is in syslog even so"
    (host.root / "alert-webhook").write_text(good)
    assert host.run("resource-alert.sh").returncode == 0
    assert host.run("resource-alert.sh").returncode == 0
    assert [c.split()[1] for c in receiver.contents()] == ["ALERT"]


def test_without_a_webhook_the_incident_is_logged_once(host, receiver, disk, resources):
    disk(860)
    for _ in range(3):
        result = host.run("resource-alert.sh", JAMJAM_ALERT_WEBHOOK_FILE=str(host.root / "none"))
        assert result.returncode == 0, result.stderr
    assert receiver.requests == []
    assert len(host.alerts_logged()) == 1


@pytest.mark.parametrize("name,value", [("JAMJAM_DISK_ALERT_PERCENT", "eighty"),
                                        ("JAMJAM_MEM_ALERT_PERCENT", "100")])
def test_a_bad_threshold_is_refused_by_name(host, receiver, resources, name, value):
    result = host.run("resource-alert.sh", **{name: value})
    assert result.returncode == 2
    assert f"{name}={value} is not a percentage" in result.stderr
    assert receiver.requests == []




@pytest.mark.parametrize("name,value", [("JAMJAM_DISK_ALERT_PERCENT", "060"),
                                        ("JAMJAM_MEM_ALERT_PERCENT", "08")])
def test_a_threshold_with_a_leading_zero_is_refused(host, receiver, resources, name, value):
    """bash arithmetic would read 060 as octal (an alert at 48%) and die on 08."""
    result = host.run("resource-alert.sh", **{name: value})
    assert result.returncode == 2
    assert result.stderr == f"resource-alert: {name}={value} is not a percentage from 1 to 99 (e.g. 80)\n"


def test_a_bad_margin_is_refused_by_name(host, receiver, resources):
    result = host.run("resource-alert.sh", JAMJAM_RESOLVE_MARGIN="05")
    assert result.returncode == 2
    assert "JAMJAM_RESOLVE_MARGIN=05 is not a whole number of percentage points" in result.stderr


def test_unreadable_meminfo_numbers_are_refused(host, receiver, disk, resources):
    disk(100)
    resources.write_text("MemTotal:       lots kB\nMemAvailable:   some kB\n")
    result = host.run("resource-alert.sh")
    assert result.returncode == 2
    assert f"{resources} has no MemTotal/MemAvailable in kB" in result.stderr
    assert receiver.requests == []


def test_a_damaged_marker_is_repaired_instead_of_failing_every_hour(host, receiver, disk,
                                                                    resources):
    """Before: a directory as disk.open made every run send RESOLVED and then fail on rm."""
    (host.root / "state/disk.open").mkdir(parents=True)
    disk(500)
    for _ in range(2):
        result = host.run("resource-alert.sh")
        assert result.returncode == 0, result.stderr
    assert receiver.requests == []
    assert not (host.root / "state/disk.open").exists()
    assert result.stderr == "", "the damage is logged once, by the first run"


def test_a_damaged_marker_while_over_the_threshold_alerts_again(host, receiver, disk, resources):
    (host.root / "state/disk.open").mkdir(parents=True)
    disk(860)
    result = host.run("resource-alert.sh")
    assert result.returncode == 0, result.stderr
    assert "disk.open is not a regular file" in result.stderr
    assert [c.split()[1:3] for c in receiver.contents()] == [["ALERT", "disk:"]]
    assert (host.root / "state/disk.open").is_file()
    assert host.run("resource-alert.sh").returncode == 0
    assert len(receiver.requests) == 1


def test_an_incident_that_cannot_be_recorded_fails_the_run(host, receiver, disk, resources):
    """Made unwritable with a directory in the way of the marker's temp file."""
    (host.root / "state/disk.open.tmp").mkdir(parents=True)
    disk(860)
    result = host.run("resource-alert.sh")
    assert result.returncode == 1
    assert "could not record the incident" in result.stderr
    assert len(receiver.requests) == 1
