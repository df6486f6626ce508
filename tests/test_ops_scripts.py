"""The scheduled-operations scripts, run for real: jamjam-alert.sh posts to a webhook receiver
on loopback and writes to a recording `logger`; resource-alert.sh measures a real tmpfs and a
meminfo file the test writes; heal-containers.sh and image-scan.sh, whose tools (the Docker
engine, Trivy) cannot run here, are driven by fakes on PATH that replay recorded output in the
real tools' formats (tests/fixtures/ops_*) and record how they were called. The apt and
systemd snippets are parsed by the real apt-config and systemd-analyze.

Every alert in these tests travels the whole way: the job script calls the real
jamjam-alert.sh, which runs the real curl against the receiver.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "components/files"
FIXTURES = ROOT / "tests/fixtures"
ALERT = FILES / "jamjam-alert.sh"
SECRET_PATH = "/api/webhooks/1234567890/s3cr3t-t0ken"
T0 = 1_763_870_400  # 2025-11-23T04:00:00Z, a fixed clock for the heal job


# --- a webhook receiver and a recording logger --------------------------------------------

@dataclass
class Receiver:
    """A Discord-like webhook on 127.0.0.1: records each POST, answers with the next queued
    status (204 once the queue is empty), optionally after a delay."""
    url: str
    requests: list[dict] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0

    def contents(self) -> list[str]:
        return [json.loads(r["body"])["content"] for r in self.requests]


@pytest.fixture
def receiver():
    state: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            hook = state["hook"]
            hook.requests.append({"path": self.path, "body": body.decode("utf-8"),
                                  "type": self.headers.get("Content-Type")})
            if hook.delay:
                time.sleep(hook.delay)
            self.send_response(hook.statuses.pop(0) if hook.statuses else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state["hook"] = Receiver(url=f"http://127.0.0.1:{server.server_port}{SECRET_PATH}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield state["hook"]
    server.shutdown()
    server.server_close()


def _write_exec(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


@dataclass
class Host:
    """A temp tree standing in for the host: fake tools on PATH, state dir, webhook file."""
    root: Path
    env: dict[str, str]

    @property
    def syslog(self) -> list[list[str]]:
        path = self.root / "syslog.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def alerts_logged(self) -> list[str]:
        """The message of each jamjam-alert syslog record (the argument after --)."""
        return [argv[argv.index("--") + 1] for argv in self.syslog]

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(FILES / script), *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=30)


@pytest.fixture
def host(tmp_path, receiver) -> Host:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # `logger` stand-in: one JSON line of argv per call, so the test sees exactly what syslog got.
    _write_exec(tmp_path / "logger", f"""#!{sys.executable}
import json, sys
with open({str(tmp_path / 'syslog.jsonl')!r}, "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
""")
    hook_file = tmp_path / "alert-webhook"
    hook_file.write_text(receiver.url + "\n")
    hook_file.chmod(0o600)
    env = {
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "JAMJAM_STACK": "production",
        "JAMJAM_HOST": "vps1.example.net",
        "JAMJAM_ALERT": str(ALERT),
        "JAMJAM_ALERT_WEBHOOK_FILE": str(hook_file),
        "JAMJAM_LOGGER": str(tmp_path / "logger"),
        "JAMJAM_ALERT_RETRIES": "0",
        "JAMJAM_STATE_DIR": str(tmp_path / "state"),
    }
    return Host(tmp_path, env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- jamjam-alert.sh ----------------------------------------------------------------------

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
    url = f"http://127.0.0.1:{_free_port()}{SECRET_PATH}"
    (host.root / "alert-webhook").write_text(url + "\n")
    result = host.run("jamjam-alert.sh", "disk", "85% full")
    assert result.returncode == 1
    assert host.alerts_logged() == ["[production/vps1] ALERT disk: 85% full"]
    assert "webhook did not take alert disk" in result.stderr
    assert "s3cr3t" not in result.stderr + result.stdout


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
            assert b"s3cr3t" not in argv, argv
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


# --- resource-alert.sh --------------------------------------------------------------------

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
    (host.root / "alert-webhook").write_text(f"http://127.0.0.1:{_free_port()}/down\n")
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


# --- heal-containers.sh -------------------------------------------------------------------

FAKE_DOCKER = r"""#!/usr/bin/env bash
# Replays recorded `docker` output from $FAKE_DOCKER_DIR and records each call (one per line).
set -euo pipefail
dir=$FAKE_DOCKER_DIR
printf '%s\n' "$*" >>"$dir/calls"
[[ ! -e $dir/down ]] || { echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?" >&2; exit 1; }
case $1 in
  ps)
    shift; health=all; all=""; format=""
    while (( $# )); do
      case $1 in
        -a) all=-a ;;
        --filter) [[ $2 == health=* ]] && health=${2#health=}; [[ $2 == label=* && $2 != "label=jamjam.stack=$FAKE_STACK" ]] && exit 0; shift ;;
        --format) format=$2; shift ;;
      esac
      shift
    done
    case $format in
      '{{.Names}}') cat "$dir/ps${all}-$health.names" 2>/dev/null || true ;;
      '{{.Image}}') cat "$dir/ps-images" ;;
      *) echo "fake docker: unrecorded format $format" >&2; exit 2 ;;
    esac ;;
  restart) echo "$2" ;;
  image)
    [[ $2 == inspect ]] || exit 2
    ref=${*: -1}
    line=$(awk -F'\t' -v id="$ref" '$1 == id { print $2 }' "$dir/inspect.tsv")
    [[ -n $line ]] || { echo "Error response from daemon: No such image: $ref" >&2; exit 1; }
    printf '%s\n' "$line" ;;
  *) echo "fake docker: unrecorded command $1" >&2; exit 2 ;;
