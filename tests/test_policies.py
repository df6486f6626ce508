"""The policy pack: every rule on a compliant baseline, then each way to break it; the pack as
a whole (its rule set, levels, config, offline runner, the running analyzer, the real stacks).

Each case changes one property of a baseline from tests/policy_fixtures.py and runs one policy
the way pulumi-policy's analyzer calls it (protobuf round trip, secrets marked by the pack's
compat, numbers as floats, unknowns behind the proxy). policies/__main__.py is never imported:
building the PolicyPack starts the analyzer's server and blocks.

Rules added later keep their cases in their own tests/test_policies_<module>.py (``BREAKS``,
``STACK_BREAKS``); the pack-wide tests here derive every expectation from the pack itself.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy, StackValidationArgs, \
    StackValidationPolicy

from tests.policy_fixtures import (
    ACCOUNT, API_TOKEN, BASELINES, CLOUDFLARED, COMMAND, CONTAINER, CUSTOM_DOMAIN, DNS, DNS_RECORD,
    ECHO, FIREWALL, LOGS_BUCKET, MANAGED_DOMAIN, R2_BUCKET, R2_CUSTOM_DOMAIN, R2_MANAGED_DOMAIN,
    REMOTE_IMAGE, REMOTE_IMAGE_BASE, SIGNALING, TOKEN, TUNNEL_CONFIG, TUNNEL_CONFIG_BASE,
    UNKNOWN, UPLOAD_CRON, ZONE, analyzer_props, assert_break, assert_stack_break, changed,
    fake_tunnel_secret, fake_tunnel_token, offline_resources, secret, stack_violations, violations,
)
from jamjam_policies import ALL_POLICIES, CONFIG_DEFAULTS, PACK_NAME  # noqa: E402 (path set above)
from jamjam_policies.config import PORT_PROTO, PolicyConfigError  # noqa: E402
from tools import policy_check  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"


def fw(command: str) -> dict:
    return changed(FIREWALL, "create", command)


# (policy, resource type, inputs, what the message must say)
BREAKS = [
    # --- signaling-port-never-public: every path to 8080 ---------------------------------
    ("signaling-port-never-public", CONTAINER, changed(ECHO, "ports.0.internal", 8080), "port 8080"),
    ("signaling-port-never-public", CONTAINER, changed(ECHO, "ports.0.external", 8080), "host port 8080"),
    ("signaling-port-never-public", CONTAINER,
     changed(ECHO, "ports", [{"internal": 8080, "external": 8080, "protocol": "udp"}]), "8080/udp"),
    ("signaling-port-never-public", CONTAINER,
     changed(ECHO, "ports", [{"internal": 8080}]), "random host port"),
    ("signaling-port-never-public", CONTAINER,
     changed(SIGNALING, "ports", [{"internal": 8080, "external": 8080, "ip": "0.0.0.0"}]), "0.0.0.0"),
    ("signaling-port-never-public", CONTAINER,
     changed(SIGNALING, "ports", [{"internal": 8080, "external": 8080, "ip": "10.0.0.5"}]), "10.0.0.5"),
    ("signaling-port-never-public", CONTAINER,
     changed(SIGNALING, "ports", [{"internal": 8080, "external": 8080, "ip": "::"}]), "on ::"),
    ("signaling-port-never-public", CONTAINER, changed(SIGNALING, "networkMode", "host"), "host network"),
    ("signaling-port-never-public", CONTAINER, changed(SIGNALING, "publishAllPorts", True), "publishAllPorts"),
    ("signaling-port-never-public", COMMAND, fw(FIREWALL["create"] + " --allow 8080/tcp"), "--allow 8080/tcp"),
    ("signaling-port-never-public", COMMAND, fw(FIREWALL["create"] + " --allow 8080"), "--allow 8080"),
    ("signaling-port-never-public", COMMAND, fw(FIREWALL["create"] + " --allow=8000:8100/tcp"), "8000:8100"),
    ("signaling-port-never-public", COMMAND, fw("sudo -n bash -s -- apply --ssh-port 8080"), "--ssh-port 8080"),
    ("signaling-port-never-public", COMMAND, changed(FIREWALL, "update", "sudo ufw allow 8080"), "ufw allow 8080"),
    ("signaling-port-never-public", COMMAND, fw("sudo ufw allow proto tcp from any to any port 8080"), "port 8080"),
    ("signaling-port-never-public", COMMAND,
     changed(FIREWALL, "stdin", "#!/bin/sh\nufw allow 8080/tcp\n"), "ufw allow 8080/tcp"),
    ("signaling-port-never-public", COMMAND,
     fw("sudo iptables -I INPUT -p tcp --dport 8080 -j ACCEPT"), "--dport 8080"),
    ("signaling-port-never-public", COMMAND,
     fw("docker run -d -p 8080:8080 ghcr.io/koeda/jamjam-signaling-server:0.1.0"), "host port 8080"),
    ("signaling-port-never-public", COMMAND,
     fw("docker run -d --network host ghcr.io/koeda/jamjam-signaling-server:0.1.0"), "host network"),
    # fail closed: unknown at preview
    ("signaling-port-never-public", CONTAINER, changed(ECHO, "ports", UNKNOWN), "unknown at preview"),
    ("signaling-port-never-public", CONTAINER, changed(ECHO, "ports.0.internal", UNKNOWN), "unknown port"),
    ("signaling-port-never-public", CONTAINER, changed(ECHO, "ports.0.external", UNKNOWN), "unknown at preview"),
    ("signaling-port-never-public", CONTAINER, changed(ECHO, "networkMode", UNKNOWN), "networkMode unknown"),
    ("signaling-port-never-public", CONTAINER, changed(ECHO, "publishAllPorts", UNKNOWN), "publishAllPorts unknown"),
    ("signaling-port-never-public", COMMAND, fw(UNKNOWN), "create command unknown"),
    ("signaling-port-never-public", COMMAND, changed(FIREWALL, "stdin", UNKNOWN), "stdin command unknown"),
    # --- public-ports-allowlisted ---------------------------------------------------------
    ("public-ports-allowlisted", CONTAINER, changed(ECHO, "ports.0.external", 5001), "5001/udp is not"),
    ("public-ports-allowlisted", CONTAINER, changed(ECHO, "ports.0.protocol", "tcp"), "5000/tcp is not"),
    ("public-ports-allowlisted", CONTAINER, changed(ECHO, "ports.0.protocol"), "5000/tcp is not"),
    ("public-ports-allowlisted", CONTAINER, changed(ECHO, "ports.0.external"), "random host port"),
    ("public-ports-allowlisted", CONTAINER, changed(ECHO, "ports.0.external", UNKNOWN), "allowlist can't cover"),
    ("public-ports-allowlisted", CONTAINER, changed(ECHO, "networkMode", "host"), "host network"),
    ("public-ports-allowlisted", CONTAINER, changed(ECHO, "publishAllPorts", True), "publishAllPorts"),
    ("public-ports-allowlisted", COMMAND, fw("apply --ssh-port 22 --allow 5001/udp"), "5001/udp"),
    ("public-ports-allowlisted", COMMAND, fw("apply --ssh-port 22 --allow 5000"), "5000/tcp"),
    ("public-ports-allowlisted", COMMAND, fw("apply --ssh-port 2222 --allow 5000/udp"), "2222/tcp"),
    ("public-ports-allowlisted", COMMAND, fw("apply --ssh-port 22 --allow $PORTS"), "not a literal"),
    ("public-ports-allowlisted", COMMAND, fw("sudo ufw allow http"), "80/tcp"),
    ("public-ports-allowlisted", COMMAND, fw("iptables -A INPUT -p udp --dport 6000 -j ACCEPT"), "6000/udp"),
    ("public-ports-allowlisted", COMMAND, fw(UNKNOWN), "unknown at preview"),
    # --- containers -----------------------------------------------------------------------
    ("container-log-rotation", CONTAINER, changed(ECHO, "logDriver"), "logDriver unset"),
    ("container-log-rotation", CONTAINER, changed(ECHO, "logDriver", "syslog"), "'syslog'"),
    ("container-log-rotation", CONTAINER, changed(ECHO, "logOpts.max-size"), "max-size"),
    ("container-log-rotation", CONTAINER, changed(ECHO, "logOpts.max-file"), "max-file"),
    ("container-log-rotation", CONTAINER, changed(ECHO, "logOpts"), "max-size or max-file"),
    ("container-log-rotation", CONTAINER, changed(ECHO, "logDriver", UNKNOWN), "unknown at preview"),
    ("container-restart-policy", CONTAINER, changed(ECHO, "restart"), "unset"),
    ("container-restart-policy", CONTAINER, changed(ECHO, "restart", "no"), "'no'"),
    ("container-restart-policy", CONTAINER, changed(ECHO, "restart", "on-failure"), "'on-failure'"),
    ("container-healthcheck", CONTAINER, changed(ECHO, "healthcheck"), "no healthcheck"),
    ("container-healthcheck", CONTAINER, changed(ECHO, "healthcheck.tests", []), "no healthcheck"),
    ("container-healthcheck", CONTAINER, changed(ECHO, "healthcheck.tests", ["NONE"]), "no healthcheck"),
    ("container-healthcheck", CONTAINER, changed(ECHO, "healthcheck", UNKNOWN), "unknown at preview"),
    ("container-not-privileged", CONTAINER, changed(ECHO, "privileged", True), "runs privileged"),
    ("container-not-privileged", CONTAINER, changed(ECHO, "privileged", UNKNOWN), "may run privileged"),
    ("container-no-docker-socket", CONTAINER,
     changed(ECHO, "mounts", [{"target": "/var/run/docker.sock", "source": "/var/run/docker.sock",
                               "type": "bind"}]), "/var/run/docker.sock"),
    ("container-no-docker-socket", CONTAINER,
     changed(ECHO, "mounts", [{"target": "/sock", "source": "/run/docker.sock", "type": "bind"}]),
     "/run/docker.sock"),
    ("container-no-docker-socket", CONTAINER,
     changed(ECHO, "volumes", [{"containerPath": "/host-run", "hostPath": "/var/run"}]), "'/var/run'"),
    ("container-no-docker-socket", CONTAINER,
     changed(ECHO, "volumes", [{"containerPath": "/d", "hostPath": "/var/run/docker.sock"}]), "volumes"),
    ("container-no-docker-socket", CONTAINER,
     changed(ECHO, "mounts", [{"target": "/x", "source": UNKNOWN, "type": "bind"}]), "unknown at preview"),
    ("container-no-secret-in-command", CONTAINER,
     changed(CLOUDFLARED, "command", ["tunnel", "run", "--token", "abc"]), "the flag --token"),
    ("container-no-secret-in-command", CONTAINER,
     changed(CLOUDFLARED, "command", ["tunnel", "run", "--token=abc"]), "the flag --token"),
    ("container-no-secret-in-command", CONTAINER,
     changed(CLOUDFLARED, "command", ["tunnel", "run", fake_tunnel_token()]), "token-looking"),
    ("container-no-secret-in-command", CONTAINER,
     changed(CLOUDFLARED, "entrypoints", ["env", "TUNNEL_TOKEN=abc", "cloudflared"]), "entrypoints"),
    ("container-no-secret-in-command", CONTAINER,
     changed(CLOUDFLARED, "command", ["run", secret(fake_tunnel_secret())]),
     "token-looking"),
    ("container-no-secret-in-command", CONTAINER,
     changed(CLOUDFLARED, "command", ["tunnel", "run", UNKNOWN]), "unknown at preview"),
    ("container-image-pinned", CONTAINER, changed(ECHO, "image", "cloudflare/cloudflared"), "can change"),
    ("container-image-pinned", CONTAINER, changed(ECHO, "image", "cloudflare/cloudflared:latest"), ":latest"),
    ("container-image-pinned", CONTAINER, changed(ECHO, "image", "localhost:5000/echo"), "localhost:5000/echo"),
    ("container-image-pinned", REMOTE_IMAGE, changed(REMOTE_IMAGE_BASE, "name", "ghcr.io/koeda/echo:latest"), "latest"),
    # --- Cloudflare -----------------------------------------------------------------------
    ("tunnel-dns-proxied", DNS_RECORD, changed(DNS, "proxied", False), "not proxied"),
    ("tunnel-dns-proxied", DNS_RECORD, changed(DNS, "proxied"), "not proxied"),
    ("tunnel-dns-proxied", DNS_RECORD, changed(DNS, "proxied", UNKNOWN), "unknown at preview"),
    ("tunnel-dns-proxied", DNS_RECORD, changed(changed(DNS, "content", UNKNOWN), "proxied", False),
     "unknown at preview"),
    ("tunnel-ingress-catch-all", TUNNEL_CONFIG, changed(TUNNEL_CONFIG_BASE, "config.ingresses.1"),
     "matches a hostname"),
    ("tunnel-ingress-catch-all", TUNNEL_CONFIG, changed(TUNNEL_CONFIG_BASE, "config.ingresses.1.path", "/ws"),
     "matches a path"),
    ("tunnel-ingress-catch-all", TUNNEL_CONFIG, changed(TUNNEL_CONFIG_BASE, "config.ingresses", []), "no ingress"),
    ("tunnel-ingress-catch-all", TUNNEL_CONFIG, changed(TUNNEL_CONFIG_BASE, "config", UNKNOWN), "unknown at preview"),
    ("tunnel-origin-tls-verified", TUNNEL_CONFIG,
     changed(TUNNEL_CONFIG_BASE, "config.originRequest", {"noTlsVerify": True}), "config.originRequest"),
    ("tunnel-origin-tls-verified", TUNNEL_CONFIG,
     changed(TUNNEL_CONFIG_BASE, "config.ingresses.0.originRequest", {"noTlsVerify": True}),
     "config.ingresses[0] (signaling-jamjam.koeda.me)"),
    ("tunnel-origin-tls-verified", TUNNEL_CONFIG,
     changed(TUNNEL_CONFIG_BASE, "config.ingresses.1.originRequest", {"noTlsVerify": UNKNOWN}),
     "unknown at preview"),
    ("logs-bucket-private", R2_MANAGED_DOMAIN, changed(MANAGED_DOMAIN, "enabled", True), "r2.dev"),
    ("logs-bucket-private", R2_MANAGED_DOMAIN, changed(MANAGED_DOMAIN, "enabled", UNKNOWN), "r2.dev"),
    ("logs-bucket-private", R2_CUSTOM_DOMAIN, changed(CUSTOM_DOMAIN, "bucketName", "jamjam-logs"),
     "custom domain 'site.koeda.me'"),
    ("logs-bucket-private", R2_CUSTOM_DOMAIN, changed(CUSTOM_DOMAIN, "bucketName", UNKNOWN), "may be jamjam-logs"),
    ("api-tokens-scoped", API_TOKEN,
     changed(TOKEN, "policies.0.resources", '{"com.cloudflare.api.account.*": "*"}'), "account.*"),
    ("api-tokens-scoped", API_TOKEN,
     changed(TOKEN, "policies.0.resources", json.dumps({f"com.cloudflare.api.account.{ACCOUNT}": "*"})),
     "whole account"),
    ("api-tokens-scoped", API_TOKEN,
     changed(TOKEN, "policies.0.resources", json.dumps(
         {f"com.cloudflare.api.account.{ACCOUNT}": {"com.cloudflare.api.account.zone.*": "*"}})),
     "zone.*"),
    ("api-tokens-scoped", API_TOKEN,
     changed(TOKEN, "policies.0.resources", {"com.cloudflare.api.account.zone.*": "*"}), "zone.*"),
    ("api-tokens-scoped", API_TOKEN,
     changed(TOKEN, "policies.0.resources", {f"com.cloudflare.edge.r2.bucket.{ACCOUNT}_default_*": "*"}),
     "_default_*"),
    ("api-tokens-scoped", API_TOKEN, changed(TOKEN, "policies.0.resources", "not json"), "not a JSON object"),
    ("api-tokens-scoped", API_TOKEN, changed(TOKEN, "policies.0.resources", UNKNOWN), "unknown at preview"),
    ("api-tokens-scoped", API_TOKEN, changed(TOKEN, "policies", UNKNOWN), "unknown at preview"),
]


def _case_id(case) -> str:
    return f"{case[0]}-{case[3]}"


RESOURCE_POLICIES = [p for p in ALL_POLICIES if isinstance(p, ResourceValidationPolicy)]


@pytest.mark.parametrize("name", sorted(BASELINES))
@pytest.mark.parametrize("policy", RESOURCE_POLICIES, ids=lambda p: p.name)
def test_compliant_baseline_passes(policy, name):
    type_, inputs = BASELINES[name]
    assert violations(policy.name, type_, inputs, name) == []


@pytest.mark.parametrize("policy_name,type_,inputs,expected", BREAKS, ids=map(_case_id, BREAKS))
def test_each_way_to_break_a_rule_is_reported(policy_name, type_, inputs, expected):
    assert_break(policy_name, type_, inputs, expected)


def _policy_test_modules():
    for path in sorted(Path(__file__).parent.glob("test_policies*.py")):
        yield importlib.import_module(f"tests.{path.stem}")


def test_every_rule_has_a_breaking_case():
    """Every rule of the pack, whichever module it lives in, is broken by at least one case
    in some tests/test_policies*.py (its ``BREAKS`` or ``STACK_BREAKS``)."""
    broken = set()
    for module in _policy_test_modules():
        broken |= {case[0] for case in getattr(module, "BREAKS", [])}
        broken |= {case[0] for case in getattr(module, "STACK_BREAKS", [])}
    missing = {p.name for p in ALL_POLICIES} - broken
    assert not missing, f"no breaking case for {sorted(missing)}"


@pytest.mark.parametrize("ip", ["127.0.0.1", "127.1.2.3", "::1", "localhost"])
def test_signaling_port_bound_to_loopback_is_allowed(ip):
    inputs = changed(SIGNALING, "ports", [{"internal": 8080, "external": 8080, "ip": ip}])
    assert violations("signaling-port-never-public", CONTAINER, inputs) == []
    assert violations("public-ports-allowlisted", CONTAINER, inputs) == []


@pytest.mark.parametrize("command", [
    "sudo ufw allow out 8080/tcp",                        # outgoing, not public
    "sudo iptables -D INPUT -p tcp --dport 8080 -j ACCEPT",  # removes a rule
    "sudo iptables -A INPUT -p tcp --dport 8080 -j DROP",
    "docker run -d -p 127.0.0.1:8080:8080 img:1",
])
def test_commands_that_do_not_open_8080_pass(command):
    assert violations("signaling-port-never-public", COMMAND, fw(command)) == []


def test_a_commented_out_rule_opens_nothing():
    inputs = changed(FIREWALL, "stdin", "#!/bin/sh\n# ufw allow 8080/tcp\nufw reload  # not 8080\n")
    assert violations("signaling-port-never-public", COMMAND, inputs) == []


def test_a_missing_ip_means_every_address():
    inputs = changed(SIGNALING, "ports", [{"internal": 8080, "external": 18080}])
    [message] = violations("signaling-port-never-public", CONTAINER, inputs, "jamjam-signaling")
    assert "0.0.0.0" in message and "jamjam-signaling" in message


# --- config ---------------------------------------------------------------------------------

def test_allowlist_comes_from_config():
    opened = fw(FIREWALL["create"] + " --allow 443/tcp")
    assert violations("public-ports-allowlisted", COMMAND, opened)
    config = {"publicPorts": ["22/tcp", "5000/udp", "443/tcp"]}
    assert violations("public-ports-allowlisted", COMMAND, opened, config=config) == []
    only_ssh = {"publicPorts": ["22/tcp"]}
    [message] = violations("public-ports-allowlisted", CONTAINER, ECHO, config=only_ssh)
    assert "5000/udp is not" in message and "(22/tcp)" in message


def test_allowlist_never_licenses_the_signaling_port():
    opened = fw(FIREWALL["create"] + " --allow 8080/tcp")
    config = {"publicPorts": ["22/tcp", "5000/udp", "8080/tcp"]}
    assert violations("public-ports-allowlisted", COMMAND, opened, config=config) == []
    assert violations("signaling-port-never-public", COMMAND, opened)


def test_signaling_port_comes_from_config():
    # JSON numbers reach the policy as floats.
    config = {"signalingPort": 9090.0}
    on_9090 = changed(SIGNALING, "ports", [{"internal": 9090, "external": 9090}])
    assert violations("signaling-port-never-public", CONTAINER, on_9090, config=config)
    assert violations("signaling-port-never-public", CONTAINER, on_9090) == []


def test_a_malformed_allowlist_entry_names_the_key():
    with pytest.raises(PolicyConfigError, match="publicPorts entry '5000' is not PORT/PROTO"):
        violations("public-ports-allowlisted", CONTAINER, ECHO, config={"publicPorts": ["5000"]})


def test_config_defaults_match_the_operations_documents():
    assert CONFIG_DEFAULTS["public-ports-allowlisted"] == {
        "publicPorts": ["22/tcp", "5000/udp"], "stackPublicPorts": {}}
    assert CONFIG_DEFAULTS["signaling-port-never-public"] == {"signalingPort": 8080}
    assert CONFIG_DEFAULTS["database-ports-never-public"] == {"databasePorts": [5432, 3306, 6379, 27017]}
    for entry in CONFIG_DEFAULTS["public-ports-allowlisted"]["publicPorts"]:
        assert PORT_PROTO.match(entry)


def test_logs_bucket_name_comes_from_config():
    public = changed(MANAGED_DOMAIN, "enabled", True)
    assert violations("logs-bucket-private", R2_MANAGED_DOMAIN, public,
                      config={"logBucket": "other-bucket"}) == []


def test_api_token_resources_may_be_a_dict_or_a_zone():
    as_dict = changed(TOKEN, "policies.0.resources", json.loads(TOKEN["policies"][0]["resources"]))
    zone = changed(TOKEN, "policies.0.resources", {f"com.cloudflare.api.account.zone.{ZONE}": "*"})
    nested = changed(TOKEN, "policies.0.resources", json.dumps(
        {f"com.cloudflare.api.account.{ACCOUNT}": {f"com.cloudflare.api.account.zone.{ZONE}": "*"}}))
    for inputs in (as_dict, zone, nested):
        assert violations("api-tokens-scoped", API_TOKEN, inputs) == []


def test_a_deny_policy_may_be_broad():
    deny = changed(changed(TOKEN, "policies.0.effect", "deny"), "policies.0.resources",
                   '{"com.cloudflare.api.account.*": "*"}')
    assert violations("api-tokens-scoped", API_TOKEN, deny) == []


def test_non_tunnel_dns_records_need_not_be_proxied():
    record = changed(changed(DNS, "content", "203.0.113.10"), "proxied", False)
    assert violations("tunnel-dns-proxied", DNS_RECORD, changed(record, "type", "A")) == []


def test_a_container_image_from_a_remote_image_output_is_left_to_that_image():
    assert violations("container-image-pinned", CONTAINER, changed(ECHO, "image", UNKNOWN)) == []


def test_unknowns_reach_policies_as_the_analyzer_sends_them():
    # The proxy raises on read: proof that the fixtures exercise the preview path.
    from pulumi_policy.proxy import UnknownValueError
    props = analyzer_props(changed(ECHO, "networkMode", UNKNOWN))
    with pytest.raises(UnknownValueError):
        props["networkMode"]


# --- stack rules ----------------------------------------------------------------------------

ARCHIVE = [(R2_BUCKET, "logs-bucket", LOGS_BUCKET), (COMMAND, "logs-upload-cron", UPLOAD_CRON),
           (COMMAND, "vps-firewall", FIREWALL)]


STACK_BREAKS = [
    ("production-has-log-archive", ARCHIVE[1:], "no cloudflare:index/r2Bucket:R2Bucket named jamjam-logs",
     {"stack": "production"}),
    ("production-has-log-archive", [ARCHIVE[0], ARCHIVE[2]], "upload-logs-to-r2 cron job",
     {"stack": "production"}),
    ("log-archive-only-on-production", ARCHIVE, "Turn the log archive off", {"stack": "test"}),
]


@pytest.mark.parametrize("policy_name,resources,expected,config", STACK_BREAKS,
                         ids=[f"{c[0]}-{c[2]}" for c in STACK_BREAKS])
def test_each_way_to_break_a_stack_rule_is_reported(policy_name, resources, expected, config):
    assert_stack_break(policy_name, resources, expected, config)


def test_production_with_the_archive_passes():
    assert stack_violations("production-has-log-archive", ARCHIVE, {"stack": "production"}) == []


def test_production_without_the_bucket_is_refused():
    found = stack_violations("production-has-log-archive", ARCHIVE[1:], {"stack": "production"})
    assert [m for m, _ in found] == [
        "Stack production declares no cloudflare:index/r2Bucket:R2Bucket named jamjam-logs, so "
        "its container logs are lost on rotation. Enable the log archive for this stack."]


def test_production_without_the_upload_job_is_refused():
    found = stack_violations("production-has-log-archive", [ARCHIVE[0], ARCHIVE[2]],
                             {"stack": "production"})
    assert len(found) == 1 and "upload-logs-to-r2 cron job" in found[0][0]


def test_a_script_install_is_not_the_cron_job():
    script_only = {"create": "sudo -n install -D -m 0755 /dev/stdin /opt/jamjam/scripts/upload-logs-to-r2.sh",
                   "stdin": "#!/bin/sh\nrclone rcat r2:jamjam-logs/x\n"}
    found = stack_violations("production-has-log-archive",
                             [ARCHIVE[0], (COMMAND, "logs-upload-script", script_only)],
                             {"stack": "production"})
    assert len(found) == 1 and "cron job" in found[0][0]


def test_a_test_stack_needs_no_archive_and_is_told_when_it_has_one():
    assert stack_violations("production-has-log-archive", ARCHIVE[2:], {"stack": "test"}) == []
    assert stack_violations("log-archive-only-on-production", ARCHIVE[2:], {"stack": "test"}) == []
    found = stack_violations("log-archive-only-on-production", ARCHIVE, {"stack": "test"})
    assert [urn.rsplit("::", 1)[1] for _, urn in found] == ["logs-bucket", "logs-upload-cron"]
    assert "Turn the log archive off for this stack." in found[0][0]


def test_the_archive_is_required_of_jamjam_only():
    # A sibling project on the library keeps no archive and needs no config to say so.
    assert stack_violations("production-has-log-archive", ARCHIVE[2:], {"stack": "production"},
                            project="thinkring") == []
    assert stack_violations("log-archive-only-on-production", ARCHIVE, {"stack": "test"},
                            project="thinkring") == []
    assert stack_violations("production-has-log-archive", ARCHIVE[2:], {
        "stack": "production", "archiveProjects": ["jamjam", "thinkring"]}, project="thinkring")


def test_the_project_comes_from_the_runtime_when_urns_do_not_say(monkeypatch):
    import pulumi
    from pulumi_policy import PolicyResource
    from tests.policy_fixtures import policy, resource_options
    resources = [PolicyResource(COMMAND, analyzer_props(FIREWALL), "urn:x::vps-firewall",
                                "vps-firewall", resource_options(), None, None, [], {})]

    def found():
        reported = []
        policy("production-has-log-archive").validate(
            StackValidationArgs(resources, {"stack": "production"}),
            lambda message, urn=None: reported.append(message))
        return reported

    monkeypatch.setattr(pulumi, "get_project", lambda: "workspace-backend")
    assert found() == []
    monkeypatch.setattr(pulumi, "get_project", lambda: "jamjam")
    assert len(found()) == 2


def test_stack_name_comes_from_the_pulumi_runtime(monkeypatch):
    import pulumi
    monkeypatch.setattr(pulumi, "get_stack", lambda: "production")
    assert stack_violations("production-has-log-archive", ARCHIVE[2:])
    monkeypatch.setattr(pulumi, "get_stack", lambda: "test")
    assert stack_violations("production-has-log-archive", ARCHIVE[2:]) == []


def test_an_unknown_stack_fails_closed(monkeypatch):
    import pulumi
    monkeypatch.setattr(pulumi, "get_stack", lambda: "")
    monkeypatch.delenv("PULUMI_STACK", raising=False)
    [(message, _)] = stack_violations("production-has-log-archive", ARCHIVE)
    assert "could not tell which stack" in message


# --- the pack -------------------------------------------------------------------------------

LEVEL = {p.name: p.enforcement_level.value for p in ALL_POLICIES}
"""Each rule's own level, as its module declares it: what every level expectation derives from."""


