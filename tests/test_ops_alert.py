"""jamjam-alert.sh, run for real: it posts to a webhook receiver on loopback with the real curl
and writes to the recording `logger` (tests/fixtures/bin/logger)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.ops_helpers import (ALERT, SECRET_MARK, SECRET_PATH, free_port,  # noqa: F401
                               host, receiver)

TRICKY = 'disk "/" is 85% full\nsecond line\twith a tab, a \\ backslash, é, 日本語, 🎵 and \x01'


def test_alert_arrives_as_discord_json_with_the_message_intact(host, receiver):
    result = host.run("jamjam-alert.sh", "disk", TRICKY)
    assert result.returncode == 0, result.stderr
    (request,) = receiver.requests
    assert request["path"] == SECRET_PATH
    assert request["type"] == "application/json"
    payload = json.loads(request["body"])
    assert payload == {"content": f"[production/vps1] ALERT disk: {TRICKY}"}
    (argv,) = host.syslog
    assert argv[:4] == ["-t", "jamjam-alert", "-p", "user.warning"]
    assert host.alerts_logged() == [f"[production/vps1] ALERT disk: {TRICKY}"]


def test_resolved_closes_an_incident_by_key(host, receiver):
    result = host.run("jamjam-alert.sh", "--resolved", "disk", "back to 42%")
    assert result.returncode == 0, result.stderr
    assert receiver.contents() == ["[production/vps1] RESOLVED disk: back to 42%"]
    assert host.syslog[0][:4] == ["-t", "jamjam-alert", "-p", "user.notice"]


def test_without_a_webhook_file_alerts_go_to_syslog_only(host, receiver):
    result = host.run("jamjam-alert.sh", "memory", "93% used",
                      JAMJAM_ALERT_WEBHOOK_FILE=str(host.root / "absent"))
    assert result.returncode == 0, result.stderr
    assert receiver.requests == []
    assert host.alerts_logged() == ["[production/vps1] ALERT memory: 93% used"]


def test_webhook_down_is_logged_and_reported_without_leaking_the_url(host, receiver):
    """Decision: exit 1, so callers retry next run instead of recording an incident nobody
    was told about; the alert itself is in syslog already."""
    url = f"http://127.0.0.1:{free_port()}{SECRET_PATH}"
    (host.root / "alert-webhook").write_text(url + "\n")
    result = host.run("jamjam-alert.sh", "disk", "85% full")
    assert result.returncode == 1
    assert host.alerts_logged() == ["[production/vps1] ALERT disk: 85% full"]
    assert "webhook did not take alert disk" in result.stderr
    assert SECRET_MARK not in result.stderr + result.stdout


def test_a_busy_webhook_is_retried(host, receiver):
    receiver.statuses = [503]
    result = host.run("jamjam-alert.sh", "disk", "85% full", JAMJAM_ALERT_RETRIES="2")
    assert result.returncode == 0, result.stderr
    assert len(receiver.requests) == 2
    assert receiver.contents()[1] == "[production/vps1] ALERT disk: 85% full"


def test_a_rejected_alert_is_not_retried_and_fails(host, receiver):
    receiver.statuses = [400]
    result = host.run("jamjam-alert.sh", "disk", "85% full", JAMJAM_ALERT_RETRIES="2")
    assert result.returncode == 1
    assert len(receiver.requests) == 1
    assert "HTTP 400" in result.stderr


def test_the_webhook_url_is_on_no_command_line(host, receiver):
    """While curl waits on the (slowed) receiver, no process's argv holds the secret path."""
    receiver.delay = 0.8
    proc = subprocess.Popen(["bash", str(ALERT), "disk", "85% full"], env=host.env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen_curl = False
    deadline = time.monotonic() + 5
    while proc.poll() is None and time.monotonic() < deadline:
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                argv = cmdline.read_bytes()
            except OSError:
                continue
            assert SECRET_MARK.encode() not in argv, argv
            seen_curl |= argv.startswith(b"curl\0")
        time.sleep(0.02)
    assert proc.wait(timeout=10) == 0
    assert seen_curl, "curl was never seen running; the check proved nothing"
    assert len(receiver.requests) == 1


def test_an_overlong_message_is_cut_to_what_discord_accepts(host, receiver):
    message = "x" + "é" * 3000      # the byte cut falls inside a two-byte character
    result = host.run("jamjam-alert.sh", "image-scan", message)
    assert result.returncode == 0, result.stderr
    (content,) = receiver.contents()
    assert len(content) <= 2000
    assert content.startswith("[production/vps1] ALERT image-scan: xéé")
    assert "é [...]" in content, "the half character is dropped, the text stays valid UTF-8"
    assert content.endswith("(cut; the whole message is in the system log)")
    assert host.alerts_logged() == [f"[production/vps1] ALERT image-scan: {message}"]


@pytest.mark.parametrize("args", [[], ["disk"], ["bad key", "message"], ["--resolved", "disk"]])
def test_bad_usage_exits_2_and_sends_nothing(host, receiver, args):
    result = host.run("jamjam-alert.sh", *args)
    assert result.returncode == 2
    assert "usage: jamjam-alert.sh" in result.stderr
    assert receiver.requests == [] and host.syslog == []




@pytest.mark.parametrize("damage", ["empty", "blank-line", "directory"])
def test_a_webhook_file_that_holds_no_url_fails_instead_of_passing_as_none(host, receiver,
                                                                           damage):
    """The file exists only when a webhook is configured. Before, an empty or unreadable one
    counted as "no webhook": exit 0, and the jobs recorded an incident nobody was told about."""
    hook = host.root / "alert-webhook"
    hook.unlink()
    if damage == "directory":
        hook.mkdir()
    else:
        hook.write_text("" if damage == "empty" else "\n")
    result = host.run("jamjam-alert.sh", "disk", "85% full")
    assert result.returncode == 1
    expected = (f"jamjam-alert: cannot read {hook} (run as root; it must be a readable file)"
                if damage == "directory" else f"jamjam-alert: {hook} is empty")
    assert result.stderr.startswith(expected)
    assert receiver.requests == []
    assert host.alerts_logged() == ["[production/vps1] ALERT disk: 85% full"]
