"""The one place the pack reaches into pulumi-policy's internals: keeping secret markers, and
looking through the unknown-checking proxy (:func:`unproxied`, :func:`is_unknown_sentinel`).

The engine sends a policy pack every secret still wrapped in Pulumi's secret signature (the
analyzer plugin marshals with ``KeepSecrets``), but pulumi-policy 1.21's ``Analyze`` and
``AnalyzeStack`` unwrap them before a rule sees the properties, so no rule can tell a Pulumi
secret from plaintext (pulumi/pulumi-policy#241, open). A rule that requires secrets needs that
difference, so the pack replaces the deserializer those two methods call with one that keeps it:

* a secret string arrives as :class:`SecretStr`, a ``str`` subclass: every other rule reads it
  as the plain string it was before (equality, regexes, ``in``);
* a secret list or map marks every string inside it, since all of it is secret;
* a secret whose value is unknown at preview stays the unknown sentinel, as a :class:`SecretStr`,
  so pulumi-policy's proxy still raises on it and ``_props.plain`` sees that it is secret.

Secret numbers and booleans lose the marker, as they did before: no rule asks about them.
:func:`install` is idempotent and refuses an SDK whose analyzer no longer calls the function
it replaces (an upgrade must look at this file again rather than silently see no secrets).
"""

from __future__ import annotations

from typing import Any

import pulumi_policy.policy as _policy_module
from pulumi_policy import deserialize as _deserialize
from pulumi_policy import proxy as _proxy

_ORIGINAL = _deserialize.deserialize_properties


class SecretStr(str):
    """A string that was a Pulumi secret on the wire."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "SecretStr([secret])"


def _mark(value: Any) -> Any:
    if isinstance(value, str):
        return SecretStr(value)
    if isinstance(value, list):
        return [_mark(item) for item in value]
    if isinstance(value, dict):
        return {key: _mark(item) for key, item in value.items()}
    return value


def _keep(value: Any) -> Any:
    if isinstance(value, list):
        return [_keep(item) for item in value]
    if isinstance(value, dict):
        if value.get(_deserialize.SPECIAL_SIG_KEY) == _deserialize.SPECIAL_SECRET_SIG:
            if "value" not in value:
                raise AssertionError("Invalid secret encountered when unmarshaling resource "
                                     "property")
            return _mark(_keep(value["value"]))
        if _deserialize.SPECIAL_SIG_KEY in value:
            # Assets and archives: the SDK's own handling (no secret can hide in one).
            return _deserialize._deserialize_property(value)
        return {key: _keep(item) for key, item in value.items()}
    return value


def unproxied(value: Any) -> Any:
    """``value`` without pulumi-policy's unknown-checking proxy around it: the proxies raise on
    reading an unknown, and the error would lose the secret marker their target still holds."""
    if isinstance(value, (_proxy._DictProxy, _proxy._ListProxy)):
        return value["__target"]
    return value


def is_unknown_sentinel(value: str) -> bool:
    """Whether a string is the engine's stand-in for a value unknown at preview."""
    return _proxy._is_unknown(value)


def deserialize_value(value: Any) -> Any:
    """One property value as the patched analyzer hands it to rules (secrets kept)."""
    return _keep(value)


def deserialize_properties(props: dict[str, Any], proxy_secrets: bool = False) -> Any:
    """pulumi-policy's ``deserialize_properties``, keeping secrets as :class:`SecretStr`.

    ``proxy_secrets`` (remediation's way of keeping secrets across a rewrite) goes to the SDK's
    own function unchanged: remediations must hand back what the SDK expects.
    """
    if proxy_secrets:
        return _ORIGINAL(props, True)
    return {key: _keep(value) for key, value in props.items()}


def install() -> None:
    current = getattr(_policy_module, "deserialize_properties", None)
    if current is deserialize_properties:
        return
    if current is not _ORIGINAL:
        raise RuntimeError(
            "pulumi_policy.policy no longer calls "
            "pulumi_policy.deserialize.deserialize_properties; "
            "policies/jamjam_policies/_compat.py must be updated for this pulumi-policy version, "
            "or rules cannot tell Pulumi secrets from plaintext.")
    _policy_module.deserialize_properties = deserialize_properties
