"""Stack configuration, read and validated in one place.

Every other module receives these frozen dataclasses; none of them calls ``pulumi.Config``.
Each setting is one row of a spec table below (key, parser, default, example, secret,
description); the rows drive parsing, defaults, the list of known keys, the fix printed for a
bad value and the declarations in Pulumi.yaml (tests/test_settings.py keeps those in step).
Adding a setting is one row here, plus the field it fills in the dataclass.

A bad stack never gets half-way: every key is checked, then one ``SettingsError`` carrying one
line per bad key (the key, what is wrong, a command that fixes it) is raised before any resource
is registered. Under the Pulumi CLI a ``RunError`` prints without a traceback.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping

import pulumi

from jamjam_infra.host import DEBIAN_RELEASES, HOST_KEY
from jamjam_infra import _config_compat

NAMESPACE = "jamjam"

LOG_LEVELS = ("error", "warn", "info", "debug", "trace")
CONTAINER_ROLES = ("signaling", "echo", "cloudflared")

# Linux capability names as Docker's --cap-add takes them (capabilities(7), through Linux 6.x).
# Written out because no maintained Python package ships the list and the build machine's
# kernel headers need not match the VPS's.
LINUX_CAPABILITIES = (
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
    "KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
    "NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
    "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE",
    "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG",
    "WAKE_ALARM",
)

_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_CONTAINER_USER = re.compile(r"^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]+)(?::(?:[a-z_][a-z0-9_-]{0,31}|[0-9]+))?$")
# name[:tag][@sha256:digest]; a tag or a digest is required so a deploy is reproducible and
# a rollback is one config change.
_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_SCHEDULE_FIELD = re.compile(r"^[0-9*/,-]+$")


class SettingsError(pulumi.RunError):
    """Stack config values are missing or wrong: one line per bad key, in ``lines``.

    Pulumi prints a RunError without a traceback."""

    def __init__(self, lines: str | Iterable[str]) -> None:
        self.lines: tuple[str, ...] = (lines,) if isinstance(lines, str) else tuple(lines)
        super().__init__("\n".join(self.lines))


# --- the dataclasses every other module receives -------------------------------------------

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
    host_key: str


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
class ContainerOverrides:
    """Per-container hardening overrides; None means "use the component library's default"."""
    memory_mb: int | None = None
    pids_limit: int | None = None
    read_only_rootfs: bool | None = None
    user: str | None = None
    cap_add: tuple[str, ...] | None = None


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
    containers: Mapping[str, ContainerOverrides] = field(
        default_factory=lambda: MappingProxyType({r: ContainerOverrides() for r in CONTAINER_ROLES}))
    """Hardening overrides for every role in CONTAINER_ROLES (all None when unset)."""
    vps_debian_version: int = 13
    """Debian release of the VPS (a key of jamjam_infra.host.DEBIAN_RELEASES)."""


# --- parsers: value in, parsed value out, ValueError(problem) on a bad value ----------------

def _text(value: Any) -> str:
    if isinstance(value, (dict, list, bool)) or value is None:
        raise ValueError("must be text")
    return str(value).strip()


def _zone(value: Any) -> str:
    zone = _text(value).lower().rstrip(".")
    if "." not in zone or not all(_HOSTNAME_LABEL.match(label) for label in zone.split(".")):
        raise ValueError("is not a valid DNS zone")
    return zone


def _dns_name(value: Any) -> str:
    name = _text(value).lower().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise ValueError("is not a valid DNS name")
    return name


def _public_ipv4(value: Any) -> str:
    try:
        address = ipaddress.ip_address(_text(value))
    except ValueError:
        raise ValueError("is not an IP address") from None
    if address.version != 4:
        # The echo server advertises this address to clients as <ip>:<port>; the seed setup
        # and the firewall are IPv4 only.
        raise ValueError("must be an IPv4 address")
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        raise ValueError("must be the VPS's reachable address")
    return str(address)


def _cloudflare_id(value: Any) -> str:
    text = _text(value)
    if not _CLOUDFLARE_ID.match(text):
        raise ValueError("must be a 32-character hex Cloudflare id")
    return text


def _log_level(value: Any) -> str:
    level = _text(value).lower()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def _whole(low: int, high: int, unit: str = "") -> Callable[[Any], int]:
    problem = f"must be a whole number from {low} to {high}" + (f" {unit}" if unit else "")

    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(problem)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str) and re.fullmatch(r"[0-9]+", value.strip()):
            value = int(value.strip())
        if not isinstance(value, int) or not low <= value <= high:
            raise ValueError(problem)
        return value
    return parse


def _debian_version(value: Any) -> int:
    known = " or ".join(f"{v} ({r.codename})" for v, r in DEBIAN_RELEASES.items())
    try:
        version = _whole(0, 999)(value)
    except ValueError:
        version = None
    if version not in DEBIAN_RELEASES:
        raise ValueError(f"must be the VPS's Debian release, {known} (upgrade an older "
                         "host first)")
    return version


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be true or false")


def _schedule(value: Any) -> str:
    fields = str(value).split()
    if len(fields) != 5 or not all(_SCHEDULE_FIELD.match(f) for f in fields):
        raise ValueError("must be a five-field cron schedule")
    return " ".join(fields)


def _image(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be an image reference")
    match = _IMAGE.match(value.strip())
    if not match:
        raise ValueError("is not a valid image reference")
    if not match["tag"] and not match["digest"]:
        raise ValueError("needs a tag or digest so deploys and rollbacks are pinned")
    if match["tag"] == "latest" and not match["digest"]:
        raise ValueError("must not use the moving tag 'latest'")
    return value.strip()


def _unix_user(value: Any) -> str:
    if not isinstance(value, str) or not _USER.match(value):
        raise ValueError("must be a Unix user name")
    return value


def _day_to_day_user(value: Any) -> str:
    user = _unix_user(value)
    if user == "root":
        raise ValueError("must not be root: root login is disabled on the host")
    return user


def _host_key(value: Any) -> str:
    if not isinstance(value, str) or not HOST_KEY.match(value.strip()):
        raise ValueError("must be the host's public key as 'type base64'")
    return value.strip()


def _bucket(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", value):
        raise ValueError("is not a valid R2 bucket name")
    return value


def _private_key(value: Any) -> str:
    if "PRIVATE KEY" not in value and not value.startswith("-----"):
        raise ValueError("must be an OpenSSH or PEM private key")
    return value


def _webhook_url(value: Any) -> str:
    if re.fullmatch(r"https://[^\s\"']+", value) is None:
        raise ValueError("must be an https:// webhook URL")
    return value


def _container_user(value: Any) -> str:
    # `pulumi config set --path` stores a bare uid as a number.
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _CONTAINER_USER.match(text.strip()):
        raise ValueError("must be a user name or uid, optionally with :group or :gid")
    return text.strip()


def _capabilities(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ValueError("must be a list of Linux capability names")
    names: list[str] = []
    for item in value:
        name = str(item).strip().upper().removeprefix("CAP_")
        if name == "ALL":
            raise ValueError("must list capabilities one by one; ALL would undo the hardening")
        if name not in LINUX_CAPABILITIES:
            close = difflib.get_close_matches(name, LINUX_CAPABILITIES, n=1)
            hint = f"; did you mean {close[0]}?" if close else " (see capabilities(7))"
            raise ValueError(f"has {item!r}, which is not a Linux capability{hint}")
        if name not in names:
            names.append(name)
    return tuple(names)


# --- the spec tables ------------------------------------------------------------------------

class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default of a setting that must be set in every stack."""