esac
"""

NAMES = (FIXTURES / "ops_docker_ps_names.txt").read_text().split()


@dataclass
class Docker:
    dir: Path

    def health(self, unhealthy=(), healthy=()):
        """What `docker ps --filter health=...` answers this minute, as recorded lines."""
        (self.dir / "ps-unhealthy.names").write_text("".join(f"{n}\n" for n in unhealthy))
        (self.dir / "ps-healthy.names").write_text("".join(f"{n}\n" for n in healthy))

    def calls(self) -> list[str]:
        path = self.dir / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def restarts(self) -> list[str]:
        return [c.split()[1] for c in self.calls() if c.startswith("restart ")]


@pytest.fixture
def docker(host) -> Docker:
    state = host.root / "docker"
    state.mkdir()
    _write_exec(host.root / "bin/docker", FAKE_DOCKER)
    shutil.copy(FIXTURES / "ops_docker_ps_names.txt", state / "ps-a-all.names")
    shutil.copy(FIXTURES / "ops_docker_ps_images.txt", state / "ps-images")
    shutil.copy(FIXTURES / "ops_docker_image_inspect.tsv", state / "inspect.tsv")
    host.env.update(FAKE_DOCKER_DIR=str(state), FAKE_STACK="production")
    fake = Docker(state)
    fake.health(healthy=NAMES)
    return fake


def _heal(host, minute: int, **env) -> subprocess.CompletedProcess:
    result = host.run("heal-containers.sh", JAMJAM_NOW=str(T0 + 60 * minute), **env)
    assert result.returncode == 0, result.stderr
    return result


def test_an_unhealthy_container_is_restarted_and_alerted(host, receiver, docker):
    """Fake `docker` replays recorded `docker ps --format '{{.Names}}'` output."""
    docker.health(unhealthy=["jamjam-echo"], healthy=["jamjam-signaling", "jamjam-cloudflared"])
    _heal(host, 0)
    assert docker.restarts() == ["jamjam-echo"]
    assert "ps --filter label=jamjam.stack=production --filter health=unhealthy --format {{.Names}}" \
        in docker.calls()
    (content,) = receiver.contents()
    assert content.startswith("[production/vps1] ALERT heal/jamjam-echo: restarted jamjam-echo (unhealthy); restart 1 of at most 5")


def test_other_stacks_containers_are_left_alone(host, receiver, docker):
    """Fake `docker` answers only for the label filter of the stack it was recorded for."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0, JAMJAM_STACK="test")
    assert docker.restarts() == [] and receiver.requests == []


def test_restarts_back_off_exponentially(host, receiver, docker):
    """Fake `docker`, recorded `docker ps` lines; the clock is stepped a minute per run.
    Restarts at minutes 0, 1, 3, 7: waits of 1, 2, 4 minutes."""
    docker.health(unhealthy=["jamjam-signaling"])
    restarted_at = []
    for minute in range(10):
        before = len(docker.restarts())
        _heal(host, minute)
        if len(docker.restarts()) > before:
            restarted_at.append(minute)
    assert restarted_at == [0, 1, 3, 7]
    assert len(receiver.requests) == 4


