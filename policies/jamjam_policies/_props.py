"""Reading resource properties the way the analyzer hands them over, failing closed on unknowns.

During `pulumi preview` the analyzer wraps ``args.props`` in pulumi-policy's unknown-checking
proxy: reading a value that is not known yet raises ``UnknownValueError``, and the analyzer turns
that exception into an *advisory* "can't run policy during preview" note. A mandatory rule that
let the exception escape would therefore pass silently. :func:`plain` copies the props into
ordinary dicts and lists with every unknown replaced by :data:`UNKNOWN`, so each rule decides
what an unknown means (for the security rules: a violation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy.proxy import UnknownValueError, _is_unknown


class _Unknown:
    """A value Pulumi cannot know until the update runs (an output of another resource)."""

    _instance: "_Unknown | None" = None

    def __new__(cls) -> "_Unknown":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNKNOWN"

    def __bool__(self) -> bool:
        # Truthy on purpose: `if value:` on an unknown flag must not read as "off".
        return True


UNKNOWN: Any = _Unknown()


def is_unknown(value: Any) -> bool:
    return value is UNKNOWN


def plain(value: Any) -> Any:
    """``value`` (proxied or not) as plain dicts/lists, unknowns replaced by :data:`UNKNOWN`."""
    if isinstance(value, str):
        return UNKNOWN if _is_unknown(value) else value
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            try:
                out[key] = plain(value[key])
            except UnknownValueError:
                out[key] = UNKNOWN
        return out
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        items = []
        for index in range(len(value)):
            try:
                items.append(plain(value[index]))
            except UnknownValueError:
                items.append(UNKNOWN)
        return items
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
