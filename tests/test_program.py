"""What each stack declares, asserted against SPEC.md's tables."""

from __future__ import annotations

import json

import pytest

from tools.render import RenderedStack, is_secret, render, reveal

CONTAINER = "docker:index/container:Container"
COMMAND = "command:remote:Command"

# SPEC.md "The two stacks"
SPEC = {
    "production": {"hostname": "signaling-jamjam.koeda.me", "rust_log": "info", "delay": "3000",
                   "archive": True, "tunnel": "jamjam-production"},
    "test": {"hostname": "test-signaling-jamjam.koeda.me", "rust_log": "debug", "delay": "1000",
             "archive": False, "tunnel": "jamjam-test"},
}


def _arg(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.fixture(params=["production", "test"])
def case(request, stacks) -> tuple[RenderedStack, dict]:
    return stacks[request.param], SPEC[request.param]


def test_tunnel_is_remotely_managed_with_a_strong_secret(case):
    stack, spec = case
    tunnel = stack.named("signaling-tunnel")
    assert tunnel.inputs["name"] == spec["tunnel"]
    assert tunnel.inputs["configSrc"] == "cloudflare"
    assert is_secret(tunnel.inputs["tunnelSecret"])
    secret = stack.named("signaling-secret")
    assert secret.type == "random:index/randomBytes:RandomBytes"
    assert secret.inputs["length"] >= 32


def test_ingress_routes_the_hostname_to_signaling_and_ends_with_404(case):
    stack, spec = case
    ingresses = stack.named("signaling-config").inputs["config"]["ingresses"]
    assert ingresses == [
        {"hostname": spec["hostname"], "service": "http://signaling-server:8080"},
        {"service": "http_status:404"},
    ]


def test_dns_is_a_proxied_cname_with_the_full_name(case):
    stack, spec = case
    dns = stack.named("signaling-dns").inputs
    tunnel_id = stack.outputs["tunnelId"]
    assert dns["name"] == spec["hostname"]
    assert dns["type"] == "CNAME"
    assert dns["content"] == f"{tunnel_id}.cfargotunnel.com"
    assert dns["proxied"] is True and dns["ttl"] == 1.0


def test_containers_match_spec(case):
    stack, spec = case
    containers = {c.inputs["name"]: c for c in stack.of_type(CONTAINER)}
    assert set(containers) == {"jamjam-signaling", "jamjam-echo", "jamjam-cloudflared"}

    signaling = containers["jamjam-signaling"].inputs
    assert signaling["entrypoints"] == ["signaling-server"]
    assert signaling["command"] == ["--port", "8080", "--host", "0.0.0.0"]
    assert signaling["envs"] == [f"RUST_LOG={spec['rust_log']}"]
    assert "ports" not in signaling, "8080 must never be published"
    assert signaling["networksAdvanced"] == [{"name": "jamjam", "aliases": ["signaling-server"]}]

    echo = containers["jamjam-echo"].inputs
    address = stack.outputs["echoAddress"]
    assert echo["entrypoints"] == ["echo-server"]
    assert echo["command"] == ["--port", "5000", "--host", "0.0.0.0", "--delay", spec["delay"],
                               "--signaling-url", "ws://signaling-server:8080",
                               "--public-addr", address]
    assert sorted(echo["envs"]) == sorted([f"RUST_LOG={spec['rust_log']}",
                                           f"ECHO_DELAY_MS={spec['delay']}",
                                           f"ECHO_PUBLIC_ADDR={address}"])
    assert echo["ports"] == [{"internal": 5000.0, "external": 5000.0, "protocol": "udp"}]

    cloudflared = containers["jamjam-cloudflared"].inputs
    assert cloudflared["command"][:2] == ["tunnel", "--no-autoupdate"]
    assert cloudflared["command"][-1] == "run"
    assert "ports" not in cloudflared, "cloudflared publishes nothing, metrics included"
    assert is_secret(cloudflared["envs"])
    assert reveal(cloudflared["envs"]) == [f"TUNNEL_TOKEN=mock-tunnel-connector-token-{stack.stack}"]


def test_every_container_restarts_rotates_logs_and_checks_health(case):
    stack, _ = case
    for container in stack.of_type(CONTAINER):
        inputs = container.inputs
        assert inputs["restart"] == "always"
        assert inputs["logDriver"] == "json-file"
        assert inputs["logOpts"] == {"max-size": "100m", "max-file": "5"}
        health = inputs["healthcheck"]
        assert (health["interval"], health["timeout"], health["retries"], health["startPeriod"]) \
            == ("30s", "3s", 3.0, "5s")
        assert health["tests"][0] == "CMD" and len(health["tests"]) > 1
        assert {"label": "jamjam.stack", "value": stack.stack} in inputs["labels"]
        assert "healthcheck" in container.options["replaceOnChanges"]
        assert container.options["deleteBeforeReplace"] is True
        assert not inputs.get("privileged") and not inputs.get("networkMode")
        assert inputs["image"].startswith("sha256:"), "containers run the pulled, pinned image"


def test_health_commands_are_the_tools_each_image_has(case):
    stack, _ = case
    tests = {c.inputs["name"]: c.inputs["healthcheck"]["tests"] for c in stack.of_type(CONTAINER)}
    assert tests["jamjam-echo"] == ["CMD", "pgrep", "echo-server"]
    assert tests["jamjam-cloudflared"] == ["CMD", "cloudflared", "tunnel", "--metrics",
                                           "127.0.0.1:20241", "ready"]
    metrics = stack.named("jamjam-cloudflared").inputs["command"]
    assert _arg(metrics, "--metrics") == "127.0.0.1:20241"


def test_images_are_pinned_and_kept_for_rollback(case):
    stack, _ = case
    images = stack.of_type("docker:index/remoteImage:RemoteImage")
    assert len(images) == 3
    for image in images:
        assert image.inputs["keepLocally"] is True
        reference = image.inputs["name"]
        assert ":" in reference.rsplit("/", 1)[-1] and not reference.endswith(":latest")


def test_docker_runs_through_an_ssh_provider_after_the_host_is_ready(case):
    stack, _ = case
    provider = stack.named("jamjam-docker")
    assert provider.inputs["host"] == f"ssh://jamjam@{stack.outputs['echoAddress'].split(':')[0]}:22"
    firewall = stack.named("vps-firewall")
    for resource in [*stack.of_type(CONTAINER), stack.named("jamjam-network")]:
        assert resource.provider.startswith(provider.urn)
        assert firewall.urn in resource.options["dependencies"]


def test_firewall_allows_ssh_and_echo_only_and_keeps_ssh_on_removal(case):
    stack, _ = case
    firewall = stack.named("vps-firewall").inputs
    assert firewall["create"].endswith("jamjam-firewall apply --ssh-port 22 --allow 5000/udp")
    assert "8080" not in firewall["create"]
    assert "remove --ssh-port 22" in firewall["delete"]
    assert firewall["stdin"].startswith("#!/usr/bin/env bash")


def test_bootstrap_runs_once_as_the_first_user_then_as_jamjam(case):
    stack, _ = case
    first = stack.named("vps-first-contact")
    assert reveal(first.inputs["connection"])["user"] == "root"
    assert not first.inputs["create"].startswith("sudo"), "root on a fresh VPS may lack sudo"
    assert set(first.options["ignoreChanges"]) >= {"connection", "stdin"}
    bootstrap = stack.named("vps-bootstrap")
    assert reveal(bootstrap.inputs["connection"])["user"] == "jamjam"
    assert bootstrap.inputs["create"].startswith("sudo -n ")
    assert first.urn in bootstrap.options["dependencies"]


def test_exports_tell_an_operator_where_things_are(case):
    stack, spec = case
    outputs = stack.outputs
    assert outputs["signalingUrl"] == f"wss://{spec['hostname']}"
    assert outputs["echoAddress"].endswith(":5000")
    assert outputs["tunnelName"] == spec["tunnel"]
    assert outputs["tunnelId"] == stack.named("signaling-config").inputs["tunnelId"]
    assert any(check.startswith("curl -I https://") for check in outputs["operatorChecks"])


def _plaintext(value) -> str:
    """Every input with secrets left out, as the state file would show them in the clear."""
    def strip(v):
        if is_secret(v):
            return "[secret]"
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items()}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return json.dumps(strip(value))


