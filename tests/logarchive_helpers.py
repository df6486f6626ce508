"""The real pieces the log-archive tests and benchmark run against: moto's S3 server on
loopback, an rclone config pointing at it, a fake /var/lib/docker/containers that rotates like
Docker's json-file driver, and a TCP proxy that resets connections mid-upload."""

from __future__ import annotations

import gzip
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from moto.server import ThreadedMotoServer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "components/files/upload-logs-to-r2.sh"
ORIGINAL = ROOT / "bench/original-upload-logs.sh"
BUCKET = "jamjam-logs"
STACK = "production"
HOST = "vps1"
RUN_TIMEOUT = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Server:
    """moto's S3 API on 127.0.0.1, with the bucket the script writes to."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)

    def __enter__(self) -> "S3Server":
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
        self._server.start()
        self.client = boto3.client(
            "s3", endpoint_url=f"http://127.0.0.1:{self.port}", region_name="us-east-1",
            aws_access_key_id="test", aws_secret_access_key="test")
        self.client.create_bucket(Bucket=BUCKET)
        return self

    def __exit__(self, *exc) -> None:
        self._server.stop()

    def reset_bucket(self) -> None:
        for key in self.keys():
            self.client.delete_object(Bucket=BUCKET, Key=key)

    def keys(self) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return keys

    def objects(self) -> dict[str, bytes]:
        """Every object, decompressed. A truncated or corrupt gzip raises here."""
        return {key: gzip.decompress(self.client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
                for key in self.keys()}

    def stored_bytes(self) -> int:
        total = 0
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
            total += sum(o["Size"] for o in page.get("Contents", []))
        return total


def write_rclone_config(path: Path, remotes: dict[str, int]) -> Path:
    """One S3 remote per name, each at a loopback port; 0600 like the real one."""
    sections = []
    for name, port in remotes.items():
        sections.append(
            f"[{name}]\ntype = s3\nprovider = Other\naccess_key_id = test\n"
            f"secret_access_key = test\nendpoint = http://127.0.0.1:{port}\n"
            "region = us-east-1\nacl = private\nno_check_bucket = true\n")
    path.write_text("\n".join(sections))
    path.chmod(0o600)
    return path


@dataclass
class Container:
    """A container directory as Docker's json-file driver leaves it, rotated like Docker does:
    <id>-json.log.{max_file-1} is deleted, the others move one number up, a new .log starts."""

    root: Path
    name: str
    max_size: int = 10**9
    max_file: int = 5
    id: str = field(default_factory=lambda: secrets.token_hex(32))
    written: list[str] = field(default_factory=list)
    seq: int = 0

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True)
        config = {"ID": self.id, "Name": f"/{self.name}", "Driver": "overlay2",
                  "MountPoints": {"/data": {"Name": "data-volume"}},
                  "Config": {"Image": "jamjam/echo-server:latest"}}
        (self.dir / "config.v2.json").write_text(json.dumps(config, separators=(",", ":")))
        self.log.touch()

    @property
    def dir(self) -> Path:
        return self.root / self.id

    @property
    def log(self) -> Path:
        return self.dir / f"{self.id}-json.log"

    def rotated(self, n: int) -> Path:
        return self.dir / f"{self.id}-json.log.{n}"

    def line(self, payload_bytes: int = 60) -> str:
        self.seq += 1
        text = f"{self.name} #{self.seq} {secrets.token_hex(payload_bytes // 2)}"
        return json.dumps({"log": text + "\n", "stream": "stdout",
                           "time": f"2025-01-01T00:00:00.{self.seq:09d}Z"}) + "\n"

    def write(self, lines: int = 1, payload_bytes: int = 60) -> None:
        """Appends whole lines, rotating whenever the active file reaches max_size."""
        for _ in range(lines):
            line = self.line(payload_bytes)
            with open(self.log, "a") as f:
                f.write(line)
            self.written.append(line)
            if self.log.stat().st_size >= self.max_size:
                self.rotate()

    def write_partial(self, text: str) -> None:
        with open(self.log, "a") as f:
            f.write(text)

    def rotate(self) -> None:
        self.rotated(self.max_file - 1).unlink(missing_ok=True)
        for n in range(self.max_file - 2, 0, -1):
            if self.rotated(n).exists():
                self.rotated(n).rename(self.rotated(n + 1))
        self.log.rename(self.rotated(1))
        self.log.touch()

    def on_disk(self) -> list[str]:
        """Lines still in this container's files, oldest first."""
        lines = []
        for n in range(self.max_file - 1, 0, -1):
            if self.rotated(n).exists():
                lines += self.rotated(n).read_text().splitlines(keepends=True)
        return lines + self.log.read_text().splitlines(keepends=True)


