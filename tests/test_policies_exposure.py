"""Rules about what reaches the internet, generalised beyond jamjam: the ports tunnel routes
reach, database and cache ports, and the per-stack allowlist of public ports.

The stacks are the compliant system baselines of tests/policy_fixtures.py (SYSTEMS.md's four
siblings and jamjam); each case breaks one resource of one of them.
"""

from __future__ import annotations

import pytest

from tests.policy_fixtures import (
    CONTAINER, COMMAND, ECHO, FIREWALL, JAMJAM, R_STREAM, SHIOJIRI, THINKRING, TUNNEL_CONFIG,
    UNKNOWN, WORKSPACE_BACKEND, assert_break, assert_stack_break, changed, firewall, inputs_of,
    replaced, stack_violations, violations,
)
from jamjam_policies.config import PolicyConfigError  # noqa: E402
from jamjam_policies.ports import origin_port  # noqa: E402

TRACKER = inputs_of(WORKSPACE_BACKEND, "work-tracker")
TRACKER_DB = inputs_of(WORKSPACE_BACKEND, "db")
RSTREAM = inputs_of(R_STREAM, "rstream-server")
BACKEND = inputs_of(THINKRING, "backend")
FRONTEND = inputs_of(THINKRING, "frontend")
TUNNEL = "tunnel-origin-ports-never-public"


def _published(base, *ports):
    return changed(base, "ports", [dict(p) for p in ports])


# --- tunnel-origin-ports-never-public: every tunnel origin port, every way to expose it --------

STACK_BREAKS = [
    # (policy, stack, expected text, config, the resource reported)
    (TUNNEL, replaced(WORKSPACE_BACKEND, "work-tracker", _published(TRACKER, {"internal": 8000, "external": 18000})),
     "port 8000, which the tunnel route tracker.example.com -> http://work-tracker:8000 reaches", None,
     "work-tracker"),
    (TUNNEL, replaced(WORKSPACE_BACKEND, "twitch-bot", _published(
        inputs_of(WORKSPACE_BACKEND, "twitch-bot"), {"internal": 9000, "external": 8000})),
     "host port 8000/tcp", None, "twitch-bot"),
    (TUNNEL, replaced(R_STREAM, "rstream-server", _published(RSTREAM, {"internal": 3000, "external": 3000, "protocol": "udp"})),
     "port 3000", None, "rstream-server"),
    (TUNNEL, replaced(R_STREAM, "rstream-server", _published(RSTREAM, {"internal": 3000})),
     "random host port", None, "rstream-server"),
    (TUNNEL, replaced(THINKRING, "backend", _published(BACKEND, {"internal": 8000, "external": 8000})),
     "thinkring.example.com/api/* -> http://thinkring-backend:8000", None, "backend"),
    (TUNNEL, replaced(THINKRING, "frontend", changed(FRONTEND, "networkMode", "host")),
     "host network", None, "frontend"),
    (TUNNEL, replaced(THINKRING, "frontend", changed(FRONTEND, "publishAllPorts", True)),
     "publishAllPorts", None, "frontend"),
    (TUNNEL, replaced(SHIOJIRI, "vps-firewall", firewall("3000/tcp")),
     "opens port 3000, which the tunnel route api.shiojiri-rainbow.app", None, "vps-firewall"),
    (TUNNEL, replaced(SHIOJIRI, "vps-firewall", changed(FIREWALL, "stdin", "#!/bin/sh\nufw allow 3000\n")),
     "`ufw allow 3000`", None, "vps-firewall"),
    (TUNNEL, replaced(SHIOJIRI, "shiojiri-api-migrate", {
        "create": "docker run -d -p 3000:3000 ghcr.io/example/shiojiri-api:3.1.0"}),
     "host port 3000", None, "shiojiri-api-migrate"),
    (TUNNEL, replaced(JAMJAM, "jamjam-signaling", _published(inputs_of(JAMJAM, "jamjam-signaling"),
                                                             {"internal": 8080, "external": 8080})),
     "signaling-jamjam.koeda.me -> http://signaling-server:8080", None, "jamjam-signaling"),
    # fail closed
    (TUNNEL, replaced(WORKSPACE_BACKEND, "work-tracker", _published(TRACKER, {"internal": UNKNOWN, "external": 18000})),
     "unknown port", None, "work-tracker"),
    (TUNNEL, replaced(WORKSPACE_BACKEND, "work-tracker", changed(TRACKER, "ports", UNKNOWN)),
     "published ports unknown at preview", None, "work-tracker"),
    (TUNNEL, replaced(WORKSPACE_BACKEND, "vps-firewall", changed(FIREWALL, "create", UNKNOWN)),
     "create command unknown at preview", None, "vps-firewall"),
    (TUNNEL, replaced(WORKSPACE_BACKEND, "tunnel-config", changed(
        inputs_of(WORKSPACE_BACKEND, "tunnel-config"), "config.ingresses.0.service", UNKNOWN)),
     "config.ingresses[0].service unknown at preview", None, "tunnel-config"),
    (TUNNEL, replaced(WORKSPACE_BACKEND, "tunnel-config", changed(
        inputs_of(WORKSPACE_BACKEND, "tunnel-config"), "config", UNKNOWN)),
     "ingress rules unknown at preview", None, "tunnel-config"),
    (TUNNEL, replaced(WORKSPACE_BACKEND, "tunnel-config", changed(
        inputs_of(WORKSPACE_BACKEND, "tunnel-config"), "config.ingresses.0.service", "http://work-tracker:http")),
     "whose port is not a number", None, "tunnel-config"),
]


