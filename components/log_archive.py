"""Production's log archive: a private R2 bucket, a token that can touch only its objects,
and the hourly upload job on the host."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from string import Template

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_command as command

from jamjam_infra._remote import read_file, remote_file
from jamjam_infra.scheduled_job import ScheduledJob, ScheduledJobArgs

RCLONE_CONFIG = "/etc/jamjam/rclone.conf"
# Cloudflare's names for object-level access to R2 buckets (account API token permission groups).
_R2_OBJECT_PERMISSIONS = ("Workers R2 Storage Bucket Item Read",
                          "Workers R2 Storage Bucket Item Write")
_R2_BUCKET_SCOPE = "com.cloudflare.edge.r2.bucket"


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
        child = pulumi.ResourceOptions(parent=self)

        bucket = cloudflare.R2Bucket(f"{name}-bucket", account_id=args.account_id,
                                     name=args.bucket, opts=child)
        # Declared off rather than left out, so a public r2.dev URL switched on by hand in
        # the dashboard shows up as drift and is switched off again by the next `pulumi up`.
        cloudflare.R2ManagedDomain(f"{name}-public-url", account_id=args.account_id,
                                   bucket_name=bucket.name, enabled=False, opts=child)
        if args.retention_days is not None:
            cloudflare.R2BucketLifecycle(
                f"{name}-retention", account_id=args.account_id, bucket_name=bucket.name,
                rules=[cloudflare.R2BucketLifecycleRuleArgs(
                    id="expire-container-logs", enabled=True,
                    conditions=cloudflare.R2BucketLifecycleRuleConditionsArgs(prefix=""),
                    delete_objects_transition=cloudflare.R2BucketLifecycleRuleDeleteObjectsTransitionArgs(
                        condition=cloudflare.R2BucketLifecycleRuleDeleteObjectsTransitionConditionArgs(
                            type="Age", max_age=args.retention_days * 86_400)),
                )],
                opts=child)

        permission_ids = [
            cloudflare.get_api_token_permission_groups_list_output(
                name=permission, scope=_R2_BUCKET_SCOPE,
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).results.apply(lambda results, p=permission: _only_id(results, p))
            for permission in _R2_OBJECT_PERMISSIONS
        ]
        token = cloudflare.ApiToken(
            f"{name}-token",
            name=f"jamjam-{args.stack}-log-archive",
            policies=[cloudflare.ApiTokenPolicyArgs(
                effect="allow",
                permission_groups=[cloudflare.ApiTokenPolicyPermissionGroupArgs(id=i)
                                   for i in permission_ids],
                # One bucket, not the account: a leaked host can't read or delete anything else.
                resources=bucket.name.apply(lambda b: json.dumps(
                    {f"{_R2_BUCKET_SCOPE}.{args.account_id}_default_{b}": "*"})),
            )],
            opts=pulumi.ResourceOptions(parent=self, additional_secret_outputs=["value"]),
        )
        # R2's S3 API takes the token id as the access key and the SHA-256 of its value as
        # the secret: nothing to create by hand, and rotating the token rotates both.
        rclone_config = pulumi.Output.all(token.id, token.value).apply(
            lambda pair: Template(read_file("rclone.conf.tmpl")).substitute(
                access_key_id=pair[0],
                secret_access_key=hashlib.sha256(pair[1].encode()).hexdigest(),
                account_id=args.account_id))
        config_file = remote_file(
            f"{name}-rclone-config", args.connection, RCLONE_CONFIG,
            pulumi.Output.secret(rclone_config), mode="0600", secret=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.host_ready]))
        ScheduledJob(f"{name}-upload", ScheduledJobArgs(
            connection=args.connection,
            script="upload-logs-to-r2.sh",
            schedule=args.schedule,
            description=f"ship container logs to R2 bucket {args.bucket}",
            environment={
                "JAMJAM_STACK": args.stack,
                "JAMJAM_R2_DEST": f"r2:{args.bucket}",
                "RCLONE_CONFIG": RCLONE_CONFIG,
            },
            after=[config_file],
        ), opts=child)
        self.bucket_name = bucket.name
        self.register_outputs({"bucket_name": self.bucket_name})


def _only_id(results: list, name: str) -> str:
    matches = [r for r in results if r.name == name]
    if len(matches) != 1:
        raise pulumi.RunError(f"Cloudflare has {len(matches)} permission groups named {name!r}; "
                              "expected exactly one")
    return matches[0].id