def test_every_policy_has_a_name_description_and_level():
    names = [p.name for p in ALL_POLICIES]
    assert len(names) == len(set(names))
    for policy in ALL_POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", policy.name)
        assert len(policy.description) > 20 and policy.description.endswith(".")
        assert isinstance(policy.enforcement_level, EnforcementLevel)
        assert policy.enforcement_level in (EnforcementLevel.ADVISORY, EnforcementLevel.MANDATORY)
        assert isinstance(policy, (ResourceValidationPolicy, StackValidationPolicy))


def test_the_pack_is_every_rule_module():
    """ALL_POLICIES is exactly the POLICIES of every rule module file, so a new file is a new
    set of rules with nothing else to edit."""
    import jamjam_policies
    package = Path(jamjam_policies.__file__).parent
    files = sorted(p.stem for p in package.glob("*.py")
                   if not p.stem.startswith("_") and p.stem not in jamjam_policies.HELPER_MODULES)
    modules = jamjam_policies.rule_modules()
    assert [m.__name__.rsplit(".", 1)[1] for m in modules] == files
    assert ALL_POLICIES == [policy for module in modules for policy in module.POLICIES]


def test_readme_lists_rules_at_their_level():
    """Every rule the docs' table names exists in the pack at the level the table says."""
    doc = (ROOT / "docs" / "policies.md").read_text()
    section = doc.split("\n## Rules\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    listed = {}
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        for name in re.findall(r"`([a-z0-9-]+)`", cells[0]):
            listed[name] = cells[1]
    assert listed, "docs/policies.md's rule table is missing"
    assert {name: LEVEL.get(name) for name in listed} == listed


def test_the_pack_entry_point_compiles_and_only_builds_the_pack():
    subprocess.run([sys.executable, "-m", "py_compile", str(POLICIES / "__main__.py")], check=True,
                   timeout=60)
    tree = ast.parse((POLICIES / "__main__.py").read_text())
    calls = [n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)]
    assert calls == ["PolicyPack"]
    assert any(isinstance(n, ast.keyword) and n.arg == "policies" and
               getattr(n.value, "id", None) == "ALL_POLICIES" for n in ast.walk(tree))
    assert re.fullmatch(r"[a-zA-Z0-9._-]{1,100}", PACK_NAME)


