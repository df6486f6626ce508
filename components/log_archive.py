"""Production's log archive: container logs shipped hourly, each byte once, to a private R2
bucket (an :class:`~jamjam_infra.r2_store.R2Store`)."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

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
        ScheduledJob(f"{name}-upload", ScheduledJobArgs(
            connection=args.connection,
            script="upload-logs-to-r2.sh",
            schedule=args.schedule,
            description=f"ship container logs to R2 bucket {args.bucket}",
            environment={
                "JAMJAM_STACK": args.stack,
                "JAMJAM_R2_DEST": store.remote(),
                "RCLONE_CONFIG": store.config_path,
            },
            after=[store.config_file],
        ), opts=pulumi.ResourceOptions(parent=self))
        self.bucket_name = store.bucket_name
        self.register_outputs({"bucket_name": self.bucket_name})
