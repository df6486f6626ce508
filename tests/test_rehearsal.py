"""The rehearsal harness's own logic, without root: how rendered inputs become Docker API
bodies (and that an input it does not know stops it), dependency order, pin changes, cron
parsing, stand-in mapping, and its answer to bad arguments."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from rehearsal import checks
from rehearsal.__main__ import bumped_reference, override_for
from rehearsal.apply import CONTAINER, container_body, dependency_order, duration_ns, generic_ports
from rehearsal.engine import RehearsalError, require_tools
from rehearsal.images import standin_for
from tools.render import ROOT, reveal


def test_every_rendered_container_input_is_mapped(stacks):
    for stack in stacks.values():
        for resource in stack.of_type(CONTAINER):
            inputs = reveal(resource.inputs)
            body, more = container_body(inputs, "sha256:feed")
            assert body["Image"] == "sha256:feed"
            assert body["HostConfig"]["RestartPolicy"]["Name"] == inputs["restart"]
            assert body["HostConfig"]["LogConfig"] == {"Type": "json-file",
                                                       "Config": inputs["logOpts"]}
            assert body["Healthcheck"]["Test"] == inputs["healthcheck"]["tests"]
            assert body["Healthcheck"]["Interval"] == 30 * 10**9
            assert body["Labels"] == {i["label"]: i["value"] for i in inputs["labels"]}
            network = inputs["networksAdvanced"][0]
            assert body["NetworkingConfig"]["EndpointsConfig"][network["name"]]["Aliases"] == \
                network["aliases"]
            assert more == []


def test_hardening_inputs_reach_the_engine_fields():
    inputs = {"name": "x", "image": "i", "capabilities": {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE"]},
              "securityOpts": ["no-new-privileges=true"], "memory": 256, "init": True,
              "readOnly": True, "tmpfs": {"/tmp": "size=16m"}, "user": "65532:65532",
              "ulimits": [{"name": "nproc", "soft": 64, "hard": 64}],
              "ports": [{"internal": 5000, "external": 5000, "protocol": "udp"}]}
    body, _ = container_body(inputs, "sha256:feed")
    host = body["HostConfig"]
    assert host["CapDrop"] == ["ALL"] and host["CapAdd"] == ["NET_BIND_SERVICE"]
    assert host["SecurityOpt"] == ["no-new-privileges=true"]
    assert host["Memory"] == 256 * 2**20
    assert host["Init"] and host["ReadonlyRootfs"] and host["Tmpfs"] == {"/tmp": "size=16m"}
    assert host["Ulimits"] == [{"Name": "nproc", "Soft": 64, "Hard": 64}]
    assert host["PortBindings"] == {"5000/udp": [{"HostIp": "", "HostPort": "5000"}]}
    assert body["User"] == "65532:65532"


def test_an_input_the_rehearsal_does_not_know_stops_it():
    with pytest.raises(RehearsalError, match="'gpus' is not rehearsed"):
        container_body({"name": "x", "image": "i", "gpus": "all"}, "sha256:feed")
    with pytest.raises(RehearsalError, match="startTimeout"):
        container_body({"name": "x", "image": "i",
                         "healthcheck": {"tests": ["CMD", "true"], "startTimeout": "1s"}}, "i")


def test_durations():
    assert duration_ns("30s") == 30 * 10**9
    assert duration_ns("1m30s") == 90 * 10**9
    assert duration_ns("500ms") == 500 * 10**6
    with pytest.raises(RehearsalError):
        duration_ns("30")


def test_dependency_order_puts_every_dependency_first(stacks):
    for stack in stacks.values():
        ordered = dependency_order(stack)
        seen = set()
        children = {}
        for r in stack.resources:
            if r.parent:
                children.setdefault(r.parent, []).append(r.urn)
        for r in ordered:
            for dep in r.options["dependencies"]:
                pending = [dep]
                while pending:
                    urn = pending.pop()
                    assert urn in seen, f"{r.name} before its dependency {urn}"
                    pending += children.get(urn, [])
            seen.add(r.urn)
        assert len(ordered) == len(stack.resources)


def test_an_image_pin_change_is_found_in_the_stack_config(production):
    images = [reveal(r.inputs)["name"] for r in production.of_type("docker:index/remoteImage:RemoteImage")]
    for reference in images:
        new = bumped_reference(reference)
        assert new != reference and new.startswith(reference.split(":")[0])
        override = override_for("production", reference, new)
        (key, value), = override.items()
        assert new in value.values() and reference not in value.values()
    with pytest.raises(RehearsalError, match="not a value of the stack config"):
        override_for("production", "nowhere/image:1", "nowhere/image:2")


@pytest.mark.parametrize("field,spec,ok", [
    ("0", (0, 59, {}), True), ("*/5", (0, 59, {}), True), ("1-5,7", (0, 7, {}), True),
    ("mon-fri", checks.CRON_FIELDS[4], True), ("60", (0, 59, {}), False),
    ("*/0", (0, 59, {}), False), ("5-1", (0, 59, {}), False), ("x", (0, 59, {}), False),
])
def test_cron_fields(field, spec, ok):
    assert checks.cron_field_ok(field, *spec) is ok


def test_standins_are_chosen_by_repository_name():
    assert standin_for("cloudflare/cloudflared:2025.11.1").kind == "cloudflared"
    assert standin_for("cloudflare/cloudflared@sha256:" + "ab" * 32).user == "nonroot"
    assert standin_for("ghcr.io/koeda/jamjam-signaling-server:0.1.0").kind == "signaling"
    assert standin_for("ghcr.io/koeda/jamjam-echo-server:0.1.0").kind == "echo"
    # The example projects' images run the real software (rehearsal/images.py).
    assert standin_for("postgres:16").kind == "postgres"
    assert standin_for("localhost:5000/redis:7").kind == "redis"
    assert standin_for("ghcr.io/example/app:1").kind == "generic"


def test_the_generic_standin_listens_where_the_container_is_probed():
    inputs = {"ports": [{"internal": 3000, "external": 3000}, {"internal": 9, "protocol": "udp"}],
              "healthcheck": {"tests": ["CMD", "wget", "-q", "http://localhost:8000/health"]}}
    assert generic_ports(inputs) == ["JAMJAM_STANDIN_TCP=3000,8000", "JAMJAM_STANDIN_UDP=9"]
    assert generic_ports({"healthcheck": {"tests": ["CMD", "pg_isready", "-p 5432"]}}) == [
        "JAMJAM_STANDIN_TCP=5432"]


def test_missing_tools_are_named_with_their_package():
    with pytest.raises(RehearsalError, match="missing system packages: no-such-package"):
        require_tools({"no-such-tool-here": "no-such-package"})


def test_bad_arguments_get_one_line():
    proc = subprocess.run([sys.executable, "-m", "rehearsal", "--stack", "staging"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--stack" in lines[0] and "production|test" in lines[0]


def test_without_root_it_says_so_and_exits_non_zero():
    argv = [sys.executable, "-m", "rehearsal", "--stack", "test"]
    if os.geteuid() == 0:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "rehearsal: the rehearsal needs root (network and mount namespaces, dockerd); "
        "run it as root, e.g. `sudo make rehearse`"]
