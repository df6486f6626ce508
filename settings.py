"""jamjam's stack config: its own keys, read with the library's schema (jamjam_infra.schema)
next to the rows every project shares (the operator's keys, SSH, images, container overrides).

Every other module receives these frozen dataclasses; none of them calls ``pulumi.Config``.
Each setting is one row below or in the library (key, parser, default, example, secret,
description); the rows drive parsing, defaults, the known keys, the fix printed for a bad value,
Pulumi.yaml's ``config:`` block and README's configuration reference (``python -m
tools.gen_config`` writes both; tests/test_gen_config.py fails when either is stale).
Adding a setting is one row here, plus the field it fills in the dataclass.

A bad stack never gets half-way: every key is checked, then one ``SettingsError`` carrying one
line per bad key (the key, what is wrong, a command that fixes it) is raised before any resource
is registered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi

from jamjam_infra.host import SshArgs
from jamjam_infra.schema import (
    PERCENT, PORT, REQUIRED, ConfigError, Images, Reader, Row, Section, Setting, Shell, Values,
    boolean, bucket, build, containers_section, dns_name, hostname_inside_zone, images_section,
    one_of, operator_rows, pulumi_yaml_config, read, schedule, section_defaults, ssh_args,
    whole, zone)

__all__ = ["NAMESPACE", "TOP_LEVEL", "OPERATOR_KEYS", "SECRET_KEYS",
           "REQUIRED", "Setting", "Section", "Shell", "SettingsError", "Settings", "load",
           "project_config", "section_defaults"]

NAMESPACE = "jamjam"

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")

SettingsError = ConfigError
"""The library's one config error type, under the name jamjam's tools have always caught."""


# --- the dataclasses every other module receives -------------------------------------------

@dataclass(frozen=True)
class LogArchiveSettings:
    bucket: str
    retention_days: int | None
    schedule: str


@dataclass(frozen=True)
class OperationsSettings:
    self_heal: bool
    resource_alerts: bool
    disk_alert_percent: int
    memory_alert_percent: int
    image_scan: bool
    image_scan_schedule: str
    os_updates: bool
    os_updates_reboot: bool
    external_health_check: bool


@dataclass(frozen=True)
class Settings:
    stack: str
    zone: str
    zone_id: str
    account_id: str
    signaling_hostname: str
    vps_address: str
    signaling_port: int
    echo_port: int
    log_level: str
    echo_delay_ms: int
    images: Images
    """Pinned images by name; each container spec takes its own (see jamjam_infra.schema)."""
    ssh: SshArgs
    log_archive: LogArchiveSettings | None
    """None when the stack keeps no archive (the test stack)."""
    operations: OperationsSettings
    alert_webhook_url: pulumi.Output[str] | None
    values: Values = field(default_factory=Values, repr=False)
    """Everything read, for jamjam_infra.schema.settle (images and overrides by role)."""
    vps_debian_version: int = 13
    """Debian release of the VPS (a key of jamjam_infra.host.DEBIAN_RELEASES)."""



TOP_LEVEL: tuple[Row, ...] = (
    Setting("zone", zone, "koeda.me", "Cloudflare zone that holds the signaling hostname."),
    Setting("signalingHostname", dns_name, "signaling-jamjam.koeda.me",
            "Public hostname of the signaling server (wss://); must be inside zone."),
    *operator_rows(),
    Setting("logLevel", one_of(LOG_LEVELS), "info",
            "RUST_LOG of both servers: error, warn, info, debug or trace."),
    Setting("echoDelayMs", whole(1, 60_000, "milliseconds"), 3000,
            "Echo server delay (ECHO_DELAY_MS), 1..60000 milliseconds.", type="integer"),
    images_section(),
    Section("ports", (
        Setting("signaling", PORT, 8080, "Signaling port inside the bridge network; never "
                "published.", default=8080, type="integer"),
        Setting("echo", PORT, 5000, "Echo UDP port, published and opened in the firewall.",
                default=5000, type="integer"),
    ), "Ports (signaling, echo); they must not clash with each other or ssh.port.",
        moved={"ssh": "ssh.port"}),
    Section("logArchive", (
        Setting("enabled", boolean, True, "Ship container logs to an R2 bucket every hour.",
                default=False, type="boolean"),
        Setting("bucket", bucket, "jamjam-logs", "R2 bucket name.", default="jamjam-logs"),
        Setting("retentionDays", whole(1, 36_500), 365,
                "Days R2 keeps each object; unset keeps them until deleted.", default=None,
                type="integer"),
        Setting("schedule", schedule, "0 * * * *", "Cron schedule of the upload.",
                default="0 * * * *"),
    ), "Log archive to R2 (enabled, bucket, retentionDays, schedule)."),
    Section("operations", (
        Setting("selfHeal", boolean, True, "Restart unhealthy containers.", default=True,
                type="boolean"),
        Setting("resourceAlerts", boolean, True, "Hourly disk and memory alerts.", default=True,
                type="boolean"),
        Setting("diskAlertPercent", PERCENT, 80, "Disk use of / that alerts.", default=80,
                type="integer"),
        Setting("memoryAlertPercent", PERCENT, 90, "Memory use that alerts.", default=90,
                type="integer"),
        Setting("imageScan", boolean, True, "Weekly Trivy scan of the running images.",
                default=True, type="boolean"),
        Setting("imageScanSchedule", schedule, "30 4 * * 1", "Cron schedule of the scan.",
                default="30 4 * * 1"),
        Setting("osUpdates", boolean, True, "Nightly security updates (unattended-upgrades).",
                default=True, type="boolean"),
        Setting("osUpdatesReboot", boolean, False, "Reboot at 03:30 when an update needs it.",
                default=False, type="boolean"),
        Setting("externalHealthCheck", boolean, False,
                "Cloudflare health check of the signaling hostname (paid plans).",
                default=False, type="boolean"),
    ), "Scheduled operations on the host; see docs/operations.md."),
    containers_section(),
)

# The keys an operator must set once per stack; nobody else can know them.  tools/render.py
# fills them with stand-ins (offline.yaml) for the offline plan and says so.
OPERATOR_KEYS = tuple(s.key for s in TOP_LEVEL
                      if isinstance(s, Setting) and s.operator and not s.secret)
SECRET_KEYS = tuple(s.key for s in TOP_LEVEL if isinstance(s, Setting) and s.secret)


def project_config() -> dict[str, dict[str, Any]]:
    """The ``config:`` block Pulumi.yaml must declare (see jamjam_infra.schema)."""
    return pulumi_yaml_config(NAMESPACE, TOP_LEVEL)


def _ports_apart(read_: Reader, values: dict[str, Any]) -> None:
    ports, ssh = values["ports"] or {}, values["ssh"] or {}
    signaling, echo, ssh_port = ports.get("signaling"), ports.get("echo"), ssh.get("port")
    for path, port, other, other_port, why in (
            ("ports.echo", echo, "ports.signaling", signaling, ""),
            ("ports.echo", echo, "ssh.port", ssh_port, ""),
            ("ssh.port", ssh_port, "ports.signaling", signaling,
             ", which must never be opened")):
        if port is not None and port == other_port:
            section, name = path.split(".")
            default = next(f.default for s in TOP_LEVEL
                           if s.key == section for f in s.fields if f.key == name)
            read_.fail(path, f"clashes with {other} ({other_port}){why}",
                       read_.set_command(path, default, nested=True))


def load(config: pulumi.Config | None = None, stack: str | None = None) -> Settings:
    """Read and validate the whole stack config; raise one SettingsError naming every bad key."""
    raw = read(TOP_LEVEL, checks=(hostname_inside_zone("signalingHostname",
                                                       example="signaling-jamjam.{zone}"),
                                  _ports_apart),
               config=config or pulumi.Config(NAMESPACE), stack=stack)
    archive, ports = raw["logArchive"], raw["ports"]
    return Settings(
        stack=stack or pulumi.get_stack(),
        zone=raw["zone"],
        zone_id=raw["cloudflareZoneId"],
        account_id=raw["cloudflareAccountId"],
        signaling_hostname=raw["signalingHostname"],
        vps_address=raw["vpsAddress"],
        signaling_port=ports["signaling"],
        echo_port=ports["echo"],
        log_level=raw["logLevel"],
        echo_delay_ms=raw["echoDelayMs"],
        images=raw["images"],
        ssh=ssh_args(raw),
        log_archive=build(LogArchiveSettings, archive) if archive["enabled"] else None,
        operations=build(OperationsSettings, raw["operations"]),
        alert_webhook_url=raw["alertWebhookUrl"],
        values=raw,
        vps_debian_version=raw["vpsDebianVersion"],
    )