class Shell(str):
    """An example that is already shell text (a redirect, a command substitution), so fixes use
    it unquoted; ``{stack}`` in it becomes the stack's name."""


@dataclass(frozen=True)
class Setting:
    key: str
    parse: Callable[[Any], Any]
    """Value in, parsed value out; raises ValueError with the problem (no value in it)."""
    example: Any
    """A good value, as `pulumi config set` takes it; used in the fix of every error line."""
    description: str
    default: Any = REQUIRED
    """REQUIRED, None (optional, unset means None) or the value used when unset."""
    secret: bool = False
    operator: bool = False
    """Only the operator can know it; the offline plan stands in for it (see offline.yaml)."""
    type: str = "string"
    """The type Pulumi.yaml declares, which the CLI checks: string, integer, boolean, array."""


@dataclass(frozen=True)
class Section:
    """A top-level key holding a map of settings (``roles``: a map per role of that map)."""
    key: str
    fields: tuple[Setting, ...]
    description: str
    required: bool = False
    roles: tuple[str, ...] = ()

    def get(self, name: str) -> Setting:
        return next(f for f in self.fields if f.key == name)


_PORT = _whole(1, 65535)
_PERCENT = _whole(1, 99)

TOP_LEVEL: tuple[Setting | Section, ...] = (
    Setting("zone", _zone, "koeda.me", "Cloudflare zone that holds the signaling hostname."),
    Setting("signalingHostname", _dns_name, "signaling-jamjam.koeda.me",
            "Public hostname of the signaling server (wss://); must be inside zone."),
    Setting("vpsAddress", _public_ipv4, "203.0.113.10",
            "Public IPv4 address of this stack's VPS.", operator=True),
    Setting("vpsDebianVersion", _debian_version, 13,
            "Debian release the VPS runs: 12 (bookworm) or 13 (trixie, whose Docker lets a "
            "replaced container be healthy within seconds).", default=13, type="integer"),
    Setting("cloudflareAccountId", _cloudflare_id, "0123456789abcdef0123456789abcdef",
            "Cloudflare account id (32 hex characters).", operator=True),
    Setting("cloudflareZoneId", _cloudflare_id, "fedcba9876543210fedcba9876543210",
            "Cloudflare zone id of zone (32 hex characters).", operator=True),
    Setting("logLevel", _log_level, "info",
            "RUST_LOG of both servers: error, warn, info, debug or trace."),
    Setting("echoDelayMs", _whole(1, 60_000, "milliseconds"), 3000,
            "Echo server delay (ECHO_DELAY_MS), 1..60000 milliseconds.", type="integer"),
    Section("images", (
        Setting("signaling", _image, "ghcr.io/koeda/jamjam-signaling-server:0.1.0",
                "Signaling server image, with a tag or digest."),
        Setting("echo", _image, "ghcr.io/koeda/jamjam-echo-server:0.1.0",
                "Echo server image, with a tag or digest."),
        Setting("cloudflared", _image, "cloudflare/cloudflared:2025.11.1",
                "cloudflared image, with a tag or digest."),
    ), "Container images (signaling, echo, cloudflared), each pinned by tag or digest, "
       "never latest.", required=True),
    Section("ports", (
        Setting("signaling", _PORT, 8080, "Signaling port inside the bridge network; never "
                "published.", default=8080, type="integer"),
        Setting("echo", _PORT, 5000, "Echo UDP port, published and opened in the firewall.",
                default=5000, type="integer"),
        Setting("ssh", _PORT, 22, "SSH port of the VPS.", default=22, type="integer"),
    ), "Ports (signaling, echo, ssh); they must not clash."),
    Section("ssh", (
        Setting("user", _day_to_day_user, "jamjam", "Day-to-day SSH user (not root).",
                default="jamjam"),
        Setting("initialUser", _unix_user, "root", "User that exists on a fresh VPS, used once.",
                default="root"),
        Setting("hostKey", _host_key,
                Shell("\"$(ssh-keyscan -t ed25519 \"$(pulumi config get --stack {stack} "
                      "jamjam:vpsAddress)\" 2>/dev/null | cut -d' ' -f2-)\""),
                "The VPS's SSH host public key ('type base64'), required: remote commands "
                "and the Docker provider refuse any other key.", operator=True),
    ), "SSH access (user, initialUser, hostKey)."),
    Setting("sshPrivateKey", _private_key, Shell("< ~/.ssh/jamjam_ed25519"),
            "Private key of ssh.user (and initialUser on first contact); set with --secret.",
            secret=True, operator=True),
    Section("logArchive", (
        Setting("enabled", _bool, True, "Ship container logs to an R2 bucket every hour.",
                default=False, type="boolean"),
        Setting("bucket", _bucket, "jamjam-logs", "R2 bucket name.", default="jamjam-logs"),
        Setting("retentionDays", _whole(1, 36_500), 365,
                "Days R2 keeps each object; unset keeps them until deleted.", default=None,
                type="integer"),
        Setting("schedule", _schedule, "0 * * * *", "Cron schedule of the upload.",
                default="0 * * * *"),
    ), "Log archive to R2 (enabled, bucket, retentionDays, schedule)."),
    Section("operations", (
        Setting("selfHeal", _bool, True, "Restart unhealthy containers.", default=True,
                type="boolean"),
        Setting("resourceAlerts", _bool, True, "Hourly disk and memory alerts.", default=True,
                type="boolean"),
        Setting("diskAlertPercent", _PERCENT, 80, "Disk use of / that alerts.", default=80,
                type="integer"),
        Setting("memoryAlertPercent", _PERCENT, 90, "Memory use that alerts.", default=90,
                type="integer"),
        Setting("imageScan", _bool, True, "Weekly Trivy scan of the running images.",
                default=True, type="boolean"),
        Setting("imageScanSchedule", _schedule, "30 4 * * 1", "Cron schedule of the scan.",
                default="30 4 * * 1"),
        Setting("osUpdates", _bool, True, "Nightly security updates (unattended-upgrades).",
                default=True, type="boolean"),
        Setting("osUpdatesReboot", _bool, False, "Reboot at 03:30 when an update needs it.",
                default=False, type="boolean"),
        Setting("externalHealthCheck", _bool, False,
                "Cloudflare health check of the signaling hostname (paid plans).",
                default=False, type="boolean"),
    ), "Scheduled operations on the host; see README \"Scheduled operations\"."),
    Setting("alertWebhookUrl", _webhook_url,
            "https://discord.com/api/webhooks/<id>/<token>",
            "Discord-compatible webhook for alerts (https); set with --secret.",
            default=None, secret=True),
    Section("containers", (
        Setting("memoryMb", _whole(16, 65_536), 512, "Memory limit in MiB.", default=None,
                type="integer"),
        Setting("pidsLimit", _whole(16, 65_536), 256, "Process (pids) limit.", default=None,
                type="integer"),
        Setting("readOnlyRootfs", _bool, True, "Read-only root filesystem.", default=None,
                type="boolean"),
        Setting("user", _container_user, "65532:65532", "User to run as: name or uid[:gid].",
                default=None),
        Setting("capAdd", _capabilities, ["NET_BIND_SERVICE"],
                "Linux capabilities to add back after all are dropped.", default=None,
                type="array"),
    ), "Container hardening overrides per role (signaling, echo, cloudflared); unset keeps the "
       "library's defaults.", roles=CONTAINER_ROLES),
)

