"""The real pieces the backup, restore-drill and directory-sync script tests run against:
PostgreSQL servers behind the fake `docker` in tests/fixtures/bin/postgres (each "container"
a real server from Debian's postgresql package), moto's S3 server on loopback standing in for
R2, and a recording `logger` so every alert the scripts raise through the real
jamjam-alert.sh is seen."""

from __future__ import annotations

import glob
import json
import os
import pwd
import secrets
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.logarchive_helpers import S3Server

ROOT = Path(__file__).resolve().parent.parent
FILES = ROOT / "components/files"
FAKE_DOCKER_DIR = ROOT / "tests/fixtures/bin/postgres"
ALERT = FILES / "jamjam-alert.sh"
BUCKET = "app-backups"
RUN_TIMEOUT = 120


def postgres_missing() -> str | None:
    """Why the PostgreSQL-backed tests cannot run here, or None."""
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        return "needs a PostgreSQL server (apt install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "as root, needs the postgres user (apt install postgresql creates it)"
        if not shutil.which("runuser"):
            return "as root, needs runuser (util-linux)"
    return None


def rclone_missing() -> str | None:
    return None if shutil.which("rclone") else "needs rclone (apt install rclone)"


class Engine:
    """The fake engine's state dir, reachable by the postgres user (PostgreSQL will not run as
    root), and the environment that puts the fake `docker` first on PATH."""

    def __init__(self) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="jamjam-fake-docker."))
        self.state.chmod(0o755)

    def env(self) -> dict[str, str]:
        return {"FAKE_DOCKER_STATE": str(self.state),
                "PATH": f"{FAKE_DOCKER_DIR}:{os.environ['PATH']}"}

    def docker(self, *args: str, stdin: str | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, **self.env()}
        result = subprocess.run(["docker", *args], env=env, input=stdin, capture_output=True,
                                text=True, timeout=RUN_TIMEOUT)
        if check and result.returncode != 0:
            raise AssertionError(f"docker {' '.join(args)}: {result.stderr}")
        return result

    def containers(self) -> set[str]:
        path = self.state / "containers"
        return {p.name for p in path.iterdir()} if path.exists() else set()

    def networks(self) -> set[str]:
        path = self.state / "networks"
        return {p.name for p in path.iterdir()} if path.exists() else set()

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def close(self) -> None:
        for name in self.containers():
            self.docker("rm", "-f", name, check=False)
        shutil.rmtree(self.state, ignore_errors=True)


@dataclass
class Database:
    container: str
    user: str
    name: str
    password: str
    image: str

    def sql(self, engine: Engine, query: str) -> str:
        return engine.docker(
            "exec", self.container, "sh", "-c",
            'PGPASSWORD="$POSTGRES_PASSWORD" psql -v ON_ERROR_STOP=1 -tAq -U "$POSTGRES_USER" '
            '-d "$POSTGRES_DB" -c "$1"', "sh", query).stdout.strip()


def start_database(engine: Engine, container: str = "app-db",
                   image: str = "postgres:15.8") -> Database:
    # Made up at run time: no credential-shaped literal in the repo.
    db = Database(container=container, user="app", name="appdb",
                  password=secrets.token_urlsafe(18), image=image)
    engine.docker("network", "create", "app")
    engine.docker("run", "--detach", "--name", container, "--network", "app",
                  "--env", f"POSTGRES_USER={db.user}", "--env", f"POSTGRES_PASSWORD={db.password}",
                  "--env", f"POSTGRES_DB={db.name}", image)
    return db


def write_rclone_config(path: Path, port: int) -> Path:
    """The remote is called r2, like the one R2Store writes; it points at moto on loopback."""
    path.write_text(
        "[r2]\ntype = s3\nprovider = Other\naccess_key_id = test\nsecret_access_key = test\n"
        f"endpoint = http://127.0.0.1:{port}\nregion = us-east-1\nacl = private\n"
        "no_check_bucket = true\n")
    path.chmod(0o600)
    return path


class Store(S3Server):
    """moto's S3 with the bucket the backup scripts write to."""

    def __enter__(self) -> "Store":
        super().__enter__()
        self.client.create_bucket(Bucket=BUCKET)
        return self

    def keys_in(self, bucket: str = BUCKET) -> list[str]:
        keys = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys += [o["Key"] for o in page.get("Contents", [])]
        return sorted(keys)

    def body(self, key: str, bucket: str = BUCKET) -> bytes:
        return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()

    def empty(self, bucket: str = BUCKET) -> None:
        for key in self.keys_in(bucket):
            self.client.delete_object(Bucket=bucket, Key=key)


class Host:
    """A temporary stand-in for the VPS: backup dir, state dir, rclone config, a recording
    logger for jamjam-alert.sh (no webhook: alerts go to the system log, which it records)."""

    def __init__(self, root: Path, engine: Engine, store_port: int) -> None:
        self.root = root
        self.engine = engine
        self.rclone_config = write_rclone_config(root / "rclone.conf", store_port)
        self.syslog_file = root / "syslog.jsonl"
        logger = root / "logger"
        logger.write_text(f"#!{sys.executable}\nimport json, sys\n"
                          f"with open({str(self.syslog_file)!r}, 'a') as f:\n"
                          "    f.write(json.dumps(sys.argv[1:]) + '\\n')\n")
        logger.chmod(0o755)
        self.work = root / "work"
        self.work.mkdir()
        self.backups = root / "backups"
        self.base_env = {
            **{k: v for k, v in os.environ.items()
               if not k.startswith(("RCLONE_", "JAMJAM_", "AWS_", "FAKE_DOCKER_"))},
            **engine.env(),
            "JAMJAM_STACK": "production",
            "JAMJAM_HOST": "vps1",
            "JAMJAM_ALERT": str(ALERT),
            "JAMJAM_ALERT_WEBHOOK_FILE": str(root / "no-webhook"),
            "JAMJAM_LOGGER": str(logger),
            "JAMJAM_STATE_DIR": str(root / "state"),
            "JAMJAM_BACKUP_DIR": str(self.backups),
            "JAMJAM_DRILL_WORK_DIR": str(self.work),
            "RCLONE_CONFIG": str(self.rclone_config),
            # Fail fast when the store is down: the tests run again rather than wait.
            "RCLONE_RETRIES": "1",
            "RCLONE_LOW_LEVEL_RETRIES": "1",
            "RCLONE_CONTIMEOUT": "2s",
            "RCLONE_TIMEOUT": "20s",
        }

    def run(self, script: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", str(FILES / script)], env={**self.base_env, **env},
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)

    def alerts(self) -> list[str]:
        """Each alert's text as the system log got it."""
        if not self.syslog_file.exists():
            return []
        records = [json.loads(line) for line in self.syslog_file.read_text().splitlines()]
        return [argv[argv.index("--") + 1] for argv in records]
