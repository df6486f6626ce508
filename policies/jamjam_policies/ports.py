"""What may reach the internet: tunnel origins never do, database ports never do, the signaling
port (jamjam's headline rule) never does, and whatever is public is on the stack's allowlist.

All four read the same model of exposure (_exposure.py): published container ports, host
networking, publish-all, and ports a remote command opens in the firewall, on any host.
"""

from __future__ import annotations

from typing import Any, Callable
from urllib.parse import urlsplit

from jamjam_infra.rules import DATABASE_PORTS as _DEFAULT_DATABASE_PORTS
from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, \
    ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy

from ._exposure import Exposure, exposure
from ._props import is_unknown, label, props_of
from .cloudflare import TUNNEL_CONFIG
from .config import DATABASE_PORTS, PUBLIC_PORTS, SIGNALING_PORT, public_ports, schema, settings

_SIGNALING_SCHEMA = schema(SIGNALING_PORT)
_ALLOWLIST_SCHEMA = schema(PUBLIC_PORTS)
_DATABASE_SCHEMA = schema(DATABASE_PORTS)

Report = Callable[[str], None]


def _report_ports(name: str, found: Exposure, ports: set[int], what: Callable[[int], str],
                  fix: str, report: Report) -> None:
    """Every way ``found`` can make one of ``ports`` public; ``what(port)`` names the port."""
    for reason in found.blanket:
        report(f"{name} {reason}. {fix}")
    for entry in found.published:
        hit = sorted({side for side in (entry.internal, entry.external)
                      if not is_unknown(side) and side in ports})
        if hit:
            report(f"{name} {entry.describe()}, which exposes {what(hit[0])}. {fix}")
        elif any(is_unknown(side) for side in (entry.internal, entry.external)):
            report(f"{name} {entry.describe()}, which may expose "
                   f"{' or '.join(what(p) for p in sorted(ports))}. {fix}")
    for opening in found.openings:
        hit = sorted(p for p in ports if opening.covers(p))
        if hit:
            report(f"{name} opens {what(hit[0])} in the firewall (`{opening.source}`). Remove "
                   f"that rule. {fix}")


def _signaling_port_never_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found = exposure(args.resource_type, props_of(args))
    if found is None:
        return
    port = int(settings(args, _SIGNALING_SCHEMA)["signalingPort"])
    fix = (f"Port {port} must be reachable only through the Cloudflare Tunnel: remove the mapping "
           "or bind it to 127.0.0.1 (a value unknown at preview counts as public until it is "
           "known).")
    _report_ports(label(args), found, {port}, lambda p: f"the signaling port {p}", fix,
                  lambda message: report(message, None))


def _database_ports_never_public(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found = exposure(args.resource_type, props_of(args))
    if found is None:
        return
    ports = set(settings(args, _DATABASE_SCHEMA)["databasePorts"])
    fix = ("Databases and caches are reached by the containers on the Docker network only: "
           "remove the mapping or firewall rule (or bind it to 127.0.0.1 for a tunnel you open "
           "over SSH).")
    _report_ports(label(args), found, ports, lambda p: f"the database port {p}", fix,
                  lambda message: report(message, None))


def _public_ports_allowlisted(args: ResourceValidationArgs, report: ReportViolation) -> None:
    found = exposure(args.resource_type, props_of(args))
    if found is None:
        return
    allowed, source = public_ports(settings(args, _ALLOWLIST_SCHEMA))
    shown = ", ".join(f"{p}/{proto}" for p, proto in sorted(allowed)) or "nothing"
    fix = (f"Publish only allowlisted ports ({shown}), or add the port to the pack's {source} "
           "config if it is meant to be public.")
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


# --- tunnel origins -------------------------------------------------------------------------

_SCHEME_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}


def origin_port(service: Any) -> int | None:
    """The port a tunnel ingress ``service`` reaches: ``http://signaling-server:8080`` -> 8080,
    ``https://app`` -> 443; None for services that reach no port (``http_status:404``,
    ``hello_world``, ``unix:/path``). Raises ValueError for a port that is not a number."""
    if not isinstance(service, str) or "://" not in service:
        return None
    parts = urlsplit(service)
    port = parts.port  # ValueError when not a number
    if port is not None:
        return port
    return _SCHEME_PORTS.get(parts.scheme.lower())


