"""Env vars whose names say they hold a secret carry a Pulumi secret, never plaintext.

A plaintext value sits unencrypted in the stack's state, in `pulumi preview --diff` and in the
plan; a Pulumi secret is encrypted in state and shown as ``[secret]``. The engine sends secrets to
the pack marked as such (_compat.py keeps the marker), so this rule can tell the two apart:

* ``docker:index/container:Container`` ``envs`` (``NAME=value`` entries);
* ``command:remote:Command`` / ``command:local:Command`` ``environment`` (a name -> value map).

Which names hold a secret is the library's rule, :func:`jamjam_infra.rules.says_secret`, the
one ContainerSpec enforces: a part of the name (split on ``_``, ``-``, ``.``) contains
PASSWORD, PASSWD, SECRET, TOKEN, ..., or is KEY, PASS or DSN (``DB_PASSWD``, ``API_KEY``; not
``KEYCLOAK_URL``); ``*_FILE`` and ``*_PATH`` names (where a secret is) are exempt. Config
``secretNameMarkers`` replaces the markers, ``plaintextNames`` exempts names. A known value
that is a URL with a password in it (``postgres://app:pw@db/app``) must be a secret whatever
its name (:func:`jamjam_infra.rules.carries_credentials`). Empty values hide nothing and pass.
Unknown at preview: an entry known to be a secret passes (a generated password before it
exists); any other unknown entry, or a whole unknown list, fails, since its name may say secret.
"""

from __future__ import annotations

from typing import Any

from jamjam_infra.rules import carries_credentials, says_secret
from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, \
    ResourceValidationPolicy

from ._exposure import CONTAINER, REMOTE_COMMAND
from ._props import is_secret, is_unknown, label, props_of
from .config import SECRET_ENV, schema, settings

LOCAL_COMMAND = "command:local:Command"
_SCHEMA = schema(SECRET_ENV)


_FIX = ("Pass it as a Pulumi secret (pulumi.Output.secret(...), a `pulumi config set --secret` "
        "value or a pulumi-random password's result), so it is encrypted in state and hidden in "
        "previews.")


def _check_entries(name: str, field: str, entries: list[tuple[Any, Any, Any]],
                   config: dict[str, Any], report: ReportViolation) -> None:
    """``entries``: (env name or UNKNOWN, value or UNKNOWN, the object whose secretness counts)."""
    exempt = set(config["plaintextNames"])
    for env_name, value, carrier in entries:
        if is_secret(carrier):
            continue
        if is_unknown(env_name):
            report(f"{name} has an entry in {field} that is unknown at preview and not a Pulumi "
                   f"secret, so it may hold a password in plaintext. Make the value a Pulumi "
                   f"secret, or build the entry from known values. {_FIX}", None)
            continue
        if not isinstance(env_name, str) or env_name in exempt:
            continue
        if not says_secret(env_name, config["secretNameMarkers"]):
            if isinstance(value, str) and not is_unknown(value) and carries_credentials(value):
                report(f"{name} sets {env_name} in {field} to a URL with a password in it, in "
                       f"plaintext. {_FIX}", None)
            continue
        if is_unknown(value):
            report(f"{name} sets {env_name} in {field} to a value unknown at preview that is not "
                   f"a Pulumi secret. {_FIX}", None)
        elif value not in (None, ""):
            report(f"{name} sets {env_name} in {field} in plaintext, although its name says it "
                   f"holds a secret. {_FIX}", None)


def _env_secrets_are_secrets(args: ResourceValidationArgs, report: ReportViolation) -> None:
    if args.resource_type == CONTAINER:
        field = "envs"
    elif args.resource_type in (REMOTE_COMMAND, LOCAL_COMMAND):
        field = "environment"
    else:
        return
    config = settings(args, _SCHEMA)
    value = props_of(args).get(field)
    if value is None or is_secret(value):
        return
    if is_unknown(value) or not isinstance(value, (list, dict)):
        report(f"{label(args)} has {field} unknown at preview and not a Pulumi secret, so it may "
               f"hold a password in plaintext. {_FIX}", None)
        return
    entries: list[tuple[Any, Any, Any]] = []
    if isinstance(value, dict):
        entries = [(key, item, item) for key, item in value.items()]
    else:
        for entry in value:
            if isinstance(entry, str) and not is_unknown(entry):
                env_name, sep, env_value = entry.partition("=")
                if sep:
                    entries.append((env_name, env_value, entry))
            else:
                entries.append((entry, entry, entry))
    _check_entries(label(args), field, entries, config, report)


POLICIES = [
    ResourceValidationPolicy(
        name="env-secrets-are-pulumi-secrets",
        description=("Env vars whose names say PASSWORD, SECRET, TOKEN, KEY, ... (container "
                     "envs, command environment), or whose values are URLs with a password, "
                     "hold Pulumi secrets, never plaintext; an entry unknown at preview must be "
                     "known to be a secret."),
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=_SCHEMA,
        validate=_env_secrets_are_secrets,
    ),
]
