"""pg-backup.sh and pg-restore-drill.sh, run for real: each database "container" is a real
PostgreSQL server behind the fake `docker` (tests/fixtures/bin/postgres/docker says exactly
what it stands for), the off-site copy goes through Debian's rclone to moto's S3 on loopback,
and every alert goes through the real jamjam-alert.sh to a recording logger.

The live database requires its password even on the local socket (stricter than the official
image), so a dump only works when the script takes PGPASSWORD from the container's own
environment, and the tests check that the password was on no command line."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.backup_helpers import (BUCKET, Engine, Host, Store, postgres_missing, rclone_missing,
                                  start_database, write_rclone_config)
from tests.logarchive_helpers import free_port

pytestmark = [
    pytest.mark.skipif(postgres_missing() is not None, reason=postgres_missing() or ""),
    pytest.mark.skipif(rclone_missing() is not None, reason=rclone_missing() or ""),
]

NAME = "app-db-backup"
PREFIX = f"db/{NAME}"


@pytest.fixture(scope="module")
def engine():
    engine = Engine()
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def db(engine):
    db = start_database(engine)
    db.sql(engine, "CREATE TABLE users (id serial PRIMARY KEY, name text NOT NULL);"
                   "CREATE TABLE sessions (id serial PRIMARY KEY, user_id int REFERENCES users);"
                   "CREATE TABLE audit (at timestamptz DEFAULT now(), what text);"
                   "INSERT INTO users (name) SELECT 'user ' || n FROM generate_series(1, 500) n;")
    return db


@pytest.fixture(scope="module")
def store():
    with Store() as server:
        yield server


@pytest.fixture
def host(tmp_path, engine, store) -> Host:
    store.empty()
    (engine.state / "calls").unlink(missing_ok=True)
    return Host(tmp_path, engine, store.port)


def backup(host: Host, db, backup_set: str = "daily", **env: str) -> subprocess.CompletedProcess:
    settings = {"JAMJAM_BACKUP_NAME": NAME, "JAMJAM_BACKUP_SET": backup_set,
                "JAMJAM_DB_CONTAINER": db.container, "JAMJAM_KEEP_DAYS": "7",
                "JAMJAM_R2_DEST": f"r2:{BUCKET}/{PREFIX}/{backup_set}",
                "JAMJAM_OFFSITE_DAYS": "30"}
    return host.run("pg-backup.sh", **{**settings, **env})


def drill(host: Host, db, **env: str) -> subprocess.CompletedProcess:
    settings = {"JAMJAM_BACKUP_NAME": NAME, "JAMJAM_DB_CONTAINER": db.container,
                "JAMJAM_R2_SOURCE": f"r2:{BUCKET}/{PREFIX}", "JAMJAM_DRILL_MIN_TABLES": "3",
                "JAMJAM_DRILL_MAX_AGE_HOURS": "25", "JAMJAM_DRILL_START_TIMEOUT": "60"}
    return host.run("pg-restore-drill.sh", **{**settings, **env})


def dumps(host: Host, backup_set: str = "daily") -> list[Path]:
    return sorted((host.backups / NAME / backup_set).glob("*.dump"))


def assert_left_nothing_running(engine: Engine, db) -> None:
    assert engine.containers() == {db.container}, "the drill left a container behind"
    assert engine.networks() == {"app"}, "the drill left a network behind"


def test_a_backup_is_a_compressed_full_dump_on_the_host_and_in_r2(host, engine, db, store):
    result = backup(host, db)
    assert result.returncode == 0, result.stderr
    (dump,) = dumps(host)
    body = dump.read_bytes()
    assert body.startswith(b"PGDMP"), "pg_dump's custom (compressed) format"
    # The real pg_restore reads the archive: every table and all 500 rows are in it.
    listing = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True,
                             check=True).stdout
    for table in ("users", "sessions", "audit"):
        assert f"TABLE public {table} " in listing
    script = subprocess.run(["pg_restore", "--data-only", "--table=users", "--file=-", str(dump)],
                            capture_output=True, text=True, check=True).stdout
    assert "user 500" in script
    assert oct(dump.stat().st_mode & 0o777) == "0o600", "dumps hold the data: root only"
    assert store.keys_in() == [f"{PREFIX}/daily/{dump.name}"]
    assert store.body(f"{PREFIX}/daily/{dump.name}") == body
    assert host.alerts() == []


def test_the_password_stays_inside_the_container(host, engine, db):
    result = backup(host, db)
    assert result.returncode == 0, result.stderr
    calls = "\n".join(engine.calls())
    assert "exec app-db sh -c" in calls, "pg_dump runs inside the db container"
    assert db.password not in calls, "the password reached a docker command line"
    assert db.password not in result.stdout + result.stderr


def test_a_dump_of_an_unknown_database_fails_and_alerts(host, db):
    result = backup(host, db, JAMJAM_DB_NAME="nope")
    assert result.returncode == 1
    assert dumps(host) == [] and not list((host.backups / NAME / "daily").glob(".*partial"))
    (alert,) = host.alerts()
    assert f"ALERT backup/{NAME}/daily: backup of app-db (daily) failed: pg_dump in app-db" in alert
    assert 'database "nope" does not exist' in alert


def test_a_failed_run_keeps_the_last_good_dump_then_recovery_resolves(host, db):
    assert backup(host, db).returncode == 0
    (good,) = dumps(host)
    time.sleep(1.1)  # dump names carry the second
    result = backup(host, db, JAMJAM_DB_CONTAINER="gone")
    assert result.returncode == 1
    assert dumps(host) == [good]
    assert "No such container: gone" in host.alerts()[0]
    time.sleep(1.1)
    assert backup(host, db).returncode == 0
    assert len(dumps(host)) == 2
    resolved = host.alerts()[-1]
    assert f"RESOLVED backup/{NAME}/daily" in resolved
    assert backup(host, db).returncode == 0 and len(host.alerts()) == 2, "resolved only once"


def test_local_retention_is_in_days(host, db):
    folder = host.backups / NAME / "daily"
    folder.mkdir(parents=True)
    old = [folder / f"{NAME}-2025010{i}T030000Z.dump" for i in (1, 2)]
    recent = folder / f"{NAME}-20250108T030000Z.dump"
    for path, days in ((old[0], 9), (old[1], 8), (recent, 6)):
        path.write_bytes(b"PGDMP")
        stamp = time.time() - days * 86400
        os.utime(path, (stamp, stamp))
    other = folder / "keep-me.txt"
    other.write_text("not a dump")
    result = backup(host, db, JAMJAM_R2_DEST="")
    assert result.returncode == 0, result.stderr
    left = {p.name for p in folder.iterdir()}
    assert not any(p.name in left for p in old), "dumps older than 7 days are deleted"
    assert recent.name in left and other.name in left
    assert len(dumps(host)) == 2


def test_r2_down_alerts_and_the_next_run_sends_what_was_missed(host, db, store):
    down = write_rclone_config(host.root / "down.conf", free_port())
    result = backup(host, db, RCLONE_CONFIG=str(down))
    assert result.returncode == 1
    (missed,) = dumps(host)
    assert "the dump is kept on the host" in host.alerts()[0]
    assert store.keys_in() == []
    time.sleep(1.1)
    assert backup(host, db).returncode == 0
    names = [p.name for p in dumps(host)]
    assert missed.name in names and len(names) == 2
    assert store.keys_in() == sorted(f"{PREFIX}/daily/{n}" for n in names)
    assert "RESOLVED" in host.alerts()[-1]


def test_dumps_older_than_r2_keeps_them_are_not_sent(host, db, store):
    folder = host.backups / NAME / "daily"
    folder.mkdir(parents=True)
    stale = folder / f"{NAME}-20250101T030000Z.dump"
    stale.write_bytes(b"PGDMP")
    stamp = time.time() - 5 * 86400
    os.utime(stale, (stamp, stamp))
    assert backup(host, db, JAMJAM_OFFSITE_DAYS="3").returncode == 0
    assert stale.exists(), "kept on the host (7 days)"
    assert f"{PREFIX}/daily/{stale.name}" not in store.keys_in()
    assert len(store.keys_in()) == 1


def test_bad_settings_exit_2_naming_the_variable(host, db):
    result = backup(host, db, JAMJAM_KEEP_DAYS="")
    assert result.returncode == 2
    assert "JAMJAM_KEEP_DAYS is not set" in result.stderr
    result = backup(host, db, JAMJAM_OFFSITE_DAYS="soon")
    assert result.returncode == 2 and "JAMJAM_OFFSITE_DAYS=soon" in result.stderr
    assert host.alerts() == []


# --- the restore drill ---------------------------------------------------------------------

def test_the_drill_restores_the_newest_dump_from_r2_into_a_throwaway_container(host, engine, db):
    assert backup(host, db, "daily").returncode == 0
    time.sleep(1.1)
    db.sql(engine, "CREATE TABLE newest_only (id int)")
    try:
        assert backup(host, db, "every-6h").returncode == 0
    finally:
        db.sql(engine, "DROP TABLE newest_only")
    # R2 is where the drill reads from: the host's copies could be lost with the host.
    for dump in dumps(host, "daily") + dumps(host, "every-6h"):
        dump.unlink()
    result = drill(host, db)
    assert result.returncode == 0, result.stderr
    assert "every-6h" in result.stderr and ": 4 tables" in result.stderr, result.stderr
    calls = engine.calls()
    (network,) = [c for c in calls if c.startswith("network create")]
    assert network.split()[2] == "--internal", "no route in or out of the drill"
    (run,) = [c for c in calls if c.startswith("run ")]
    assert " --rm " in run and " --publish" not in run and " -p " not in run
    assert "--cap-drop ALL" in run and "--security-opt no-new-privileges=true" in run
    drill_net = network.split()[3]
    assert f"--network {drill_net}" in run
    assert run.rstrip().endswith(db.image), "the same image as the live database"
    assert db.password not in "\n".join(calls)
    assert_left_nothing_running(engine, db)
    assert host.alerts() == []


def test_a_damaged_newest_dump_fails_the_drill_and_alerts(host, engine, db, store):
    assert backup(host, db).returncode == 0
    (dump,) = dumps(host)
    cut = dump.read_bytes()[: dump.stat().st_size // 2]
    store.client.put_object(Bucket=BUCKET, Key=f"{PREFIX}/daily/{NAME}-29990101T000000Z.dump",
                            Body=cut)
    result = drill(host, db, JAMJAM_DRILL_MAX_AGE_HOURS="0")
    assert result.returncode == 1
    (alert,) = host.alerts()
    assert f"ALERT restore-drill/{NAME}" in alert and "pg_restore of" in alert
    assert "29990101T000000Z" in alert
    assert_left_nothing_running(engine, db)


def test_a_stale_newest_dump_fails_the_recovery_point_check(host, db):
    assert backup(host, db).returncode == 0
    later = str(int(time.time()) + 30 * 3600)
    result = drill(host, db, JAMJAM_NOW=later)
    assert result.returncode == 1
    assert "30 h old, more than the 25 h allowed" in host.alerts()[0]


def test_no_dump_at_all_fails_the_drill(host, engine, db):
    result = drill(host, db)
    assert result.returncode == 1
    assert f"no dump of {NAME} in r2:{BUCKET}/{PREFIX}" in host.alerts()[0]
    assert_left_nothing_running(engine, db)


def test_too_few_tables_fails_the_drill_then_a_good_one_resolves(host, engine, db):
    assert backup(host, db).returncode == 0
    result = drill(host, db, JAMJAM_DRILL_MIN_TABLES="10")
    assert result.returncode == 1
    assert "has 3 tables, expected at least 10" in host.alerts()[0]
    assert_left_nothing_running(engine, db)
    assert drill(host, db).returncode == 0
    assert f"RESOLVED restore-drill/{NAME}" in host.alerts()[-1]


def test_an_image_that_does_not_start_fails_and_removes_the_network(host, engine, db):
    assert backup(host, db).returncode == 0
    result = drill(host, db, FAKE_DOCKER_FAIL_RUN="1")
    assert result.returncode == 1
    assert "cannot start a throwaway" in host.alerts()[0]
    assert_left_nothing_running(engine, db)


def test_without_r2_the_drill_uses_the_hosts_newest_dump(host, engine, db):
    assert backup(host, db, JAMJAM_R2_DEST="").returncode == 0
    result = drill(host, db, JAMJAM_R2_SOURCE="")
    assert result.returncode == 0, result.stderr
    assert str(host.backups) in result.stderr and ": 3 tables" in result.stderr
    assert_left_nothing_running(engine, db)


# --- docs/backups.md "Restoring a database by hand" -----------------------------------------------

RESTORE = ("PGPASSWORD=\"$POSTGRES_PASSWORD\" pg_restore --clean --if-exists --no-owner "
           "--single-transaction --exit-on-error -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"")


def test_the_readme_restore_recipe_brings_the_data_back(host, engine, db, store, tmp_path):
    """The commands docs/backups.md gives, run as written: list R2, fetch a dump, pg_restore it into
    the live container over what is there now."""
    assert backup(host, db).returncode == 0
    db.sql(engine, "DELETE FROM sessions; DELETE FROM users; DROP TABLE audit")
    rclone = ["rclone", "--config", str(host.rclone_config)]
    listing = subprocess.run([*rclone, "lsf", "-R", f"r2:{BUCKET}/{PREFIX}/"], check=True,
                             capture_output=True, text=True, env=host.base_env).stdout.split()
    (path,) = [p for p in listing if p.endswith(".dump")]
    target = tmp_path / "restore.dump"
    subprocess.run([*rclone, "copyto", f"r2:{BUCKET}/{PREFIX}/{path}", str(target)], check=True,
                   env=host.base_env)
    with target.open("rb") as dump:
        result = subprocess.run(["docker", "exec", "-i", db.container, "sh", "-c", RESTORE],
                                stdin=dump, env=host.base_env,
                                capture_output=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert db.sql(engine, "SELECT count(*) FROM users") == "500"
    assert db.sql(engine, "SELECT count(*) FROM audit") == "0", "the dropped table is back"


def test_a_restore_slower_than_allowed_fails_the_drill(host, engine, db):
    assert backup(host, db).returncode == 0
    result = drill(host, db, JAMJAM_DRILL_MAX_RESTORE_SECONDS="1",
                   FAKE_DOCKER_SLOW_EXEC="pg_restore:3")
    assert result.returncode == 1
    assert re.search(r"restoring \S+ took [34] s, more than the 1 s allowed", host.alerts()[0])
    assert_left_nothing_running(engine, db)
    assert drill(host, db, JAMJAM_DRILL_MAX_RESTORE_SECONDS="60").returncode == 0
