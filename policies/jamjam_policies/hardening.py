"""Container hardening (CIS Docker Benchmark v1.6 section 5): what a container may do to the VPS.

Mandatory: every capability dropped, adds only from the pack's allowlist, no-new-privileges,
a memory limit and a pids limit. Advisory: a read-only root filesystem and a non-root user,
which depend on what the image expects (the library turns them on per container).

The pids limit has no argument in pulumi-docker v5's Container (the Terraform provider it wraps
lacks it), so the library sets it with a ``command:remote:Command`` next to the container. The
contract this pack checks, one per container, known at preview:

    create contains ``docker update --pids-limit N <container name>`` (N >= 1; also
    ``docker container update`` and ``--pids-limit=N``; ``sudo -n`` and ``&&`` chains allowed)

The command names the container by its ``name`` input, not its id, so the rule can match them at
preview; the library keys the command's ``triggers`` on the container id so every replacement
gets the limit again.

As everywhere in this pack, a value unknown at preview counts as the insecure case.
"""

from __future__ import annotations

import re
import shlex
from typing import Any, Callable

from jamjam_infra.rules import MIN_MEMORY_MB, NO_NEW_PRIVILEGES
from pulumi_policy import EnforcementLevel, PolicyConfigSchema, ReportViolation, \
    ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy

from ._exposure import CONTAINER, REMOTE_COMMAND
from ._props import UNKNOWN, as_int, is_unknown, label, props_of, strings
from .config import settings

CAPABILITY = re.compile(r"^(?:CAP_)?([A-Z0-9_]+)$")

