"""The two things a stack-config reader needs that the Pulumi SDK does not offer publicly:
every key the engine passed to the program (to refuse a mistyped one) and whether a value was
stored encrypted. On the deploy path, so it lives in the library; the offline tooling's own
compat module (tools/_pulumi_compat.py) re-exports these rather than spelling them again."""

from __future__ import annotations

import pulumi.runtime
from pulumi.runtime import config as _config


def is_config_secret(key: str) -> bool:
    """Whether ``namespace:key`` was stored encrypted (set with ``--secret``)."""
    return pulumi.runtime.is_config_secret(key)


def config_keys() -> set[str]:
    """Every ``namespace:key`` the engine passed to the program (the SDK has no public way to
    list them; a reader must list them to reject a mistyped key)."""
    return set(_config.CONFIG.get()) | set(_config.get_config_env())