_BY_KEY: dict[str, Setting | Section] = {spec.key: spec for spec in TOP_LEVEL}

# The keys an operator must set once per stack; nobody else can know them.  tools/render.py
# fills them with stand-ins (offline.yaml) for the offline plan and says so.
OPERATOR_KEYS = tuple(s.key for s in TOP_LEVEL
                      if isinstance(s, Setting) and s.operator and not s.secret)
SECRET_KEYS = tuple(s.key for s in TOP_LEVEL if isinstance(s, Setting) and s.secret)


def section_defaults(section: Section) -> dict[str, Any]:
    """What the section holds when the stack does not set it (also Pulumi.yaml's default)."""
    if section.roles:
        return {}
    return {f.key: f.default for f in section.fields
            if f.default is not REQUIRED and f.default is not None}


def project_config() -> dict[str, dict[str, Any]]:
    """The ``config:`` block Pulumi.yaml must declare, derived from the spec tables.

    The CLI (pkg/workspace/config.go) treats a declared key without a default as required,
    applies a default only to a key the stack lacks (the whole value, no merging), and rejects a
    ``secret: true`` key whose value is not encrypted, defaults included. So an optional secret
    declares ``default: ""`` (which load() reads as unset) and no ``secret``; load() still
    refuses it in plaintext.
    """
    block: dict[str, dict[str, Any]] = {}
    for spec in TOP_LEVEL:
        entry: dict[str, Any] = {"type": "object" if isinstance(spec, Section) else spec.type,
                                 "description": spec.description}
        if isinstance(spec, Section):
            if not spec.required:
                entry["default"] = section_defaults(spec)
        elif spec.default is None:
            entry["default"] = ""
        elif spec.default is not REQUIRED:
            entry["default"] = spec.default
        if isinstance(spec, Setting) and spec.secret and spec.default is REQUIRED:
            entry["secret"] = True
        block[f"{NAMESPACE}:{spec.key}"] = entry
    return block