ALLOWED_CAPABILITIES: dict[str, Any] = {
    "allowedCapabilities": {
        "type": "array", "uniqueItems": True,
        # jamjam's three containers need none; a sibling system's database image that starts
        # as root to chown its data directory would need e.g. CHOWN, SETUID, SETGID, FOWNER.
        # Each one is a reviewed change to this list, not a default.
        "default": [],
        # ALL is refused by the rule itself: JSON Schema patterns have no portable lookahead.
        "items": {"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
        "description": "Capabilities a container may add back after dropping ALL, e.g. "
                       "[\"NET_BIND_SERVICE\"]. ALL is never allowed.",
    },
}
_ALLOWLIST_SCHEMA = PolicyConfigSchema(properties=ALLOWED_CAPABILITIES)

Check = Callable[[str, dict[str, Any], ReportViolation], None]


# Where a message names the stack setting that fixes it: the project's own config namespace,
# which is its project name, the second field of every URN (urn:pulumi:<stack>::<project>::...).
_NAMESPACE = "<namespace>"


def _containers_only(check: Check) -> Callable[[ResourceValidationArgs, ReportViolation], None]:
    def validate(args: ResourceValidationArgs, report: ReportViolation) -> None:
        if args.resource_type == CONTAINER:
            namespace = args.urn.split("::")[1] if args.urn.count("::") >= 3 else "<project>"

            def reported(message: str, urn: Any = None) -> None:
                report(message.replace(_NAMESPACE, namespace), urn)
            check(label(args), props_of(args), reported)
    return validate


def capability(name: Any) -> Any:
    """``cap_net_raw`` / ``NET_RAW`` as ``NET_RAW`` (Docker's own spelling); UNKNOWN stays."""
    if is_unknown(name) or not isinstance(name, str):
        return UNKNOWN if is_unknown(name) else None
    match = CAPABILITY.match(name.strip().upper())
    return match.group(1) if match else None


def allowlist(config: dict[str, Any]) -> set[str]:
    entries = config.get("allowedCapabilities")
    if not isinstance(entries, (list, tuple)):
        raise ValueError("policy config allowedCapabilities must be a list like "
                         f"[\"NET_BIND_SERVICE\"], got {entries!r}")
    allowed = set()
    for entry in entries:
        name = capability(entry)
        if name is None or name is UNKNOWN or name == "ALL":
            raise ValueError(f"policy config allowedCapabilities entry {entry!r} is not a single "
                             "capability; write it like \"NET_BIND_SERVICE\" (ALL is never allowed)")
        allowed.add(name)
    return allowed


def _capabilities(props: dict[str, Any]) -> tuple[Any, Any]:
    """(drops, adds) as lists of normalised names, or UNKNOWN for a list unknown at preview."""
    caps = props.get("capabilities")
    if is_unknown(caps):
        return UNKNOWN, UNKNOWN
    caps = caps if isinstance(caps, dict) else {}
    result = []
    for key in ("drops", "adds"):
        value = caps.get(key)
        result.append(UNKNOWN if is_unknown(value) else [capability(v) for v in strings(value)])
    return result[0], result[1]


def _capabilities_dropped(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    drops, _ = _capabilities(props)
    if drops is not UNKNOWN and "ALL" not in drops and UNKNOWN in drops:
        drops = UNKNOWN
    if drops is UNKNOWN:
        report(f"{name} has capabilities.drops unknown at preview, so it may keep Docker's "
               "default capabilities (NET_RAW, SETUID, CHOWN, ...). Declare capabilities.drops "
               "[\"ALL\"] as a literal.", None)
    elif "ALL" not in drops:
        caps = props.get("capabilities")
        raw = caps.get("drops") if isinstance(caps, dict) else None
        shown = "unset" if not drops else repr(strings(raw))
        report(f"{name} has capabilities.drops {shown}, so it keeps Docker's default capabilities "
               "(NET_RAW, SETUID, CHOWN, ...). Set capabilities.drops [\"ALL\"] and add back "
               "only what the image needs.", None)


def _capability_adds_allowlisted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type != CONTAINER:
        return
    allowed = allowlist(settings(args, _ALLOWLIST_SCHEMA))
    _, adds = _capabilities(props_of(args))
    shown_allowed = ", ".join(sorted(allowed)) or "none"
    if adds is UNKNOWN:
        report(f"{label(args)} has capabilities.adds unknown at preview, so it may add any "
               f"capability. Declare capabilities.adds as literals from the allowlist "
               f"({shown_allowed}).", None)
        return
    for add in adds:
        if add is UNKNOWN:
            report(f"{label(args)} adds a capability unknown at preview. Declare "
                   f"capabilities.adds as literals from the allowlist ({shown_allowed}).", None)
        elif add == "ALL":
            report(f"{label(args)} adds ALL capabilities back, which undoes dropping them. Remove "
                   "ALL from capabilities.adds and add only what the image needs.", None)
        elif add not in allowed:
            report(f"{label(args)} adds capability {add or 'with an invalid name'}, which is not "
                   f"in the pack's allowlist ({shown_allowed}). Remove it, or add it to the "
                   "container-capability-adds-allowlisted config allowedCapabilities after "
                   "review.", None)


# Docker reads `no-new-privileges`, `no-new-privileges:true` and `no-new-privileges=true`.
_NNP = re.compile(r"^no-new-privileges(?:[:=](true|false))?$")


def _no_new_privileges(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    options = strings(props.get("securityOpts"))
    if any(is_unknown(o) for o in options):
        report(f"{name} has securityOpts unknown at preview, so it may gain privileges through "
               f"setuid binaries. Declare securityOpts [\"{NO_NEW_PRIVILEGES}\"] as a literal.",
               None)
        return
    values = [m.group(1) or "true" for m in (_NNP.match(str(o).strip()) for o in options) if m]
    if not values or "false" in values:
        shown = "unset" if not options else repr(options)
        report(f"{name} has securityOpts {shown}, so a setuid binary in it can gain privileges. "
               f"Set securityOpts [\"{NO_NEW_PRIVILEGES}\"].", None)


def _memory_limited(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    memory = as_int(props.get("memory"))
    if memory is UNKNOWN:
        report(f"{name} has a memory limit unknown at preview. Declare memory (MB) as a literal "
               "so one runaway container cannot take the VPS's memory.", None)
    elif memory is not None and 0 < memory < MIN_MEMORY_MB:
        report(f"{name} has memory {memory} MB, under Docker's minimum of {MIN_MEMORY_MB} MB, so "
               "Docker refuses to create it at `pulumi up`. Set memory (MB, e.g. 512) and "
               "memorySwap to the same value.", None)
    elif memory is None or memory <= 0:
        shown = "unset" if props.get("memory") is None else repr(props.get("memory"))
        report(f"{name} has memory {shown}, so one runaway process can take the VPS's memory and "
               "every service with it. Set memory (MB, e.g. 512) and memorySwap to the same "
               "value.", None)


def _read_only_rootfs(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    read_only = props.get("readOnly")
    if read_only is not True:
        shown = "unset" if read_only is None else \
            ("unknown at preview" if is_unknown(read_only) else repr(read_only))
        report(f"{name} has readOnly {shown}, so a compromised process can change the image's "
               "files. Where the image allows it, set readOnly true with tmpfs for the paths it "
               f"writes ({_NAMESPACE}:containers.<role>.readOnlyRootfs).", None)


_ROOT_USERS = {"root", "0"}


def _non_root_user(name: str, props: dict[str, Any], report: ReportViolation) -> None:
    user = props.get("user")
    if is_unknown(user):
        report(f"{name} has a user unknown at preview, so it may run as root. Declare user as a "
               "literal non-root uid:gid (e.g. \"65532:65532\").", None)
    elif not isinstance(user, str) or not user.strip():
        report(f"{name} sets no user, so it runs as whatever the image says, often root. Where "
               "the image allows it, set user to a non-root uid:gid "
               f"({_NAMESPACE}:containers.<role>.user).", None)
    elif user.strip().split(":", 1)[0] in _ROOT_USERS:
        report(f"{name} runs as user {user!r}, which is root. Set user to a non-root uid:gid "
               "(e.g. \"65532:65532\").", None)


# --- the pids limit: a stack rule, since it lives on a command next to the container ---------

_UPDATE_FLAGS_WITHOUT_VALUE: frozenset[str] = frozenset({"--help"})
# What may come right before `docker` when docker is the command being run (not an argument
# of echo, say): the start of a command, or sudo and its usual flag.
_COMMAND_START = frozenset({"&&", "||", ";", "|", "sudo", "-n", "--non-interactive", "exec"})


def pids_limits(create: str) -> dict[str, int | None]:
    """{container name: pids limit} for each ``docker [container] update`` in ``create``.

    The limit is None when the flag is absent or not a literal whole number.
    """
    try:
        words = shlex.split(create, comments=True)
    except ValueError:
        return {}
    found: dict[str, int | None] = {}
    for start, word in enumerate(words):
        if word != "docker" and not word.endswith("/docker"):
            continue
        if start > 0 and words[start - 1] not in _COMMAND_START and not words[start - 1].endswith(";"):
            continue
        rest = words[start + 1:]
        if rest[:2] == ["container", "update"]:
            rest = rest[2:]
        elif rest[:1] == ["update"]:
            rest = rest[1:]
        else:
            continue
        limit: int | None = None
        names: list[str] = []
        index = 0
        while index < len(rest) and rest[index] not in ("&&", "||", ";", "|"):
            token = rest[index]
            if token.startswith("-"):
                flag, equals, value = token.partition("=")
                if not equals and flag not in _UPDATE_FLAGS_WITHOUT_VALUE:
                    # Every other `docker update` flag takes a value, as the next word.
                    index += 1
                    value = rest[index] if index < len(rest) else ""
                if flag == "--pids-limit":
                    limit = int(value) if re.fullmatch(r"-?\d+", value) else None
            else:
                names.append(token)
            index += 1
        for container in names:
            found[container] = limit
    return found


def _pids_limited(args: StackValidationArgs, report: ReportViolation) -> None:
    limits: dict[str, list[int | None]] = {}
    unknown_commands = 0
    for resource in args.resources:
        if resource.resource_type != REMOTE_COMMAND:
            continue
        create = props_of(resource).get("create")
        if is_unknown(create):
            unknown_commands += 1
        elif isinstance(create, str) and "update" in create:
            for container, limit in pids_limits(create).items():
                limits.setdefault(container, []).append(limit)
    for resource in args.resources:
        if resource.resource_type != CONTAINER:
            continue
        name = props_of(resource).get("name")
        who = label(resource)
        if is_unknown(name) or not isinstance(name, str) or not name:
            state = "a name unknown at preview" if is_unknown(name) else "no name (Docker picks one)"
            report(f"{who} has {state}, so no pids-limit command can be matched to it. Give the "
                   "container a literal name.", resource.urn)
            continue
        found = [limit for limit in limits.get(name, []) if limit is not None]
        if any(limit >= 1 for limit in found):
            continue
        if found:
            report(f"{who} gets --pids-limit {found[0]}, which is no limit (a fork bomb can take "
                   f"the VPS). Use a positive limit: docker update --pids-limit 512 {name}.",
                   resource.urn)
        elif name in limits:
            report(f"{who} is updated without a literal --pids-limit. Run docker update "
                   f"--pids-limit N {name} with a literal N, e.g. 512.", resource.urn)
        else:
            unknown = (f" ({unknown_commands} command(s) unknown at preview may set it, but that "
                       "can't be checked)") if unknown_commands else ""
            report(f"{who} has no pids limit{unknown}, so a fork bomb in it can take the VPS. "
                   "Declare a command:remote:Command running docker update --pids-limit N "
                   f"{name} after the container is created.", resource.urn)


def _container_policy(name: str, description: str, check: Check,
                      level: EnforcementLevel) -> ResourceValidationPolicy:
    return ResourceValidationPolicy(name=name, description=description,
                                    enforcement_level=level, validate=_containers_only(check))


POLICIES = [
    _container_policy("container-capabilities-dropped",
                      "Containers drop every capability (capabilities.drops contains ALL); "
                      "CIS Docker 5.4.", _capabilities_dropped, EnforcementLevel.MANDATORY),
    ResourceValidationPolicy(
        name="container-capability-adds-allowlisted",
        description=("Containers add back only capabilities in the pack's allowlist "
                     "(allowedCapabilities, empty by default); CIS Docker 5.4."),
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_capability_adds_allowlisted,
        config_schema=_ALLOWLIST_SCHEMA,
    ),
    _container_policy("container-no-new-privileges",
                      "Containers set securityOpts no-new-privileges; CIS Docker 5.26.",
                      _no_new_privileges, EnforcementLevel.MANDATORY),
    _container_policy("container-memory-limited",
                      f"Containers set a memory limit (at least Docker's {MIN_MEMORY_MB} MB); "
                      "CIS Docker 5.11.",
                      _memory_limited, EnforcementLevel.MANDATORY),
    StackValidationPolicy(
        name="container-pids-limited",
        description=("Every container gets a pids limit of at least 1 from a command running "
                     "docker update --pids-limit N <container name>; CIS Docker 5.29."),
        enforcement_level=EnforcementLevel.MANDATORY,
        validate=_pids_limited,
    ),
    _container_policy("container-read-only-rootfs",
                      "Containers run with a read-only root filesystem where the image allows "
                      "it; CIS Docker 5.13.", _read_only_rootfs, EnforcementLevel.ADVISORY),
    _container_policy("container-non-root-user",
                      "Containers run as a non-root user where the image allows it; CIS "
                      "Docker 4.1.", _non_root_user, EnforcementLevel.ADVISORY),
]
