"""Stack-wide rules: production archives its logs; other stacks don't pay for an archive.

A stack policy has one enforcement level, so the two directions are two policies: production
without the archive is mandatory, a non-production stack with one is advisory.

Which stack is this? Under the Pulumi CLI the analyzer configures the Pulumi runtime from
PULUMI_STACK, so ``pulumi.get_stack()`` answers. The offline runner (tools/policy_check.py)
checks rendered stacks in one process and sets the policy's ``stack`` config instead, which
wins when present.

Whose stack is this? The archive is jamjam's requirement (SPEC.md), not its siblings': the rules
apply to the projects in ``archiveProjects`` (default jamjam), read from the resources' URNs
(``urn:pulumi:<stack>::<project>::...``), else from the Pulumi runtime. A sibling project on
the component library passes the pack without turning these rules off.
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi_policy import EnforcementLevel, ReportViolation, StackValidationArgs, \
    StackValidationPolicy

from ._exposure import REMOTE_COMMAND
from ._props import is_unknown, props_of
from .config import LOG_ARCHIVE, schema, settings, stack_name

R2_BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
_SCHEMA = schema(LOG_ARCHIVE)


def _archive(args: StackValidationArgs, config: dict[str, Any]) -> tuple[list, list]:
    """(the logs buckets, the upload cron jobs) the stack declares."""
    buckets, jobs = [], []
    for resource in args.resources:
        if resource.resource_type == R2_BUCKET:
            if props_of(resource).get("name") == config["logBucket"]:
                buckets.append(resource)
        elif resource.resource_type == REMOTE_COMMAND:
            props = props_of(resource)
            create = props.get("create")
            text = " ".join(str(props.get(k)) for k in ("create", "stdin")
                            if isinstance(props.get(k), str))
            if (isinstance(create, str) and not is_unknown(create)
                    and config["logUploadMarker"] in create and "cron" in text):
                jobs.append(resource)
    return buckets, jobs


def project_name(args: StackValidationArgs) -> str | None:
    for resource in args.resources:
        parts = str(resource.urn).split("::")
        if parts[0].startswith("urn:pulumi:") and len(parts) > 2:
            return parts[1]
    try:
        return pulumi.get_project() or None
    except Exception:  # noqa: BLE001 (an unconfigured runtime raises differently across SDKs)
        return None


def _applies(args: StackValidationArgs, config: dict[str, Any]) -> bool:
    project = project_name(args)
    # Unknown project: check it (fail closed), as for jamjam.
    return project is None or project in config["archiveProjects"]


def _production_has_log_archive(args: StackValidationArgs, report: ReportViolation) -> None:
    config = settings(args, _SCHEMA)
    if not _applies(args, config):
        return
    stack = stack_name(config)
    if stack is None:
        report("The policy pack could not tell which stack this is, so it can't check the "
               "production log archive. Run it through the Pulumi CLI or set the "
               "production-has-log-archive config \"stack\".", None)
        return
    if stack not in config["productionStacks"]:
        return
    buckets, jobs = _archive(args, config)
    if not buckets:
        report(f"Stack {stack} declares no cloudflare:index/r2Bucket:R2Bucket named "
               f"{config['logBucket']}, so its container logs are lost on rotation. Enable the "
               "log archive for this stack.", None)
    if not jobs:
        report(f"Stack {stack} declares no command:remote:Command installing the hourly "
               f"{config['logUploadMarker']} cron job, so no log reaches R2. Enable the log "
               "archive for this stack.", None)


def _log_archive_only_on_production(args: StackValidationArgs, report: ReportViolation) -> None:
    config = settings(args, _SCHEMA)
    if not _applies(args, config):
        return
    stack = stack_name(config)
    if stack is None or stack in config["productionStacks"]:
        return
    buckets, jobs = _archive(args, config)
    for resource in buckets + jobs:
        report(f"{resource.resource_type} '{resource.name}' is part of the log archive, which "
               f"only production keeps; stack {stack} is not one of "
               f"{', '.join(config['productionStacks'])}. Turn the log archive off for this stack.",
               resource.urn)


POLICIES = [
    StackValidationPolicy(
        name="production-has-log-archive",
        description=("The production stack archives container logs: an R2 bucket jamjam-logs "
                     "and the hourly upload-logs-to-r2 cron job."),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_SCHEMA,
        validate=_production_has_log_archive,
    ),
    StackValidationPolicy(
        name="log-archive-only-on-production",
        description=("Stacks other than production declare no log archive (bucket or upload "
                     "job): test logs are not kept."),
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=_SCHEMA,
        validate=_log_archive_only_on_production,
    ),
]
