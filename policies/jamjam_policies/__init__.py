"""The jamjam policy pack's rules, importable without starting the analyzer.

``ALL_POLICIES`` is what policies/__main__.py hands to ``PolicyPack``; tests and the offline
runner (tools/policy_check.py) call the same objects. Config: each configurable rule carries a
JSON schema with defaults (see config.py); :data:`CONFIG_DEFAULTS` lists them by policy name,
in the shape of a `--policy-pack-config` file.
"""

from __future__ import annotations

from . import cloudflare, containers, hardening, ports, stack
from .config import defaults

PACK_NAME = "jamjam-policies"

ALL_POLICIES = [*ports.POLICIES, *containers.POLICIES, *hardening.POLICIES, *cloudflare.POLICIES,
                *stack.POLICIES]

CONFIG_DEFAULTS = {policy.name: defaults(policy.config_schema)
                   for policy in ALL_POLICIES if policy.config_schema is not None}

__all__ = ["ALL_POLICIES", "CONFIG_DEFAULTS", "PACK_NAME"]
