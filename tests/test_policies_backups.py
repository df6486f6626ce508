"""database-volumes-backed-up: the contract in policies/jamjam_policies/backups.py, on the system
baselines of tests/policy_fixtures.py, and each way a database's data goes without a backup."""

from __future__ import annotations

import pytest

from tests.policy_fixtures import (
    DB_IMAGE_ID, REMOTE_IMAGE, R_STREAM, SHIOJIRI, SYSTEMS, THINKRING, UNKNOWN,
    WORKSPACE_BACKEND, assert_stack_break, changed, cron_file, database, inputs_of, replaced,
    stack_violations,
)

RULE = "database-volumes-backed-up"
DB = inputs_of(WORKSPACE_BACKEND, "db")
THINKRING_DB = inputs_of(THINKRING, "db")
REDIS = inputs_of(R_STREAM, "rstream-redis")
NO_LABEL = changed(DB, "labels", [{"label": "jamjam.role", "value": "db"}])


def without(resources, name):
    return [r for r in resources if r[1] != name]


def db_with(image, data="/var/lib/postgresql/data"):
    return changed(changed(DB, "image", image), "volumes.0.containerPath", data)


STACK_BREAKS = [
    (RULE, replaced(WORKSPACE_BACKEND, "db", NO_LABEL), "carries no jamjam.backup label"),
    (RULE, without(WORKSPACE_BACKEND, "workspace-db-backup-cron"),
     "names the backup job 'workspace-db-backup' in its jamjam.backup label, but no "
     "command:remote:Command installs a cron file naming 'workspace-db-backup'"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(DB, "labels.1.value", "wrong-job")), "'wrong-job'"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(DB, "labels.1.value", "")), "unknown at preview or empty"),
    # The script alone is not a schedule: the job's cron file must exist.
    (RULE, replaced(WORKSPACE_BACKEND, "workspace-db-backup-cron", {
        "create": "sudo -n install -D -m 0755 /dev/stdin /opt/jamjam/scripts/workspace-db-backup.sh",
        "stdin": "#!/bin/sh\npg_dump | gzip > /var/backups/db.sql.gz\n"}), "no command:remote:Command"),
    # Detected by the image's name, whatever the data path.
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(db_with("mysql:8.4", "/srv/mysql"), "labels", [])),
     "runs a database image"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(db_with("mariadb:11.4", "/srv/x"), "labels", [])), "runs a database image"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(db_with("mongo:7.0", "/srv/x"), "labels", [])), "runs a database image"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(db_with("docker.io/library/postgres@sha256:" + "ab" * 32, "/pg"),
                                                     "labels", [])), "runs a database image"),
    (RULE, replaced(R_STREAM, "rstream-redis", changed(REDIS, "volumes", [{"volumeName": "redis-aof", "containerPath": "/data"}])),
     "runs a database image with a data volume but carries no jamjam.backup label"),
    # Detected by the RemoteImage the container runs (its image input is only the id).
    (RULE, replaced(THINKRING, "db", changed(THINKRING_DB, "labels", [])), "runs a database image"),
    # Detected by the data directory, when nothing says the image is a database.
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(changed(NO_LABEL, "image", DB_IMAGE_ID), "volumes",
                                                     [{"hostPath": "/srv/pg", "containerPath": "/var/lib/postgresql/data"}])),
     "mounts a database data directory"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(changed(NO_LABEL, "image", DB_IMAGE_ID), "volumes", None)
                    | {"mounts": [{"type": "volume", "source": "d", "target": "/var/lib/mysql"}]}),
     "mounts a database data directory"),
    # fail closed
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(DB, "labels", UNKNOWN)), "labels are unknown at preview"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(DB, "labels.1.value", UNKNOWN)), "unknown at preview or empty"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(NO_LABEL, "labels.0.label", UNKNOWN)),
     "has labels unknown at preview"),
    (RULE, replaced(WORKSPACE_BACKEND, "db", changed(DB, "volumes", UNKNOWN)), "volumes unknown at preview"),
    (RULE, replaced(WORKSPACE_BACKEND, "workspace-db-backup-cron", changed(
        inputs_of(WORKSPACE_BACKEND, "workspace-db-backup-cron"), "stdin", UNKNOWN)
        | {"create": UNKNOWN}), "have a create or stdin unknown at preview"),
]