def test_gives_up_after_the_limit_with_one_alert(host, receiver, docker):
    """Fake `docker`, recorded `docker ps` lines. With at most 3 restarts (minutes 0, 1, 3) the
    run at minute 7 gives up; later minutes neither restart nor alert again."""
    docker.health(unhealthy=["jamjam-signaling"])
    for minute in range(20):
        _heal(host, minute, JAMJAM_HEAL_MAX_RESTARTS="3")
    assert docker.restarts() == ["jamjam-signaling"] * 3
    gave_up = [c for c in receiver.contents() if "gave up" in c]
    assert len(gave_up) == 1
    assert gave_up[0].startswith("[production/vps1] ALERT heal/jamjam-signaling: gave up restarting jamjam-signaling: still unhealthy after 3 restarts since 04:00Z")
    assert len(receiver.requests) == 4


def test_a_give_up_alert_that_did_not_arrive_is_sent_again(host, receiver, docker):
    """Fake `docker` replaying recorded `docker ps` lines; the webhook is down for one minute."""
    docker.health(unhealthy=["jamjam-echo"])
    env = {"JAMJAM_HEAL_MAX_RESTARTS": "1"}
    _heal(host, 0, **env)
    good = (host.root / "alert-webhook").read_text()
    (host.root / "alert-webhook").write_text(f"http://127.0.0.1:{_free_port()}/down\n")
    result = host.run("heal-containers.sh", JAMJAM_NOW=str(T0 + 60), **env)
    assert result.returncode == 1
    (host.root / "alert-webhook").write_text(good)
    _heal(host, 2, **env)
    _heal(host, 3, **env)
    assert docker.restarts() == ["jamjam-echo"]
    assert len([c for c in receiver.contents() if "gave up" in c]) == 1


def test_healthy_again_resolves_and_resets(host, receiver, docker):
    """Fake `docker`, recorded `docker ps` lines. Healthy within the window: RESOLVED, but the
    count stays (a flapping container still reaches the limit); healthy after the window, or
    after giving up: forgotten, and the next incident starts again at restart 1."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0, JAMJAM_HEAL_MAX_RESTARTS="2")
    docker.health(healthy=NAMES)
    _heal(host, 2, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert receiver.contents()[-1] == "[production/vps1] RESOLVED heal/jamjam-echo: jamjam-echo is healthy again after 1 restart(s)."
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 4, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert "restart 2 of at most 2" in receiver.contents()[-1], "flapping keeps its count"
    for minute in (5, 6, 7, 8):
        _heal(host, minute, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert "gave up" in receiver.contents()[-1]
    docker.health(healthy=NAMES)
    _heal(host, 9, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert receiver.contents()[-1].startswith("[production/vps1] RESOLVED heal/jamjam-echo")
    assert not (host.root / "state/jamjam-echo").exists()
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 10, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert docker.restarts() == ["jamjam-echo"] * 3
    assert "restart 1 of at most 2" in receiver.contents()[-1]


def test_a_quiet_window_forgets_the_count(host, receiver, docker):
    """Fake `docker` replaying recorded `docker ps` lines; healthy an hour after the restart."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0)
    docker.health(healthy=NAMES)
    _heal(host, 2)
    assert (host.root / "state/jamjam-echo").exists()
    _heal(host, 61)
    assert not (host.root / "state/jamjam-echo").exists()


def test_docker_down_checks_nothing_and_fails(host, receiver, docker):
    """Fake `docker` fails the way the CLI does when the daemon is not running."""
    (docker.dir / "down").touch()
    result = host.run("heal-containers.sh", JAMJAM_NOW=str(T0))
    assert result.returncode == 1
    assert "docker did not answer" in result.stderr
    assert receiver.requests == []


def test_state_of_removed_containers_is_dropped(host, receiver, docker):
    """Fake `docker`: the recorded `docker ps -a` listing loses jamjam-echo."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0)
    (docker.dir / "ps-a-all.names").write_text("jamjam-signaling\njamjam-cloudflared\n")
    docker.health(healthy=["jamjam-signaling", "jamjam-cloudflared"])
    _heal(host, 1)
    assert not (host.root / "state/jamjam-echo").exists()


# --- image-scan.sh ------------------------------------------------------------------------

FAKE_TRIVY = r"""#!/usr/bin/env bash
# Replays a recorded `trivy image --format json` report for the image asked for, and records
# each call. Reports live in $FAKE_TRIVY_DIR named after the image with / : @ as _.
set -euo pipefail
printf '%s\n' "$*" >>"$FAKE_TRIVY_DIR/calls"
ref=${*: -1}
report="$FAKE_TRIVY_DIR/${ref//[\/:@]/_}.json"
if [[ ! -e $report ]]; then
  echo "FATAL	Fatal error	image scan error: unable to find the specified image \"$ref\"" >&2
  exit 1