def test_the_pack_project_files():
    import yaml
    project = yaml.safe_load((POLICIES / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python" and project["description"]
    pins = [line.strip() for line in (POLICIES / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    program = (ROOT / "requirements.txt").read_text()
    sdks = [pin for pin in pins if not pin.startswith("-e ")]
    assert sorted(sdks) == ["pulumi-policy==1.21.0", "pulumi==3.272.0"]
    assert all(pin in program for pin in sdks), "the pack and the program pin the same SDKs"
    # The library, for its rules, from the tree the pack sits in (the CLI installs from there).
    assert [pin for pin in pins if pin.startswith("-e ")] == ["-e .."]
    assert (POLICIES / ".." / "pyproject.toml").resolve() == ROOT / "pyproject.toml"


# --- the offline runner ---------------------------------------------------------------------

def _resource(type_, name, inputs, stack="production", parent=None, provider=None):
    urn = f"urn:pulumi:{stack}::jamjam::{type_}::{name}"
    return SimpleNamespace(type=type_, name=name, urn=urn, inputs=inputs, parent=parent,
                           provider=provider)


def _offline_resources(stack="production"):
    provider = (f"urn:pulumi:{stack}::jamjam::pulumi:providers:docker::jamjam-docker::"
                "cfe8423b-8690-518e-936c-772c0ec6e1e7")
    return [_resource(t, n, i, stack, provider=provider if t.startswith("docker:") else None)
            for n, (t, i) in BASELINES.items()]


def test_offline_wire_form_matches_the_analyzer():
    # Secrets at any depth, ints, booleans: the runner's shortcut equals the protobuf round trip.
    from jamjam_policies._compat import SecretStr
    inputs = changed(CLOUDFLARED, "ports", [{"internal": 5000, "external": secret(5000)}])
    inputs["privileged"] = False
    inputs["labels"] = secret([{"label": "a", "value": "b"}])
    wired = policy_check.wire(inputs)
    assert wired == _unproxy(analyzer_props(inputs))
    assert wired["ports"][0]["external"] == 5000.0 and isinstance(wired["ports"][0]["external"], float)
    assert wired["envs"][0].startswith("TUNNEL_TOKEN=")
    assert isinstance(wired["envs"][0], SecretStr) and not isinstance(wired["image"], SecretStr)
    assert isinstance(wired["labels"][0]["value"], SecretStr)
    assert [type(v) for v in _unproxy(analyzer_props(inputs))["envs"]] == [SecretStr]


def _unproxy(value):
    from collections.abc import Mapping, Sequence
    if isinstance(value, Mapping):
        return {k: _unproxy(value[k]) for k in value}
    if isinstance(value, Sequence) and not isinstance(value, str):
        return [_unproxy(value[i]) for i in range(len(value))]
    return value


def test_offline_check_passes_the_baselines_and_reports_breaks():
    resources = _offline_resources()
    assert policy_check.check("production", resources) == []
    resources[0] = _resource(CONTAINER, "jamjam-echo", changed(ECHO, "ports.0.external", 8080))
    found = policy_check.check("production", resources)
    assert {"signaling-port-never-public", "public-ports-allowlisted",
            "tunnel-origin-ports-never-public"} <= {v.policy for v in found}
    assert all(v.level == LEVEL[v.policy] for v in found)
    assert all(v.resource == resources[0].urn for v in found)
    report = policy_check.format_report(found)
    assert report.startswith(f"Policies, mandatory ({len(found)}):") and "jamjam-echo" in report


def test_offline_check_reads_levels_and_settings_like_the_cli():
    resources = _offline_resources("test")
    resources.append(_resource(CONTAINER, "latest", changed(ECHO, "image", "echo:latest"), "test"))
    found = policy_check.check("test", resources)
    assert {v.policy for v in found} == {"container-image-pinned", "log-archive-only-on-production"}
    assert all(v.level == LEVEL[v.policy] for v in found)
    found = policy_check.check("test", resources, {
        "container-image-pinned": "mandatory",
        "log-archive-only-on-production": {"enforcementLevel": "disabled"}})
    assert [(v.policy, v.level) for v in found] == [("container-image-pinned", "mandatory")]
    assert policy_check.check("test", resources, {"all": "disabled"}) == []
    narrowed = policy_check.check("test", resources, {"public-ports-allowlisted": {"publicPorts": ["22/tcp"]}})
    assert ("public-ports-allowlisted", "mandatory") in {(v.policy, v.level) for v in narrowed}


@pytest.mark.parametrize("config,message", [
    ([], "policy config must be a JSON object keyed by policy name"),
    ({"public-ports-allowlist": {}}, "'public-ports-allowlist' names no policy of this pack; "
                                     "did you mean 'public-ports-allowlisted'?"),
    ({"all": "strict"}, "policy config all: enforcement level 'strict' is not one of"),
    ({"container-image-pinned": {"enforcementLevel": "warn"}}, "level 'warn' is not one of"),
    ({"public-ports-allowlisted": {"publicPort": ["22/tcp"]}},
     "public-ports-allowlisted.publicPort is not a setting of this policy; did you mean 'publicPorts'?"),
    ({"public-ports-allowlisted": {"publicPorts": ["22"]}},
     "public-ports-allowlisted.publicPorts[0]: '22' does not match"),
    ({"public-ports-allowlisted": {"stackPublicPorts": {"test": "22/tcp"}}},
     "public-ports-allowlisted.stackPublicPorts.test: '22/tcp' is not of type 'array'; the default is {}"),
    ({"database-ports-never-public": {"databasePorts": [5432, "6379"]}},
     "database-ports-never-public.databasePorts[1]: '6379' is not of type 'integer'"),
    ({"signaling-port-never-public": 8080}, "must be a level (\"advisory\") or an object of settings"),
])
def test_a_bad_pack_config_is_one_line_naming_the_key_before_any_rule_runs(config, message, monkeypatch):
    ran = []
    monkeypatch.setattr(policy_check, "_run", lambda *args: ran.append(args))
    with pytest.raises(PolicyConfigError) as error:
        policy_check.check("production", _offline_resources(), config)
    assert message in str(error.value) and "\n" not in str(error.value)
    assert ran == []


def test_offline_main_exits_1_on_a_mandatory_violation(monkeypatch, capsys):
    import tools.render
    broken = _offline_resources()
    broken.append(_resource(CONTAINER, "priv", changed(ECHO, "privileged", True)))
    monkeypatch.setattr(tools.render, "render", lambda stack: SimpleNamespace(resources=broken))
    assert policy_check.main(["production"]) == 1
    out = capsys.readouterr()
    assert "[container-not-privileged]" in out.out and "mandatory" in out.err
    monkeypatch.setattr(tools.render, "render", lambda stack: SimpleNamespace(resources=_offline_resources()))
    assert policy_check.main(["production"]) == 0


# --- the real stacks ------------------------------------------------------------------------

@pytest.mark.parametrize("stack", ["production", "test"])
def test_real_stacks_pass_every_mandatory_rule(stacks, stack):
    found = policy_check.check(stack, stacks[stack].resources)
    mandatory = [v for v in found if v.level == "mandatory"]
    assert mandatory == [], policy_check.format_report(mandatory)
    # Production keeps its archive without being nagged; test has none to be nagged about.
    assert [v for v in found if v.policy == "log-archive-only-on-production"] == []


# --- the pack as the CLI runs it ------------------------------------------------------------

@pytest.fixture(scope="module")
def analyzer():
    """policies/ run the way the Pulumi CLI runs a Python pack (`python <pack dir>`), in its own
    process; the test talks to it over the analyzer gRPC protocol, as the engine does."""
    import os
    import grpc
    from tools._pulumi_compat import analyzer_pb2_grpc

    env = {**os.environ, "PULUMI_PROJECT": "jamjam", "PULUMI_STACK": "production",
           "PULUMI_DRY_RUN": "true"}
    process = subprocess.Popen([sys.executable, "-u", str(POLICIES)], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env, cwd=POLICIES)
    try:
        port = process.stdout.readline().decode().strip()
        assert port.isdigit(), process.stderr.read().decode() if process.poll() is not None else port
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        process.kill()
        process.wait(timeout=30)


def _struct(values):
    from google.protobuf import struct_pb2
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


def test_the_running_pack_describes_every_rule_and_its_config(analyzer):
    from google.protobuf import empty_pb2, json_format
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty(), timeout=30)
    assert info.name == PACK_NAME
    assert [p.name for p in info.policies] == [p.name for p in ALL_POLICIES]
    schema = {p.name: json_format.MessageToDict(p.configSchema.properties)
              for p in info.policies if p.HasField("configSchema")}
    assert schema["public-ports-allowlisted"]["publicPorts"]["default"] == ["22/tcp", "5000/udp"]


def test_the_running_pack_fails_closed_and_reads_its_config(analyzer):
    from tools._pulumi_compat import analyzer_pb2
    request = analyzer_pb2.AnalyzeRequest(
        type=CONTAINER, name="jamjam-echo", urn="urn:pulumi:production::jamjam::x::jamjam-echo",
        properties=_struct(changed(ECHO, "ports.0.external", UNKNOWN)))
    found = analyzer.Analyze(request, timeout=30).diagnostics
    by_policy = {d.policyName: d for d in found}
    assert {"signaling-port-never-public", "public-ports-allowlisted",
            "database-ports-never-public"} <= set(by_policy)
    assert all(d.enforcementLevel == analyzer_pb2.EnforcementLevel.Value(LEVEL[d.policyName].upper())
               for d in found)
    assert "unknown at preview" in by_policy["signaling-port-never-public"].message

    opened = analyzer_pb2.AnalyzeRequest(type=COMMAND, name="vps-firewall", urn="urn:x::vps-firewall",
                                         properties=_struct(fw(FIREWALL["create"] + " --allow 443/tcp")))
    assert [d.policyName for d in analyzer.Analyze(opened, timeout=30).diagnostics] == [
        "public-ports-allowlisted"]
    analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
        "public-ports-allowlisted": analyzer_pb2.PolicyConfig(
            enforcementLevel=analyzer_pb2.MANDATORY,
            properties=_struct({"publicPorts": ["22/tcp", "5000/udp", "443/tcp"]}))}), timeout=30)
    try:
        assert list(analyzer.Analyze(opened, timeout=30).diagnostics) == []
        # Per stack: the pack runs for production (PULUMI_STACK), so only that override counts.
        for stack, expected in (("production", []), ("test", ["public-ports-allowlisted"])):
            analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(policyConfig={
                "public-ports-allowlisted": analyzer_pb2.PolicyConfig(
                    enforcementLevel=analyzer_pb2.MANDATORY,
                    properties=_struct({"stackPublicPorts": {
                        stack: ["22/tcp", "5000/udp", "443/tcp"]}}))}), timeout=30)
            assert [d.policyName for d in analyzer.Analyze(opened, timeout=30).diagnostics] == expected
    finally:
        analyzer.Configure(analyzer_pb2.ConfigureAnalyzerRequest(), timeout=30)