@pytest.mark.parametrize("policy_name,resources,expected,config,broken", STACK_BREAKS,
                         ids=[f"{c[0]}-{c[2][:40]}" for c in STACK_BREAKS])
def test_each_way_to_break_a_stack_rule_is_reported(policy_name, resources, expected, config, broken):
    assert_stack_break(policy_name, resources, expected, config, broken)


@pytest.mark.parametrize("service,port", [
    ("http://signaling-server:8080", 8080), ("http://work-tracker:8000/", 8000),
    ("https://backend", 443), ("http://frontend", 80), ("wss://x", 443), ("tcp://db:5432", 5432),
    ("http_status:404", None), ("hello_world", None), ("unix:/run/app.sock", None),
    ("ssh://host", None),
])
def test_origin_port_from_an_ingress_service(service, port):
    assert origin_port(service) == port


def test_each_system_protects_its_own_origin_ports():
    """8080 for jamjam, 8000 and 3000 for the others: derived from the routes, not configured."""
    protected = {
        "jamjam": (JAMJAM, "jamjam-echo", 8080),
        "workspace-backend": (WORKSPACE_BACKEND, "twitch-bot", 8000),
        "r-stream": (R_STREAM, "rstream-redis", 3000),
        "shiojiri": (SHIOJIRI, "shiojiri-worker", 3000),
        "thinkring (path route)": (THINKRING, "frontend", 8000),
        "thinkring (host route)": (THINKRING, "backend", 3000),
    }
    for system, (stack, name, port) in protected.items():
        assert stack_violations(TUNNEL, stack) == [], system
        exposed = replaced(stack, name, _published(inputs_of(stack, name),
                                                   {"internal": port, "external": port}))
        [(message, urn)] = stack_violations(TUNNEL, exposed)
        assert f"port {port}" in message and urn.endswith(f"::{name}"), system
        # The same container on another port is the allowlist's business, not this rule's.
        other = replaced(stack, name, _published(inputs_of(stack, name),
                                                 {"internal": port + 1, "external": port + 1}))
        assert stack_violations(TUNNEL, other) == [], system


def test_a_loopback_binding_reaches_no_one():
    exposed = replaced(WORKSPACE_BACKEND, "work-tracker", _published(
        TRACKER, {"internal": 8000, "external": 8000, "ip": "127.0.0.1"}))
    assert stack_violations(TUNNEL, exposed) == []


def test_a_stack_without_a_tunnel_has_no_origin_to_protect():
    no_tunnel = [r for r in WORKSPACE_BACKEND if r[0] != TUNNEL_CONFIG]
    host_network = replaced(no_tunnel, "work-tracker", changed(TRACKER, "networkMode", "host"))
    assert stack_violations(TUNNEL, host_network) == []


def test_the_origin_port_is_protected_on_every_host():
    second_host = changed(firewall("8000/tcp"), "connection.host", "203.0.113.20")
    stack = [*WORKSPACE_BACKEND, (COMMAND, "vps2-firewall", second_host)]
    [(message, urn)] = stack_violations(TUNNEL, stack)
    assert urn.endswith("::vps2-firewall") and "8000" in message


# --- database-ports-never-public ---------------------------------------------------------

