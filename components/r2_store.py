"""An off-site object store for one system: a private R2 bucket, lifecycle rules that expire
objects per prefix, an API token that can touch only that bucket's objects, and the rclone
config on the host that jobs (log upload, database backups, directory sync) write through.

    store = R2Store("backups", R2StoreArgs(
        account_id=..., bucket="rstream-backups", token_name="rstream-production-backups",
        connection=host.connection, host_ready=host.ready,
        config_path="/etc/jamjam/rclone-rstream-backups.conf",
        retention=[Retention("logs/access/", 90), Retention("logs/error/", 180)],
    ))
    store.remote("db/")   # "r2:rstream-backups/db/" for an rclone command on the host
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from string import Template
from typing import Sequence

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_command as command

from jamjam_infra._remote import read_file, remote_file
from jamjam_infra.container import SpecError

REMOTE = "r2"
"""The rclone remote name in every store's config (``r2:<bucket>/<prefix>``)."""

# Cloudflare's names for object-level access to R2 buckets (account API token permission groups).
_R2_OBJECT_PERMISSIONS = ("Workers R2 Storage Bucket Item Read",
                          "Workers R2 Storage Bucket Item Write")
_R2_BUCKET_SCOPE = "com.cloudflare.edge.r2.bucket"
# R2 gives a new bucket a rule that aborts unfinished multipart uploads after 7 days. Declaring
# any lifecycle replaces the bucket's whole rule set, so the same abort is declared with it;
# without it, a dump that rclone uploaded in parts and never finished is billed for ever.
_ABORT_MULTIPART_DAYS = 7
_DAY = 86_400
# R2 bucket names: 3-63 of lowercase letters, digits and hyphens, not starting or ending in one.
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^([A-Za-z0-9._-]+/)*$")


def rclone_config_path(bucket: str) -> str:
    """The host's rclone config for a bucket: one file per store, so two stores' keys never
    share a file."""
    return f"/etc/jamjam/rclone-{bucket}.conf"


def endpoint(account_id: str) -> str:
    """R2's S3 API for an account."""
    return f"https://{account_id}.r2.cloudflarestorage.com"


@dataclass(frozen=True)
class S3Credentials:
    """What an S3 client (ActiveStorage, boto3, the AWS SDK) needs to reach one R2 bucket."""

    access_key_id: pulumi.Output[str]
    """Secret: it is half of a credential, and policies treat env names with KEY as secrets."""
    secret_access_key: pulumi.Output[str]
    endpoint: str
    bucket: str
    region: str = "auto"
    """R2 has no regions; S3 clients that insist on one are given ``auto``."""


@dataclass(frozen=True)
class Retention:
    """Objects under ``prefix`` are deleted ``days`` after they were written."""

    prefix: str
    """``""`` for the whole bucket, otherwise a folder ending in ``/`` (``logs/access/``)."""
    days: int
    rule_id: str | None = None
    """The lifecycle rule's id; derived from the prefix when None."""

    @property
    def id(self) -> str:
        if self.rule_id:
            return self.rule_id
        return "expire-" + (self.prefix.strip("/").replace("/", "-") or "everything")


@dataclass(frozen=True)
class R2StoreArgs:
    account_id: str
    bucket: str
    token_name: str
    """Name of the bucket-scoped API token in the Cloudflare dashboard."""
    connection: command.remote.ConnectionArgs | None
    """The host whose jobs write to the store; None for a store only an app uses (through
    :attr:`R2Store.credentials`), with no rclone config anywhere."""
    host_ready: pulumi.Resource | None
    config_path: str | None
    """Where the rclone config lands on the host (root only, 0600); one file per store."""
    retention: Sequence[Retention] = ()
    """Empty: objects stay until deleted by hand."""
    moved_from: pulumi.Resource | None = None
    """The component these resources were children of before R2Store existed (LogArchive):
    an alias keeps their state, so an existing bucket is adopted, never recreated."""


