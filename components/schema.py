"""Stack config for every project on the library: one declarative schema, one reader, one
error type, one line format.

A project declares its keys as rows (:class:`Setting`, and :class:`Section` for a map of
settings) next to the rows every project shares (:func:`operator_rows`: the VPS, the
Cloudflare ids, SSH, the alert webhook; :func:`images_section`; :func:`containers_section`),
and reads them all at once with :func:`read`. The rows drive parsing, defaults, the known
keys (anything else is refused, naming the closest one), the fix printed for a bad value, and
the ``config:`` block of the project's Pulumi.yaml and its configuration reference
(:func:`pulumi_yaml_config`, :func:`reference_markdown`; ``python -m tools.gen_config``
writes both).

A bad stack never gets half-way: every key is checked, then one :class:`ConfigError` carrying
one line per bad key, ``<ns>:<key>: <what is wrong>; fix: <pulumi config command>``, is
raised before any resource is registered. Under the Pulumi CLI a ``RunError`` prints without a
traceback.

Written here rather than on a schema library (jsonschema, pydantic): the error line must be a
pasteable ``pulumi config set`` with the project's namespace, ``--path`` and ``--secret``
where they apply, and the secret check asks the Pulumi runtime whether the stack holds the
value encrypted; neither library knows either, and their messages would have to be rewritten
one by one anyway.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import pulumi

from jamjam_infra import _config_compat
from jamjam_infra.host import DEBIAN_RELEASES, HOST_KEY, Debian, SshArgs

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

SSH_USER = "ops"
"""The day-to-day SSH user of every project unless its stack sets ``ssh.user``: a role name,
not a project name, so a copied and renamed project keeps working on the same kind of host,
and it says what the account is for (jamjam's stacks set ``jamjam``, the user their hosts were
built with)."""

_HOSTNAME_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_CONTAINER_USER = re.compile(r"^(?:[a-z_][a-z0-9_-]{0,31}|[0-9]+)(?::(?:[a-z_][a-z0-9_-]{0,31}|[0-9]+))?$")
# name[:tag][@sha256:digest]; a tag or a digest is required so a deploy is reproducible and
# a rollback is one config change.
_IMAGE = re.compile(
    # A registry's :port only before a path ("host:5000/app"), so "redis:7" is a tag.
    r"^(?P<repo>[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+(?=/))?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[0-9a-f]{64}))?$"
)
_SCHEDULE_FIELD = re.compile(r"^[0-9*/,-]+$")
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class ConfigError(pulumi.RunError):
    """Stack config values are missing or wrong: one line per bad key, in ``lines``.

    Pulumi prints a RunError without a traceback."""

    def __init__(self, lines: str | Iterable[str]) -> None:
        self.lines: tuple[str, ...] = (lines,) if isinstance(lines, str) else tuple(lines)
        super().__init__("\n".join(self.lines))


# --- parsers: value in, parsed value out, ValueError(problem) on a bad value ----------------

def text(value: Any) -> str:
    if isinstance(value, (dict, list, bool)) or value is None:
        raise ValueError("must be text")
    return str(value).strip()


def zone(value: Any) -> str:
    name = text(value).lower().rstrip(".")
    if "." not in name or not all(_HOSTNAME_LABEL.match(label) for label in name.split(".")):
        raise ValueError("is not a valid DNS zone")
    return name


def dns_name(value: Any) -> str:
    name = text(value).lower().rstrip(".")
    labels = name.split(".")
    if len(labels) < 2 or not all(_HOSTNAME_LABEL.match(label) for label in labels):
        raise ValueError("is not a valid DNS name")
    return name


def public_ipv4(value: Any) -> str:
    try:
        address = ipaddress.ip_address(text(value))
    except ValueError:
        raise ValueError("is not an IP address") from None
    if address.version != 4:
        # jamjam's echo server advertises this address to clients as <ip>:<port>; the seed
        # setup and the firewall are IPv4 only.
        raise ValueError("must be an IPv4 address")
    if address.is_loopback or address.is_unspecified or address.is_multicast:
        raise ValueError("must be the VPS's reachable address")
    return str(address)


def cloudflare_id(value: Any) -> str:
    found = text(value)
    if not _CLOUDFLARE_ID.match(found):
        raise ValueError("must be a 32-character hex Cloudflare id")
    return found


def one_of(choices: tuple[str, ...]) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        found = text(value).lower()
        if found not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return found
    return parse


def whole(low: int, high: int, unit: str = "") -> Callable[[Any], int]:
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


PORT = whole(1, 65535)
PERCENT = whole(1, 99)


def debian_version(value: Any) -> int:
    known = " or ".join(f"{v} ({r.codename})" for v, r in DEBIAN_RELEASES.items())
    try:
        version = whole(0, 999)(value)
    except ValueError:
        version = None
    if version not in DEBIAN_RELEASES:
        raise ValueError(f"must be the VPS's Debian release, {known} (upgrade an older "
                         "host first)")
    return version


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ValueError("must be true or false")


def schedule(value: Any) -> str:
    fields = str(value).split()
    if len(fields) != 5 or not all(_SCHEDULE_FIELD.match(f) for f in fields):
        raise ValueError("must be a five-field cron schedule")
    return " ".join(fields)


def image(value: Any) -> str:
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


def unix_user(value: Any) -> str:
    if not isinstance(value, str) or not _USER.match(value):
        raise ValueError("must be a Unix user name")
    return value


def day_to_day_user(value: Any) -> str:
    user = unix_user(value)
    if user == "root":
        raise ValueError("must not be root: root login is disabled on the host")
    return user


def host_key(value: Any) -> str:
    if not isinstance(value, str) or not HOST_KEY.match(value.strip()):
        raise ValueError("must be the host's public key as 'type base64'")
    return value.strip()


def bucket(value: Any) -> str:
    if not isinstance(value, str) or not BUCKET_NAME.fullmatch(value):
        raise ValueError("is not a valid R2 bucket name")
    return value


def private_key(value: Any) -> str:
    if "PRIVATE KEY" not in value and not value.startswith("-----"):
        raise ValueError("must be an OpenSSH or PEM private key")
    return value


def webhook_url(value: Any) -> str:
    if re.fullmatch(r"https://[^\s\"']+", value) is None:
        raise ValueError("must be an https:// webhook URL")
    return value


def container_user(value: Any) -> str:
    # `pulumi config set --path` stores a bare uid as a number.
    found = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(found, str) or not _CONTAINER_USER.match(found.strip()):
        raise ValueError("must be a user name or uid, optionally with :group or :gid")
    return found.strip()


def capabilities(value: Any) -> tuple[str, ...]:
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


# --- the rows --------------------------------------------------------------------------------

class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
"""Default of a setting that must be set in every stack."""


class Shell(str):
    """An example that is already shell text (a redirect, a command substitution), so fixes use
    it unquoted; ``{stack}`` in it becomes the stack's name, ``{ns}`` the namespace."""


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
    """A top-level key holding a map of settings (``by_role``: a map per role of that map)."""
    key: str
    fields: tuple[Setting, ...]
    description: str
    required: bool = False
    by_role: bool = False
    """Keys are the project's container roles, whatever they are: which exist is known only
    when the containers are built, so :func:`settle` checks them (``containers``)."""
    each: Setting | None = None
    """An open map (``images``): any key, each value read by this row; which keys must be
    there is known only when the containers are built, so :func:`settle` checks them."""
    moved: Mapping[str, str] = field(default_factory=dict)
    """A field that moved elsewhere -> its new dotted path: a stack still setting it is told
    where, with its value, instead of losing it to "not a known setting"."""

    def get(self, name: str) -> Setting:
        return next(f for f in self.fields if f.key == name)


