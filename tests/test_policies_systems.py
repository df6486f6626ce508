"""A compliant baseline per system: jamjam and the four siblings of ../shared/SYSTEMS.md pass every
rule of the pack (mandatory and advisory), run as `tools.policy_check` runs it, with the pack
config each project uses. The fixtures are built from the systems' documents in
tests/policy_fixtures.py; the example programs render their own stacks in their own tests."""

from __future__ import annotations

import pytest

from tests.policy_fixtures import SYSTEMS, offline_resources
from jamjam_policies import ALL_POLICIES  # noqa: E402
from jamjam_policies.config import validate_pack_config  # noqa: E402
from tools import policy_check  # noqa: E402


@pytest.mark.parametrize("system", sorted(SYSTEMS))
def test_each_system_passes_every_rule(system):
    resources, config = SYSTEMS[system]
    validate_pack_config(config, ALL_POLICIES)
    found = policy_check.check("production", offline_resources(resources, project=system), config)
    assert found == [], policy_check.format_report(found)


@pytest.mark.parametrize("system", sorted(set(SYSTEMS) - {"jamjam"}))
def test_the_siblings_publish_nothing_and_open_only_ssh(system):
    """SYSTEMS.md: public traffic arrives through the tunnel only; the firewall opens 22/tcp.
    So even an allowlist of SSH alone passes them."""
    resources, config = SYSTEMS[system]
    only_ssh = {**config, "public-ports-allowlisted": {"publicPorts": ["22/tcp"]}}
    assert policy_check.check("production", offline_resources(resources, project=system), only_ssh) == []
