"""Reading resource properties the way the analyzer hands them over, failing closed on unknowns.

During `pulumi preview` the analyzer wraps ``args.props`` in pulumi-policy's unknown-checking
proxy: reading a value that is not known yet raises ``UnknownValueError``, and the analyzer turns
that exception into an *advisory* "can't run policy during preview" note. A mandatory rule that
let the exception escape would therefore pass silently. :func:`plain` copies the props into
ordinary dicts and lists with every unknown replaced by :data:`UNKNOWN`, so each rule decides
what an unknown means (for the security rules: a violation).

Secrets: with :mod:`._compat` installed, a string that was a Pulumi secret stays a
:class:`SecretStr` (still a ``str``), and an unknown secret becomes :data:`UNKNOWN_SECRET`
(still unknown); :func:`is_secret` tells them apart from plaintext.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ._compat import SecretStr, is_unknown_sentinel, unproxied


class _Unknown:
    """A value Pulumi cannot know until the update runs (an output of another resource)."""

    def __init__(self, secret: bool) -> None:
        self.secret = secret

    def __repr__(self) -> str:
        return "UNKNOWN_SECRET" if self.secret else "UNKNOWN"

    def __bool__(self) -> bool:
        # Truthy on purpose: `if value:` on an unknown flag must not read as "off".
        return True


UNKNOWN: Any = _Unknown(secret=False)
UNKNOWN_SECRET: Any = _Unknown(secret=True)
"""Unknown at preview, but known to be a Pulumi secret (a generated password, typically)."""


def is_unknown(value: Any) -> bool:
    return isinstance(value, _Unknown)


def is_secret(value: Any) -> bool:
    """Whether the engine sent ``value`` as a Pulumi secret (known or not)."""
    return isinstance(value, SecretStr) or value is UNKNOWN_SECRET


def plain(value: Any) -> Any:
    """``value`` (proxied or not) as plain dicts/lists, unknowns replaced by :data:`UNKNOWN`
    (:data:`UNKNOWN_SECRET` when the unknown was sent as a secret)."""
    value = unproxied(value)
    if isinstance(value, str):
        if is_unknown_sentinel(value):
            return UNKNOWN_SECRET if isinstance(value, SecretStr) else UNKNOWN
        return value
    if isinstance(value, Mapping):
        return {key: plain(value[key]) for key in value}
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [plain(value[index]) for index in range(len(value))]
    return value


def props_of(args: Any) -> dict[str, Any]:
    """The resource's properties (ResourceValidationArgs or PolicyResource) as plain values."""
    return plain(args.props)


def label(args: Any) -> str:
    """How a message names a resource: its type token and its Pulumi name."""
    return f"{args.resource_type} '{args.name}'"


def as_int(value: Any) -> Any:
    """A port or count from the wire (numbers arrive as floats; strings are allowed too).

    Returns an int, :data:`UNKNOWN`, or None when absent or not a whole number.
    """
    if is_unknown(value):
        return UNKNOWN
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def strings(value: Any) -> list[Any]:
    """A list-of-strings property: [] when absent, [UNKNOWN] when the whole list is unknown."""
    if value is None:
        return []
    if is_unknown(value):
        return [UNKNOWN]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return list(value)
    return [UNKNOWN]
