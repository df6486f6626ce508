"""Several cron jobs from one shipped script (a backup per schedule, a sync per directory).

:class:`~jamjam_infra.scheduled_job.ScheduledJob` names its cron file and installed script
after the script, so it runs one job per script. Here each job gets its own copy of the script
(``/opt/jamjam/scripts/<job>.sh``) and its own cron file (``/etc/cron.d/jamjam-<job>``): two
jobs never share a file, so removing one can never delete what another still runs.
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

import pulumi
import pulumi_command as command

from jamjam_infra._remote import read_file, remote_file
from jamjam_infra.container import SpecError
from jamjam_infra.operations import ALERT_SCRIPT, WEBHOOK_FILE
from jamjam_infra.scheduled_job import cron_entry, script_path

_JOB = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*/,-]+$")


def alert_environment(stack: str) -> dict[str, str]:
    """What a job needs to raise alerts the way the operations jobs do."""
    return {"JAMJAM_STACK": stack, "JAMJAM_ALERT": script_path(ALERT_SCRIPT),
            "JAMJAM_ALERT_WEBHOOK_FILE": WEBHOOK_FILE}


def check_schedule(owner: str, schedule: str) -> str:
    fields = schedule.split()
    if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
        raise SpecError(f"{owner}: schedule {schedule!r} is not a five-field cron schedule, "
                        "e.g. '0 3 * * *' (daily at 03:00)")
    return " ".join(fields)


def script_job(name: str, connection: command.remote.ConnectionArgs, job: str, script: str,
               schedule: str, description: str, environment: Mapping[str, str],
               after: Sequence[pulumi.Resource], parent: pulumi.Resource) -> pulumi.Resource:
    """Installs ``components/files/<script>`` as ``<job>.sh`` and its cron entry; returns the
    cron file's resource (the one whose content names the job)."""
    if not _JOB.match(job):
        raise SpecError(f"job name {job!r} must be lowercase letters, digits, '-', '_', '.'")
    installed = f"{job}.sh"
    copy = remote_file(f"{name}-script", connection, script_path(installed), read_file(script),
                       mode="0755", opts=pulumi.ResourceOptions(parent=parent,
                                                                depends_on=list(after)))
    # Removing the job: Pulumi deletes dependents first, so the cron entry goes before the
    # script it runs.
    return remote_file(f"{name}-cron", connection, f"/etc/cron.d/jamjam-{job}",
                       cron_entry(job, schedule, installed, environment, description),
                       mode="0644", opts=pulumi.ResourceOptions(parent=parent, depends_on=[copy]))