def test_secrets_never_appear_in_plaintext():
    key = "-----EXAMPLE OPENSSH PRIVATE KEY marker-7f3a9-----"
    hook = "https://hooks.example.invalid/marker-b41c2"
    stack = render("production", overrides={"sshPrivateKey": {"secret": key},
                                            "alertWebhookUrl": {"secret": hook}})
    token = "mock-tunnel-connector-token-production"
    tunnel_secret = reveal(stack.named("signaling-tunnel").inputs["tunnelSecret"])
    everything = _plaintext([r.inputs for r in stack.resources]) + _plaintext(stack.outputs)
    revealed = json.dumps(reveal([r.inputs for r in stack.resources]))
    for secret in (key, token, tunnel_secret, hook, "marker-7f3a9", "marker-b41c2"):
        assert secret not in everything
    # ...and the secrets did reach the resources that need them (the check above can fail).
    for secret in (key, token, tunnel_secret):
        assert secret in revealed


def test_rendering_twice_gives_identical_inputs(stacks):
    again = render("production")
    first = [(r.type, r.name, r.inputs, r.options) for r in stacks["production"].resources]
    second = [(r.type, r.name, r.inputs, r.options) for r in again.resources]
    assert sorted(map(repr, first)) == sorted(map(repr, second))
    assert stacks["production"].outputs == again.outputs


def test_stacks_are_separate(stacks):
    production, test = stacks["production"], stacks["test"]
    assert production.outputs["tunnelId"] != test.outputs["tunnelId"]
    assert production.outputs["signalingUrl"] != test.outputs["signalingUrl"]
