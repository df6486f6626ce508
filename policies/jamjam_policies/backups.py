"""Every database container that keeps data on a volume is covered by a backup job.

The contract the component library meets (and any other program can):

1. A **database container** is a ``docker:index/container:Container`` whose image is a database
   (config ``databaseImages``: the image's last path part, before tag or digest, starts with
   ``postgres``, ``postgis``, ``mysql``, ``mariadb``, ``mongo`` or ``redis``), read from the
   container's ``image`` or from a ``docker:index/remoteImage:RemoteImage`` it depends on (the
   container usually runs the image's id), or that mounts a volume under a database data
   directory (config ``dataDirectories``, e.g. ``/var/lib/postgresql``).
2. It **has a data volume** when ``volumes`` or ``mounts`` hold a named volume or a bind mount
   (tmpfs holds nothing to back up).
3. It is **covered** when it carries the docker label ``jamjam.backup`` (config ``backupLabel``)
   whose value names its backup job, and the stack declares that job's cron file: a
   ``command:remote:Command`` whose ``create`` or ``stdin`` contains the job name and is a cron
   file (mentions ``cron``, like ``/etc/cron.d/...``, or holds a five-field schedule line). One
   job with several schedules (``db-backup-daily``, ``db-backup-6h``) is covered by any of its
   cron files, since each contains the name.

Unknown at preview fails: a label, or the labels, unknown; a job whose cron file can't be read.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

from jamjam_infra import rules
from pulumi_policy import EnforcementLevel, PolicyResource, ReportViolation, \
    StackValidationArgs, StackValidationPolicy

from ._exposure import CONTAINER, REMOTE_COMMAND
from ._props import is_unknown, label, props_of
from .config import BACKUPS, schema, settings

REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
_SCHEMA = schema(BACKUPS)
_NUMERIC = r"[\d*/,-]+"
_NAMED = r"(?:[\d*/,-]+|[A-Za-z]{3}(?:[,-][A-Za-z]{3})*)"  # month and weekday may be names
_CRON_LINE = re.compile(
    rf"^\s*(?:@(?:reboot|yearly|annually|monthly|weekly|daily|midnight|hourly)|"
    rf"{_NUMERIC}\s+{_NUMERIC}\s+{_NUMERIC}\s+{_NAMED}\s+{_NAMED})\s+\S", re.MULTILINE)


def _is_database_image(image: Any, names: list[str]) -> bool:
    return (isinstance(image, str) and not is_unknown(image)
            and rules.image_is_database(image, names))


def _mounts(props: dict[str, Any]) -> list[tuple[Any, str]]:
    """(container path, kind) of each persistent mount; kind "unknown" when unreadable."""
    found: list[tuple[Any, str]] = []
    volumes, mounts = props.get("volumes"), props.get("mounts")
    for field, entries in (("volumes", volumes), ("mounts", mounts)):
        if is_unknown(entries):
            found.append((entries, "unknown"))
            continue
        for entry in entries or []:
            if not isinstance(entry, dict):
                found.append((entry, "unknown"))
            elif field == "volumes":
                kind = "volume" if entry.get("volumeName") else "bind" if entry.get("hostPath") \
                    else "anonymous volume" if entry.get("containerPath") else "unknown"
                found.append((entry.get("containerPath"), kind))
            else:
                kind = entry.get("type") or "volume"
                if kind != "tmpfs":
                    found.append((entry.get("target"), "unknown" if is_unknown(kind) else kind))
    return found


def _under(path: Any, directories: list[str]) -> bool:
    if not isinstance(path, str) or is_unknown(path):
        return False
    path = posixpath.normpath(path)
    return any(path == d.rstrip("/") or path.startswith(d.rstrip("/") + "/") for d in directories)


def _images_of(resource: PolicyResource) -> list[Any]:
    images = [props_of(resource).get("image")]
    related = list(resource.dependencies or [])
    for deps in (resource.property_dependencies or {}).values():
        related += deps
    images += [props_of(dep).get("name") for dep in related if dep.resource_type == REMOTE_IMAGE]
    return images


def _cron_text(resource: PolicyResource) -> tuple[str, bool]:
    """(the create and stdin text, whether part of it is unknown at preview)."""
    props = props_of(resource)
    texts, unknown = [], False
    for field in ("create", "stdin"):
        value = props.get(field)
        if is_unknown(value):
            unknown = True
        elif isinstance(value, str):
            texts.append(value)
    return "\n".join(texts), unknown


def _is_cron_file(text: str) -> bool:
    return "cron" in text.lower() or _CRON_LINE.search(text) is not None


def _database_volumes_backed_up(args: StackValidationArgs, report: ReportViolation) -> None:
    config = settings(args, _SCHEMA)
    label_key = config["backupLabel"]
    commands = [_cron_text(r) for r in args.resources if r.resource_type == REMOTE_COMMAND]
    for resource in args.resources:
        if resource.resource_type != CONTAINER:
            continue
        props = props_of(resource)
        mounts = _mounts(props)
        persistent = [m for m in mounts if m[1] != "unknown"]
        by_image = any(_is_database_image(i, config["databaseImages"]) for i in _images_of(resource))
        by_path = any(_under(path, config["dataDirectories"]) for path, _ in persistent)
        if not (by_image or by_path):
            continue
        name = label(resource)
        why = "runs a database image" if by_image else "mounts a database data directory"
        if not persistent:
            if any(kind == "unknown" for _, kind in mounts):
                report(f"{name} {why} and has volumes unknown at preview, so the pack can't "
                       f"tell whether its data is backed up. Declare its volumes literally and "
                       f"label it {label_key}=<backup job>.", resource.urn)
            continue
        fix = (f"Give it the docker label {label_key}=<job> and declare that job's cron file "
               "(a command:remote:Command whose create or stdin names the job), e.g. the "
               "component library's database backup.")
        labels = props.get("labels")
        if is_unknown(labels):
            report(f"{name} {why} with a data volume, and its labels are unknown at preview. "
                   f"{fix}", resource.urn)
            continue
        exact = [entry.get("value") for entry in labels or []
                 if isinstance(entry, dict) and entry.get("label") == label_key]
        unreadable_labels = any(not isinstance(entry, dict) or is_unknown(entry.get("label"))
                                for entry in labels or [])
        if not exact:
            state = ("has labels unknown at preview, so its " + label_key + " label can't be "
                     "read") if unreadable_labels else f"carries no {label_key} label"
            report(f"{name} {why} with a data volume but {state}, so no backup job is known to "
                   f"cover it. {fix}", resource.urn)
            continue
        job = exact[0]
        if not isinstance(job, str) or is_unknown(job) or not job.strip():
            report(f"{name} {why} with a data volume, and its {label_key} label is unknown at "
                   f"preview or empty. {fix}", resource.urn)
            continue
        if any(job in text and _is_cron_file(text) for text, _ in commands):
            continue
        unreadable = sum(1 for _, unknown in commands if unknown)
        hint = (f" ({unreadable} command:remote:Command resources have a create or stdin "
                "unknown at preview and can't be read)") if unreadable else ""
        report(f"{name} {why} with a data volume and names the backup job {job!r} in its "
               f"{label_key} label, but no command:remote:Command installs a cron file naming "
               f"{job!r}{hint}. Declare the backup job, or fix the label to name it.",
               resource.urn)


POLICIES = [
    StackValidationPolicy(
        name="database-volumes-backed-up",
        description=("Every container running a database image (postgres, postgis, mysql, "
                     "mariadb, mongo, redis) with a data volume carries the label jamjam.backup "
                     "naming its backup job, and that job's cron file (a command:remote:Command "
                     "naming it) is declared."),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_SCHEMA,
        validate=_database_volumes_backed_up,
    ),
]
