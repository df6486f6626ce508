"""What the scheduled-operations tests (tests/test_ops_*.py) share: a webhook receiver on
loopback, a temp tree standing in for the host, and the fake tools.

The scripts run for real. Tools that cannot run here (the Docker engine, Trivy, apt, systemd)
are replaced by the fakes in tests/fixtures/bin: real shell files, shellchecked like the shipped
scripts, that replay recorded output in the real tools' formats and record how they were
called. A test puts on PATH only the fakes it names (`host.fake("docker")`), so everything
else, curl included, is the real tool: every alert travels the whole way, from the job script
through the real jamjam-alert.sh and curl to the receiver.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "components/files"
FIXTURES = ROOT / "tests/fixtures"
FAKE_BIN = FIXTURES / "bin"
ALERT = FILES / "jamjam-alert.sh"
# Built here, not written out, so no file holds a webhook-token-shaped string.
SECRET_MARK = "s3cr3t-" + "t0ken"
SECRET_PATH = "/api/webhooks/1234567890/" + SECRET_MARK
T0 = 1_763_870_400  # 2025-11-23T04:00:00Z, a fixed clock for the heal job
NAMES = (FIXTURES / "ops_docker_ps_names.txt").read_text().split()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- a webhook receiver -------------------------------------------------------------------

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
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    yield state["hook"]
    server.shutdown()
    server.server_close()


# --- the host -----------------------------------------------------------------------------

@dataclass
class Host:
    """A temp tree standing in for the host: a bin dir on PATH for the fakes a test asks for,
    the state dir, the webhook file and the recording logger."""
    root: Path
    env: dict[str, str]

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def fake(self, *tools: str) -> None:
        """Put these fakes from tests/fixtures/bin first on PATH."""
        for tool in tools:
            (self.bin / tool).symlink_to(FAKE_BIN / tool)

    @property
    def syslog(self) -> list[list[str]]:
        """The argv of each `logger` call, in order (see tests/fixtures/bin/logger)."""
        path = Path(self.env["FAKE_SYSLOG"])
        if not path.exists():
            return []
        fields = path.read_bytes().decode("utf-8").split("\0")[:-1]
        records = []
        while fields:
            count = int(fields.pop(0))
            records.append(fields[:count])
            del fields[:count]
        return records

    def alerts_logged(self) -> list[str]:
        """The message of each jamjam-alert syslog record (the argument after --)."""
        return [argv[argv.index("--") + 1] for argv in self.syslog]

    def run(self, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(FILES / script), *args], env={**self.env, **env},
                              capture_output=True, text=True, timeout=30)


def make_host(tmp_path: Path, receiver: Receiver) -> Host:
    (tmp_path / "bin").mkdir()
    hook_file = tmp_path / "alert-webhook"
    hook_file.write_text(receiver.url + "\n")
    hook_file.chmod(0o600)
    env = {
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "JAMJAM_STACK": "production",
        "JAMJAM_HOST": "vps1.example.net",
        "JAMJAM_ALERT": str(ALERT),
        "JAMJAM_ALERT_WEBHOOK_FILE": str(hook_file),
        "JAMJAM_LOGGER": str(FAKE_BIN / "logger"),
        "FAKE_SYSLOG": str(tmp_path / "syslog.records"),
        "JAMJAM_ALERT_RETRIES": "0",
        "JAMJAM_STATE_DIR": str(tmp_path / "state"),
    }
    return Host(tmp_path, env)


@pytest.fixture
def host(tmp_path, receiver) -> Host:
    return make_host(tmp_path, receiver)


# --- the recorded Docker ------------------------------------------------------------------

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


def make_docker(host: Host) -> Docker:
    state = host.root / "docker"
    state.mkdir()
    host.fake("docker")
    shutil.copy(FIXTURES / "ops_docker_ps_names.txt", state / "ps-a-all.names")
    shutil.copy(FIXTURES / "ops_docker_ps_images.txt", state / "ps-images")
    shutil.copy(FIXTURES / "ops_docker_image_inspect.tsv", state / "inspect.tsv")
    host.env.update(FAKE_DOCKER_DIR=str(state), FAKE_STACK="production")
    fake = Docker(state)
    fake.health(healthy=NAMES)
    return fake


@pytest.fixture
def docker(host) -> Docker:
    """tests/fixtures/bin/docker on PATH, replaying tests/fixtures/ops_docker_*; all healthy."""
    return make_docker(host)


# --- the recorded apt ---------------------------------------------------------------------

@dataclass
class Apt:
    """tests/fixtures/bin/{apt-get,dpkg-query}: dpkg's status database and the calls made."""
    dir: Path

    def installed(self, *packages: str) -> None:
        with (self.dir / "status").open("a") as f:
            for package in packages:
                f.write(f"{package}\tinstall ok installed\n")

    def status(self) -> dict[str, str]:
        path = self.dir / "status"
        lines = path.read_text().splitlines() if path.exists() else []
        return dict(line.split("\t", 1) for line in lines)

    def calls(self) -> list[str]:
        path = self.dir / "calls"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def apt(host) -> Apt:
    state = host.root / "apt"
    state.mkdir()
    host.fake("apt-get", "dpkg-query")
    host.env["FAKE_APT_DIR"] = str(state)
    return Apt(state)
