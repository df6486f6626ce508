"""The rehearsal's engine and checks on a real Docker engine (dockerd in a network namespace
this test makes), without the VPS: the stand-ins answer the rendered healthchecks, and the
issue-12 checks pass when the engine enforces what a container declares and fail when it
does not. Needs root; nothing is left behind (asserted)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from rehearsal import checks
from rehearsal.apply import CONTAINER, DockerApi, container_body
from rehearsal.engine import RehearsalError
from rehearsal.images import import_standin
from tests.engine_helpers import scratch_engine
from tools.render import ROOT, RenderedStack, Resource, reveal

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and dockerd")


@pytest.fixture(scope="module")
def engine():
    with scratch_engine("t") as dockerd:
        yield dockerd, DockerApi(dockerd.socket)


def _stack(*inputs: dict, commands: dict[str, str] | None = None) -> RenderedStack:
    """Containers, plus commands (resource name -> create) as the library renders the pids
    limit next to each container."""
    return RenderedStack(stack="t", outputs={}, resources=tuple(
        Resource(type=CONTAINER, name=i["name"], urn=f"urn:t::{i['name']}", id="", custom=True,
                 parent=None, provider=None, inputs=i, options={"dependencies": []})
        for i in inputs) + tuple(
        Resource(type=checks.REMOTE_COMMAND, name=n, urn=f"urn:t::{n}", id="", custom=True,
                 parent=None, provider=None, inputs={"create": create}, options={"dependencies": []})
        for n, create in (commands or {}).items()))


def _run(api: DockerApi, inputs: dict, image: str) -> None:
    body, _ = container_body(inputs, image)
    api.request("POST", "/containers/create", body, query={"name": inputs["name"]})
    api.request("POST", f"/containers/{inputs['name']}/start")


def test_standins_answer_the_rendered_healthchecks(engine, production):
    dockerd, api = engine
    dockerd.docker("network", "create", "jamjam")
    images = {reveal(r.inputs)["name"]: r.urn for r in production.of_type("docker:index/remoteImage:RemoteImage")}
    ids = {urn: import_standin(dockerd.docker, ref) for ref, urn in images.items()}
    names = []
    for resource in production.of_type(CONTAINER):
        inputs = reveal(resource.inputs)
        image = next(ids[d] for d in resource.options["dependencies"] if d in ids)
        _run(api, inputs, image)
        names.append((inputs["name"], inputs["healthcheck"]["tests"][1:]))
    for name, health in names:
        # The rendered healthcheck command, run the way Docker runs it (exec in the container).
        deadline = time.monotonic() + 15
        while dockerd.docker("exec", name, *health, check=False).returncode != 0:
            assert time.monotonic() < deadline, f"{name}: {health} never passed"
            time.sleep(0.3)
    echo = next(n for n, _ in names if "echo" in n)
    deadline = time.monotonic() + 15
    while "reached ws://signaling-server:8080" not in dockerd.docker("logs", echo).stdout.decode():
        assert time.monotonic() < deadline, "echo-server never reached signaling-server"
        time.sleep(0.3)
    probe = subprocess.run([*dockerd.netns.enter(), sys.executable, "-m", "rehearsal.probe", "udp",
                            "127.0.0.1", "5000", "10"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert probe.returncode == 0
    for name, _ in names:
        api.request("DELETE", f"/containers/{name}", query={"force": "true"})
    dockerd.docker("network", "rm", "jamjam")


def test_every_rendered_container_declares_its_pids_limit_through_the_contract(production):
    # What the rehearsal reads is what the library renders: a positive N for every container.
    names = {reveal(r.inputs)["name"] for r in production.of_type(CONTAINER)}
    limits = checks.pids_commands(production)
    assert names and names <= set(limits)
    assert all(isinstance(limits[n], int) and limits[n] >= 1 for n in names)


HEALTHY = {"tests": ["CMD", "true"], "interval": "1s", "retries": 1}


def test_declared_hardening_is_what_the_engine_enforces(engine):
    dockerd, api = engine
    image = import_standin(dockerd.docker, "example/app:1")
    hardened = {"name": "hardened", "image": "x", "entrypoints": ["sleep", "600"],
                "capabilities": {"drops": ["ALL"]}, "securityOpts": ["no-new-privileges=true"],
                "memory": 64, "init": True, "healthcheck": HEALTHY}
    neighbour = {"name": "neighbour", "image": "x", "entrypoints": ["sleep", "600"],
                 "capabilities": {"drops": ["ALL"], "adds": ["NET_BIND_SERVICE"]},
                 "healthcheck": HEALTHY}
    for inputs in (hardened, neighbour):
        _run(api, inputs, image)
    # The library's command, run as the rehearsal runs it over SSH (here without sudo).
    create = "sudo -n docker update --pids-limit 40 hardened"
    dockerd.docker(*create.split()[3:])
    stack = _stack(hardened, neighbour, commands={"hardened-pids-limit": create})
    checks.wait_healthy(api, stack)
    lines = checks.enforced(api, dockerd.docker, stack, None)
    assert "CapEff 0 (empty)" in lines[0] and "NoNewPrivs 1" in lines[0]
    assert "memory 64 MiB" in lines[0] and "pids 40" in lines[0]
    assert "CapEff 400" in lines[1]   # NET_BIND_SERVICE is bit 10
    assert "pids limit not declared" in lines[1]   # no command names it: said, not proven
    bombs = checks.fork_bombs(api, dockerd.docker, stack)
    assert "hardened: fork bomb stopped by the pids limit" in bombs[0], bombs
    assert "pids.max 40 (declared 40)" in bombs[0] and "EAGAIN" in bombs[0]
    assert "neighbour passed their healthchecks" in bombs[0] and "hardened healthy again" in bombs[0]
    assert bombs[1:] == ["neighbour: pids limit not declared, no fork bomb"]
    for inputs in (hardened, neighbour):
        api.request("DELETE", f"/containers/{inputs['name']}", query={"force": "true"})


def test_the_checks_fail_when_the_engine_does_not_enforce_a_declaration(engine):
    dockerd, api = engine
    image = import_standin(dockerd.docker, "example/app:1")
    declared = {"name": "unenforced", "image": "x", "entrypoints": ["sleep", "600"],
                "capabilities": {"drops": ["ALL"]}, "securityOpts": ["no-new-privileges"]}
    commands = {"unenforced-pids-limit": "sudo -n docker update --pids-limit 30 unenforced"}
    # Created as a provider that dropped those fields would create it.
    _run(api, {"name": "unenforced", "image": "x", "entrypoints": ["sleep", "600"]}, image)
    stack = _stack(declared, commands=commands)
    with pytest.raises(RehearsalError, match="CapEff"):
        checks.enforced(api, dockerd.docker, stack, None)
    api.request("DELETE", "/containers/unenforced", query={"force": "true"})
    # Everything else enforced, the pids-limit command never run: both pids checks fail.
    _run(api, declared, image)
    with pytest.raises(RehearsalError, match=r"HostConfig.PidsLimit None \(unlimited\) in docker inspect, declared 30"):
        checks.enforced(api, dockerd.docker, stack, None)
    with pytest.raises(RehearsalError, match="not stopped by the pids limit 30"):
        checks.fork_bombs(api, dockerd.docker, stack)
    # A different N applied than declared is caught too, by inspect and by the cgroup.
    dockerd.docker("update", "--pids-limit", "60", "unenforced")
    with pytest.raises(RehearsalError, match="PidsLimit 60 in docker inspect, declared 30"):
        checks.enforced(api, dockerd.docker, stack, None)
    with pytest.raises(RehearsalError, match="EAGAIN but its pids cgroup has pids.max 60, declared 30"):
        checks.fork_bombs(api, dockerd.docker, stack)
    api.request("DELETE", "/containers/unenforced", query={"force": "true"})