class R2Store(pulumi.ComponentResource):
    """A private R2 bucket and the host's bucket-scoped rclone remote for it."""

    bucket_name: pulumi.Output[str]
    bucket: str
    """The bucket's name, known at preview (``bucket_name`` is the provider's Output)."""
    config_path: str | None
    """The rclone config on the host; jobs set ``RCLONE_CONFIG`` to it."""
    config_file: pulumi.Resource | None
    """Depend on this before a job runs rclone against the store."""
    credentials: "S3Credentials"
    """The same bucket-scoped keys, for an app that reads and writes the bucket itself."""
    retention: tuple[Retention, ...]
    """The lifecycle rules declared, so jobs writing under a prefix can check theirs is there."""

    def __init__(self, name: str, args: R2StoreArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:R2Store", name, None, opts)
        _validate(args)
        self._bucket = args.bucket
        self.bucket = args.bucket
        aliases = [pulumi.Alias(parent=args.moved_from)] if args.moved_from is not None else None
        child = pulumi.ResourceOptions(parent=self, aliases=aliases)

        bucket = cloudflare.R2Bucket(f"{name}-bucket", account_id=args.account_id,
                                     name=args.bucket, opts=child)
        # Declared off rather than left out, so a public r2.dev URL switched on by hand in
        # the dashboard shows up as drift and is switched off again by the next `pulumi up`.
        cloudflare.R2ManagedDomain(f"{name}-public-url", account_id=args.account_id,
                                   bucket_name=bucket.name, enabled=False, opts=child)
        if args.retention:
            cloudflare.R2BucketLifecycle(
                f"{name}-retention", account_id=args.account_id, bucket_name=bucket.name,
                rules=_lifecycle_rules(args.retention), opts=child)

        permission_ids = [
            cloudflare.get_api_token_permission_groups_list_output(
                name=permission, scope=_R2_BUCKET_SCOPE,
                opts=pulumi.InvokeOutputOptions(parent=self),
            ).results.apply(lambda results, p=permission: _only_id(results, p))
            for permission in _R2_OBJECT_PERMISSIONS
        ]
        token = cloudflare.ApiToken(
            f"{name}-token",
            name=args.token_name,
            policies=[cloudflare.ApiTokenPolicyArgs(
                effect="allow",
                permission_groups=[cloudflare.ApiTokenPolicyPermissionGroupArgs(id=i)
                                   for i in permission_ids],
                # One bucket, not the account: a leaked host can't read or delete anything else.
                resources=bucket.name.apply(lambda b: json.dumps(
                    {f"{_R2_BUCKET_SCOPE}.{args.account_id}_default_{b}": "*"})),
            )],
            opts=pulumi.ResourceOptions.merge(
                child, pulumi.ResourceOptions(additional_secret_outputs=["value"])),
        )
        # R2's S3 API takes the token id as the access key and the SHA-256 of its value as
        # the secret: nothing to create by hand, and rotating the token rotates both.
        self.credentials = S3Credentials(
            access_key_id=pulumi.Output.secret(token.id),
            secret_access_key=pulumi.Output.secret(token.value.apply(
                lambda value: hashlib.sha256(value.encode()).hexdigest())),
            endpoint=endpoint(args.account_id),
            bucket=args.bucket,
        )
        self.config_file = None
        if args.connection is not None:
            rclone_config = pulumi.Output.all(token.id, token.value).apply(
                lambda pair: Template(read_file("rclone.conf.tmpl")).substitute(
                    access_key_id=pair[0],
                    secret_access_key=hashlib.sha256(pair[1].encode()).hexdigest(),
                    endpoint=endpoint(args.account_id)))
            self.config_file = remote_file(
                f"{name}-rclone-config", args.connection, str(args.config_path),
                pulumi.Output.secret(rclone_config), mode="0600", secret=True,
                opts=pulumi.ResourceOptions.merge(
                    child, pulumi.ResourceOptions(depends_on=[args.host_ready])))
        self.config_path = args.config_path
        self.retention = tuple(args.retention)
        self.bucket_name = bucket.name
        self.register_outputs({"bucket_name": self.bucket_name})

    def host_config(self, user: str) -> tuple[str, pulumi.Resource]:
        """(config path, its resource) for a job that runs rclone against the store; ``user``
        names the job in the error when the store has no host config."""
        if self.config_path is None or self.config_file is None:
            raise SpecError(f"{user} writes to bucket {self._bucket}, whose R2Store was made "
                            "without a host connection; give R2StoreArgs connection, "
                            "host_ready and config_path")
        return self.config_path, self.config_file

    def remote(self, prefix: str = "") -> str:
        """``r2:<bucket>/<prefix>``, the rclone destination for objects under ``prefix``."""
        return f"{REMOTE}:{self._bucket}" + (f"/{prefix.strip('/')}" if prefix.strip("/") else "")


def _validate(args: R2StoreArgs) -> None:
    if (args.connection is None) != (args.config_path is None) or (
            args.connection is not None and args.host_ready is None):
        raise SpecError(f"bucket {args.bucket}: give connection, host_ready and config_path "
                        "together (jobs on a host use the store) or none of them (an app does)")
    if not BUCKET_NAME.match(args.bucket):
        raise SpecError(f"R2 bucket name {args.bucket!r} is not valid: 3-63 lowercase letters, "
                        "digits and hyphens, e.g. 'rstream-backups'")
    seen: dict[str, str] = {}
    for rule in args.retention:
        if not _PREFIX.match(rule.prefix):
            raise SpecError(f"bucket {args.bucket}: retention prefix {rule.prefix!r} must be '' "
                            "or folders ending in '/', e.g. 'logs/access/'")
        if not isinstance(rule.days, int) or isinstance(rule.days, bool) or rule.days < 1:
            raise SpecError(f"bucket {args.bucket}: retention for {rule.prefix!r} must be a whole "
                            f"number of days >= 1, got {rule.days!r}")
        if rule.prefix in seen:
            raise SpecError(f"bucket {args.bucket}: two retention rules for prefix "
                            f"{rule.prefix!r} ({seen[rule.prefix]} days and {rule.days} days); "
                            "keep one")
        seen[rule.prefix] = str(rule.days)
    ids = [rule.id for rule in args.retention]
    if len(set(ids)) != len(ids):
        raise SpecError(f"bucket {args.bucket}: retention rule ids must be unique, got {ids}")


def _lifecycle_rules(retention: Sequence[Retention]) -> list[cloudflare.R2BucketLifecycleRuleArgs]:
    abort = cloudflare.R2BucketLifecycleRuleAbortMultipartUploadsTransitionArgs(
        condition=cloudflare.R2BucketLifecycleRuleAbortMultipartUploadsTransitionConditionArgs(
            type="Age", max_age=_ABORT_MULTIPART_DAYS * _DAY))
    rules = [
        cloudflare.R2BucketLifecycleRuleArgs(
            id=rule.id, enabled=True,
            conditions=cloudflare.R2BucketLifecycleRuleConditionsArgs(prefix=rule.prefix),
            delete_objects_transition=cloudflare.R2BucketLifecycleRuleDeleteObjectsTransitionArgs(
                condition=cloudflare.R2BucketLifecycleRuleDeleteObjectsTransitionConditionArgs(
                    type="Age", max_age=rule.days * _DAY)),
            abort_multipart_uploads_transition=abort,
        )
        for rule in retention
    ]
    if all(rule.prefix for rule in retention):
        rules.append(cloudflare.R2BucketLifecycleRuleArgs(
            id="abort-unfinished-uploads", enabled=True,
            conditions=cloudflare.R2BucketLifecycleRuleConditionsArgs(prefix=""),
            abort_multipart_uploads_transition=abort))
    return rules


def _only_id(results: list, name: str) -> str:
    matches = [r for r in results if r.name == name]
    if len(matches) != 1:
        raise pulumi.RunError(f"Cloudflare has {len(matches)} permission groups named {name!r}; "
                              "expected exactly one")
    return matches[0].id
