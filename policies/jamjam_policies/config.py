"""The pack's settings: one JSON schema per configurable rule, with the defaults the team uses.

pulumi-policy configures each policy separately, so a config file is keyed by policy name:

    {"public-ports-allowlisted": {"publicPorts": ["22/tcp", "5000/udp", "443/tcp"]}}

The CLI validates the file against these schemas (`pulumi preview --policy-pack policies
--policy-pack-config <file>`). The rules apply the defaults themselves too, so they behave the
same when the engine sends no config at all and when the offline runner calls them.
"""

from __future__ import annotations

import re
from typing import Any, Mapping

from pulumi_policy import PolicyConfigSchema

PORT_PROTO = re.compile(r"^(\d{1,5})/(tcp|udp)$")

SIGNALING_PORT: dict[str, Any] = {
    "signalingPort": {
        "type": "integer", "minimum": 1, "maximum": 65535, "default": 8080,
        "description": "The signaling server's port: reachable only through the Cloudflare Tunnel.",
    },
}
PUBLIC_PORTS: dict[str, Any] = {
    "publicPorts": {
        "type": "array", "default": ["22/tcp", "5000/udp"], "uniqueItems": True,
        "items": {"type": "string", "pattern": PORT_PROTO.pattern},
        "description": "PORT/PROTO entries that may be published or opened in the firewall.",
    },
}
LOG_BUCKET: dict[str, Any] = {
    "logBucket": {
        "type": "string", "default": "jamjam-logs",
        "description": "The R2 bucket the container logs are archived in.",
    },
}
LOG_ARCHIVE: dict[str, Any] = {
    **LOG_BUCKET,
    "logUploadMarker": {
        "type": "string", "default": "upload-logs-to-r2",
        "description": "Text in the `create` of the remote Command that installs the upload cron job.",
    },
    "productionStacks": {
        "type": "array", "items": {"type": "string"}, "default": ["production"],
        "description": "Stacks that must archive their logs.",
    },
    "stack": {
        "type": "string",
        "description": "The stack being checked. Leave unset under the Pulumi CLI (the pack reads "
                       "the running stack); the offline runner sets it.",
    },
}


def schema(properties: Mapping[str, Any]) -> PolicyConfigSchema:
    return PolicyConfigSchema(properties=dict(properties))


def defaults(config_schema: PolicyConfigSchema | None) -> dict[str, Any]:
    if config_schema is None:
        return {}
    return {key: spec["default"] for key, spec in config_schema.properties.items()
            if "default" in spec}


def settings(args: Any, config_schema: PolicyConfigSchema) -> dict[str, Any]:
    """The policy's config over its defaults (JSON numbers arrive as floats: made ints)."""
    merged = defaults(config_schema)
    merged.update(dict(args.get_config() or {}))
    merged.pop("enforcementLevel", None)
    for key, value in merged.items():
        if isinstance(value, float) and value.is_integer():
            merged[key] = int(value)
    return merged


def port_set(entries: Any, key: str = "publicPorts") -> set[tuple[int, str]]:
    """``["22/tcp", ...]`` as {(22, "tcp"), ...}; a malformed entry is a config error."""
    if not isinstance(entries, (list, tuple)):
        raise ValueError(f"policy config {key} must be a list like [\"22/tcp\", \"5000/udp\"], "
                         f"got {entries!r}")
    result = set()
    for entry in entries:
        match = PORT_PROTO.match(str(entry).strip().lower())
        if not match or not 0 < int(match.group(1)) < 65536:
            raise ValueError(f"policy config {key} entry {entry!r} is not PORT/PROTO; "
                             "write it like \"5000/udp\"")
        result.add((int(match.group(1)), match.group(2)))
    return result