def _tunnel_origins(args: StackValidationArgs, report: ReportViolation) -> dict[int, list[str]]:
    """Port -> the routes (hostname[path] -> service) that reach it, over every tunnel."""
    origins: dict[int, list[str]] = {}
    for resource in args.resources:
        if resource.resource_type != TUNNEL_CONFIG:
            continue
        config = props_of(resource).get("config")
        ingresses = config.get("ingresses") if isinstance(config, dict) else config
        where = label(resource)
        if is_unknown(ingresses) or (ingresses is not None and not isinstance(ingresses, list)):
            report(f"{where} has ingress rules unknown at preview, so the pack can't tell which "
                   "ports only the tunnel may reach. Declare the routes literally.", resource.urn)
            continue
        for index, rule in enumerate(ingresses or []):
            service = rule.get("service") if isinstance(rule, dict) else rule
            if is_unknown(service):
                report(f"{where} has config.ingresses[{index}].service unknown at preview, so the "
                       "pack can't tell which port only the tunnel may reach. Declare the "
                       "origin literally, e.g. \"http://signaling-server:8080\".", resource.urn)
                continue
            try:
                port = origin_port(service)
            except ValueError:
                report(f"{where} routes config.ingresses[{index}] to {service!r}, whose port is "
                       "not a number. Write the origin like \"http://signaling-server:8080\".",
                       resource.urn)
                continue
            if port is None:
                continue
            route = str(rule.get("hostname") or "*") if isinstance(rule, dict) else "*"
            if isinstance(rule, dict) and isinstance(rule.get("path"), str) and rule["path"]:
                route += rule["path"]
            origins.setdefault(port, []).append(f"{route} -> {service}")
    return origins


def _tunnel_origin_ports_never_public(args: StackValidationArgs, report: ReportViolation) -> None:
    origins = _tunnel_origins(args, report)
    if not origins:
        return

    def what(port: int) -> str:
        return f"port {port}, which the tunnel route {origins[port][0]} reaches"

    fix = ("A port a tunnel route reaches is served only through the Cloudflare Tunnel: remove "
           "the mapping or firewall rule, or bind it to 127.0.0.1 (a value unknown at preview "
           "counts as public until it is known).")
    for resource in args.resources:
        found = exposure(resource.resource_type, props_of(resource))
        if found is None:
            continue
        _report_ports(label(resource), found, set(origins), what, fix,
                      lambda message, urn=resource.urn: report(message, urn))


tunnel_origin_ports_never_public = StackValidationPolicy(
    name="tunnel-origin-ports-never-public",
    description=("A port any Cloudflare Tunnel route reaches (the port of each ingress service "
                 "URL, e.g. http://signaling-server:8080 -> 8080) is never published by a "
                 "container, on either side, nor opened in a firewall, on any host; values "
                 "unknown at preview fail."),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_tunnel_origin_ports_never_public,
)

signaling_port_never_public = ResourceValidationPolicy(
    name="signaling-port-never-public",
    description=("The signaling port (8080) is reachable only through the Cloudflare Tunnel: no "
                 "published container port on either side, no host-network container, no "
                 "publish-all, no firewall rule opens it; values unknown at preview fail."),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=_SIGNALING_SCHEMA,
    validate=_signaling_port_never_public,
)

database_ports_never_public = ResourceValidationPolicy(
    name="database-ports-never-public",
    description=("Database and cache ports "
                 f"({', '.join(map(str, _DEFAULT_DATABASE_PORTS))}) are never published by a "
                 "container, on either side, nor opened in a firewall; values unknown at preview "
                 "fail."),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=_DATABASE_SCHEMA,
    validate=_database_ports_never_public,
)

public_ports_allowlisted = ResourceValidationPolicy(
    name="public-ports-allowlisted",
    description=("Container ports published on a non-loopback address and ports the firewall "
                 "opens are in the stack's allowlist (stackPublicPorts.<stack>, else publicPorts: "
                 "22/tcp, 5000/udp)."),
    enforcement_level=EnforcementLevel.MANDATORY,
    config_schema=_ALLOWLIST_SCHEMA,
    validate=_public_ports_allowlisted,
)

POLICIES = [signaling_port_never_public, tunnel_origin_ports_never_public,
            database_ports_never_public, public_ports_allowlisted]