@dataclass
class Archive:
    """A temporary host: containers dir, spool, state, and the script's environment."""

    tmp: Path
    rclone_config: Path
    remote: str = "s3"

    def __post_init__(self) -> None:
        for d in ("containers", "spool", "state"):
            (self.tmp / d).mkdir(exist_ok=True)

    @property
    def containers(self) -> Path:
        return self.tmp / "containers"

    @property
    def spool(self) -> Path:
        return self.tmp / "spool"

    def container(self, name: str, **kwargs) -> Container:
        return Container(self.containers, name, **kwargs)

    def env(self, **overrides: str) -> dict[str, str]:
        # AWS_CA_BUNDLE (set on some CI hosts) makes rclone 1.60 refuse to build its S3 client.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RCLONE_", "JAMJAM_", "AWS_"))}
        env.update({
            "JAMJAM_LOG_DIR": str(self.containers),
            "JAMJAM_SPOOL_DIR": str(self.spool),
            "JAMJAM_STATE_DIR": str(self.tmp / "state"),
            "JAMJAM_R2_DEST": f"{self.remote}:{BUCKET}",
            "JAMJAM_STACK": STACK,
            "JAMJAM_HOST": HOST,
            "RCLONE_CONFIG": str(self.rclone_config),
            # Fail fast: the tests restart runs themselves instead of waiting on rclone's sleeps.
            "RCLONE_RETRIES": "2",
            "RCLONE_RETRIES_SLEEP": "0s",
            "RCLONE_LOW_LEVEL_RETRIES": "3",
            "RCLONE_CONTIMEOUT": "2s",
            "RCLONE_TIMEOUT": "10s",
        })
        env.update(overrides)
        return env

    def start(self, script: Path = SCRIPT, **overrides: str) -> subprocess.Popen:
        # A session of its own, so a kill takes the whole run down like a reboot would.
        return subprocess.Popen(["bash", str(script)], env=self.env(**overrides),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)

    def run(self, script: Path = SCRIPT, **overrides: str) -> subprocess.CompletedProcess:
        proc = self.start(script, **overrides)
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            raise AssertionError(f"run timed out:\n{err}")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def spooled(self) -> list[Path]:
        return sorted(self.spool.rglob("*.log.gz"))


class ResetProxy:
    """TCP proxy on loopback. The first `resets` connections that carry more than `cut` bytes
    from the client (uploads, not listings) are reset after `cut` bytes: an upload cut off
    mid-body, as a flaky network does it."""

    def __init__(self, upstream_port: int, resets: int, cut: int = 1500) -> None:
        self.upstream_port = upstream_port
        self.resets_left = resets
        self.resets_done = 0
        self.cut = cut
        self.bytes_up = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._closing = False

    def __enter__(self) -> "ResetProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closing = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _reset(sock: socket.socket) -> None:
        # SO_LINGER 0: close sends RST, not FIN.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        armed = True
        sent = 0

        def downstream() -> None:
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            try:
                client.shutdown(socket.SHUT_WR)
            except OSError:
                pass

        threading.Thread(target=downstream, daemon=True).start()
        try:
            while data := client.recv(65536):
                if armed and sent + len(data) > self.cut:
                    with self._lock:
                        if self.resets_left > 0:
                            self.resets_left -= 1
                            self.resets_done += 1
                            upstream.sendall(data[: self.cut - sent])
                            self._reset(client)
                            self._reset(upstream)
                            return
                    armed = False
                sent += len(data)
                with self._lock:
                    self.bytes_up += len(data)
                upstream.sendall(data)
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            for s in (client, upstream):
                try:
                    s.close()
                except OSError:
                    pass


def lines_of(objects: dict[str, bytes]) -> list[str]:
    lines = []
    for body in objects.values():
        lines += body.decode().splitlines(keepends=True)
    return lines


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def adapted_original(workdir: Path, log_dir: Path, dest: str) -> Path:
    """The seed script with only its two paths changed, so it runs against a temporary tree."""
    text = ORIGINAL.read_text()
    text = text.replace("/var/lib/docker/containers", str(log_dir))
    text = text.replace("r2:jamjam-logs", dest)
    path = workdir / "original-upload-logs.sh"
    path.write_text(text)
    return path