DB = "database-ports-never-public"
BREAKS = [
    (DB, CONTAINER, _published(TRACKER_DB, {"internal": 5432, "external": 5432}), "the database port 5432"),
    (DB, CONTAINER, _published(TRACKER_DB, {"internal": 5432, "external": 15432}), "the database port 5432"),
    (DB, CONTAINER, _published(TRACKER, {"internal": 8000, "external": 6379}), "host port 6379"),
    (DB, CONTAINER, _published(TRACKER_DB, {"internal": 5432}), "random host port"),
    (DB, CONTAINER, _published(TRACKER_DB, {"internal": 3306, "external": 3306, "ip": "0.0.0.0"}), "3306"),
    (DB, CONTAINER, _published(TRACKER_DB, {"internal": 27017, "external": 27017, "protocol": "udp"}), "27017"),
    (DB, CONTAINER, changed(TRACKER_DB, "networkMode", "host"), "host network"),
    (DB, CONTAINER, changed(TRACKER_DB, "publishAllPorts", True), "publishAllPorts"),
    (DB, COMMAND, firewall("5432/tcp"), "--allow 5432/tcp"),
    (DB, COMMAND, firewall("6000:6500/tcp"), "the database port 6379"),
    (DB, COMMAND, changed(FIREWALL, "stdin", "#!/bin/sh\nufw allow 27017/tcp\n"), "ufw allow 27017/tcp"),
    (DB, COMMAND, changed(FIREWALL, "create", "iptables -A INPUT -p tcp --dport 3306 -j ACCEPT"), "--dport 3306"),
    (DB, COMMAND, changed(FIREWALL, "create", "docker run -d -p 5432:5432 postgres:16.4"), "host port 5432"),
    # fail closed
    (DB, CONTAINER, _published(TRACKER, {"internal": 8000, "external": UNKNOWN}),
     "may expose the database port 3306 or"),
    (DB, CONTAINER, changed(TRACKER_DB, "ports", UNKNOWN), "unknown at preview"),
    (DB, CONTAINER, changed(TRACKER_DB, "networkMode", UNKNOWN), "networkMode unknown"),
    (DB, COMMAND, changed(FIREWALL, "stdin", UNKNOWN), "stdin command unknown"),
]


@pytest.mark.parametrize("policy_name,type_,inputs,expected", BREAKS,
                         ids=[f"{c[0]}-{c[3]}" for c in BREAKS])
def test_each_way_to_break_a_rule_is_reported(policy_name, type_, inputs, expected):
    assert_break(policy_name, type_, inputs, expected)


@pytest.mark.parametrize("binding", ["127.0.0.1", "::1"])
def test_a_database_port_on_loopback_is_allowed(binding):
    local = _published(TRACKER_DB, {"internal": 5432, "external": 5432, "ip": binding})
    assert violations(DB, CONTAINER, local) == []


def test_database_ports_come_from_config():
    on_7000 = _published(TRACKER_DB, {"internal": 7000, "external": 7000})
    assert violations(DB, CONTAINER, on_7000) == []
    assert violations(DB, CONTAINER, on_7000, config={"databasePorts": [7000.0]})


# --- public-ports-allowlisted, per stack -------------------------------------------------

ALLOW = "public-ports-allowlisted"


def test_a_stack_override_replaces_the_default_list():
    config = {"stackPublicPorts": {"test": ["22/tcp"]}}
    [message] = violations(ALLOW, CONTAINER, ECHO, config={**config, "stack": "test"})
    assert "5000/udp is not" in message and "(22/tcp)" in message and "stackPublicPorts.test" in message
    assert violations(ALLOW, CONTAINER, ECHO, config={**config, "stack": "production"}) == []


def test_the_stack_comes_from_the_pulumi_runtime(monkeypatch):
    import pulumi
    config = {"stackPublicPorts": {"production": ["22/tcp", "5000/udp", "443/tcp"]}}
    opened = changed(FIREWALL, "create", FIREWALL["create"] + " --allow 443/tcp")
    monkeypatch.setattr(pulumi, "get_stack", lambda: "production")
    assert violations(ALLOW, COMMAND, opened, config=config) == []
    monkeypatch.setattr(pulumi, "get_stack", lambda: "test")
    [message] = violations(ALLOW, COMMAND, opened, config=config)
    assert "443/tcp" in message and "the pack's publicPorts config" in message


def test_a_malformed_stack_override_names_the_key():
    with pytest.raises(PolicyConfigError, match="stackPublicPorts.test entry '5000' is not PORT/PROTO"):
        violations(ALLOW, CONTAINER, ECHO, config={"stackPublicPorts": {"test": ["5000"]}, "stack": "test"})
    with pytest.raises(PolicyConfigError, match="stackPublicPorts must map stack names to lists"):
        violations(ALLOW, CONTAINER, ECHO, config={"stackPublicPorts": ["22/tcp"], "stack": "test"})


def test_the_offline_runner_tells_resource_rules_the_stack():
    from tests.policy_fixtures import offline_resources
    from tools import policy_check
    config = {ALLOW: {"stackPublicPorts": {"test": ["22/tcp"]}}}
    found = policy_check.check("test", offline_resources(JAMJAM, "test"), config)
    assert sorted((v.policy, v.resource.rsplit("::", 1)[1]) for v in found
                  if v.policy == ALLOW) == [(ALLOW, "jamjam-echo"), (ALLOW, "vps-firewall")]
    assert [v for v in policy_check.check("production", offline_resources(JAMJAM), config)
            if v.policy == ALLOW] == []
