"""Stack configuration, read and validated in one place.

Every other module receives these frozen dataclasses; none of them calls ``pulumi.Config``.
A bad value stops the program before any resource is registered, with one line that names
the key, what is wrong and an example of a good value.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, TypeVar

import pulumi
from pulumi.runtime.config import is_config_secret

NAMESPACE = "jamjam"

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")

# The keys an operator must set once per stack; nobody else can know them.  tools/render.py
# fills them with documentation values for the offline plan and says so.
OPERATOR_KEYS = ("vpsAddress", "cloudflareAccountId", "cloudflareZoneId")
SECRET_KEYS = ("sshPrivateKey", "alertWebhookUrl")

_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# name[:tag][@sha256:digest]; a tag or a digest is required so a deploy is reproducible and
# a rollback is one config change.
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_SCHEDULE_FIELD = re.compile(r"^[0-9*/,-]+$")


class SettingsError(pulumi.RunError):
    """A stack config value is missing or wrong; Pulumi prints RunError without a traceback."""


@dataclass(frozen=True)
class Images:
    signaling: str
    echo: str
    cloudflared: str


@dataclass(frozen=True)
class SshSettings:
    host: str
    port: int
    user: str
    """Day-to-day user Pulumi connects as after the first contact (key only, passwordless sudo)."""
    initial_user: str
    """User that exists on a fresh VPS (often root); used once to create ``user``."""
    private_key: pulumi.Output[str]
    host_key: str | None

    @property
    def host_key_pinned(self) -> bool:
        return self.host_key is not None


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
    ssh: SshSettings
    log_archive: LogArchiveSettings | None
    """None when the stack keeps no archive (the test stack)."""
    operations: OperationsSettings
    alert_webhook_url: pulumi.Output[str] | None

    @property
    def tunnel_name(self) -> str:
        return f"jamjam-{self.stack}"

    @property
    def signaling_url(self) -> str:
        return f"wss://{self.signaling_hostname}"

    @property
    def echo_address(self) -> str:
        return f"{self.vps_address}:{self.echo_port}"

    @property
    def signaling_origin(self) -> str:
        """Where cloudflared sends tunnel traffic: the signaling container on the bridge."""
        return f"http://signaling-server:{self.signaling_port}"

    @property
    def public_ports(self) -> tuple[str, ...]:
        """Ports the firewall opens besides SSH."""
        return (f"{self.echo_port}/udp",)

    @property
    def docker_host(self) -> str:
        return f"ssh://{self.ssh.user}@{self.ssh.host}:{self.ssh.port}"

    @property
    def operator_checks(self) -> list[str]:
        """SPEC's runbook checks, spelled out for this stack."""
        ssh = f"ssh -p {self.ssh.port} {self.ssh.user}@{self.ssh.host}"
        checks = [
            f"curl -I https://{self.signaling_hostname}",
            f"{ssh} docker ps --filter label=jamjam.stack={self.stack}",
            f"{ssh} docker exec jamjam-echo pgrep echo-server",
        ]
        if self.log_archive:
            checks.append(f"{ssh} sudo rclone --config /etc/jamjam/rclone.conf "
                          f"ls r2:{self.log_archive.bucket} --max-depth 1")
        return checks


def _fail(key: str, problem: str, example: str) -> SettingsError:
    return SettingsError(f"{NAMESPACE}:{key}: {problem} (for example: {example})")


class _Reader:
    """Raw values from the stack config, with the key's name kept for error messages."""

    def __init__(self, config: pulumi.Config) -> None:
        self._config = config

    def raw(self, key: str, example: str, required: bool = True) -> Any:
        value = self._config.get(key)
        if value is None or value == "":
            if required:
                raise _fail(key, "is not set; run `pulumi config set "
                            f"{NAMESPACE}:{key} <value>`", example)
            return None
        return value

    def obj(self, key: str, example: str, required: bool = True) -> dict[str, Any]:
        value = self.raw(key, example, required)
        if value is None:
            return {}
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise _fail(key, f"must be a map of settings, got {value!r}", example)
        return parsed


