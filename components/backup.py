"""PostgreSQL backups on a host: full dumps on one or more schedules, kept on the host and in
an :class:`~jamjam_infra.r2_store.R2Store`, and a scheduled restore drill.

    db = ContainerSpec(role="db", name="thinkring-db", image="postgres:15.8", ...,
                       volumes=(Volume("thinkring-db-data", "/var/lib/postgresql/data"),),
                       backup_job="thinkring-db-backup")
    sets = [BackupSet("daily", "0 2 * * *", keep_days=7)]
    store = R2Store(..., retention=[*backup_retention(db, sets), ...])
    Backup("db-backup", BackupArgs(stack, database=db, sets=sets, store=store,
                                   drill=RestoreDrill("0 5 1 * *", max_age_hours=25), ...))

Each set is a cron job ``/etc/cron.d/jamjam-<backup>-<set>`` running ``pg-backup.sh``; the
drill is ``jamjam-<backup>-restore-drill`` running ``pg-restore-drill.sh`` (see those scripts
for what happens on the host). The backup's name is the database spec's ``backup_job``, which
the library puts on the container as the ``jamjam.backup`` label: the label names the jobs that
cover it, and each job's cron file names the backup.

pg_dump takes a full, consistent dump every time; there is no differential or incremental
mode, so a set that runs every 6 hours holds full dumps too.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_command as command

from jamjam_infra._script_job import alert_environment, check_schedule, script_job
from jamjam_infra.container import (ContainerSpec, Hardening, Healthcheck, LogRotation,
                                    SpecError, Volume)
from jamjam_infra.r2_store import R2Store, Retention

BACKUP_SCRIPT = "pg-backup.sh"
DRILL_SCRIPT = "pg-restore-drill.sh"
BACKUP_DIR = "/var/backups/jamjam"
"""Dumps on the host: ``<dir>/<backup>/<set>/<backup>-<UTC time>.dump`` (root only)."""
R2_PREFIX = "db"
"""Dumps in R2: ``<bucket>/db/<backup>/<set>/``."""
_POSTGRES_IMAGE = re.compile(r"(^|/)(postgres|postgis)[^/]*(:|@|$)")
_SET = re.compile(r"^[a-z0-9][a-z0-9-]*$")
POSTGRES_DATA = "/var/lib/postgresql/data"
"""The official image's PGDATA: the volume the dumps cover."""


def postgres(name: str, image: str, host: str, *, database: str, user: str,
             password: pulumi.Input[str], volume: str, backup_job: str, alias: str = "db",
             logs: LogRotation = LogRotation(), role: str = "db") -> ContainerSpec:
    """The official PostgreSQL (or PostGIS) image as a container spec, ready for
    :class:`Backup`: its data on the named ``volume``, healthy once ``pg_isready`` answers for
    ``database``, labelled with ``backup_job``. The password goes in as a secret env; build the
    clients' URL from the same value, so they agree by construction."""
    return ContainerSpec(
        role=role, name=name, image=image, host=host,
        env={"POSTGRES_DB": database, "POSTGRES_USER": user},
        secret_env={"POSTGRES_PASSWORD": password},
        volumes=(Volume(volume, POSTGRES_DATA),),
        aliases=(alias,),
        # Over TCP: on first start the image's entrypoint runs a temporary server on the
        # socket only while it initialises, then restarts it; with a 1 s start interval a
        # socket probe could call the database healthy in that window and let its clients
        # start against a server about to go away.
        healthcheck=Healthcheck(("pg_isready", "--host", "127.0.0.1", "--username", user,
                                 "--dbname", database)),
        logs=logs,
        # The image's entrypoint starts as root, chowns the data directory and drops to the
        # postgres user (gosu): those capabilities and no others.
        hardening=Hardening(cap_add=("CHOWN", "DAC_OVERRIDE", "FOWNER", "SETGID", "SETUID")),
        backup_job=backup_job,
    )