def test_the_running_pack_sees_which_env_values_are_secrets(analyzer):
    """pulumi-policy unwraps secrets before a rule runs; the pack's compat keeps the marker, in
    the analyzer process the CLI starts, for known and unknown secrets alike."""
    from tools._pulumi_compat import analyzer_pb2

    def diagnostics(envs):
        request = analyzer_pb2.AnalyzeRequest(
            type=CONTAINER, name="db", urn="urn:pulumi:production::jamjam::x::db",
            properties=_struct(changed(ECHO, "envs", envs)))
        return [d for d in analyzer.Analyze(request, timeout=30).diagnostics
                if d.policyName == "env-secrets-are-pulumi-secrets"]

    assert diagnostics([secret("POSTGRES_PASSWORD=generated"), secret(UNKNOWN), "POSTGRES_DB=app"]) == []
    [plaintext] = diagnostics(["POSTGRES_PASSWORD=generated"])
    assert "POSTGRES_PASSWORD" in plaintext.message and plaintext.enforcementLevel == analyzer_pb2.MANDATORY
    [unknown] = diagnostics([UNKNOWN])
    assert "unknown at preview and not a Pulumi secret" in unknown.message


def test_the_running_pack_reads_a_database_image_through_its_dependencies(analyzer):
    """The engine sends each resource's dependencies: a container that runs an image id is
    known to be postgres by the RemoteImage it depends on."""
    from tools._pulumi_compat import analyzer_pb2
    from tests.policy_fixtures import THINKRING, changed as change

    def stack(db_labels):
        resources = []
        for type_, name, inputs, *depends in THINKRING:
            if name == "db":
                inputs = change(change(inputs, "labels", db_labels), "volumes.0.containerPath", "/pg")
            resources.append(analyzer_pb2.AnalyzerResource(
                type=type_, name=name, urn=f"urn:x::{name}", properties=_struct(inputs),
                dependencies=[f"urn:x::{d}" for d in (depends[0] if depends else ())]))
        found = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources), timeout=30)
        return [d for d in found.diagnostics if d.policyName == "database-volumes-backed-up"]

    labelled = [{"label": "jamjam.backup", "value": "thinkring-db-backup"}]
    assert stack(labelled) == []
    [unlabelled] = stack([])
    assert "runs a database image" in unlabelled.message and unlabelled.urn == "urn:x::db"