T = TypeVar("T")


def _field(section: dict[str, Any], key: str, name: str, default: T,
           parse: Callable[[Any], T], example: str) -> T:
    full = f"{key}.{name}"
    if name not in section:
        return default
    try:
        return parse(section[name])
    except ValueError as err:
        raise _fail(full, f"{err}, got {section[name]!r}", example) from None


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be true or false")


def _whole(low: int, high: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be a whole number from {low} to {high}")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value
    return parse


def _schedule(value: Any) -> str:
    fields = str(value).split()
    if len(fields) != 5 or not all(_SCHEDULE_FIELD.match(f) for f in fields):
        raise ValueError("must be a five-field cron schedule")
    return " ".join(fields)


def _unknown_keys(section: dict[str, Any], key: str, known: tuple[str, ...], example: str) -> None:
    extra = sorted(set(section) - set(known))
    if extra:
        raise _fail(f"{key}.{extra[0]}", f"is not a known setting (known: {', '.join(known)})",
                    example)


def _hostname(key: str, value: str, zone: str) -> str:
    name = value.strip().lower().rstrip(".")
    labels = name.split(".")
    if not all(_HOSTNAME_LABEL.match(label) for label in labels) or len(labels) < 2:
        raise _fail(key, f"is not a valid DNS name, got {value!r}", f"signaling.{zone}")
    if name != zone and not name.endswith("." + zone):
        raise _fail(key, f"must be inside the zone {zone!r} so Cloudflare can route it, "
                    f"got {value!r}", f"signaling-jamjam.{zone}")
    return name


def _public_ipv4(key: str, value: str) -> str:
    example = "203.0.113.10"
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise _fail(key, f"is not an IP address, got {value!r}", example) from None
    if address.version != 4:
        # The echo server advertises this address to clients as <ip>:<port>; the seed setup
        # and the firewall are IPv4 only.
        raise _fail(key, f"must be an IPv4 address, got {value!r}", example)
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        raise _fail(key, f"must be the VPS's reachable address, got {value!r}", example)
    return str(address)


def _image(key: str, value: Any) -> str:
    example = "cloudflare/cloudflared:2025.11.1"
    if not isinstance(value, str) or not value.strip():
        raise _fail(key, "must be an image reference", example)
    match = _IMAGE.match(value.strip())
    if not match:
        raise _fail(key, f"is not a valid image reference, got {value!r}", example)
    if not match["tag"] and not match["digest"]:
        raise _fail(key, f"needs a tag or digest so deploys and rollbacks are pinned, "
                    f"got {value!r}", example)
    if match["tag"] == "latest" and not match["digest"]:
        raise _fail(key, f"must not use the moving tag 'latest', got {value!r}", example)
    return value.strip()


def _cloudflare_id(key: str, value: str) -> str:
    if not _CLOUDFLARE_ID.match(value.strip()):
        raise _fail(key, f"must be a 32-character hex Cloudflare id, got {value!r}",
                    "0123456789abcdef0123456789abcdef")
    return value.strip()


def _user(key: str, value: str) -> str:
    if not _USER.match(value):
        raise _fail(key, f"must be a Unix user name, got {value!r}", "jamjam")
    return value


def load(config: pulumi.Config | None = None, stack: str | None = None) -> Settings:
    """Read and validate the whole stack config; raise SettingsError on the first bad value."""
    config = config or pulumi.Config(NAMESPACE)
    stack = stack or pulumi.get_stack()
    read = _Reader(config)

    zone = read.raw("zone", "koeda.me").strip().lower().rstrip(".")
    if not all(_HOSTNAME_LABEL.match(label) for label in zone.split(".")) or "." not in zone:
        raise _fail("zone", f"is not a valid DNS zone, got {zone!r}", "koeda.me")
    hostname = _hostname("signalingHostname", read.raw("signalingHostname",
                                                        "signaling-jamjam.koeda.me"), zone)
    vps_address = _public_ipv4("vpsAddress", read.raw("vpsAddress", "203.0.113.10"))
    account_id = _cloudflare_id("cloudflareAccountId", read.raw(
        "cloudflareAccountId", "0123456789abcdef0123456789abcdef"))
    zone_id = _cloudflare_id("cloudflareZoneId", read.raw(
        "cloudflareZoneId", "0123456789abcdef0123456789abcdef"))

    log_level = read.raw("logLevel", "info").strip().lower()
    if log_level not in LOG_LEVELS:
        raise _fail("logLevel", f"must be one of {', '.join(LOG_LEVELS)}, got {log_level!r}",
                    "info")
    try:
        echo_delay_ms = _whole(1, 60_000)(read.raw("echoDelayMs", "3000"))
    except ValueError as err:
        raise _fail("echoDelayMs", f"{err} milliseconds, got "
                    f"{config.get('echoDelayMs')!r}", "3000") from None

    ports = read.obj("ports", '{"signaling": 8080, "echo": 5000, "ssh": 22}', required=False)
    _unknown_keys(ports, "ports", ("signaling", "echo", "ssh"), '{"echo": 5000}')
    signaling_port = _field(ports, "ports", "signaling", 8080, _whole(1, 65535), "8080")
    echo_port = _field(ports, "ports", "echo", 5000, _whole(1, 65535), "5000")
    ssh_port = _field(ports, "ports", "ssh", 22, _whole(1, 65535), "22")
    if echo_port == signaling_port:
        raise _fail("ports.echo", f"clashes with ports.signaling ({signaling_port})", "5000")
    if echo_port == ssh_port:
        raise _fail("ports.echo", f"clashes with ports.ssh ({ssh_port})", "5000")
    if ssh_port == signaling_port:
        raise _fail("ports.ssh", f"clashes with ports.signaling ({signaling_port}), which must "
                    "never be opened", "22")

    images_raw = read.obj("images", '{"signaling": "ghcr.io/org/signaling-server:1.0.0", ...}')
    _unknown_keys(images_raw, "images", ("signaling", "echo", "cloudflared"),
                  '{"cloudflared": "cloudflare/cloudflared:2025.11.1"}')
    images = Images(**{name: _image(f"images.{name}", images_raw.get(name))
                       for name in ("signaling", "echo", "cloudflared")})

    ssh_raw = read.obj("ssh", '{"user": "jamjam", "initialUser": "root"}', required=False)
    _unknown_keys(ssh_raw, "ssh", ("user", "initialUser", "hostKey"), '{"user": "jamjam"}')
    ssh_user = _user("ssh.user", str(ssh_raw.get("user", "jamjam")))
    if ssh_user == "root":
        raise _fail("ssh.user", "must not be root: root login is disabled on the host",
                    "jamjam")
    host_key = ssh_raw.get("hostKey")
    if host_key is not None and not re.match(r"^(ssh-ed25519|ecdsa-sha2-\S+|ssh-rsa) \S+$",
                                             str(host_key).strip()):
        raise _fail("ssh.hostKey", "must be the host's public key as 'type base64'",
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA...")
    ssh = SshSettings(
        host=vps_address,
        port=ssh_port,
        user=ssh_user,
        initial_user=_user("ssh.initialUser", str(ssh_raw.get("initialUser", "root"))),
        private_key=_secret(config, "sshPrivateKey", required=True,
                            check=lambda v: "PRIVATE KEY" in v or v.startswith("-----"),
                            problem="must be an OpenSSH or PEM private key",
                            example="pulumi config set --secret jamjam:sshPrivateKey "
                                    "< ~/.ssh/jamjam_ed25519"),
        host_key=str(host_key).strip() if host_key else None,
    )

    archive_raw = read.obj("logArchive", '{"enabled": true}', required=False)
    _unknown_keys(archive_raw, "logArchive", ("enabled", "bucket", "retentionDays", "schedule"),
                  '{"enabled": true, "retentionDays": 365}')
    archive_on = _field(archive_raw, "logArchive", "enabled", False, _bool, "true")
    bucket = str(archive_raw.get("bucket", "jamjam-logs"))
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", bucket):
        raise _fail("logArchive.bucket", f"is not a valid R2 bucket name, got {bucket!r}",
                    "jamjam-logs")
    log_archive = LogArchiveSettings(
        bucket=bucket,
        retention_days=_field(archive_raw, "logArchive", "retentionDays", None,
                              _whole(1, 36_500), "365"),
        schedule=_field(archive_raw, "logArchive", "schedule", "0 * * * *", _schedule,
                        "0 * * * *"),
    ) if archive_on else None

    ops = read.obj("operations", '{"selfHeal": true}', required=False)
    known_ops = ("selfHeal", "resourceAlerts", "diskAlertPercent", "memoryAlertPercent",
                 "imageScan", "imageScanSchedule", "osUpdates", "osUpdatesReboot",
                 "externalHealthCheck")
    _unknown_keys(ops, "operations", known_ops, '{"diskAlertPercent": 80}')
    percent = _whole(1, 99)
    operations = OperationsSettings(
        self_heal=_field(ops, "operations", "selfHeal", True, _bool, "true"),
        resource_alerts=_field(ops, "operations", "resourceAlerts", True, _bool, "true"),
        disk_alert_percent=_field(ops, "operations", "diskAlertPercent", 80, percent, "80"),
        memory_alert_percent=_field(ops, "operations", "memoryAlertPercent", 90, percent, "90"),
        image_scan=_field(ops, "operations", "imageScan", True, _bool, "true"),
        image_scan_schedule=_field(ops, "operations", "imageScanSchedule", "30 4 * * 1",
                                   _schedule, "30 4 * * 1"),
        os_updates=_field(ops, "operations", "osUpdates", True, _bool, "true"),
        os_updates_reboot=_field(ops, "operations", "osUpdatesReboot", False, _bool, "false"),
        external_health_check=_field(ops, "operations", "externalHealthCheck", False, _bool,
                                     "false"),
    )

    webhook = _secret(config, "alertWebhookUrl", required=False,
                      check=lambda v: re.fullmatch(r"https://[^\s\"']+", v) is not None,
                      problem="must be an https:// webhook URL",
                      example="pulumi config set --secret jamjam:alertWebhookUrl "
                              "https://discord.com/api/webhooks/<id>/<token>")

    return Settings(
        stack=stack,
        zone=zone,
        zone_id=zone_id,
        account_id=account_id,
        signaling_hostname=hostname,
        vps_address=vps_address,
        signaling_port=signaling_port,
        echo_port=echo_port,
        log_level=log_level,
        echo_delay_ms=echo_delay_ms,
        images=images,
        ssh=ssh,
        log_archive=log_archive,
        operations=operations,
        alert_webhook_url=webhook,
    )


def _secret(config: pulumi.Config, key: str, required: bool, check: Callable[[str], bool],
            problem: str, example: str) -> pulumi.Output[str] | None:
    """A secret config value, wrapped as a Pulumi secret; never echoed in an error."""
    value = config.get(key)
    if not value:
        if required:
            raise _fail(key, "is not set", example)
        return None
    if not is_config_secret(f"{NAMESPACE}:{key}"):
        # A plaintext value sits unencrypted in Pulumi.<stack>.yaml, which is committed.
        raise _fail(key, "is stored in plaintext; remove it and set it again with --secret",
                    example)
    if not check(value.strip()):
        raise _fail(key, f"{problem} (value not shown)", example)
    return pulumi.Output.secret(value)
