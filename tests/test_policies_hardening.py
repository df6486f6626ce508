"""The hardening rules (policies/jamjam_policies/hardening.py): a compliant baseline, then each way
to break each rule, run the way the analyzer hands resources over (tests/policy_fixtures.py).

The baselines are tests/policy_fixtures.py's containers, which carry what the component library
declares for every container (capabilities drop ALL, no-new-privileges, memory, and a
`docker update --pids-limit` command per container).
"""

from __future__ import annotations

import json
import re

import pytest
from pulumi_policy import EnforcementLevel

from tests.policy_fixtures import (
    BASELINES, CLOUDFLARED, COMMAND, CONTAINER, ECHO, SIGNALING, UNKNOWN, changed, pids_limit,
    policy, stack_violations, violations,
)
from jamjam_policies import CONFIG_DEFAULTS  # noqa: E402 (path set by policy_fixtures)
from jamjam_policies.hardening import POLICIES, pids_limits  # noqa: E402

CAPS = "container-capabilities-dropped"
ADDS = "container-capability-adds-allowlisted"
NNP = "container-no-new-privileges"
MEMORY = "container-memory-limited"
PIDS = "container-pids-limited"
READ_ONLY = "container-read-only-rootfs"
NON_ROOT = "container-non-root-user"

# (policy, resource type, inputs, what the message must say)
BREAKS = [
    (CAPS, CONTAINER, changed(ECHO, "capabilities"), "capabilities.drops unset"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities", {}), "capabilities.drops unset"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities.drops", []), "capabilities.drops unset"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities.drops", ["NET_RAW", "SYS_ADMIN"]),
     "['NET_RAW', 'SYS_ADMIN']"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities.drops", ["ALLOW"]), "['ALLOW']"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities.drops", ["NET RAW"]), "['NET RAW']"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities", UNKNOWN), "unknown at preview"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities.drops", UNKNOWN), "unknown at preview"),
    (CAPS, CONTAINER, changed(ECHO, "capabilities.drops", [UNKNOWN]), "unknown at preview"),
    (ADDS, CONTAINER, changed(ECHO, "capabilities.adds", ["NET_ADMIN"]), "adds capability NET_ADMIN"),
    (ADDS, CONTAINER, changed(ECHO, "capabilities.adds", ["cap_sys_admin"]), "adds capability SYS_ADMIN"),
    (ADDS, CONTAINER, changed(ECHO, "capabilities.adds", ["ALL"]), "adds ALL capabilities back"),
    (ADDS, CONTAINER, changed(ECHO, "capabilities.adds", ["NET RAW"]), "with an invalid name"),
    (ADDS, CONTAINER, changed(ECHO, "capabilities.adds", UNKNOWN), "unknown at preview"),
    (ADDS, CONTAINER, changed(ECHO, "capabilities.adds", ["CHOWN", UNKNOWN]), "unknown at preview"),
    (ADDS, CONTAINER, changed(ECHO, "capabilities", UNKNOWN), "unknown at preview"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts"), "securityOpts unset"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts", []), "securityOpts unset"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts", ["apparmor=docker-default"]), "apparmor"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts", ["no-new-privileges:false"]), ":false"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts", ["no-new-privileges", "no-new-privileges=false"]),
     "=false"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts", ["no-new-privileges-please"]), "please"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts", UNKNOWN), "unknown at preview"),
    (NNP, CONTAINER, changed(ECHO, "securityOpts", [UNKNOWN]), "unknown at preview"),
    (MEMORY, CONTAINER, changed(ECHO, "memory"), "memory unset"),
    (MEMORY, CONTAINER, changed(ECHO, "memory", 0), "memory 0"),
    (MEMORY, CONTAINER, changed(ECHO, "memory", 5), "under Docker's minimum of 6 MB"),
    (MEMORY, CONTAINER, changed(ECHO, "memory", -1), "memory -1"),
    (MEMORY, CONTAINER, changed(ECHO, "memory", "lots"), "'lots'"),
    (MEMORY, CONTAINER, changed(ECHO, "memory", UNKNOWN), "unknown at preview"),
    (READ_ONLY, CONTAINER, changed(ECHO, "readOnly"), "readOnly unset"),
    (READ_ONLY, CONTAINER, changed(ECHO, "readOnly", False), "readOnly False"),
    (READ_ONLY, CONTAINER, changed(ECHO, "readOnly", UNKNOWN), "unknown at preview"),
    (NON_ROOT, CONTAINER, changed(ECHO, "user"), "sets no user"),
    (NON_ROOT, CONTAINER, changed(ECHO, "user", ""), "sets no user"),
    (NON_ROOT, CONTAINER, changed(ECHO, "user", "root"), "'root', which is root"),
    (NON_ROOT, CONTAINER, changed(ECHO, "user", "0"), "'0', which is root"),
    (NON_ROOT, CONTAINER, changed(ECHO, "user", "0:0"), "'0:0', which is root"),
    (NON_ROOT, CONTAINER, changed(ECHO, "user", "root:staff"), "'root:staff'"),
    (NON_ROOT, CONTAINER, changed(ECHO, "user", UNKNOWN), "unknown at preview"),
]