Row = Setting | Section
Check = Callable[["Reader", dict[str, Any]], None]
"""A rule over several keys (a hostname inside its zone, ports that must not clash): reads the
parsed values, calls ``reader.fail`` for each problem."""


def operator_rows() -> tuple[Row, ...]:
    """What every project needs and only its operator can know, spelled once: the VPS's
    address and Debian release, the Cloudflare ids, SSH access and the alert webhook."""
    return (
        Setting("vpsAddress", public_ipv4, "203.0.113.10",
                "Public IPv4 address of this stack's VPS.", operator=True),
        Setting("vpsDebianVersion", debian_version, 13,
                "Debian release the VPS runs: 12 (bookworm) or 13 (trixie, whose Docker lets a "
                "replaced container be healthy within seconds).", default=13, type="integer"),
        Setting("cloudflareAccountId", cloudflare_id, "0123456789abcdef0123456789abcdef",
                "Cloudflare account id (32 hex characters).", operator=True),
        Setting("cloudflareZoneId", cloudflare_id, "fedcba9876543210fedcba9876543210",
                "Cloudflare zone id of zone (32 hex characters).", operator=True),
        Section("ssh", (
            Setting("user", day_to_day_user, SSH_USER, "Day-to-day SSH user (not root).",
                    default=SSH_USER),
            Setting("initialUser", unix_user, "root",
                    "User that exists on a fresh VPS, used once.", default="root"),
            Setting("port", PORT, 22, "SSH port of the VPS.", default=22, type="integer"),
            Setting("hostKey", host_key,
                    Shell("\"$(ssh-keyscan -t ed25519 \"$(pulumi config get --stack {stack} "
                          "{ns}:vpsAddress)\" 2>/dev/null | cut -d' ' -f2-)\""),
                    "The VPS's SSH host public key ('type base64'), required: remote commands "
                    "and the Docker provider refuse any other key.", operator=True),
        ), "SSH access (user, initialUser, port, hostKey)."),
        Setting("sshPrivateKey", private_key, Shell("< ~/.ssh/{ns}_ed25519"),
                "Private key of ssh.user (and initialUser on first contact); set with --secret.",
                secret=True, operator=True),
        Setting("alertWebhookUrl", webhook_url,
                "https://discord.com/api/webhooks/<id>/<token>",
                "Discord-compatible webhook for alerts (https); set with --secret.",
                default=None, secret=True),
    )


