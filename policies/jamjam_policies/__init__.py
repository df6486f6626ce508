"""The jamjam policy pack's rules, importable without starting the analyzer.

Every module of this package whose name does not start with ``_`` (``config`` excepted) is a
rule module: it defines ``POLICIES``, a list of pulumi-policy policies, each with its own
enforcement level. :data:`ALL_POLICIES` is every rule module's ``POLICIES``, modules in name
order; adding a file here is all it takes to add rules (docs/policies.md, "Add a rule").

``ALL_POLICIES`` is what policies/__main__.py hands to ``PolicyPack``; tests and the offline
runner (tools/policy_check.py) call the same objects. Config: each configurable rule carries a
JSON schema with defaults (see config.py); :data:`CONFIG_DEFAULTS` lists them by policy name,
in the shape of a `--policy-pack-config` file.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from . import _compat
from .config import defaults

PACK_NAME = "jamjam-policies"

HELPER_MODULES = frozenset({"config"})
"""Public modules that hold shared code, not rules."""

# Rules that require secrets must see which values the engine sent as secrets; the analyzer
# only builds its arguments after the pack is imported, so installing here covers every path.
_compat.install()


def rule_modules() -> list[ModuleType]:
    """The rule modules, in name order (the order the pack lists its policies)."""
    modules = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in HELPER_MODULES:
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        policies = getattr(module, "POLICIES", None)
        if not isinstance(policies, list) or not policies:
            raise ImportError(
                f"policies/jamjam_policies/{info.name}.py is a rule module but defines no "
                "POLICIES list; add POLICIES = [...] with its rules, or name the file "
                f"_{info.name}.py if it only holds helpers.")
        modules.append(module)
    return modules


def _collect() -> list:
    found: dict[str, str] = {}
    policies = []
    for module in rule_modules():
        for policy in module.POLICIES:
            where = module.__name__.rsplit(".", 1)[1]
            if policy.name in found:
                raise ImportError(f"policy {policy.name!r} is defined in both "
                                  f"{found[policy.name]}.py and {where}.py; policy names must "
                                  "be unique.")
            found[policy.name] = where
            policies.append(policy)
    return policies


ALL_POLICIES = _collect()

CONFIG_DEFAULTS = {policy.name: defaults(policy.config_schema)
                   for policy in ALL_POLICIES if policy.config_schema is not None}

__all__ = ["ALL_POLICIES", "CONFIG_DEFAULTS", "PACK_NAME", "rule_modules"]
