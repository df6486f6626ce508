"""The R2 store, database backup and directory sync components, rendered through small
programs under the same mocks tools.render uses: what lands on the host (cron files, script
copies, their environment), the bucket's lifecycle rules, the label contract the policy pack
checks, and the checks that stop a bad backup or sync before anything is registered."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Callable

import pulumi
import pytest

from jamjam_infra.backup import (POSTGRES_DATA, Backup, BackupArgs, BackupSet, RestoreDrill,
                                 backup_retention, backup_name, postgres)
from jamjam_infra.container import ContainerSpec, Healthcheck, Volume
from jamjam_infra.dir_sync import DirSync, DirSyncArgs, SyncedDir, sync_retention, volume_path
from jamjam_infra.host import Host, HostArgs, SshArgs
from jamjam_infra.r2_store import R2Store, R2StoreArgs, Retention
from tests.cron_helpers import cron_entry_fields, cron_env
from tools.render import OfflineMocks, RecordingMonitor, RenderedStack, is_secret, reveal
from tests.program_helpers import run_program
from tests.ssh_helpers import fake_host_key

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "command:remote:Command"
ACCOUNT = "0123456789abcdef" * 2  # a documentation id, built here rather than spelled
DAY = 86_400.0


def render_program(program: Callable[[], None], stack: str = "production") -> RenderedStack:
    monitor = run_program(program, project="backups", stack=stack)
    return RenderedStack(stack=stack, resources=tuple(monitor.registrations), outputs={})


def schedule_of(content: str) -> str:
    return " ".join(cron_entry_fields(content)[:5])


def db_spec(**changes) -> ContainerSpec:
    fields = dict(role="db", name="shop-db", image="postgis/postgis:16-3.4", host="vps",
                  healthcheck=Healthcheck(("pg_isready", "-U", "shop")), aliases=("db",),
                  volumes=(Volume("shop-db-data", "/var/lib/postgresql/data"),),
                  backup_job="shop-db-backup")
    return ContainerSpec(**{**fields, **changes})


SETS = (BackupSet("daily", "0 3 * * *", keep_days=30),
        BackupSet("every-6h", "30 */6 * * *", keep_days=7))
DIRS = (SyncedDir("recordings", volume_path("shop-recordings"), "recordings/"),
        SyncedDir("access-logs", "/srv/shop/logs/access", "logs/access/", mode="copy",
                  max_age_days=90))


def _host(containers=()) -> Host:
    return Host("vps", HostArgs(
        ssh=SshArgs(host="203.0.113.40", port=22, user="ops", initial_user="root",
                    private_key=pulumi.Output.secret("-----EXAMPLE KEY-----"),
                    host_key=fake_host_key()),
        stack="production", network="shop", containers=list(containers)))


def _store(host: Host, retention=()) -> R2Store:
    return R2Store("store", R2StoreArgs(
        account_id=ACCOUNT, bucket="shop-backups", token_name="shop-production-backups",
        connection=host.connection, host_ready=host.ready,
        config_path="/etc/jamjam/rclone-shop-backups.conf", retention=list(retention)))


def _system(sets=SETS, drill=RestoreDrill("0 5 1 * *", min_tables=5, max_age_hours=7),
            dirs=DIRS, retention=None) -> Callable[[], None]:
    def program() -> None:
        db = db_spec()
        host = _host([db])
        rules = retention if retention is not None else [
            *backup_retention(db, sets), *sync_retention(dirs), Retention("logs/access/", 90)]
        store = _store(host, rules)
        Backup("db-backup", BackupArgs(stack="production", database=db, sets=sets,
                                       connection=host.connection, host_ready=host.ready,
                                       store=store, drill=drill))
        if dirs:
            DirSync("media", DirSyncArgs(stack="production", dirs=dirs, store=store,
                                         schedule="15 * * * *", connection=host.connection,
                                         host_ready=host.ready))
    return program


@pytest.fixture(scope="module")
def system() -> RenderedStack:
    return render_program(_system())


def test_each_backup_set_is_its_own_cron_job_with_its_own_script_copy(system):
    written = system.host_files()
    daily = written["/etc/cron.d/jamjam-shop-db-backup-daily"]
    six = written["/etc/cron.d/jamjam-shop-db-backup-every-6h"]
    assert schedule_of(daily) == "0 3 * * *" and schedule_of(six) == "30 */6 * * *"
    for job, content in (("shop-db-backup-daily", daily), ("shop-db-backup-every-6h", six)):
        assert f"flock -n /run/lock/jamjam-{job}.lock /opt/jamjam/scripts/{job}.sh" in content
        assert written[f"/opt/jamjam/scripts/{job}.sh"] == \
            (ROOT / "components/files/pg-backup.sh").read_text()
    env = cron_env(daily)
    assert env["JAMJAM_BACKUP_NAME"] == "shop-db-backup" and env["JAMJAM_BACKUP_SET"] == "daily"
    assert env["JAMJAM_DB_CONTAINER"] == "shop-db"
    assert env["JAMJAM_KEEP_DAYS"] == "30" and cron_env(six)["JAMJAM_KEEP_DAYS"] == "7"
    assert env["JAMJAM_R2_DEST"] == "r2:shop-backups/db/shop-db-backup/daily"
    assert env["JAMJAM_OFFSITE_DAYS"] == "30"
    assert env["RCLONE_CONFIG"] == "/etc/jamjam/rclone-shop-backups.conf"
    assert env["JAMJAM_ALERT"] == "/opt/jamjam/scripts/jamjam-alert.sh"


def test_the_restore_drill_reads_every_set_from_r2(system):
    written = system.host_files()
    drill = written["/etc/cron.d/jamjam-shop-db-backup-restore-drill"]
    assert schedule_of(drill) == "0 5 1 * *"
    env = cron_env(drill)
    assert env["JAMJAM_R2_SOURCE"] == "r2:shop-backups/db/shop-db-backup"
    assert env["JAMJAM_DRILL_MIN_TABLES"] == "5" and env["JAMJAM_DRILL_MAX_AGE_HOURS"] == "7"
    assert env["JAMJAM_DRILL_MEMORY"] == "1024m"
    assert env["JAMJAM_DRILL_MAX_RESTORE_SECONDS"] == "0", "not checked unless asked"
    assert written["/opt/jamjam/scripts/shop-db-backup-restore-drill.sh"] == \
        (ROOT / "components/files/pg-restore-drill.sh").read_text()


def test_no_secret_reaches_a_cron_file(system):
    for path, content in system.host_files().items():
        if path.startswith("/etc/cron.d/"):
            assert isinstance(content, str) and not is_secret(content)
            assert "PASSWORD" not in content and "secret_access_key" not in content


def test_the_db_container_names_its_backup_and_a_cron_file_names_it_too(system):
    """The policy pack's contract: a database container with a data volume carries the label
    jamjam.backup = <backup>, and a command:remote:Command writing a cron file names <backup>
    in its stdin."""
    (db,) = [c for c in system.of_type("docker:index/container:Container")
             if c.inputs["name"] == "shop-db"]
    labels = {label["label"]: label["value"] for label in db.inputs["labels"]}
    backup = labels["jamjam.backup"]
    assert backup == "shop-db-backup"
    crons = [r for r in system.of_type(COMMAND) if "/etc/cron.d/" in r.inputs.get("create", "")
             and backup in str(r.inputs.get("stdin"))]
    assert len(crons) == 3, "two sets and the drill"


def test_lifecycle_rules_expire_each_prefix_and_abort_unfinished_uploads(system):
    (lifecycle,) = system.of_type("cloudflare:index/r2BucketLifecycle:R2BucketLifecycle")
    rules = {rule["conditions"]["prefix"]: rule for rule in lifecycle.inputs["rules"]}
    expiry = {prefix: rule["deleteObjectsTransition"]["condition"]["maxAge"] / DAY
              for prefix, rule in rules.items() if "deleteObjectsTransition" in rule}
    assert expiry == {"db/shop-db-backup/daily/": 30, "db/shop-db-backup/every-6h/": 7,
                      "deleted/recordings/": 30, "logs/access/": 90}
    # Declaring rules replaces R2's default abort of unfinished multipart uploads: kept.
    assert rules[""]["abortMultipartUploadsTransition"]["condition"]["maxAge"] == 7 * DAY
    assert all("abortMultipartUploadsTransition" in rule for rule in rules.values())


def test_the_store_is_private_and_its_token_reaches_one_bucket(system):
    (public,) = system.of_type("cloudflare:index/r2ManagedDomain:R2ManagedDomain")
    assert public.inputs["enabled"] is False
    (token,) = system.of_type("cloudflare:index/apiToken:ApiToken")
    (policy,) = token.inputs["policies"]
    assert json.loads(policy["resources"]) == {
        f"com.cloudflare.edge.r2.bucket.{ACCOUNT}_default_shop-backups": "*"}
    config = system.named("store-rclone-config")
    assert is_secret(config.inputs["stdin"]) and config.inputs["logging"] == "none"
    assert "-m 0600" in config.inputs["create"]
    assert "[r2]" in reveal(config.inputs["stdin"])


def test_each_synced_directory_is_a_cron_job(system):
    written = system.host_files()
    recordings = cron_env(written["/etc/cron.d/jamjam-sync-recordings"])
    assert recordings["JAMJAM_SYNC_SOURCE"] == "/var/lib/docker/volumes/shop-recordings/_data"
    assert recordings["JAMJAM_R2_DEST"] == "r2:shop-backups/recordings"
    assert recordings["JAMJAM_SYNC_MODE"] == "sync"
    assert recordings["JAMJAM_SYNC_DELETED_DEST"] == "r2:shop-backups/deleted/recordings"
    logs = cron_env(written["/etc/cron.d/jamjam-sync-access-logs"])
    assert logs["JAMJAM_SYNC_MODE"] == "copy" and "JAMJAM_SYNC_DELETED_DEST" not in logs
    assert logs["JAMJAM_SYNC_MAX_AGE_DAYS"] == "90"
    assert schedule_of(written["/etc/cron.d/jamjam-sync-recordings"]) == "15 * * * *"


def test_removing_a_job_removes_its_cron_entry_before_its_script(system):
    cron = system.named("db-backup-daily-cron")
    script = system.named("db-backup-daily-script")
    assert script.urn in cron.options["dependencies"]
    assert cron.inputs["delete"] == "sudo -n rm -f /etc/cron.d/jamjam-shop-db-backup-daily"


def test_without_a_store_dumps_stay_on_the_host_and_the_drill_reads_them_there():
    def program() -> None:
        db = db_spec()
        host = _host([db])
        Backup("db-backup", BackupArgs(stack="production", database=db, sets=SETS[:1],
                                       connection=host.connection, host_ready=host.ready,
                                       drill=RestoreDrill("0 5 1 * *")))
    written = render_program(program).host_files()
    env = cron_env(written["/etc/cron.d/jamjam-shop-db-backup-daily"])
    assert "JAMJAM_R2_DEST" not in env and "RCLONE_CONFIG" not in env
    assert "JAMJAM_R2_SOURCE" not in cron_env(written["/etc/cron.d/jamjam-shop-db-backup-restore-drill"])


@pytest.mark.parametrize("change, message", [
    (dict(sets=()), "give at least one BackupSet"),
    (dict(sets=(SETS[0], SETS[0])), "set names must be unique"),
    (dict(sets=(BackupSet("Daily", "0 3 * * *", 7),)), "set name 'Daily'"),
    (dict(sets=(BackupSet("daily", "every day", 7),)), "is not a five-field cron schedule"),
    (dict(sets=(BackupSet("daily", "0 3 * * *", 0),)), "keep_days must be a whole number"),
    (dict(drill=RestoreDrill("0 5 1 *")), "restore drill: schedule"),
    (dict(retention=[]), "no 30-day retention rule for 'db/shop-db-backup/daily/'"),
    (dict(dirs=(SyncedDir("recordings", "srv/rec", "recordings/"),)), "must be an absolute"),
    (dict(dirs=(SyncedDir("recordings", "/srv/rec", "recordings"),)), "must be folders ending"),
    (dict(dirs=(SyncedDir("recordings", "/srv/rec", "recordings/", mode="move"),)),
     "mode must be 'sync' or 'copy'"),
])
def test_bad_backup_or_sync_settings_stop_the_program_naming_the_problem(change, message):
    with pytest.raises(Exception) as raised:
        render_program(_system(**change))
    assert message in str(raised.value)


def test_a_backup_needs_a_postgres_image_and_a_named_backup():
    def program(database: ContainerSpec) -> Callable[[], None]:
        def run() -> None:
            host = _host()
            Backup("db-backup", BackupArgs(stack="production", database=database, sets=SETS,
                                           connection=host.connection, host_ready=host.ready))
        return run
    with pytest.raises(Exception, match="need a postgres or postgis image"):
        render_program(program(db_spec(image="mysql:8.4")))
    with pytest.raises(Exception, match="has no backup_job"):
        render_program(program(db_spec(volumes=(), backup_job=None)))


@pytest.mark.parametrize("retention, message", [
    ([Retention("logs/access", 90)], "must be '' or folders ending in '/'"),
    ([Retention("logs/", 0)], "whole number of days >= 1"),
    ([Retention("logs/", 9), Retention("logs/", 10)], "two retention rules for prefix"),
])
def test_bad_retention_is_refused(retention, message):
    def program() -> None:
        _store(_host(), retention)
    with pytest.raises(Exception) as raised:
        render_program(program)
    assert message in str(raised.value)


def test_the_fake_docker_is_shellcheck_clean():
    if not shutil.which("shellcheck"):
        pytest.skip("needs shellcheck")
    path = ROOT / "tests/fixtures/bin/postgres/docker"
    result = subprocess.run(["shellcheck", "-S", "style", str(path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout


def test_the_log_archive_keeps_its_bucket_and_token_state_across_the_move_to_r2store():
    """The bucket, token and rclone config were children of LogArchive before R2Store
    existed; each is registered with an alias to that old parent, so `pulumi up` on a running
    stack moves them in state instead of replacing them (a replaced bucket would be deleted
    with the logs in it)."""
    from jamjam_infra.log_archive import LogArchive, LogArchiveArgs

    aliases: dict[str, list[str]] = {}

    class Monitor(RecordingMonitor):
        def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
            aliases[request.name] = [alias.spec.parentUrn for alias in request.aliases]
            return super().RegisterResource(request)

    def program() -> None:
        host = _host()
        LogArchive("logs", LogArchiveArgs(account_id=ACCOUNT, bucket="jamjam-logs",
                                          retention_days=None, schedule="0 * * * *",
                                          stack="production", connection=host.connection,
                                          host_ready=host.ready))

    mocks = OfflineMocks("production")
    monitor = run_program(program, project="jamjam", stack="production", mocks=mocks,
                          monitor=Monitor(mocks))
    archive = next(r.urn for r in monitor.registrations if r.type == "jamjam:index:LogArchive")
    for name in ("logs-bucket", "logs-public-url", "logs-token", "logs-rclone-config"):
        assert aliases[name] == [archive], name
    assert aliases["logs-upload"] == [], "the upload job did not move"


def test_the_postgres_preset_is_a_backed_up_database_with_its_password_secret():
    password = pulumi.Output.secret("pw")
    db = postgres("app-db", "postgres:16.4", "vps", database="app", user="app_user",
                  password=password, volume="app-db-data", backup_job="app-db-backup",
                  alias="database")
    assert db.env == {"POSTGRES_DB": "app", "POSTGRES_USER": "app_user"}
    assert dict(db.secret_env) == {"POSTGRES_PASSWORD": password}
    assert [(v.name, v.target) for v in db.volumes] == [("app-db-data", POSTGRES_DATA)]
    assert db.aliases == ("database",)
    assert db.healthcheck.test == ("pg_isready", "--host", "127.0.0.1", "--username", "app_user",
                                   "--dbname", "app")
    assert backup_name(db) == "app-db-backup"
    # Only what the entrypoint needs to chown PGDATA and drop to postgres.
    assert set(db.hardening.cap_add) == {"CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID"}