@dataclass(frozen=True)
class BackupSet:
    """One schedule of full dumps and how long they are kept."""

    name: str
    """Short: daily, every-6h. Names the cron job and the folder."""
    schedule: str
    """Five-field cron schedule, in the host's time zone (UTC on a fresh VPS)."""
    keep_days: int
    """On the host; the newest dump is kept whatever its age."""
    offsite_days: int | None = None
    """In R2 (a lifecycle rule on the set's prefix); None: the same as ``keep_days``."""

    @property
    def r2_days(self) -> int:
        return self.offsite_days if self.offsite_days is not None else self.keep_days


@dataclass(frozen=True)
class RestoreDrill:
    """A scheduled restore of the newest dump into a throwaway container of the same image."""

    schedule: str
    min_tables: int = 1
    """The restored database must have at least this many tables."""
    max_age_hours: int | None = None
    """The newest dump must be younger than this (the recovery point objective); None: not
    checked."""
    memory_mb: int = 1024
    """Cap on the throwaway server, so a drill cannot starve the live database."""
    max_restore_minutes: int | None = None
    """The restore must take no longer (the share of the recovery time objective a restore
    may use); None: not checked, only logged."""


@dataclass(frozen=True)
class BackupArgs:
    stack: str
    database: ContainerSpec
    """The PostgreSQL container; its ``backup_job`` is this backup's name."""
    sets: Sequence[BackupSet]
    connection: command.remote.ConnectionArgs
    host_ready: pulumi.Resource
    store: R2Store | None = None
    """Where the off-site copies go; None keeps dumps on the host only (not a real backup:
    losing the host loses them)."""
    drill: RestoreDrill | None = None
    db_name: str | None = None
    """None: the container's POSTGRES_DB."""
    db_user: str | None = None
    """None: the container's POSTGRES_USER."""
    after: Sequence[pulumi.Resource] = ()
    """Installed after these (the alert script, the database container)."""


def backup_name(database: ContainerSpec) -> str:
    if not database.backup_job:
        raise SpecError(f"container {database.name!r} has no backup_job; name the backup that "
                        "covers it, e.g. backup_job='thinkring-db-backup'")
    return database.backup_job


def backup_prefix(database: ContainerSpec, backup_set: BackupSet | None = None) -> str:
    """``db/<backup>/`` or ``db/<backup>/<set>/`` in the store."""
    prefix = f"{R2_PREFIX}/{backup_name(database)}/"
    return prefix + (f"{backup_set.name}/" if backup_set else "")


def backup_retention(database: ContainerSpec, sets: Sequence[BackupSet]) -> list[Retention]:
    """The lifecycle rules a store needs for these sets' off-site copies."""
    _validate_sets(f"backup {backup_name(database)!r}", sets)
    return [Retention(backup_prefix(database, s), s.r2_days) for s in sets]


