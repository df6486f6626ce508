"""What each stack declares, asserted against SPEC.md's tables.

SPEC's facts (hostnames, log levels, echo delays, ports, healthcheck timings, its three
containers, 8080 never published) are asserted as they are. What SPEC leaves open (memory and
pids limits, image pins, extra containers) is asserted against the config the stack rendered
with (tests/config_helpers.py), so a stack file may change it without a test edit."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from jamjam_infra.container import DEFAULT_MEMORY_MB, DEFAULT_PIDS_LIMIT
from jamjam_infra.tunnel import CLOUDFLARED_USER
from tests.config_helpers import configured
from tools.render import RenderedStack, is_secret, render, reveal

ROOT = Path(__file__).resolve().parent.parent
CONTAINER = "docker:index/container:Container"
COMMAND = "command:remote:Command"

# SPEC.md "What runs where": its three containers, by the role label each carries.
SPEC_CONTAINERS = {"signaling": "jamjam-signaling", "echo": "jamjam-echo",
                   "cloudflared": "jamjam-cloudflared"}

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
    (record,) = stack.of_type("cloudflare:index/dnsRecord:DnsRecord")
    assert record.name == f"signaling-dns-{spec['hostname']}"
    dns = record.inputs
    tunnel_id = stack.outputs["tunnelId"]
    assert dns["name"] == spec["hostname"]
    assert dns["type"] == "CNAME"
    assert dns["content"] == f"{tunnel_id}.cfargotunnel.com"
    assert dns["proxied"] is True and dns["ttl"] == 1.0


def _roles(stack: RenderedStack) -> dict[str, dict]:
    """Role label -> the container's inputs."""
    found = {}
    for container in stack.of_type(CONTAINER):
        labels = {label["label"]: label["value"] for label in container.inputs["labels"]}
        found[labels["jamjam.role"]] = container.inputs
    return found


def test_the_containers_are_spec_s_three_plus_what_the_stack_pins(case):
    """One container per image the stack pins, none left out, none without a pin; SPEC's
    three among them under the names its runbook uses (`docker exec jamjam-echo ...`)."""
    stack, _ = case
    roles = _roles(stack)
    pinned = configured(stack.stack, "images")
    assert set(roles) == set(pinned)
    assert {role: roles[role]["name"] for role in SPEC_CONTAINERS} == SPEC_CONTAINERS
    assert len(stack.of_type(CONTAINER)) == len(roles), "one container per role"


def test_containers_match_spec(case):
    stack, spec = case
    containers = {c.inputs["name"]: c for c in stack.of_type(CONTAINER)}

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
    # The probe asks the metrics server cloudflared was started with, on loopback only
    # (nothing is published).
    metrics = _arg(stack.named("jamjam-cloudflared").inputs["command"], "--metrics")
    assert metrics.startswith("127.0.0.1:")
    assert tests["jamjam-cloudflared"] == ["CMD", "cloudflared", "tunnel", "--metrics", metrics,
                                           "ready"]


def _pinned(reference: str) -> bool:
    """A digest, or a tag other than the moving `latest`."""
    if "@sha256:" in reference:
        return True
    last = reference.rsplit("/", 1)[-1]
    return ":" in last and last.rsplit(":", 1)[1] not in ("", "latest")


def test_images_are_the_stack_s_pins_and_kept_for_rollback(case):
    stack, _ = case
    images = stack.of_type("docker:index/remoteImage:RemoteImage")
    # Exactly what the stack file pins, each pulled once.
    assert sorted(i.inputs["name"] for i in images) == sorted(
        configured(stack.stack, "images").values())
    for image in images:
        assert image.inputs["keepLocally"] is True
        assert _pinned(image.inputs["name"]), image.inputs["name"]
    # Each container runs the image pulled for its role.
    by_urn = {r.urn: r for r in stack.resources}
    for role, inputs in _roles(stack).items():
        container = stack.named(inputs["name"])
        (pulled,) = [by_urn[u].inputs["name"] for u in container.options["dependencies"]
                     if by_urn[u].type == "docker:index/remoteImage:RemoteImage"]
        assert pulled == configured(stack.stack, f"images.{role}"), role