@pytest.mark.parametrize("policy_name,resources,expected", STACK_BREAKS,
                         ids=[f"{i}-{c[2][:40]}" for i, c in enumerate(STACK_BREAKS)])
def test_each_way_to_break_a_stack_rule_is_reported(policy_name, resources, expected):
    broken = next((name for _, name, *_ in resources if name in ("db", "rstream-redis")), None)
    assert_stack_break(policy_name, resources, expected, broken=broken)


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_each_system_backs_up_its_databases(system):
    assert stack_violations(RULE, SYSTEMS[system][0]) == []


@pytest.mark.parametrize("inputs", [
    changed(NO_LABEL, "volumes", None),                                         # no data kept
    changed(NO_LABEL, "volumes", []) | {"mounts": [{"type": "tmpfs", "target": "/var/lib/postgresql/data"}]},
    changed(changed(NO_LABEL, "image", "ghcr.io/example/app:1.0"), "volumes.0.containerPath", "/app/data"),
    changed(changed(NO_LABEL, "image", DB_IMAGE_ID), "volumes.0.containerPath", "/app/data"),
])
def test_containers_with_nothing_to_back_up_pass(inputs):
    assert stack_violations(RULE, replaced(WORKSPACE_BACKEND, "db", inputs)) == []


def test_one_job_with_several_schedules_covers_the_database():
    # Shiojiri: daily kept 30 days and every 6 hours kept 7, both cron files of one job.
    daily_only = without(SHIOJIRI, "shiojiri-db-backup-6h-cron")
    assert stack_violations(RULE, daily_only) == []
    neither = without(daily_only, "shiojiri-db-backup-daily-cron")
    assert stack_violations(RULE, neither)


def test_a_cron_file_is_known_by_its_schedule_line_too():
    job = cron_file("workspace-db-backup", "0 3 * * *", "pg-backup.sh")
    assert "cron" not in job["stdin"]
    elsewhere = {"create": "sudo -n tee /etc/jobs.d/workspace-db-backup", "stdin": job["stdin"]}
    assert stack_violations(RULE, replaced(WORKSPACE_BACKEND, "workspace-db-backup-cron", elsewhere)) == []


def test_the_label_and_images_come_from_config():
    relabelled = replaced(WORKSPACE_BACKEND, "db", changed(DB, "labels.1.label", "workspace.backup"))
    assert stack_violations(RULE, relabelled)
    assert stack_violations(RULE, relabelled, {"backupLabel": "workspace.backup"}) == []
    redis_kept = replaced(R_STREAM, "rstream-redis",
                          changed(REDIS, "volumes", [{"volumeName": "aof", "containerPath": "/data"}]))
    assert stack_violations(RULE, redis_kept, {"databaseImages": ["postgres"]}) == []


def test_a_database_is_read_from_its_image_through_any_dependency():
    # A data path no default knows, so only the image can tell.
    unlabelled = changed(changed(THINKRING_DB, "labels", []), "volumes.0.containerPath", "/srv/pgdata")
    unlinked = [(t, n, i) for t, n, i, *_ in replaced(THINKRING, "db", unlabelled)]
    assert stack_violations(RULE, unlinked) == [], "without the link, an image id says nothing"
    linked = [(t, n, i, ("db-image",)) if n == "db" else (t, n, i) for t, n, i in unlinked]
    [(message, _)] = stack_violations(RULE, linked)
    assert "runs a database image" in message
    other_image = [(REMOTE_IMAGE, "db-image", {"name": "ghcr.io/example/app:1.0"}) if n == "db-image"
                   else r for r in linked for n in [r[1]]]
    assert stack_violations(RULE, other_image) == []


def test_a_redis_cache_without_a_volume_needs_no_backup():
    assert inputs_of(R_STREAM, "rstream-redis").get("volumes") is None
    assert database("x", "redis:7", data="/data", volume="v", backup=None, envs=[], health=[])["volumes"]
