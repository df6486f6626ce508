"""The headline rules: the signaling port never reaches the internet; public ports are allowlisted."""

from __future__ import annotations

from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, \
    ResourceValidationPolicy

from ._exposure import exposure
from ._props import is_unknown, label, props_of
from .config import PUBLIC_PORTS, SIGNALING_PORT, port_set, schema, settings

_SIGNALING_SCHEMA = schema(SIGNALING_PORT)
_ALLOWLIST_SCHEMA = schema(PUBLIC_PORTS)


def _signaling_port_never_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found = exposure(args.resource_type, props_of(args))
    if found is None:
        return
    port = int(settings(args, _SIGNALING_SCHEMA)["signalingPort"])
    fix = (f"Port {port} must be reachable only through the Cloudflare Tunnel: remove the mapping "
           "or bind it to 127.0.0.1 (a value unknown at preview counts as public until it is "
           "known).")
    for reason in found.blanket:
        report(f"{label(args)} {reason}. {fix}", None)
    for entry in found.published:
        sides = (entry.internal, entry.external)
        if any(is_unknown(side) or side == port for side in sides):
            report(f"{label(args)} {entry.describe()}, which can expose the signaling port {port}. "
                   f"{fix}", None)
    for opening in found.openings:
        if opening.covers(port):
            report(f"{label(args)} opens port {port} in the firewall (`{opening.source}`). Remove "
                   f"that rule: port {port} is reached only through the Cloudflare Tunnel.", None)


def _public_ports_allowlisted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found = exposure(args.resource_type, props_of(args))
    if found is None:
        return
    allowed = port_set(settings(args, _ALLOWLIST_SCHEMA)["publicPorts"])
    shown = ", ".join(f"{p}/{proto}" for p, proto in sorted(allowed)) or "nothing"
    fix = (f"Publish only allowlisted ports ({shown}), or add the port to the pack's "
           "publicPorts config if it is meant to be public.")
    for reason in found.blanket:
        report(f"{label(args)} {reason}. {fix}", None)
    for entry in found.published:
        if entry.external is None or is_unknown(entry.external):
            report(f"{label(args)} {entry.describe()}, which the allowlist can't cover. Give the "
                   f"mapping a fixed external port. {fix}", None)
            continue
        extra = sorted(f"{entry.external}/{proto}" for proto in entry.protocols
                       if (entry.external, proto) not in allowed)
        if extra:
            report(f"{label(args)} {entry.describe()}, and {', '.join(extra)} is not an "
                   f"allowed public port. {fix}", None)
    for opening in found.openings:
        ports = opening.ports()
        extra_ports: list[Any] = ["an unknown port"] if ports is None else sorted(
            {f"{p}/{proto}" for p, proto in ports if (p, proto) not in allowed})
        if extra_ports:
            report(f"{label(args)} opens {', '.join(extra_ports[:5])}"
                   f"{' and more' if len(extra_ports) > 5 else ''} in the firewall "
                   f"(`{opening.source}`), which is not allowlisted. {fix}", None)


signaling_port_never_public = ResourceValidationPolicy(
    name="signaling-port-never-public",
    description=("The signaling port (8080) is reachable only through the Cloudflare Tunnel: no "
                 "published container port on either side, no host-network container, no "
                 "publish-all, no firewall rule opens it; values unknown at preview fail."),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=_SIGNALING_SCHEMA,
    validate=_signaling_port_never_public,
)

public_ports_allowlisted = ResourceValidationPolicy(
    name="public-ports-allowlisted",
    description=("Container ports published on a non-loopback address and ports the VPS firewall "
                 "opens are in the publicPorts allowlist (default 22/tcp, 5000/udp)."),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=_ALLOWLIST_SCHEMA,
    validate=_public_ports_allowlisted,
)

POLICIES = [signaling_port_never_public, public_ports_allowlisted]