def test_docker_runs_through_an_ssh_provider_after_the_host_is_ready(case):
    stack, _ = case
    provider = stack.named("vps-docker")
    assert provider.inputs["host"] == f"ssh://jamjam@{stack.outputs['echoAddress'].split(':')[0]}:22"
    firewall = stack.named("vps-firewall")
    for resource in [*stack.of_type(CONTAINER), stack.named("vps-network")]:
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
    assert reveal(first.inputs["connection"])["user"] == configured(stack.stack,
                                                                    "ssh.initialUser")
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


# --- hardening and health-gated rollouts (issues 12 and 9 §4) -----------------------------

def _containers(stack: RenderedStack) -> dict[str, dict]:
    return {c.inputs["name"]: c.inputs for c in stack.of_type(CONTAINER)}


def _limit(stack: str, role: str, key: str, default: int,
           overrides: dict | None = None) -> int | None:
    """The stack's `containers.<role>.<key>`; else, for SPEC's containers, the library's
    default. None for a container beyond SPEC's left to its own spec."""
    return configured(stack, f"containers.{role}.{key}",
                      default if role in SPEC_CONTAINERS else None, overrides=overrides)


def test_every_container_is_hardened_by_default(case):
    stack, _ = case
    for role, inputs in _roles(stack).items():
        assert inputs["capabilities"]["drops"] == ["ALL"], role
        # Nothing added back to SPEC's containers unless the stack's containers.<role>.capAdd
        # says so (one beyond SPEC's may add some in its own spec).
        wanted = configured(stack.stack, f"containers.{role}.capAdd",
                            [] if role in SPEC_CONTAINERS else None)
        if wanted is not None:
            assert set(inputs["capabilities"].get("adds", [])) == \
                {str(c).upper().removeprefix("CAP_") for c in wanted}, role
        assert inputs["securityOpts"] == ["no-new-privileges=true"], role
        memory = _limit(stack.stack, role, "memoryMb", DEFAULT_MEMORY_MB)
        # Swap equal to memory: no swap on top, the limit is the limit.
        assert inputs["memory"] > 0 and inputs["memorySwap"] == inputs["memory"], role
        assert memory is None or inputs["memory"] == memory, role
        assert inputs["init"] is True, role


def test_only_cloudflared_runs_read_only_as_its_nonroot_user(case):
    """cloudflared's image is known (distroless, nonroot): read-only as its user unless the
    stack says otherwise. The others' images are unknown: switched off until an operator
    turns them on in the stack file."""
    stack, _ = case
    for role in SPEC_CONTAINERS:
        inputs = _roles(stack)[role]
        known = role == "cloudflared"
        read_only = configured(stack.stack, f"containers.{role}.readOnlyRootfs", known)
        user = configured(stack.stack, f"containers.{role}.user",
                          CLOUDFLARED_USER if known else None)
        assert inputs.get("readOnly", False) is read_only, role
        assert inputs.get("user") == (None if user is None else str(user)), role
    assert set(_roles(stack)["cloudflared"]["tmpfs"]) == {"/tmp"}


def test_up_waits_for_healthy_within_the_healthcheck_bound(case):
    stack, _ = case
    for name, inputs in _containers(stack).items():
        assert inputs["wait"] is True, name
        # start period 5 + first probe after one interval 30 + 3 x (interval 30 + timeout 3)
        # + 15 s margin: Docker would have called it unhealthy by then.
        assert inputs["waitTimeout"] == 5 + 30 + 3 * (30 + 3) + 15, name


