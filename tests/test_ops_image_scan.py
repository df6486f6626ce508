"""image-scan.sh, run for real against the recorded `docker` and `trivy`
(tests/fixtures/bin); alerts go through the real jamjam-alert.sh to a receiver on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ops_helpers import FIXTURES, docker, host, receiver  # noqa: F401 (pytest fixtures)

# --- scans ------------------------------------------------------------------------

# The repo digest each running image is scanned by, from the recorded `docker image inspect`
# lines (tag|digest), and the recorded Trivy report for it.
REPORTS = {"jamjam-signaling-server": "ops_trivy_signaling.json",
           "jamjam-echo-server": "ops_trivy_echo.json",
           "cloudflared": "ops_trivy_cloudflared.json"}
SCANNED = {}
for _line in (FIXTURES / "ops_docker_image_inspect.tsv").read_text().splitlines():
    _digest = _line.split("\t")[1].split("|")[1]
    SCANNED[_digest] = REPORTS[_digest.split("@")[0].rsplit("/", 1)[1]]


def report_name(ref: str) -> str:
    """The file tests/fixtures/bin/trivy reads the recorded report of image ``ref`` from."""
    return "".join("_" if c in "/:@" else c for c in ref) + ".json"


@pytest.fixture
def trivy(host, docker) -> Path:
    """tests/fixtures/bin/trivy on PATH, with the recorded report for each running image."""
    reports = host.root / "trivy"
    reports.mkdir()
    host.fake("trivy")
    for ref, fixture in SCANNED.items():
        shutil.copy(FIXTURES / fixture, reports / report_name(ref))
    host.env["FAKE_TRIVY_DIR"] = str(reports)
    return reports


def test_findings_alert_with_counts_and_top_cves(host, receiver, trivy):
    """Fake `docker` replays recorded `docker ps --format '{{.Image}}'` (short image IDs, as the
    program creates containers from IDs) and `docker image inspect` lines; fake `trivy` replays
    recorded JSON reports (schema v2)."""
    result = host.run("image-scan.sh", JAMJAM_SCAN_TOP="2")
    assert result.returncode == 0, result.stderr
    calls = (trivy / "calls").read_text().splitlines()
    assert sorted(calls) == sorted(f"image --quiet --format json --severity HIGH,CRITICAL {ref}"
                                   for ref in SCANNED)
    (content,) = receiver.contents()
    lines = content.splitlines()
    assert lines[0] == "[production/vps1] ALERT image-scan: HIGH/CRITICAL vulnerabilities in 2 of 3 running image(s)."
    assert "- cloudflare/cloudflared:2025.11.1: 1 CRITICAL, 1 HIGH: CVE-2024-45337 (golang.org/x/crypto v0.27.0 -> 0.31.0), CVE-2025-22869 (golang.org/x/crypto v0.31.0 -> 0.35.0)" in lines
    # CVE-2024-33599 is in two packages and counts once; CRITICAL comes first; top 2 only.
    assert "- ghcr.io/koeda/jamjam-signaling-server:0.1.0: 1 CRITICAL, 2 HIGH: CVE-2023-45853 (zlib1g 1:1.2.13.dfsg-1 -> no fix yet), CVE-2024-2961 (libc6 2.36-9+deb12u4 -> 2.36-9+deb12u7)" in lines
    assert not any("echo-server" in line for line in lines)


def test_a_clean_scan_after_findings_resolves(host, receiver, trivy):
    """Fake `docker` and `trivy` replaying recorded output; the clean week reuses the echo
    image's recorded (vulnerability-free) report for every image."""
    assert host.run("image-scan.sh").returncode == 0
    for ref in SCANNED:
        shutil.copy(FIXTURES / "ops_trivy_echo.json", trivy / report_name(ref))
    assert host.run("image-scan.sh").returncode == 0
    assert host.run("image-scan.sh").returncode == 0
    assert [c.split()[1] for c in receiver.contents()] == ["ALERT", "RESOLVED"]


def test_a_failed_scan_alerts_instead_of_looking_clean(host, receiver, trivy):
    """Fake `trivy` fails (as the real one does, FATAL on stderr) for the cloudflared image."""
    (trivy / report_name(next(r for r in SCANNED if r.startswith("cloudflare")))).unlink()
    result = host.run("image-scan.sh")
    assert result.returncode == 1
    failed = [c for c in receiver.contents() if "image-scan-failed" in c]
    assert failed == ["[production/vps1] ALERT image-scan-failed: could not scan cloudflare/cloudflared:2025.11.1; see `journalctl -t jamjam-image-scan`."]




def _all_clean(trivy: Path) -> None:
    for ref in SCANNED:
        shutil.copy(FIXTURES / "ops_trivy_echo.json", trivy / report_name(ref))


def test_a_damaged_marker_is_repaired_instead_of_failing_every_week(host, receiver, trivy):
    """Before: a directory as findings.open made every clean week send RESOLVED and then fail
    on rm. Now it is logged once and removed; with nothing known, nothing is resolved."""
    _all_clean(trivy)
    (host.root / "state/findings.open").mkdir(parents=True)
    first = host.run("image-scan.sh")
    assert first.returncode == 0, first.stderr
    assert "findings.open is not a regular file; removed it" in first.stderr
    second = host.run("image-scan.sh")
    assert second.returncode == 0 and "findings.open" not in second.stderr
    assert receiver.requests == []


def test_findings_with_a_damaged_marker_alert_and_record_it(host, receiver, trivy):
    (host.root / "state/findings.open").mkdir(parents=True)
    assert host.run("image-scan.sh").returncode == 0
    assert (host.root / "state/findings.open").is_file()
    _all_clean(trivy)
    assert host.run("image-scan.sh").returncode == 0
    assert [c.split()[1] for c in receiver.contents()] == ["ALERT", "RESOLVED"]


@pytest.mark.parametrize("name,value,expected", [
    ("JAMJAM_SCAN_TOP", "08", "is not a whole number from 1 to 9999; unset it for the default, 5"),
    ("JAMJAM_SCAN_TOP", "0", "is not a whole number from 1 to 9999; unset it for the default, 5"),
    ("JAMJAM_SCAN_TIMEOUT", "30m", "is not a whole number of seconds from 1 to 999999; unset it for the default, 1800"),
])
def test_a_bad_setting_is_refused_by_its_variable_name(host, receiver, trivy, name, value,
                                                       expected):
    result = host.run("image-scan.sh", **{name: value})
    assert result.returncode == 2
    assert result.stderr == f"image-scan: {name}={value} {expected}\n"
    assert not (trivy / "calls").exists() and receiver.requests == []