def _case_id(case) -> str:
    return f"{case[0]}-{case[3]}"


@pytest.mark.parametrize("name", sorted(n for n, (t, _) in BASELINES.items() if t == CONTAINER))
@pytest.mark.parametrize("rule", [p.name for p in POLICIES if p.name != PIDS])
def test_the_hardened_baseline_passes(rule, name):
    type_, inputs = BASELINES[name]
    assert violations(rule, type_, inputs, name) == []


@pytest.mark.parametrize("policy_name,type_,inputs,expected", BREAKS, ids=map(_case_id, BREAKS))
def test_each_way_to_break_a_hardening_rule_is_reported(policy_name, type_, inputs, expected):
    found = violations(policy_name, type_, inputs, name="broken")
    assert found, f"{policy_name} let this through: {inputs}"
    assert expected in "\n".join(found)
    for message in found:
        assert f"{type_} 'broken'" in message, "the message names the resource (type and name)"
        assert message.rstrip().endswith("."), "the message is whole sentences"


def test_other_resources_are_not_judged():
    assert violations(CAPS, COMMAND, BASELINES["vps-firewall"][1]) == []
    assert violations(ADDS, COMMAND, BASELINES["vps-firewall"][1]) == []


# --- the capability allowlist ---------------------------------------------------------------

def test_the_allowlist_is_empty_by_default_and_comes_from_config():
    assert CONFIG_DEFAULTS[ADDS] == {"allowedCapabilities": []}
    adds = changed(ECHO, "capabilities.adds", ["NET_BIND_SERVICE"])
    assert violations(ADDS, CONTAINER, adds)
    for spelling in (["NET_BIND_SERVICE"], ["cap_net_bind_service"]):
        assert violations(ADDS, CONTAINER, adds, config={"allowedCapabilities": spelling}) == []
    two = changed(ECHO, "capabilities.adds", ["NET_BIND_SERVICE", "CHOWN"])
    [message] = violations(ADDS, CONTAINER, two, config={"allowedCapabilities": ["NET_BIND_SERVICE"]})
    assert "CHOWN" in message and "(NET_BIND_SERVICE)" in message


@pytest.mark.parametrize("entry", ["ALL", "cap_all", "NET BIND", ""])
def test_a_bad_allowlist_entry_names_the_key(entry):
    with pytest.raises(ValueError, match="allowedCapabilities entry .* is not a single capability"):
        violations(ADDS, CONTAINER, ECHO, config={"allowedCapabilities": [entry]})


def test_an_allowlist_that_is_not_a_list_names_the_key():
    with pytest.raises(ValueError, match="allowedCapabilities must be a list"):
        violations(ADDS, CONTAINER, ECHO, config={"allowedCapabilities": "CHOWN"})


def test_the_cli_refuses_a_malformed_allowlist_entry_before_the_rule_runs():
    """The CLI validates the pack config against this schema; its pattern is plain enough for
    any regex dialect (Go's RE2 included), and it refuses what allowlist() refuses, but ALL."""
    schema = policy(ADDS).config_schema.properties["allowedCapabilities"]
    assert schema["type"] == "array" and schema["default"] == []
    assert json.loads(json.dumps(schema)) == schema
    pattern = re.compile(schema["items"]["pattern"])
    for good in ("NET_BIND_SERVICE", "cap_chown", "SYS_PTRACE"):
        assert pattern.search(good), good
    for bad in ("NET BIND", "", "CHOWN,SETUID", "-ALL"):
        assert not pattern.search(bad), bad


# --- the pids limit (a stack rule: the limit lives on a command next to the container) ---------

CONTAINERS = [(CONTAINER, "jamjam-echo", ECHO), (CONTAINER, "jamjam-signaling", SIGNALING),
              (CONTAINER, "jamjam-cloudflared", CLOUDFLARED)]