# --- reading ---------------------------------------------------------------------------------

def _shell_value(value: Any) -> str:
    if isinstance(value, Shell):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return shlex.quote(str(value))


class _Reader:
    """Reads the stack config against the spec tables, collecting one line per bad key."""

    def __init__(self, config: pulumi.Config, stack: str) -> None:
        self._config = config
        self._namespace = config.name
        self._stack = stack
        self.errors: list[str] = []

    # The fix of each line is a command to paste; --stack makes it right whichever stack is
    # selected, since the plan reports every stack.
    def set_command(self, path: str, example: Any, secret: bool = False,
                    nested: bool = False) -> str:
        flags = f"--stack {self._stack}" + (" --secret" if secret else "")
        if isinstance(example, list):
            path, example, nested = f"{path}[0]", example[0], True
        key = f"{self._namespace}:{path}"
        key = f"--path '{key}'" if nested else key
        value = _shell_value(example).replace("{stack}", self._stack) \
            if isinstance(example, Shell) else _shell_value(example)
        return f"pulumi config set {flags} {key} {value}"

    def rm_command(self, path: str, nested: bool = False) -> str:
        key = f"{self._namespace}:{path}"
        key = f"--path '{key}'" if nested else key
        return f"pulumi config rm --stack {self._stack} {key}"

    def fail(self, path: str, problem: str, fix: str) -> None:
        self.errors.append(f"{self._namespace}:{path}: {problem}; fix: {fix}")

    def _bad(self, path: str, spec: Setting, value: Any, problem: str, nested: bool) -> None:
        shown = f"{problem} (value not shown)" if spec.secret else f"{problem}, got {value!r}"
        fix = self.set_command(path, spec.example, spec.secret, nested)
        if isinstance(spec.example, list):
            # `set --path 'key[0]'` replaces one item; the bad one may be another.
            fix = f"{self.rm_command(path, nested)} && {fix}"
        self.fail(path, shown, fix)

    def parse(self, path: str, spec: Setting, value: Any, nested: bool) -> Any:
        try:
            return spec.parse(value)
        except ValueError as err:
            self._bad(path, spec, value, str(err), nested)
            return None

    def setting(self, spec: Setting) -> Any:
        value = self._config.get(spec.key)
        if value is None or value == "":
            if spec.default is REQUIRED:
                self.fail(spec.key, "is not set",
                          self.set_command(spec.key, spec.example, spec.secret))
            return None if spec.default is REQUIRED else spec.default
        if spec.secret and not _config_compat.is_config_secret(f"{self._namespace}:{spec.key}"):
            # A plaintext value sits unencrypted in Pulumi.<stack>.yaml, which is committed.
            self.fail(spec.key, "is stored in plaintext; set it again with --secret",
                      f"{self.rm_command(spec.key)} && "
                      f"{self.set_command(spec.key, spec.example, secret=True)}")
            return None
        parsed = self.parse(spec.key, spec, value.strip() if spec.secret else value,
                            nested=False)
        if parsed is not None and spec.secret:
            return pulumi.Output.secret(value)
        return parsed

    def section(self, spec: Section) -> dict[str, Any] | None:
        raw = self._config.get(spec.key)
        if raw is None or raw == "":
            if spec.required:
                for item in spec.fields:
                    self.fail(f"{spec.key}.{item.key}", "is not set",
                              self.set_command(f"{spec.key}.{item.key}", item.example,
                                               nested=True))
                return None
            raw = "{}"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            first = spec.fields[0]
            path = f"{spec.key}.{spec.roles[0]}.{first.key}" if spec.roles else \
                f"{spec.key}.{first.key}"
            self.fail(spec.key, f"must be a map of settings, got {raw!r}",
                      f"{self.rm_command(spec.key)} && "
                      f"{self.set_command(path, first.example, nested=True)}")
            return None
        if spec.roles:
            self._unknown(data, spec.key, spec.roles, kind="role")
            return {role: self._fields(spec, f"{spec.key}.{role}", data.get(role))
                    for role in spec.roles}
        return self._fields(spec, spec.key, data)

    def _fields(self, spec: Section, prefix: str, data: Any) -> dict[str, Any] | None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            first = spec.fields[0]
            self.fail(prefix, f"must be a map of settings, got {data!r}",
                      f"{self.rm_command(prefix, nested=True)} && "
                      f"{self.set_command(f'{prefix}.{first.key}', first.example, nested=True)}")
            return None
        self._unknown(data, prefix, tuple(f.key for f in spec.fields), fields=spec.fields)
        values: dict[str, Any] = {}
        for item in spec.fields:
            path = f"{prefix}.{item.key}"
            if item.key not in data or data[item.key] is None:
                if item.default is REQUIRED:
                    self.fail(path, "is not set", self.set_command(path, item.example,
                                                                   nested=True))
                values[item.key] = None if item.default is REQUIRED else item.default
            else:
                values[item.key] = self.parse(path, item, data[item.key], nested=True)
        return values

    def _unknown(self, data: Mapping[str, Any], prefix: str, known: tuple[str, ...],
                 kind: str = "setting", fields: tuple[Setting, ...] = ()) -> None:
        for name in sorted(set(data) - set(known)):
            path = f"{prefix}.{name}"
            close = difflib.get_close_matches(name, known, n=1)
            problem = f"is not a known {kind}"
            fix = self.rm_command(path, nested=True)
            if close:
                problem += f"; did you mean {close[0]}?"
                target = next((f for f in fields if f.key == close[0]), None)
                if target is not None:
                    fix += (" && " + self.set_command(f"{prefix}.{close[0]}", data[name]
                                                      if not isinstance(data[name], (dict, list))
                                                      else target.example, nested=True))
            self.fail(path, f"{problem} (known: {', '.join(known)})", fix)

    def unknown_top_level(self, config_keys: Iterable[str]) -> None:
        prefix = f"{self._namespace}:"
        names = sorted(k[len(prefix):] for k in config_keys if k.startswith(prefix))
        known = tuple(_BY_KEY)
        for name in names:
            if name in _BY_KEY:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            problem = "is not a known setting"
            fix = self.rm_command(name)
            if close:
                # The closest key is the likely intent; the full list would drown it.
                problem += f"; did you mean {self._namespace}:{close[0]}?"
                target = _BY_KEY[close[0]]
                if isinstance(target, Setting):
                    # Move the value over, unless it is (or is meant to be) a secret, which
                    # an error line never shows.
                    secret = target.secret or _config_compat.is_config_secret(f"{prefix}{name}")
                    value = target.example if secret else self._config.get(name)
                    fix += " && " + self.set_command(close[0], value, secret=target.secret)
            else:
                problem += f" (known: {', '.join(known)})"
            self.fail(name, problem, fix)