IMAGE_EXAMPLE = "ghcr.io/acme/app:1.0.0"


def images_section() -> Section:
    """``images.<name>``: one pinned image per name (tag or digest, never latest); a container
    spec asks for its image by name, so adding a container adds no row here."""
    return Section("images", (), "Container images by name (images.<name>), each pinned by tag "
                   "or digest, never latest; every container's image must be set, and every "
                   "image set must be used.", required=True,
                   each=Setting("<name>", image, IMAGE_EXAMPLE,
                                "An image, pinned by tag or digest (repo:tag, "
                                "repo@sha256:..., or both)."))


def containers_section() -> Section:
    """``containers.<role>.<field>``: per-stack hardening overrides of each container."""
    return Section("containers", (
        Setting("memoryMb", whole(16, 65_536), 512, "Memory limit in MiB.", default=None,
                type="integer"),
        Setting("pidsLimit", whole(16, 65_536), 256, "Process (pids) limit.", default=None,
                type="integer"),
        Setting("readOnlyRootfs", boolean, True, "Read-only root filesystem.", default=None,
                type="boolean"),
        Setting("user", container_user, "65532:65532", "User to run as: name or uid[:gid].",
                default=None),
        Setting("capAdd", capabilities, ["NET_BIND_SERVICE"],
                "Linux capabilities to add back after all are dropped.", default=None,
                type="array"),
    ), "Container hardening overrides by role (containers.<role>.<field>); unset keeps the "
       "library's defaults.", by_role=True)


def hostname_inside_zone(key: str, zone_key: str = "zone",
                         example: str = "{zone}") -> Check:
    """The hostname ``key`` must be inside ``zone_key`` so Cloudflare can route it."""
    def check(read: Reader, values: dict[str, Any]) -> None:
        found_zone, hostname = values.get(zone_key), values.get(key)
        if found_zone and hostname and hostname != found_zone \
                and not hostname.endswith("." + found_zone):
            read.fail(key, f"must be inside the zone {found_zone!r} so Cloudflare can route "
                      f"it, got {hostname!r}",
                      read.set_command(key, example.format(zone=found_zone)))
    return check


# --- Pulumi.yaml and the reference, from the rows ----------------------------------------------

def section_defaults(section: Section) -> dict[str, Any]:
    """What the section holds when the stack does not set it (also Pulumi.yaml's default)."""
    if section.by_role or section.each:
        return {}
    return {f.key: f.default for f in section.fields
            if f.default is not REQUIRED and f.default is not None}


def pulumi_yaml_config(namespace: str, rows: Iterable[Row]) -> dict[str, dict[str, Any]]:
    """The ``config:`` block Pulumi.yaml must declare, derived from the rows.

    The CLI (pkg/workspace/config.go) treats a declared key without a default as required,
    applies a default only to a key the stack lacks (the whole value, no merging), and rejects a
    ``secret: true`` key whose value is not encrypted, defaults included. So an optional secret
    declares ``default: ""`` (which the reader takes as unset) and no ``secret``; the reader
    still refuses it in plaintext.
    """
    block: dict[str, dict[str, Any]] = {}
    for spec in rows:
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
        block[f"{namespace}:{spec.key}"] = entry
    return block


def _shown_default(spec: Setting) -> str:
    if spec.default is REQUIRED:
        return "required" + (" (operator)" if spec.operator else "")
    if spec.default is None:
        return "unset"
    if isinstance(spec.default, bool):
        return f"`{str(spec.default).lower()}`"
    return f"`{spec.default}`"