class Backup(pulumi.ComponentResource):
    """Scheduled full dumps of one PostgreSQL database, off-site copies and a restore drill."""

    name: str
    """The backup's name (the database container's ``jamjam.backup`` label)."""
    jobs: dict[str, pulumi.Resource]
    """Cron file per job name (``<backup>-<set>``, ``<backup>-restore-drill``)."""

    def __init__(self, name: str, args: BackupArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:Backup", name, None, opts)
        backup = backup_name(args.database)
        _validate(backup, args)
        self.name = backup
        self.jobs = {}
        environment = {
            **alert_environment(args.stack),
            "JAMJAM_BACKUP_NAME": backup,
            "JAMJAM_DB_CONTAINER": args.database.name,
            "JAMJAM_BACKUP_DIR": BACKUP_DIR,
        }
        after = [args.host_ready, *args.after]
        if args.store is not None:
            config_path, config_file = args.store.host_config(f"backup {backup!r}")
            environment["RCLONE_CONFIG"] = config_path
            after.append(config_file)

        for backup_set in args.sets:
            job = f"{backup}-{backup_set.name}"
            set_env = {**environment,
                       "JAMJAM_BACKUP_SET": backup_set.name,
                       "JAMJAM_KEEP_DAYS": str(backup_set.keep_days)}
            if args.db_name:
                set_env["JAMJAM_DB_NAME"] = args.db_name
            if args.db_user:
                set_env["JAMJAM_DB_USER"] = args.db_user
            if args.store is not None:
                set_env["JAMJAM_R2_DEST"] = args.store.remote(
                    backup_prefix(args.database, backup_set))
                set_env["JAMJAM_OFFSITE_DAYS"] = str(backup_set.r2_days)
            self.jobs[job] = script_job(
                f"{name}-{backup_set.name}", args.connection, job, BACKUP_SCRIPT,
                backup_set.schedule,
                f"full pg_dump of {args.database.name} ({backup_set.name}), kept "
                f"{backup_set.keep_days} days on the host"
                + (f" and {backup_set.r2_days} in R2" if args.store is not None else ""),
                set_env, after, self)

        if args.drill is not None:
            drill = args.drill
            job = f"{backup}-restore-drill"
            drill_env = {**environment,
                         "JAMJAM_DRILL_MIN_TABLES": str(drill.min_tables),
                         "JAMJAM_DRILL_MAX_AGE_HOURS": str(drill.max_age_hours or 0),
                         "JAMJAM_DRILL_MAX_RESTORE_SECONDS": str(60 * (drill.max_restore_minutes
                                                                        or 0)),
                         "JAMJAM_DRILL_MEMORY": f"{drill.memory_mb}m"}
            if args.store is not None:
                # From R2: a restore after losing the host would start there.
                drill_env["JAMJAM_R2_SOURCE"] = args.store.remote(backup_prefix(args.database))
            self.jobs[job] = script_job(
                f"{name}-restore-drill", args.connection, job, DRILL_SCRIPT, drill.schedule,
                f"restore the newest dump of {args.database.name} into a throwaway container",
                drill_env, after, self)
        self.register_outputs({})


def _validate(backup: str, args: BackupArgs) -> None:
    owner = f"backup {backup!r}"
    if not _POSTGRES_IMAGE.search(args.database.image):
        raise SpecError(f"{owner}: container {args.database.name!r} runs {args.database.image!r}; "
                        "pg_dump backups need a postgres or postgis image")
    _validate_sets(owner, args.sets)
    if args.drill is not None:
        check_schedule(f"{owner} restore drill", args.drill.schedule)
        if min(args.drill.min_tables, args.drill.max_age_hours or 0,
               args.drill.max_restore_minutes or 0) < 0:
            raise SpecError(f"{owner} restore drill: min_tables, max_age_hours and "
                            "max_restore_minutes must not be negative")
        if args.drill.memory_mb < 64:
            raise SpecError(f"{owner} restore drill: memory_mb {args.drill.memory_mb} is too "
                            "small for PostgreSQL (>= 64)")
    if args.store is not None:
        declared = {rule.prefix: rule.days for rule in args.store.retention}
        for want in backup_retention(args.database, args.sets):
            if declared.get(want.prefix) != want.days:
                raise SpecError(
                    f"{owner}: the store has no {want.days}-day retention rule for "
                    f"{want.prefix!r}; pass backup_retention(database, sets) in its "
                    "R2StoreArgs.retention")


def _validate_sets(owner: str, sets: Sequence[BackupSet]) -> None:
    if not sets:
        raise SpecError(f"{owner}: give at least one BackupSet, e.g. "
                        "BackupSet('daily', '0 3 * * *', keep_days=7)")
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        raise SpecError(f"{owner}: set names must be unique, got {names}")
    for backup_set in sets:
        if not _SET.match(backup_set.name) or backup_set.name == "restore-drill":
            raise SpecError(f"{owner}: set name {backup_set.name!r} must be lowercase letters, "
                            "digits and '-' (and not 'restore-drill'), e.g. 'every-6h'")
        check_schedule(f"{owner} set {backup_set.name}", backup_set.schedule)
        for field, days in (("keep_days", backup_set.keep_days),
                            ("offsite_days", backup_set.r2_days)):
            if isinstance(days, bool) or not isinstance(days, int) or days < 1:
                raise SpecError(f"{owner} set {backup_set.name}: {field} must be a whole number "
                                f"of days >= 1, got {days!r}")