def _snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m[1].lower(), key)


def _build(cls: type, values: Mapping[str, Any]) -> Any:
    """A section's dataclass from its parsed values: each camelCase key fills its snake_case
    field, so a new setting needs its row and its field, nothing else."""
    return cls(**{_snake(key): value for key, value in values.items()
                  if _snake(key) in cls.__dataclass_fields__})


def load(config: pulumi.Config | None = None, stack: str | None = None) -> Settings:
    """Read and validate the whole stack config; raise one SettingsError naming every bad key."""
    config = config or pulumi.Config(NAMESPACE)
    stack = stack or pulumi.get_stack()
    read = _Reader(config, stack)
    read.unknown_top_level(_config_compat.config_keys())
    raw = {spec.key: read.setting(spec) if isinstance(spec, Setting) else read.section(spec)
           for spec in TOP_LEVEL}

    zone, hostname = raw["zone"], raw["signalingHostname"]
    if zone and hostname and hostname != zone and not hostname.endswith("." + zone):
        read.fail("signalingHostname", f"must be inside the zone {zone!r} so Cloudflare can "
                  f"route it, got {hostname!r}",
                  read.set_command("signalingHostname", f"signaling-jamjam.{zone}"))
    ports = raw["ports"] or {}
    signaling_port, echo_port, ssh_port = ports.get("signaling"), ports.get("echo"), \
        ports.get("ssh")
    for path, port, other, other_port, why in (
            ("ports.echo", echo_port, "ports.signaling", signaling_port, ""),
            ("ports.echo", echo_port, "ports.ssh", ssh_port, ""),
            ("ports.ssh", ssh_port, "ports.signaling", signaling_port,
             ", which must never be opened")):
        if port is not None and port == other_port:
            default = _BY_KEY["ports"].get(path.split(".")[1]).default  # type: ignore[union-attr]
            read.fail(path, f"clashes with {other} ({other_port}){why}",
                      read.set_command(path, default, nested=True))

    if read.errors:
        raise SettingsError(read.errors)

    ssh_raw, archive = raw["ssh"], raw["logArchive"]
    return Settings(
        stack=stack,
        zone=zone,
        zone_id=raw["cloudflareZoneId"],
        account_id=raw["cloudflareAccountId"],
        signaling_hostname=hostname,
        vps_address=raw["vpsAddress"],
        signaling_port=signaling_port,
        echo_port=echo_port,
        log_level=raw["logLevel"],
        echo_delay_ms=raw["echoDelayMs"],
        images=_build(Images, raw["images"]),
        ssh=SshSettings(
            host=raw["vpsAddress"],
            port=ssh_port,
            user=ssh_raw["user"],
            initial_user=ssh_raw["initialUser"],
            private_key=raw["sshPrivateKey"],
            host_key=ssh_raw["hostKey"],
        ),
        log_archive=_build(LogArchiveSettings, archive) if archive["enabled"] else None,
        operations=_build(OperationsSettings, raw["operations"]),
        alert_webhook_url=raw["alertWebhookUrl"],
        containers=MappingProxyType({role: _build(ContainerOverrides, values)
                                     for role, values in raw["containers"].items()}),
        vps_debian_version=raw["vpsDebianVersion"],
    )