fi
cat "$report"
"""

SCANNED = {
    "ghcr.io/koeda/jamjam-signaling-server@sha256:5d0c3e1f2a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d": "ops_trivy_signaling.json",
    "ghcr.io/koeda/jamjam-echo-server@sha256:9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d": "ops_trivy_echo.json",
    "cloudflare/cloudflared@sha256:1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b": "ops_trivy_cloudflared.json",
}


def _report_name(ref: str) -> str:
    return "".join("_" if c in "/:@" else c for c in ref) + ".json"


@pytest.fixture
def trivy(host, docker) -> Path:
    reports = host.root / "trivy"
    reports.mkdir()
    _write_exec(host.root / "bin/trivy", FAKE_TRIVY)
    for ref, fixture in SCANNED.items():
        shutil.copy(FIXTURES / fixture, reports / _report_name(ref))
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
        shutil.copy(FIXTURES / "ops_trivy_echo.json", trivy / _report_name(ref))
    assert host.run("image-scan.sh").returncode == 0
    assert host.run("image-scan.sh").returncode == 0
    assert [c.split()[1] for c in receiver.contents()] == ["ALERT", "RESOLVED"]


def test_a_failed_scan_alerts_instead_of_looking_clean(host, receiver, trivy):
    """Fake `trivy` fails (as the real one does, FATAL on stderr) for the cloudflared image."""
    (trivy / _report_name(next(r for r in SCANNED if r.startswith("cloudflare")))).unlink()
    result = host.run("image-scan.sh")
    assert result.returncode == 1
    failed = [c for c in receiver.contents() if "image-scan-failed" in c]
    assert failed == ["[production/vps1] ALERT image-scan-failed: could not scan cloudflare/cloudflared:2025.11.1; see `journalctl -t jamjam-image-scan`."]


# --- install-trivy.sh ---------------------------------------------------------------------

def test_install_trivy_is_idempotent(host):
    """Fake curl, gpg, dpkg-query and apt-get record their calls (no network, no real apt): the
    first run installs key, repository and packages; the second changes nothing."""
    bin_dir = host.root / "bin"
    calls = host.root / "apt-calls"
    installed = host.root / "installed"
    installed.write_text("curl\n")
    _write_exec(bin_dir / "curl", f"""#!/usr/bin/env bash
echo "curl $*" >>{calls}
out=""; while (( $# )); do [[ $1 == -o ]] && out=$2; shift; done
echo "-----BEGIN PGP PUBLIC KEY BLOCK-----" >"$out"
""")
    _write_exec(bin_dir / "gpg", f"""#!/usr/bin/env bash
out=""; while (( $# )); do [[ $1 == -o ]] && out=$2; shift; done
printf 'dearmored key' >"$out"
""")
    _write_exec(bin_dir / "dpkg-query", f"""#!/usr/bin/env bash
grep -qx "${{!#}}" {installed} && printf 'install ok installed' || exit 1
""")
    _write_exec(bin_dir / "apt-get", f"""#!/usr/bin/env bash
echo "apt-get $*" >>{calls}
[[ $1 == install ]] && for p in "$@"; do [[ $p == -* || $p == install ]] || echo "$p" >>{installed}; done
exit 0
""")
    env = {"JAMJAM_TRIVY_KEYRING": str(host.root / "keyrings/trivy.gpg"),
           "JAMJAM_TRIVY_SOURCES": str(host.root / "trivy.list")}
    assert host.run("install-trivy.sh", **env).returncode == 0
    first = calls.read_text().splitlines()
    assert "apt-get install -y -q --no-install-recommends gnupg" in first
    assert first[-1] == "apt-get install -y -q --no-install-recommends trivy jq"
    assert (host.root / "trivy.list").read_text() == (
        f"deb [signed-by={host.root}/keyrings/trivy.gpg] https://aquasecurity.github.io/trivy-repo/deb generic main\n")
    assert (host.root / "keyrings/trivy.gpg").read_text() == "dearmored key"

    result = host.run("install-trivy.sh", **env)
    assert result.returncode == 0, result.stderr
    second = calls.read_text().splitlines()[len(first):]
    assert [c for c in second if c.startswith("apt-get")] == []
    assert len((host.root / "trivy.list").read_text().splitlines()) == 1


# --- unattended-upgrades ------------------------------------------------------------------

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