LIMITS = [(COMMAND, f"{name}-pids-limit", pids_limit(name)) for _, name, _ in CONTAINERS]


def _pids(resources) -> list[tuple[str, str | None]]:
    return stack_violations(PIDS, resources)


def test_every_container_with_its_pids_command_passes():
    assert _pids(CONTAINERS + LIMITS) == []


@pytest.mark.parametrize("create", [
    "sudo -n docker update --pids-limit=512 jamjam-echo",
    "docker container update --memory 512m --pids-limit 100 jamjam-echo",
    "sudo -n /usr/bin/docker update --pids-limit 64 jamjam-signaling jamjam-echo",
    "set -e; sudo -n docker update --pids-limit 64 jamjam-echo && echo done",
])
def test_the_accepted_spellings_of_the_contract(create):
    resources = [CONTAINERS[0], (COMMAND, "limit", {"create": create})]
    assert _pids(resources) == []


def _broken(create_by_container: dict[str, object]) -> list:
    commands = [(COMMAND, f"{name}-pids-limit", {"create": create})
                for name, create in create_by_container.items()]
    return [CONTAINERS[0], *commands]


# (policy, resources, what the message must say, config): each breaks jamjam-echo's limit.
STACK_BREAKS = [
    (PIDS, [CONTAINERS[0]], "has no pids limit", None),
    (PIDS, _broken({"jamjam-signaling": "sudo -n docker update --pids-limit 512 jamjam-signaling"}),
     "has no pids limit", None),
    (PIDS, _broken({"x": "sudo -n docker update --pids-limit 0 jamjam-echo"}), "--pids-limit 0", None),
    (PIDS, _broken({"x": "sudo -n docker update --pids-limit -1 jamjam-echo"}), "--pids-limit -1", None),
    (PIDS, _broken({"x": "sudo -n docker update --pids-limit $LIMIT jamjam-echo"}),
     "without a literal --pids-limit", None),
    (PIDS, _broken({"x": "sudo -n docker update --memory 512m jamjam-echo"}),
     "without a literal --pids-limit", None),
    (PIDS, _broken({"x": "echo docker --pids-limit 512 jamjam-echo"}), "has no pids limit", None),
    (PIDS, _broken({"x": "echo docker update --pids-limit 512 jamjam-echo"}), "has no pids limit", None),
    (PIDS, _broken({"x": "sudo -n docker run --pids-limit 512 jamjam-echo"}), "has no pids limit", None),
    (PIDS, _broken({"x": "# sudo -n docker update --pids-limit 512 jamjam-echo"}), "has no pids limit",
     None),
    (PIDS, _broken({"x": UNKNOWN}), "unknown at preview may set it", None),
    (PIDS, [(CONTAINER, "jamjam-echo", changed(ECHO, "name", UNKNOWN)), *LIMITS],
     "name unknown at preview", None),
    (PIDS, [(CONTAINER, "jamjam-echo", changed(ECHO, "name")), *LIMITS], "no name (Docker picks one)",
     None),
]


@pytest.mark.parametrize("policy_name,resources,expected,config", STACK_BREAKS,
                         ids=[f"{c[0]}-{c[2]}" for c in STACK_BREAKS])
def test_each_way_to_break_the_pids_limit_is_reported(policy_name, resources, expected, config):
    found = stack_violations(policy_name, resources, config)
    assert found, resources
    message, urn = found[0]
    assert expected in message
    assert f"{CONTAINER} 'jamjam-echo'" in message and urn.endswith("::jamjam-echo")
    assert message.rstrip().endswith(".")


def test_only_the_container_without_a_limit_is_reported():
    found = _pids(CONTAINERS + LIMITS[1:])
    assert [urn.rsplit("::", 1)[1] for _, urn in found] == ["jamjam-echo"]


def test_pids_limits_reads_each_update_in_a_command():
    assert pids_limits("sudo -n docker update --pids-limit 5 a b && docker update --cpus 1 c") == \
        {"a": 5, "b": 5, "c": None}
    assert pids_limits("docker update 'unbalanced") == {}


def test_levels():
    levels = {p.name: p.enforcement_level for p in POLICIES}
    assert levels == {CAPS: EnforcementLevel.MANDATORY, ADDS: EnforcementLevel.MANDATORY,
                      NNP: EnforcementLevel.MANDATORY, MEMORY: EnforcementLevel.MANDATORY,
                      PIDS: EnforcementLevel.MANDATORY, READ_ONLY: EnforcementLevel.ADVISORY,
                      NON_ROOT: EnforcementLevel.ADVISORY}