def test_the_running_pack_knows_its_stack_from_the_cli(analyzer):
    from tools._pulumi_compat import analyzer_pb2
    resources = [analyzer_pb2.AnalyzerResource(type=t, name=n, urn=f"urn:x::{n}", properties=_struct(i))
                 for t, n, i in ARCHIVE[2:]]
    found = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=resources), timeout=30)
    assert {d.policyName for d in found.diagnostics} == {"production-has-log-archive"}


def test_the_example_config_is_the_default_behaviour():
    """The example spells out the settings (per-stack allowlists included) and leaves every
    rule at its own level, so a rule added later keeps the level its module gives it."""
    from jamjam_policies.config import validate_pack_config
    config = json.loads((POLICIES / "config.example.json").read_text())
    validate_pack_config(config, ALL_POLICIES)
    assert "all" not in config
    for name, entry in config.items():
        assert isinstance(entry, dict) and "enforcementLevel" not in entry, \
            f"{name}: the example sets no levels"
        assert set(entry) <= set(CONFIG_DEFAULTS[name])
        for key, value in entry.items():
            if key == "stackPublicPorts":
                assert all(v == CONFIG_DEFAULTS[name]["publicPorts"] for v in value.values())
            else:
                assert CONFIG_DEFAULTS[name][key] == value
    assert set(config["public-ports-allowlisted"]["stackPublicPorts"]) == {"production", "test"}
    for stack in ("production", "test"):
        resources = _offline_resources(stack)
        resources.append(_resource(CONTAINER, "latest", changed(ECHO, "image", "echo:latest"), stack))
        assert policy_check.check(stack, resources, config) == policy_check.check(stack, resources)
