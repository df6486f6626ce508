"""The example projects' stand-in images (rehearsal/images.py) on a real Docker engine (dockerd
in a network namespace this test makes): the real PostgreSQL initialises under the library's
hardening and passes pg_isready; the real pg-backup.sh and pg-restore-drill.sh dump and
restore it; the app stand-in is unhealthy with a wrong database password and healthy with the
right one; post-deploy commands migrate and collect static files; Redis answers redis-cli
ping; the worker and bot are found by their healthchecks; and each example's own rendered plan
(containers, post-deploy and pids-limit commands) runs on them. Needs root; a cold cache builds
the Debian rootfs first (about a minute). Nothing is left behind (asserted)."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time

import pytest

from rehearsal import checks, images
from rehearsal.apply import (COMMAND, CONTAINER, IMAGE, NETWORK, DockerApi, container_body,
                             dependency_order)
from rehearsal.engine import Dockerd
from rehearsal.images import import_standin, standin_for
from tests.backup_helpers import Host
from tests.engine_helpers import scratch_engine
from tools.render import ROOT, render, reveal

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and dockerd")

APP_NETWORK = "app"
# The library's database hardening (components/backup.py postgres(), docker_run_flags).
DB_HARDENING = ["--cap-drop", "ALL", "--cap-add", "CHOWN", "--cap-add", "DAC_OVERRIDE",
                "--cap-add", "FOWNER", "--cap-add", "SETGID", "--cap-add", "SETUID",
                "--security-opt", "no-new-privileges=true", "--init", "--memory", "512m",
                "--memory-swap", "512m", "--pids-limit", "200"]
APP_HARDENING = ["--cap-drop", "ALL", "--security-opt", "no-new-privileges=true", "--init",
                 "--memory", "512m", "--memory-swap", "512m", "--pids-limit", "200"]
HEALTH = ["--health-interval", "1s", "--health-timeout", "5s", "--health-retries", "1"]
REFERENCES = {"db": "postgres:16.4", "postgis": "postgis/postgis:16-3.4", "redis": "redis:7.4.1",
              "tracker": "ghcr.io/workspace/work-tracker:2.3.0",
              "bot": "ghcr.io/workspace/twitch-bot:2.3.0",
              "backend": "ghcr.io/thinkring/backend:1.4.2",
              "frontend": "ghcr.io/thinkring/frontend:1.4.2",
              "rails": "ghcr.io/shiojiri/rainbow-seeker-api:1.8.0",
              "server": "ghcr.io/rstream/server:3.1.0"}


class Engine:
    def __init__(self, dockerd: Dockerd) -> None:
        self.dockerd = dockerd

    def docker(self, *args: str, check: bool = True, timeout: float = 120,
               input: bytes | None = None) -> subprocess.CompletedProcess:
        return self.dockerd.docker(*args, check=check, timeout=timeout, input=input)

    def env(self) -> dict[str, str]:
        """For the backup scripts, which run the docker CLI as on the host."""
        return {"DOCKER_HOST": self.dockerd.host}

    def run(self, name: str, *flags: str, image: str, command: tuple[str, ...] = ()) -> None:
        self.docker("run", "--detach", "--name", name, "--network", APP_NETWORK, *flags,
                    REFERENCES[image], *command)

    def health(self, name: str) -> str:
        out = self.docker("inspect", "--format", "{{json .State.Health.Status}}", name)
        return json.loads(out.stdout)

    def wait_health(self, name: str, status: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while (now := self.health(name)) != status:
            assert time.monotonic() < deadline, (
                f"{name} is {now}, not {status}, after {timeout:.0f} s: {self.logs(name)[-800:]}")
            time.sleep(0.5)

    def logs(self, name: str) -> str:
        out = self.docker("logs", name, check=False)
        return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")

    def sql(self, container: str, user: str, database: str, query: str) -> str:
        return self.docker("exec", container, "psql", "-v", "ON_ERROR_STOP=1", "-tAq", "-U", user,
                           "-d", database, "-c", query).stdout.decode().strip()

    def remove(self, *names: str) -> None:
        self.docker("rm", "-f", "--volumes", *names, check=False)


@pytest.fixture(scope="module")
def engine():
    with scratch_engine("i") as dockerd:
        engine = Engine(dockerd)
        engine.api = DockerApi(dockerd.socket)
        for reference in REFERENCES.values():
            import_standin(engine.docker, reference)
        engine.docker("network", "create", APP_NETWORK)
        yield engine


def _password() -> str:
    # Made up at run time: no credential-shaped literal in the repo.
    return secrets.token_urlsafe(18)


@pytest.fixture(scope="module")
def db(engine):
    """The workspace example's database, as the library runs it: named volume, hardening,
    --init, the rendered healthcheck."""
    password = _password()
    engine.run("app-db", *DB_HARDENING, *HEALTH, "--network-alias", "db",
               "--volume", "app-db-data:/var/lib/postgresql/data",
               "--env", "POSTGRES_DB=workspace", "--env", "POSTGRES_USER=workspace",
               "--env", f"POSTGRES_PASSWORD={password}",
               "--health-cmd", "pg_isready --username workspace --dbname workspace", image="db")
    engine.wait_health("app-db", "healthy", timeout=90)
    # As with the official image, the socket-only healthcheck can pass during the first
    # start's temporary server; TCP answers once the real one is up.
    deadline = time.monotonic() + 60
    while engine.docker("exec", "app-db", "pg_isready", "--host=db", "--quiet",
                        check=False).returncode != 0:
        assert time.monotonic() < deadline, engine.logs("app-db")[-800:]
        time.sleep(0.5)
    yield password
    engine.remove("app-db")


def _url(password: str, scheme: str = "postgres") -> str:
    return f"{scheme}://workspace:{password}@db:5432/workspace"


def test_references_pick_the_example_standins_and_leave_jamjam_alone():
    assert images.spec_for("postgres:16.4").kind == "postgres"
    assert images.spec_for("docker.io/library/postgres:15.8@sha256:" + "0" * 64).kind == "postgres"
    assert images.spec_for("postgis/postgis:16-3.4").kind == "postgres"
    assert images.spec_for("redis:7.4.1").kind == "redis"
    assert images.spec_for("ghcr.io/shiojiri/rainbow-seeker-api:1.8.0").kind == "rails"
    assert images.spec_for("ghcr.io/thinkring/backend:1.4.2").kind == "django"
    for other in ("cloudflare/cloudflared:2025.11.1", "ghcr.io/jamjam/signaling-server:1.0",
                  "example/app:1", "myorg/postgres-exporter:1"):
        assert images.spec_for(other) is None, other
    assert standin_for("cloudflare/cloudflared:2025.11.1").kind == "cloudflared"
    assert standin_for("example/app:1").kind == "generic"


def test_postgres_initialises_hardened_and_keeps_the_official_contract(engine, db):
    info = json.loads(engine.docker("inspect", "app-db").stdout)[0]
    assert info["HostConfig"]["CapDrop"] == ["ALL"] and info["HostConfig"]["Init"] is True
    # The server runs as postgres (dropped from root by the entrypoint), on every address.
    users = engine.docker("exec", "app-db", "ps", "-o", "user=", "-C", "postgres").stdout.split()
    assert users and set(users) == {b"postgres"}
    assert engine.sql("app-db", "workspace", "workspace", "SHOW listen_addresses") == "*"
    # TCP from another container needs the password (scram-sha-256), the socket does not.
    hba = engine.docker("exec", "app-db", "sh", "-c",
                        "grep -v '^#' \"$PGDATA/pg_hba.conf\" | grep -v '^$' | tail -n 1")
    assert hba.stdout.split() == [b"host", b"all", b"all", b"all", b"scram-sha-256"]
    # The rehearsal's pids-limit proof runs its fork bomb in here too.
    bomb = engine.docker("exec", "app-db", "forkbomb", "800", "0").stdout.decode()
    assert "pids.max 200" in bomb and "errno 11" in bomb, bomb
    engine.wait_health("app-db", "healthy")
    # The rendered reference is the tag, and the image config is the official one's.
    config = json.loads(engine.docker("image", "inspect", "postgres:16.4").stdout)[0]["Config"]
    assert config["StopSignal"] == "SIGINT" and config["Entrypoint"] == ["docker-entrypoint.sh"]
    assert config["Cmd"] == ["postgres"] and "/var/lib/postgresql/data" in config["Volumes"]


def test_password_file_and_no_password(engine):
    password = _password()
    engine.docker("volume", "create", "pwfile")
    engine.docker("run", "--rm", "--volume", "pwfile:/run/s", "--entrypoint", "sh",
                  REFERENCES["postgis"], "-c", f"printf %s '{password}' >/run/s/pw")
    engine.run("pw-db", *DB_HARDENING, "--volume", "pwfile:/run/s:ro",
               "--env", "POSTGRES_PASSWORD_FILE=/run/s/pw", image="postgis")
    check = ["exec", "--env", f"PGPASSWORD={password}", "pw-db", "psql", "--host=127.0.0.1",
             "-U", "postgres", "-tAc", "SELECT current_user"]
    deadline = time.monotonic() + 60
    while (out := engine.docker(*check, check=False)).returncode != 0:
        assert time.monotonic() < deadline, engine.logs("pw-db")[-600:]
        time.sleep(0.5)
    assert out.stdout.decode().strip() == "postgres"
    engine.remove("pw-db")
    engine.docker("volume", "rm", "pwfile")
    # No password and no trust: refused, in one line saying what to set (the official image's).
    engine.run("nopw-db", *DB_HARDENING, image="db")
    engine.docker("wait", "nopw-db", timeout=60)
    assert "POSTGRES_PASSWORD" in engine.logs("nopw-db")
    engine.remove("nopw-db")


def test_the_app_is_unhealthy_with_a_wrong_password_and_healthy_with_the_right_one(engine, db):
    curl = "curl -fsS -o /dev/null http://127.0.0.1:8000/health"
    engine.run("tracker-wrong", *APP_HARDENING, *HEALTH, "--health-cmd", curl,
               "--env", "ENV=production", "--env", "PORT=8000",
               "--env", f"DATABASE_URL={_url(_password())}", image="tracker")
    deadline = time.monotonic() + 30
    while "password authentication failed" not in engine.logs("tracker-wrong"):
        assert time.monotonic() < deadline, engine.logs("tracker-wrong")
        time.sleep(0.5)
    assert engine.health("tracker-wrong") != "healthy"
    assert engine.docker("exec", "tracker-wrong", *curl.split(), check=False).returncode != 0
    assert db not in engine.logs("tracker-wrong")   # the reason is logged, never the password
    engine.remove("tracker-wrong")

    engine.run("work-tracker", *APP_HARDENING, *HEALTH, "--network-alias", "work-tracker",
               "--health-cmd", curl, "--env", "PORT=8000", "--env", f"DATABASE_URL={_url(db)}",
               image="tracker")
    engine.wait_health("work-tracker", "healthy")
    # The bot calls it, found by the example's `pgrep -f twitch-bot`.
    engine.run("twitch-bot", *APP_HARDENING, *HEALTH, "--health-cmd", "pgrep -f twitch-bot",
               "--env", "TWITCH_CLIENT_ID=client", "--env", f"TWITCH_CLIENT_SECRET={_password()}",
               "--env", "TRACKER_URL=http://work-tracker:8000", image="bot")
    engine.wait_health("twitch-bot", "healthy")
    deadline = time.monotonic() + 20
    while "reached http://work-tracker:8000/health: 200" not in engine.logs("twitch-bot"):
        assert time.monotonic() < deadline, engine.logs("twitch-bot")
        time.sleep(0.5)
    engine.remove("work-tracker", "twitch-bot")


def test_post_deploy_commands_migrate_and_collect_static_files(engine, db, tmp_path):
    # As the library's post-deploy step runs them: `docker run --rm` of the new image, same
    # network, hardening, volumes, env file.
    env_file = tmp_path / "env"
    env_file.write_text(f"DB_HOST=db\nDB_PORT=5432\nDB_NAME=workspace\nDB_USER=workspace\n"
                        f"DB_PASSWORD={db}\nDEBUG=False\n")
    flags = ["run", "--rm", "--network", APP_NETWORK, *APP_HARDENING, "--pull", "never",
             "--volume", "static:/app/staticfiles", "--env-file", str(env_file),
             REFERENCES["backend"]]
    engine.docker(*flags, "python", "manage.py", "migrate", "--noinput")
    engine.docker(*flags, "python", "manage.py", "collectstatic", "--noinput")
    listing = engine.docker("run", "--rm", "--volume", "static:/s", "--entrypoint", "find",
                            REFERENCES["backend"], "/s", "-type", "f").stdout.decode().split()
    assert "/s/rehearsal/collected.txt" in listing
    # Rails' db:migrate, with the postgis:// URL the shiojiri example renders.
    engine.docker("run", "--rm", "--network", APP_NETWORK, *APP_HARDENING,
                  "--env", f"DATABASE_URL={_url(db, 'postgis')}", REFERENCES["rails"],
                  "./bin/rails", "db:migrate")
    rows = engine.sql("app-db", "workspace", "workspace",
                      "SELECT command FROM rehearsal_migrations ORDER BY id")
    assert rows.splitlines()[-2:] == ["django migrate", "rails db:migrate"]
    # A wrong password fails the migration (and so the deploy), saying why.
    bad = engine.docker("run", "--rm", "--network", APP_NETWORK, "--env",
                        f"DATABASE_URL={_url(_password())}", REFERENCES["rails"],
                        "./bin/rails", "db:migrate", check=False, timeout=60)
    assert bad.returncode != 0 and b"password authentication failed" in bad.stderr
    engine.docker("volume", "rm", "static")


def test_the_rails_api_and_worker_run_their_rendered_commands(engine, db):
    url = _url(db, "postgis")
    engine.run("api", *APP_HARDENING, *HEALTH, "--env", "PORT=3000", "--env",
               f"DATABASE_URL={url}", "--health-cmd",
               "curl -fsS -o /dev/null http://127.0.0.1:3000/up", image="rails")
    # Solid Queue's process name as the first word of a command line: unlike a substring
    # search, this probe cannot find itself.
    probe = ("exit Dir['/proc/[0-9]*/cmdline'].any? { |f| "
             "(File.read(f) rescue '').split(0.chr).first == 'solid-queue-supervisor' }")
    engine.run("worker", *APP_HARDENING, *HEALTH, "--env", f"DATABASE_URL={url}",
               "--health-cmd", f"ruby -e \"{probe}\"", image="rails", command=("./bin/jobs",))
    engine.wait_health("api", "healthy")
    engine.wait_health("worker", "healthy")
    assert "jamjam-standin: reached the database" in engine.logs("worker")
    engine.remove("api", "worker")


def test_redis_and_the_node_server_that_needs_it(engine, db):
    engine.run("rstream-redis", *APP_HARDENING, *HEALTH, "--network-alias", "redis",
               "--user", "redis", "--health-cmd", "redis-cli ping", image="redis",
               command=("redis-server", "--save", "", "--appendonly", "no"))
    engine.wait_health("rstream-redis", "healthy")
    assert engine.docker("exec", "rstream-redis", "redis-cli", "ping").stdout.strip() == b"PONG"
    fetch = ("fetch('http://127.0.0.1:3000/').then(r => process.exit(r.status < 500 ? 0 : 1), "
             "() => process.exit(1))")
    common = [*APP_HARDENING, *HEALTH, "--health-cmd", f'node -e "{fetch}"',
              "--env", "NODE_ENV=production", "--env", "PORT=3000",
              "--env", f"DATABASE_URL={_url(db)}"]
    # Redis not there under that name: the server is up but unhealthy, and says why.
    engine.run("server-noredis", *common, "--env", "REDIS_URL=redis://nowhere:6379",
               image="server")
    deadline = time.monotonic() + 30
    while "redis nowhere:6379" not in engine.logs("server-noredis"):
        assert time.monotonic() < deadline, engine.logs("server-noredis")
        time.sleep(0.5)
    assert engine.health("server-noredis") != "healthy"
    engine.run("rstream-server", *common, "--env", "REDIS_URL=redis://redis:6379", image="server")
    engine.wait_health("rstream-server", "healthy")
    # The front end has no database: it just serves.
    engine.run("frontend", *APP_HARDENING, *HEALTH, "--env", "PORT=3000", "--health-cmd",
               "node -e \"fetch('http://127.0.0.1:3000/').then(r => process.exit(r.ok ? 0 : 1))\"",
               image="frontend")
    engine.wait_health("frontend", "healthy")
    engine.remove("rstream-redis", "server-noredis", "rstream-server", "frontend")


def test_the_backup_and_restore_drill_scripts_dump_and_restore_it(engine, db, tmp_path):
    engine.docker("run", "--rm", "--network", APP_NETWORK, *APP_HARDENING,
                  "--env", f"DATABASE_URL={_url(db)}", REFERENCES["tracker"],
                  "jamjam-standin-app", "migrate", "before the backup")
    host = Host(tmp_path, engine, store_port=9)
    name = "app-db-backup"
    dumped = host.run("pg-backup.sh", JAMJAM_BACKUP_NAME=name, JAMJAM_BACKUP_SET="daily",
                      JAMJAM_DB_CONTAINER="app-db", JAMJAM_KEEP_DAYS="7")
    assert dumped.returncode == 0, dumped.stderr
    (dump,) = (host.backups / name / "daily").glob("*.dump")
    assert dump.read_bytes()[:5] == b"PGDMP"
    drilled = host.run("pg-restore-drill.sh", JAMJAM_BACKUP_NAME=name,
                       JAMJAM_DB_CONTAINER="app-db", JAMJAM_DRILL_START_TIMEOUT="90",
                       JAMJAM_DRILL_MAX_AGE_HOURS="1")
    assert drilled.returncode == 0, drilled.stderr
    assert "1 tables" in drilled.stderr, drilled.stderr
    # The drill's throwaway container and network are gone.
    assert engine.docker("ps", "-aq", "--filter", "label=jamjam.drill").stdout.strip() == b""
    assert host.alerts() == []


EXAMPLES = sorted(p.name for p in (ROOT / "examples").iterdir() if (p / "Pulumi.yaml").exists())


def _healthcheck_argv(inputs: dict) -> list[str]:
    test = inputs["healthcheck"]["tests"]
    return test[1:] if test[0] == "CMD" else ["sh", "-c", test[1]]


@pytest.mark.parametrize("name", EXAMPLES)
def test_each_example_runs_as_rendered_on_its_standins(engine, name, tmp_path):
    """The example's own plan: its images, its containers from their rendered inputs (env with
    the generated passwords, commands, users, hardening, volumes, aliases) created in dependency
    order, each passing its rendered healthcheck before the next starts (the library creates
    them with wait), and its post-deploy script run as rendered (through a sudo that only
    drops -n: this engine is reached by DOCKER_HOST, not the VPS's socket)."""
    stack = render("production", project_dir=ROOT / "examples" / name)
    sudo = tmp_path / "bin" / "sudo"
    sudo.parent.mkdir()
    sudo.write_text('#!/bin/sh\n[ "$1" != -n ] || shift\nexec "$@"\n')
    sudo.chmod(0o755)
    env = {**os.environ, **engine.env(), "PATH": f"{sudo.parent}:{os.environ['PATH']}"}
    made: list[str] = []
    networks = sorted({reveal(r.inputs)["name"] for r in stack.of_type(NETWORK)}
                      | {n["name"] for r in stack.of_type(CONTAINER)
                         for n in reveal(r.inputs).get("networksAdvanced", [])})
    try:
        for network in networks:
            engine.docker("network", "create", network)
        ids = {r.urn: import_standin(engine.docker, reveal(r.inputs)["name"])
               for r in stack.of_type(IMAGE)}
        for resource in dependency_order(stack):
            inputs = reveal(resource.inputs)
            if resource.type == COMMAND and resource.name.endswith(("-post-deploy", "-pids-limit")):
                done = subprocess.run(["bash", "-c", inputs["create"]], input=inputs.get("stdin", ""),
                                      env=env, capture_output=True, text=True, timeout=120)
                assert done.returncode == 0, f"{resource.name}: {done.stderr[-800:]}"
            if resource.type != CONTAINER:
                continue
            image = next(ids[d] for d in resource.options["dependencies"] if d in ids)
            body, more = container_body(inputs, image)
            assert not more
            engine.api.request("POST", "/containers/create", body, query={"name": inputs["name"]})
            made.append(inputs["name"])
            engine.api.request("POST", f"/containers/{inputs['name']}/start")
            probe = _healthcheck_argv(inputs)
            deadline = time.monotonic() + 60
            while engine.docker("exec", inputs["name"], *probe, check=False).returncode != 0:
                assert time.monotonic() < deadline, (
                    f"{inputs['name']}: {probe} never passed: {engine.logs(inputs['name'])[-800:]}")
                time.sleep(0.5)
        # The rehearsal's issue-12 check holds on these images: what each container declares
        # (capabilities, no-new-privileges, memory, the pids limit its command sets) is what
        # the engine enforces. (Its fork bomb check waits for Docker's own 30 s health
        # schedule; the postgres test above runs the bomb in a stand-in.)
        assert len(checks.enforced(engine.api, engine.docker, stack, None)) == len(made)
        # Every app with a database reached it with the generated password (the worker's
        # healthcheck alone would not say so), and the bot reached the tracker.
        for resource in stack.of_type(CONTAINER):
            inputs = reveal(resource.inputs)
            envs = " ".join(inputs.get("envs", []))
            redis = " and redis" if "REDIS_URL=" in envs else ""
            want = (f"jamjam-standin: reached the database{redis}"
                    if "DATABASE_URL=" in envs or "DB_HOST=" in envs
                    else "/health: 200" if "TRACKER_URL=" in envs else None)
            deadline = time.monotonic() + 20
            while want and want not in engine.logs(inputs["name"]):
                assert time.monotonic() < deadline, engine.logs(inputs["name"])[-800:]
                time.sleep(0.5)
        # And each healthcheck can fail: in an idle container of the same image, where the
        # process it watches is not running, it must not pass (a probe that finds itself, or
        # asks a server that is not there and still exits 0, would hide a dead service).
        for resource in stack.of_type(CONTAINER):
            inputs = reveal(resource.inputs)
            idle = f"idle-{inputs['name']}"
            image = next(ids[d] for d in resource.options["dependencies"] if d in ids)
            engine.docker("run", "--detach", "--name", idle, "--network", networks[0],
                          "--entrypoint", "sleep", image, "120")
            made.append(idle)
            probe = _healthcheck_argv(inputs)
            assert engine.docker("exec", idle, *probe, check=False).returncode != 0, (
                f"{inputs['name']}: {probe} passes with nothing running")
        db = next(reveal(r.inputs) for r in stack.of_type(CONTAINER)
                  if "POSTGRES_DB=" in " ".join(reveal(r.inputs).get("envs", [])))
        settings = dict(e.split("=", 1) for e in db["envs"])
        migrations = engine.sql(db["name"], settings["POSTGRES_USER"], settings["POSTGRES_DB"],
                                "SELECT count(*) FROM information_schema.tables "
                                "WHERE table_name = 'rehearsal_migrations'")
        posts = [r for r in stack.of_type(COMMAND) if r.name.endswith("-post-deploy")]
        assert migrations == ("1" if posts else "0"), name
    finally:
        if made:
            engine.docker("rm", "-f", "--volumes", *made, check=False)
        engine.docker("volume", "prune", "--all", "--force", check=False)
        for network in networks:
            engine.docker("network", "rm", network, check=False)