def reference_markdown(namespace: str, rows: Iterable[Row]) -> str:
    """The configuration reference of a project: one table row per key, from the rows."""
    lines = ["| key | type | default | description |", "|---|---|---|---|"]
    for spec in rows:
        if isinstance(spec, Setting):
            kind = spec.type + (", secret" if spec.secret else "")
            lines.append(f"| `{namespace}:{spec.key}` | {kind} | {_shown_default(spec)} | "
                         f"{spec.description} |")
            continue
        prefix = f"{namespace}:{spec.key}" + (".<role>" if spec.by_role else "")
        for item in (spec.each,) if spec.each else spec.fields:
            kind = item.type + (", secret" if item.secret else "")
            default = "required for each image a container uses" if spec.each else \
                _shown_default(item)
            lines.append(f"| `{prefix}.{item.key}` | {kind} | {default} | "
                         f"{item.description} |")
    return "\n".join(lines) + "\n"


# --- reading ---------------------------------------------------------------------------------

def _shell_value(value: Any) -> str:
    if isinstance(value, Shell):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return shlex.quote(str(value))


class Reader:
    """Reads the stack config against the rows, collecting one line per bad key."""

    def __init__(self, config: pulumi.Config, stack: str, rows: tuple[Row, ...]) -> None:
        self._config = config
        self.namespace = config.name
        self.stack = stack
        self._by_key: dict[str, Row] = {spec.key: spec for spec in rows}
        self.errors: list[str] = []

    # The fix of each line is a command to paste; --stack makes it right whichever stack is
    # selected, since the plan reports every stack.
    def set_command(self, path: str, example: Any, secret: bool = False,
                    nested: bool = False) -> str:
        flags = f"--stack {self.stack}" + (" --secret" if secret else "")
        if isinstance(example, list):
            path, example, nested = f"{path}[0]", example[0], True
        key = f"{self.namespace}:{path}"
        key = f"--path '{key}'" if nested else key
        value = _shell_value(example).replace("{stack}", self.stack).replace(
            "{ns}", self.namespace) if isinstance(example, Shell) else _shell_value(example)
        return f"pulumi config set {flags} {key} {value}"

    def rm_command(self, path: str, nested: bool = False) -> str:
        key = f"{self.namespace}:{path}"
        key = f"--path '{key}'" if nested else key
        return f"pulumi config rm --stack {self.stack} {key}"

    def fail(self, path: str, problem: str, fix: str) -> None:
        self.errors.append(f"{self.namespace}:{path}: {problem}; fix: {fix}")

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
        if spec.secret and not _config_compat.is_config_secret(f"{self.namespace}:{spec.key}"):
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
            if spec.required and not spec.each:
                # Only what must be set: the optional fields would take their defaults.
                for item in spec.fields:
                    if item.default is REQUIRED:
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
            first = spec.each or spec.fields[0]
            path = f"{spec.key}.<role>.{first.key}" if spec.by_role else \
                f"{spec.key}.{first.key}"
            self.fail(spec.key, f"must be a map of settings, got {raw!r}",
                      f"{self.rm_command(spec.key)} && "
                      f"{self.set_command(path, first.example, nested=True)}")
            return None
        if spec.each:
            return {name: self.parse(f"{spec.key}.{name}", spec.each, value, nested=True)
                    for name, value in data.items()}
        if spec.by_role:
            return {role: self._fields(spec, f"{spec.key}.{role}", value)
                    for role, value in data.items()}
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
        for name in sorted(set(data) & set(spec.moved)):
            self.fail(f"{prefix}.{name}", f"moved to {self.namespace}:{spec.moved[name]}",
                      f"{self.rm_command(f'{prefix}.{name}', nested=True)} && "
                      f"{self.set_command(spec.moved[name], data[name], nested=True)}")
        data = {k: v for k, v in data.items() if k not in spec.moved}
        self._unknown(data, prefix, spec.fields)
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

    def _unknown(self, data: Mapping[str, Any], prefix: str,
                 fields: tuple[Setting, ...]) -> None:
        known = tuple(f.key for f in fields)
        for name in sorted(set(data) - set(known)):
            path = f"{prefix}.{name}"
            close = difflib.get_close_matches(name, known, n=1)
            problem = "is not a known setting"
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
        prefix = f"{self.namespace}:"
        names = sorted(k[len(prefix):] for k in config_keys if k.startswith(prefix))
        known = tuple(self._by_key)
        for name in names:
            if name in self._by_key:
                continue
            close = difflib.get_close_matches(name, known, n=1)
            problem = "is not a known setting"
            fix = self.rm_command(name)
            if close:
                # The closest key is the likely intent; the full list would drown it.
                problem += f"; did you mean {self.namespace}:{close[0]}?"
                target = self._by_key[close[0]]
                if isinstance(target, Setting):
                    # Move the value over, unless it is (or is meant to be) a secret, which
                    # an error line never shows.
                    secret = target.secret or _config_compat.is_config_secret(f"{prefix}{name}")
                    value = target.example if secret else self._config.get(name)
                    fix += " && " + self.set_command(close[0], value, secret=target.secret)
            else:
                problem += f" (known: {', '.join(known)})"
            self.fail(name, problem, fix)


