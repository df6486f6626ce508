"""Host directories copied off-site on a schedule, each to its own prefix of an
:class:`~jamjam_infra.r2_store.R2Store` (R-Stream's ``archives/`` and ``recordings/``).

    dirs = [SyncedDir("recordings", volume_path("rstream-recordings"), "recordings/")]
    store = R2Store(..., retention=[*sync_retention(dirs), ...])
    DirSync("media-sync", DirSyncArgs(stack, dirs=dirs, store=store, schedule="15 * * * *", ...))

Each directory is a cron job ``/etc/cron.d/jamjam-sync-<name>`` running ``sync-dir-to-r2.sh``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import pulumi
import pulumi_command as command

from jamjam_infra._script_job import alert_environment, check_schedule, script_job
from jamjam_infra.container import SpecError
from jamjam_infra.r2_store import R2Store, Retention

SYNC_SCRIPT = "sync-dir-to-r2.sh"
DELETED_PREFIX = "deleted/"
"""Where sync mode moves R2's copy of a file deleted or overwritten on the host."""
DOCKER_VOLUMES = "/var/lib/docker/volumes"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_PREFIX = re.compile(r"^([A-Za-z0-9._-]+/)+$")


def volume_path(volume: str) -> str:
    """Where Docker keeps a named volume's files on the host (default data root)."""
    return f"{DOCKER_VOLUMES}/{volume}/_data"


@dataclass(frozen=True)
class SyncedDir:
    name: str
    """Short: names the cron job (``sync-<name>``) and the alert (``sync/<name>``)."""
    source: str
    """Absolute path on the host, e.g. ``volume_path("rstream-recordings")``."""
    prefix: str
    """Folder in the bucket, ending in ``/``: ``recordings/``."""
    mode: str = "sync"
    """``sync``: R2 mirrors the directory; ``copy``: new and changed files only, R2 never
    loses one (for write-once data kept for ever)."""
    keep_deleted_days: int | None = 30
    """``sync`` only: R2's copy of a file deleted or overwritten on the host is kept this long
    under ``deleted/<prefix>``; None deletes it at once."""
    max_age_days: int | None = None
    """Only files changed within this many days go up. Set it to the prefix's retention for
    files the host keeps longer than R2 does (rotated logs), or R2 would get back every day
    what its lifecycle rule just expired."""

    @property
    def deleted_prefix(self) -> str:
        return f"{DELETED_PREFIX}{self.prefix}"


@dataclass(frozen=True)
class DirSyncArgs:
    stack: str
    dirs: Sequence[SyncedDir]
    store: R2Store
    schedule: str
    connection: command.remote.ConnectionArgs
    host_ready: pulumi.Resource
    after: Sequence[pulumi.Resource] = ()


def sync_retention(dirs: Sequence[SyncedDir]) -> list[Retention]:
    """The lifecycle rules a store needs for what sync mode moves aside."""
    _validate_dirs("directory sync", dirs)
    return [Retention(d.deleted_prefix, d.keep_deleted_days) for d in dirs
            if d.mode == "sync" and d.keep_deleted_days is not None]


class DirSync(pulumi.ComponentResource):
    """One scheduled rclone copy or sync per directory, alerting on failure."""

    jobs: dict[str, pulumi.Resource]

    def __init__(self, name: str, args: DirSyncArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:DirSync", name, None, opts)
        _validate(name, args)
        self.jobs = {}
        config_path, config_file = args.store.host_config(f"directory sync {name!r}")
        for synced in args.dirs:
            environment = {
                **alert_environment(args.stack),
                "JAMJAM_SYNC_NAME": synced.name,
                "JAMJAM_SYNC_SOURCE": synced.source,
                "JAMJAM_SYNC_MODE": synced.mode,
                "JAMJAM_R2_DEST": args.store.remote(synced.prefix),
                "RCLONE_CONFIG": config_path,
            }
            if synced.max_age_days is not None:
                environment["JAMJAM_SYNC_MAX_AGE_DAYS"] = str(synced.max_age_days)
            if synced.mode == "sync" and synced.keep_deleted_days is not None:
                environment["JAMJAM_SYNC_DELETED_DEST"] = args.store.remote(synced.deleted_prefix)
            job = f"sync-{synced.name}"
            self.jobs[job] = script_job(
                f"{name}-{synced.name}", args.connection, job, SYNC_SCRIPT, args.schedule,
                f"rclone {synced.mode} {synced.source} to {args.store.remote(synced.prefix)}",
                environment, [args.host_ready, config_file, *args.after], self)
        self.register_outputs({})


def _validate(name: str, args: DirSyncArgs) -> None:
    check_schedule(f"directory sync {name!r}", args.schedule)
    _validate_dirs(f"directory sync {name!r}", args.dirs)
    declared = {rule.prefix: rule.days for rule in args.store.retention}
    for want in sync_retention(args.dirs):
        if declared.get(want.prefix) != want.days:
            raise SpecError(f"directory sync {name!r}: the store has no {want.days}-day "
                            f"retention rule for {want.prefix!r}; pass sync_retention(dirs) "
                            "in its R2StoreArgs.retention")


def _validate_dirs(what: str, dirs: Sequence[SyncedDir]) -> None:
    if not dirs:
        raise SpecError(f"{what}: give at least one SyncedDir")
    seen: set[str] = set()
    for synced in dirs:
        owner = f"{what}, {synced.name!r}"
        if not _NAME.match(synced.name) or synced.name in seen:
            raise SpecError(f"{owner}: names must be unique lowercase words, e.g. 'recordings'")
        seen.add(synced.name)
        if not synced.source.startswith("/") or synced.source.rstrip("/") == "":
            raise SpecError(f"{owner}: source {synced.source!r} must be an absolute directory "
                            "other than /")
        if not _PREFIX.match(synced.prefix) or synced.prefix.startswith(DELETED_PREFIX):
            raise SpecError(f"{owner}: prefix {synced.prefix!r} must be folders ending in '/' "
                            f"outside {DELETED_PREFIX}, e.g. 'recordings/'")
        if synced.max_age_days is not None and (isinstance(synced.max_age_days, bool)
                                                or not isinstance(synced.max_age_days, int)
                                                or synced.max_age_days < 1):
            raise SpecError(f"{owner}: max_age_days must be a whole number >= 1 or None")
        if synced.mode not in ("sync", "copy"):
            raise SpecError(f"{owner}: mode must be 'sync' or 'copy', got {synced.mode!r}")