def test_each_container_gets_its_pids_limit_keyed_on_its_id(case):
    stack, _ = case
    for role, inputs in _roles(stack).items():
        container = stack.named(inputs["name"])
        pids = _limit(stack.stack, role, "pidsLimit", DEFAULT_PIDS_LIMIT)
        create = stack.named(f"{container.name}-pids-limit").inputs["create"]
        found = re.fullmatch(rf"sudo -n docker update --pids-limit ([0-9]+) "
                             rf"{re.escape(container.inputs['name'])}", create)
        assert found and int(found[1]) > 0, create
        assert pids is None or int(found[1]) == pids, create
        limit = stack.named(f"{container.name}-pids-limit")
        assert limit.inputs["triggers"] == [container.id]
        assert container.urn in limit.options["dependencies"]


def test_stack_overrides_reach_that_container_only():
    """`jamjam:containers.<role>` in the stack config overrides the library's defaults for
    that role; the other roles keep theirs."""
    overrides = {"containers": {"echo": {"memoryMb": 256, "pidsLimit": 64,
                                         "readOnlyRootfs": True, "user": "1000:1000",
                                         "capAdd": ["NET_BIND_SERVICE"]}}}
    stack = render("test", overrides=overrides)
    echo = _containers(stack)["jamjam-echo"]
    assert (echo["memory"], echo["readOnly"], echo["user"]) == (256.0, True, "1000:1000")
    assert echo["capabilities"] == {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE"]}
    assert stack.named("jamjam-echo-pids-limit").inputs["create"].startswith(
        "sudo -n docker update --pids-limit 64 ")
    signaling = _containers(stack)["jamjam-signaling"]
    assert signaling["memory"] == _limit("test", "signaling", "memoryMb", DEFAULT_MEMORY_MB,
                                         overrides) != 256
    assert "readOnly" not in signaling


def test_the_firewall_opens_what_the_containers_publish():
    stack = render("test", overrides={"ports": {"echo": 5005}})
    echo = _containers(stack)["jamjam-echo"]
    assert echo["ports"] == [{"internal": 5005.0, "external": 5005.0, "protocol": "udp"}]
    create = stack.named("vps-firewall").inputs["create"]
    assert create.endswith("jamjam-firewall apply --ssh-port 22 --allow 5005/udp")


def test_each_shared_name_is_spelled_in_one_program_module():
    """Container names, the signaling alias, the label namespace's default and the rclone path
    each have one owner among the program's modules (settings.py aside: it is not the
    program's, and its spellings are no longer used)."""
    modules = [ROOT / "__main__.py", ROOT / "jamjam_app.py",
               *sorted((ROOT / "components").glob("*.py"))]
    for name in ('"signaling-server"', '"jamjam-echo"', '"jamjam-signaling"',
                 '"jamjam-cloudflared"', '"/etc/jamjam/rclone.conf"', 'LABEL_NAMESPACE = "'):
        owners = [m.name for m in modules if name in m.read_text()]
        assert len(owners) == 1, f"{name} spelled in {owners}"


def test_a_running_stack_keeps_its_docker_resources_by_alias(monkeypatch):
    """Before the component library the Docker resources were children of Services "jamjam"
    and the DNS record was `signaling-dns`; aliases move them in state instead of replacing
    them (a replaced CNAME would clash with the old one at Cloudflare)."""
    import tools.render as rendering

    aliases: dict[str, list[tuple[str, str]]] = {}
    register = rendering.RecordingMonitor.RegisterResource

    def recording(self, request):
        aliases[request.name] = [(a.spec.name, a.spec.parentUrn) for a in request.aliases]
        return register(self, request)

    monkeypatch.setattr(rendering.RecordingMonitor, "RegisterResource", recording)
    render("production")
    old = "urn:pulumi:production::jamjam::jamjam:index:Services::jamjam"
    assert aliases["vps-docker"] == [("jamjam-docker", old)]
    assert aliases["vps-network"] == [("jamjam-network", old)]
    for name in ("jamjam-signaling", "jamjam-echo", "jamjam-cloudflared"):
        assert aliases[name] == [("", old)] and aliases[f"{name}-image"] == [("", old)]
    assert ("signaling-dns", "") in aliases["signaling-dns-signaling-jamjam.koeda.me"]
