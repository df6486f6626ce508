"""The one way a scheduled job reaches the host: a script from components/files/ and a cron
entry that runs it as root under flock, with its settings in the cron file's environment."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import pulumi
import pulumi_command as command

from jamjam_infra._remote import read_file, remote_file

SCRIPTS = "/opt/jamjam/scripts"
_ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def script_path(script: str) -> str:
    return f"{SCRIPTS}/{script}"


def cron_entry(name: str, schedule: str, script: str, environment: Mapping[str, str],
               description: str) -> str:
    """The /etc/cron.d file for a job. Cron has no locking of its own: flock -n makes a run
    that finds the previous one still going skip instead of piling up."""
    for key, value in environment.items():
        # Settings here are visible to every local user; secrets go in 0600 files instead.
        if not _ENV_NAME.match(key) or any(c in str(value) for c in "\n%"):
            raise ValueError(f"cron environment {key}={value!r} cannot be written to a cron file")
    lines = [
        f"# Managed by Pulumi (jamjam-infra): {description}",
        "# Local edits are overwritten on the next `pulumi up`.",
        "SHELL=/bin/bash",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        *(f"{key}={value}" for key, value in sorted(environment.items())),
        f"{schedule} root flock -n /run/lock/jamjam-{name}.lock {script_path(script)} 2>&1"
        f" | logger -t jamjam-{name}",
        "",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class ScheduledJobArgs:
    connection: command.remote.ConnectionArgs
    script: str                      # file name under components/files/
    schedule: str                    # five-field cron schedule
    description: str
    environment: Mapping[str, str] = field(default_factory=dict)
    after: Sequence[pulumi.Resource] = ()


class ScheduledJob(pulumi.ComponentResource):
    """A cron job on the host. Changing the script updates the host; removing the job removes
    the cron entry first, then the script."""

    def __init__(self, name: str, args: ScheduledJobArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:ScheduledJob", name, None, opts)
        job = Path(args.script).stem
        script = remote_file(
            f"{name}-script", args.connection, script_path(args.script), read_file(args.script),
            mode="0755", opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.after)))
        remote_file(
            f"{name}-cron", args.connection, f"/etc/cron.d/jamjam-{job}",
            cron_entry(job, args.schedule, args.script, args.environment, args.description),
            mode="0644", opts=pulumi.ResourceOptions(parent=self, depends_on=[script]))
        self.register_outputs({})
