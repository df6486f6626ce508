"""Scheduled operations on a host: self-healing, resource alerts, image scans, OS updates.
(External health checks of public routes are per route: see tunnel.ExternalCheck.)"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from jamjam_infra._remote import read_file, remote_file, remote_script
from jamjam_infra.scheduled_job import ScheduledJob, ScheduledJobArgs, script_path

ALERT_SCRIPT = "jamjam-alert.sh"
WEBHOOK_FILE = "/etc/jamjam/alert-webhook"
_UPGRADES = "unattended-upgrades"
# The distribution's own unattended-upgrades does the work; this file only turns it on and
# scopes it to security updates. One owner per file: Pulumi owns this one (a name of our own,
# read after the distribution's files, never one of theirs); os-updates.sh owns the timer
# drop-in that moves the run into the maintenance window, and the package it may install.
_UPGRADE_FILES = {
    "52jamjam-unattended-upgrades": "/etc/apt/apt.conf.d/52jamjam-unattended-upgrades",
}
MAINTENANCE_REBOOT_TIME = "03:30"


@dataclass(frozen=True)
class OperationsArgs:
    stack: str
    connection: command.remote.ConnectionArgs
    host_ready: pulumi.Resource
    webhook_url: pulumi.Output[str] | None = None
    """Discord-compatible webhook; None logs alerts to syslog only."""
    self_heal: bool = True
    resource_alerts: bool = True
    disk_alert_percent: int = 80
    memory_alert_percent: int = 90
    image_scan: bool = True
    image_scan_schedule: str = "30 4 * * 1"
    os_updates: bool = True
    os_updates_reboot: bool = False


class Operations(pulumi.ComponentResource):
    """What the runbooks ask of the host besides serving: each job on or off per stack."""

    def __init__(self, name: str, args: OperationsArgs,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:Operations", name, None, opts)
        ops = args
        child = pulumi.ResourceOptions(parent=self)
        after = pulumi.ResourceOptions(parent=self, depends_on=[args.host_ready])

        alert = remote_file(f"{name}-alert-script", args.connection, script_path(ALERT_SCRIPT),
                            read_file(ALERT_SCRIPT), mode="0755", opts=after)
        ready: list[pulumi.Resource] = [alert]
        if args.webhook_url is not None:
            # A file, not a cron variable or an argument: only root can read it, and it never
            # shows in a process list or in command output kept in state.
            ready.append(remote_file(
                f"{name}-alert-webhook", args.connection, WEBHOOK_FILE,
                args.webhook_url.apply(lambda url: url + "\n"), mode="0600", secret=True,
                opts=after))
        # What another component's alerting job needs on the host (the alert script and the
        # webhook file). Jobs depend on this, not on the component: the component also waits
        # for Trivy's installation from Aqua's apt repository, whose outage must not keep a
        # database's backups from being installed.
        self.alerting: list[pulumi.Resource] = ready
        environment = {"JAMJAM_STACK": args.stack,
                       "JAMJAM_ALERT": script_path(ALERT_SCRIPT),
                       "JAMJAM_ALERT_WEBHOOK_FILE": WEBHOOK_FILE}

        def job(role: str, script: str, schedule: str, description: str, **extra: str) -> None:
            ScheduledJob(f"{name}-{role}", ScheduledJobArgs(
                connection=args.connection, script=script, schedule=schedule,
                description=description, environment={**environment, **extra}, after=ready,
            ), opts=child)

        if ops.self_heal:
            job("heal", "heal-containers.sh", "* * * * *",
                "restart this stack's unhealthy containers, with back-off")
        if ops.resource_alerts:
            job("resources", "resource-alert.sh", "7 * * * *",
                "alert once per incident on disk or memory pressure",
                JAMJAM_DISK_ALERT_PERCENT=str(ops.disk_alert_percent),
                JAMJAM_MEM_ALERT_PERCENT=str(ops.memory_alert_percent))
        if ops.image_scan:
            trivy = remote_script(f"{name}-trivy", args.connection, "install-trivy.sh", [],
                                  opts=after)
            ScheduledJob(f"{name}-image-scan", ScheduledJobArgs(
                connection=args.connection, script="image-scan.sh",
                schedule=ops.image_scan_schedule,
                description="weekly HIGH/CRITICAL vulnerability scan of the running images",
                environment=environment, after=[*ready, trivy],
            ), opts=child)
        if ops.os_updates:
            self._os_updates(name, args, after)
        self.register_outputs({})

    def _os_updates(self, name: str, args: OperationsArgs,
                    after: pulumi.ResourceOptions) -> None:
        files = []
        for source, path in _UPGRADE_FILES.items():
            content = (read_file(f"{_UPGRADES}/{source}")
                       .replace("@AUTOMATIC_REBOOT@",
                                "true" if args.os_updates_reboot else "false")
                       .replace("@REBOOT_TIME@", MAINTENANCE_REBOOT_TIME))
            files.append(remote_file(f"{name}-upgrades-{source.split('-')[0]}", args.connection,
                                     path, content, mode="0644", opts=after))
        # apt reads its settings afresh on every run, so a change to them needs no step here;
        # a change to the script (the window) runs apply again. After the settings: the script
        # installs the package, whose first timer run must already see them; and removal runs
        # the other way round, so the package goes only once its settings are gone.
        remote_script(f"{name}-os-updates", args.connection, "os-updates.sh", ["apply"],
                      delete_args=["remove"], opts=pulumi.ResourceOptions.merge(
                          after, pulumi.ResourceOptions(depends_on=files)))
