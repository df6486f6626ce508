"""Container logs shipped hourly, each byte once, to a private R2 bucket
(``upload-logs-to-r2.sh``).

:class:`LogArchive` is jamjam's: a bucket of its own (an
:class:`~jamjam_infra.r2_store.R2Store`) and the upload. :class:`LogUpload` is the upload alone,
into a folder of a store a system already has (one bucket per system for backups, synced
directories and logs)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from jamjam_infra._script_job import check_schedule
from jamjam_infra.r2_store import R2Store, R2StoreArgs, Retention
from jamjam_infra.scheduled_job import ScheduledJob, ScheduledJobArgs

RCLONE_CONFIG = "/etc/jamjam/rclone.conf"


@dataclass(frozen=True)
class LogArchiveArgs:
    account_id: str
    bucket: str
    retention_days: int | None       # None: keep until deleted by hand (SPEC)
    schedule: str
    stack: str
    connection: command.remote.ConnectionArgs
    host_ready: pulumi.Resource


class LogArchive(pulumi.ComponentResource):
    """Container logs shipped hourly to a private R2 bucket, each byte once."""

    bucket_name: pulumi.Output[str]

    def __init__(self, name: str, args: LogArchiveArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:LogArchive", name, None, opts)
        retention = ([Retention("", args.retention_days, rule_id="expire-container-logs")]
                     if args.retention_days is not None else [])
        # Named like this component, so the bucket, token and config keep the names they had
        # when they were this component's own children (the alias keeps their state).
        store = R2Store(name, R2StoreArgs(
            account_id=args.account_id,
            bucket=args.bucket,
            token_name=f"jamjam-{args.stack}-log-archive",
            connection=args.connection,
            host_ready=args.host_ready,
            config_path=RCLONE_CONFIG,
            retention=retention,
            moved_from=self,
        ), opts=pulumi.ResourceOptions(parent=self))
        _upload(name, args.stack, store, "", args.schedule, args.connection, self)
        self.bucket_name = store.bucket_name
        self.register_outputs({"bucket_name": self.bucket_name})


@dataclass(frozen=True)
class LogUploadArgs:
    stack: str
    store: R2Store
    connection: command.remote.ConnectionArgs
    prefix: str = "logs/"
    """Folder in the bucket; objects land under ``<prefix><stack>/<host>/<container>/...``."""
    schedule: str = "0 * * * *"


class LogUpload(pulumi.ComponentResource):
    """The hourly upload of every container's log into a folder of an existing store."""

    def __init__(self, name: str, args: LogUploadArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:LogUpload", name, None, opts)
        check_schedule(f"log upload {name!r}", args.schedule)
        _upload(name, args.stack, args.store, args.prefix, args.schedule, args.connection, self)
        self.register_outputs({})


def _upload(name: str, stack: str, store: R2Store, prefix: str, schedule: str,
            connection: command.remote.ConnectionArgs, parent: pulumi.Resource) -> None:
    config_path, config_file = store.host_config(f"log upload {name!r}")
    ScheduledJob(f"{name}-upload", ScheduledJobArgs(
        connection=connection,
        script="upload-logs-to-r2.sh",
        schedule=schedule,
        description=f"ship container logs to R2 bucket {store.bucket}"
                    + (f" under {prefix}" if prefix else ""),
        environment={
            "JAMJAM_STACK": stack,
            "JAMJAM_R2_DEST": store.remote(prefix),
            "RCLONE_CONFIG": config_path,
        },
        after=[config_file],
    ), opts=pulumi.ResourceOptions(parent=parent))
