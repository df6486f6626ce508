"""The pack's settings: one JSON schema per configurable rule, with the defaults the team uses.

pulumi-policy configures each policy separately, so a config file is keyed by policy name:

    {"public-ports-allowlisted": {"publicPorts": ["22/tcp", "5000/udp", "443/tcp"]}}

The CLI validates the file against these schemas (`pulumi preview --policy-pack policies
--policy-pack-config <file>`); the offline runner does the same with :func:`validate_pack_config`.
The rules apply the defaults themselves too, so they behave the same when the engine sends no
config at all and when the offline runner calls them.
"""

from __future__ import annotations

import difflib
import json
import os
import re
from typing import Any, Iterable, Mapping

import pulumi
from jamjam_infra import rules
from pulumi_policy import PolicyConfigSchema

PORT_PROTO = re.compile(r"^(\d{1,5})/(tcp|udp)$")
LEVELS = ("advisory", "mandatory", "remediate", "disabled")
_PORT_LIST = {"type": "array", "uniqueItems": True,
              "items": {"type": "string", "pattern": PORT_PROTO.pattern}}


def setting(kind: str, default: Any, description: str, **schema: Any) -> dict[str, Any]:
    """One pack setting's JSON Schema: its type, default and description, and whatever else
    constrains it (items, pattern, ...)."""
    return {"type": kind, "default": default, "description": description, **schema}


def texts(default: list[str], description: str, **item: Any) -> dict[str, Any]:
    """A setting that is a list of strings (``item``: what each must be)."""
    return setting("array", default, description, items={"type": "string", **item})


class PolicyConfigError(ValueError):
    """A --policy-pack-config mistake: one line naming the key, the problem and the fix."""


SIGNALING_PORT: dict[str, Any] = {
    "signalingPort": {
        "type": "integer", "minimum": 1, "maximum": 65535, "default": 8080,
        "description": "The signaling server's port: reachable only through the Cloudflare Tunnel.",
    },
}
STACK: dict[str, Any] = {
    "stack": {
        "type": "string",
        "description": "The stack being checked. Leave unset under the Pulumi CLI (the pack reads "
                       "the running stack); the offline runner sets it.",
    },
}
PUBLIC_PORTS: dict[str, Any] = {
    "publicPorts": {
        **_PORT_LIST, "default": ["22/tcp", "5000/udp"],
        "description": "PORT/PROTO entries that may be published or opened in the firewall, on "
                       "every stack stackPublicPorts does not name.",
    },
    "stackPublicPorts": {
        "type": "object", "default": {}, "additionalProperties": _PORT_LIST,
        "description": "Per-stack allowlists that replace publicPorts on that stack, e.g. "
                       "{\"test\": [\"22/tcp\"]}.",
    },
    **STACK,
}
DATABASE_PORTS: dict[str, Any] = {
    "databasePorts": setting(
        "array", list(rules.DATABASE_PORTS),
        "Ports of databases and caches (PostgreSQL, MySQL/MariaDB, Redis, MongoDB), never "
        "published or opened, on either side of a mapping.",
        uniqueItems=True, items={"type": "integer", "minimum": 1, "maximum": 65535}),
}
SECRET_ENV: dict[str, Any] = {
    "secretNameMarkers": texts(
        list(rules.SECRET_NAME_MARKERS),
        "An env var holds a secret when a part of its name (split on _ - .) contains one of "
        f"these; a marker of {rules.WHOLE_PART_MAX} letters or fewer (KEY, PASS) must be a "
        "whole part (API_KEY, DB_PASS; not KEYCLOAK_URL, MONKEY_COUNT). Names ending in "
        f"{' or '.join(sorted(rules.NOT_THE_SECRET))} (a path to the secret) are exempt.",
        minLength=1),
    "plaintextNames": texts(
        [], "Env var names exempt although their name says secret (e.g. a public key id), "
        "each a deliberate decision."),
}
BACKUPS: dict[str, Any] = {
    "databaseImages": texts(
        list(rules.DATABASE_IMAGES),
        "Image names (the last path part, before tag or digest, starting with one of these) "
        "that run a database.", minLength=1),
    "dataDirectories": texts(
        ["/var/lib/postgresql", "/var/lib/mysql", "/data/db", "/bitnami/postgresql",
         "/bitnami/mysql", "/bitnami/mariadb", "/bitnami/mongodb"],
        "Where database images keep their data: a volume mounted here marks a database "
        "container even when its image is only an id.", pattern="^/"),
    "backupLabel": setting("string", rules.backup_label(),
                           "The docker label on a database container naming its backup job."),
}
LOG_BUCKET: dict[str, Any] = {
    "logBucket": setting("string", "jamjam-logs",
                         "The R2 bucket the container logs are archived in."),
}
LOG_ARCHIVE: dict[str, Any] = {
    **LOG_BUCKET,
    "logUploadMarker": setting(
        "string", "upload-logs-to-r2",
        "Text in the `create` of the remote Command that installs the upload cron job."),
    "productionStacks": texts(["production"], "Stacks that must archive their logs."),
    "archiveProjects": texts(
        ["jamjam"], "Projects that keep a log archive (jamjam's SPEC.md requires one); other "
        "projects' stacks are not checked for it."),
    **STACK,
}


def schema(properties: Mapping[str, Any]) -> PolicyConfigSchema:
    return PolicyConfigSchema(properties=dict(properties))