class Values(dict):
    """Every row's parsed value by key (a section: a dict of its fields; by role, a dict per
    role); ``images`` is an :class:`Images`. ``reader`` words the errors :func:`settle` finds."""

    reader: Reader


def read(rows: tuple[Row, ...], checks: Iterable[Check] = (),
         config: pulumi.Config | None = None, stack: str | None = None) -> Values:
    """Every row's parsed value, by key; raise one ConfigError naming every bad key, after
    ``checks`` have run too. What depends on the containers (which images, which roles) is
    checked by :func:`settle` once they are built."""
    config = config or pulumi.Config()
    reader = Reader(config, stack or pulumi.get_stack(), rows)
    reader.unknown_top_level(_config_compat.config_keys())
    values = Values({spec.key: reader.setting(spec) if isinstance(spec, Setting)
                     else reader.section(spec) for spec in rows})
    values.reader = reader
    for check in checks:
        check(reader, values)
    if reader.errors:
        raise ConfigError(reader.errors)
    if "images" in values:
        values["images"] = Images(values["images"] or {})
    return values


class Images:
    """The stack's pinned images by name. A container spec takes its image with
    ``images["name"]``; :func:`settle` then refuses a name no stack sets and a set name no
    container took, so the stack file and the specs cannot drift apart."""

    UNSET = "registry.invalid/unset:0"
    """What a name the stack does not set reads as, until :func:`settle` refuses it."""

    def __init__(self, pinned: Mapping[str, str]) -> None:
        self.pinned = dict(pinned)
        self.asked: list[str] = []

    def __getitem__(self, name: str) -> str:
        if name not in self.asked:
            self.asked.append(name)
        return self.pinned.get(name, self.UNSET)

    def __repr__(self) -> str:
        return f"Images({self.pinned!r})"


def settle(values: Values, specs: Iterable[Any]) -> list[Any]:
    """The specs with the stack's ``containers.<role>`` overrides applied, once every image they
    asked for is known to be set and every image and override set is known to belong to one of
    them; else one ConfigError line per key. Call it before any resource is registered."""
    specs = list(specs)
    read_ = values.reader
    images: Images = values["images"]
    roles = [spec.role for spec in specs]
    for name in images.asked:
        if name not in images.pinned:
            read_.fail(f"images.{name}", "is not set",
                       read_.set_command(f"images.{name}", IMAGE_EXAMPLE, nested=True))
    for name in sorted(set(images.pinned) - set(images.asked)):
        close = difflib.get_close_matches(name, images.asked, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        read_.fail(f"images.{name}", f"is not the image of any container{hint} (images the "
                   f"containers use: {', '.join(images.asked)})",
                   read_.rm_command(f"images.{name}", nested=True))
    overrides: Mapping[str, Any] = values.get("containers") or {}
    for role in sorted(set(overrides) - set(roles)):
        close = difflib.get_close_matches(role, roles, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        read_.fail(f"containers.{role}", f"is not a known role{hint} (the roles of this "
                   f"project's containers: {', '.join(roles)})",
                   read_.rm_command(f"containers.{role}", nested=True))
    if read_.errors:
        raise ConfigError(read_.errors)
    return [spec.with_overrides(**{snake(k): v for k, v in overrides[spec.role].items()})
            if overrides.get(spec.role) else spec for spec in specs]


def snake(key: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", lambda m: "_" + m[1].lower(), key)


def build(cls: type, values: Mapping[str, Any]) -> Any:
    """A section's dataclass from its parsed values: each camelCase key fills its snake_case
    field, so a new setting needs its row and its field, nothing else."""
    return cls(**{snake(key): value for key, value in values.items()
                  if snake(key) in cls.__dataclass_fields__})


def ssh_args(values: Mapping[str, Any]) -> SshArgs:
    """The library's SSH connection from :func:`operator_rows`' parsed values."""
    ssh = values["ssh"]
    return SshArgs(host=values["vpsAddress"], port=ssh["port"], user=ssh["user"],
                   initial_user=ssh["initialUser"], private_key=values["sshPrivateKey"],
                   host_key=ssh["hostKey"])


def debian(values: Mapping[str, Any], namespace: str) -> Debian:
    return Debian(values["vpsDebianVersion"], f"{namespace}:vpsDebianVersion")