def defaults(config_schema: PolicyConfigSchema | None) -> dict[str, Any]:
    if config_schema is None:
        return {}
    return {key: spec["default"] for key, spec in config_schema.properties.items()
            if "default" in spec}


def _ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {key: _ints(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_ints(item) for item in value]
    return value


def settings(args: Any, config_schema: PolicyConfigSchema) -> dict[str, Any]:
    """The policy's config over its defaults (JSON numbers arrive as floats: made ints)."""
    merged = defaults(config_schema)
    merged.update(dict(args.get_config() or {}))
    merged.pop("enforcementLevel", None)
    return {key: _ints(value) for key, value in merged.items()}


def stack_name(config: Mapping[str, Any]) -> str | None:
    """The stack being checked: the policy's ``stack`` config (the offline runner's), else the
    Pulumi runtime's (the analyzer configures it from PULUMI_STACK), else that variable."""
    if config.get("stack"):
        return str(config["stack"])
    try:
        name = pulumi.get_stack()
    except Exception:  # noqa: BLE001 (an unconfigured runtime raises differently across SDKs)
        name = None
    return name or os.environ.get("PULUMI_STACK") or None


def public_ports(config: Mapping[str, Any]) -> tuple[set[tuple[int, str]], str]:
    """(the allowlist, where it comes from) for the stack being checked."""
    overrides = config.get("stackPublicPorts") or {}
    if not isinstance(overrides, Mapping):
        raise PolicyConfigError(
            "policy config public-ports-allowlisted.stackPublicPorts must map stack names to "
            "lists, e.g. {\"test\": [\"22/tcp\"]}")
    stack = stack_name(config)
    if stack is not None and stack in overrides:
        return port_set(overrides[stack], f"stackPublicPorts.{stack}"), \
            f"stackPublicPorts.{stack}"
    return port_set(config["publicPorts"]), "publicPorts"


def port_set(entries: Any, key: str = "publicPorts") -> set[tuple[int, str]]:
    """``["22/tcp", ...]`` as {(22, "tcp"), ...}; a malformed entry is a config error."""
    if not isinstance(entries, (list, tuple)):
        raise PolicyConfigError(f"policy config {key} must be a list like [\"22/tcp\", "
                                f"\"5000/udp\"], got {entries!r}")
    result = set()
    for entry in entries:
        match = PORT_PROTO.match(str(entry).strip().lower())
        if not match or not 0 < int(match.group(1)) < 65536:
            raise PolicyConfigError(f"policy config {key} entry {entry!r} is not PORT/PROTO; "
                                    "write it like \"5000/udp\"")
        result.add((int(match.group(1)), match.group(2)))
    return result


def _closest(word: str, choices: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {match[0]!r}?" if match else ""


def _where(path: Iterable[Any]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def validate_pack_config(config: Any, policies: Iterable[Any]) -> None:
    """Check a --policy-pack-config mapping the way the CLI does before it runs the pack:
    every key names a policy (or is ``all``), levels are known, settings fit the schema.

    Raises :class:`PolicyConfigError` for the first mistake, before any rule has run.
    """
    import jsonschema  # only the offline runner validates; the CLI does it for the pack

    by_name = {policy.name: policy for policy in policies}
    if not isinstance(config, Mapping):
        raise PolicyConfigError("policy config must be a JSON object keyed by policy name, e.g. "
                                "{\"public-ports-allowlisted\": {\"publicPorts\": [\"22/tcp\"]}}")
    for key, entry in config.items():
        if key != "all" and key not in by_name:
            raise PolicyConfigError(f"policy config key {key!r} names no policy of this pack"
                                    f"{_closest(key, by_name)} (docs/policies.md lists them)")
        if not isinstance(entry, (str, Mapping)):
            raise PolicyConfigError(f"policy config {key} must be a level (\"advisory\") or an "
                                    f"object of settings, got {entry!r}")
        level = entry if isinstance(entry, str) else entry.get("enforcementLevel")
        if level is not None and level not in LEVELS:
            raise PolicyConfigError(f"policy config {key}: enforcement level {level!r} is not one "
                                    f"of {', '.join(LEVELS)}")
        if isinstance(entry, str):
            continue
        if key == "all":
            extra = sorted(set(entry) - {"enforcementLevel"})
            if extra:
                raise PolicyConfigError(f"policy config all.{extra[0]}: \"all\" takes only "
                                        "enforcementLevel; put settings under the policy's name")
            continue
        policy_schema = by_name[key].config_schema
        properties = dict(policy_schema.properties) if policy_schema else {}
        for setting in entry:
            if setting != "enforcementLevel" and setting not in properties:
                known = ", ".join(properties) or "none"
                raise PolicyConfigError(f"policy config {key}.{setting} is not a setting of "
                                        f"this policy{_closest(setting, properties)} "
                                        f"(settings: {known})")
        document = {"type": "object", "properties": properties}
        error = jsonschema.exceptions.best_match(
            jsonschema.Draft7Validator(document).iter_errors(
                {k: v for k, v in entry.items() if k != "enforcementLevel"}))
        if error is not None:
            setting = error.absolute_path[0] if error.absolute_path else None
            hint = ""
            if setting in properties and "default" in properties[setting]:
                hint = f"; the default is {json.dumps(properties[setting]['default'])}"
            raise PolicyConfigError(f"policy config {key}{_where(error.absolute_path)}: "
                                    f"{error.message}{hint}")
