"""`make rehearse` end to end, for real: each stack's whole rehearsal passes and leaves nothing
behind, and one interrupted with Ctrl-C in the middle of applying the plan stops, says so,
exits non-zero and leaves nothing behind either. Needs root (a few minutes per stack).

Both Debian releases the bootstrap supports are proven without a third rehearsal: production
runs on Debian 13 as its stack file says, the test stack on Debian 12 through a config
override (vpsDebianVersion: 12)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from rehearsal.engine import leftovers
from tools.render import ROOT, STACKS, stack_config

pytestmark = [pytest.mark.rehearsal,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root: namespaces, mounts, dockerd")]


def _tag(output: str) -> str:
    match = re.search(r"run tag (\w+)", output)
    assert match, output[:500]
    return match.group(1)


DEBIAN = {"production": 13, "test": 12}
"""The release each stack's rehearsal runs on."""
OVERRIDES = {"test": ["--config", "vpsDebianVersion=12"]}
"""Production rehearses its own stack file (13); the test stack is moved to 12."""
assert set(DEBIAN) == set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_a_whole_rehearsal_passes_and_leaves_nothing(stack):
    version = DEBIAN[stack]
    assert stack_config(stack)["jamjam:vpsDebianVersion"] == 13, "what the stack file says"
    proc = subprocess.run([sys.executable, "-m", "rehearsal", "--stack", stack,
                           *OVERRIDES.get(stack, [])], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-2000:]
    summary = out[out.index(f"\nrehearsal of stack {stack}\n"):]
    for step in ("apply plan", "containers healthy", "stand-ins behave", "internet probes",
                 "ssh hardened", "engine enforces declared limits", "pids limit (fork bomb)",
                 "cron files parse",
                 "job effect: unhealthy container restarted", "job effect: alerts reached the webhook",
                 "re-apply unchanged", "replace image pin", "destroy", "clean up"):
        assert re.search(rf"^{re.escape(step)} +[\d.]+  ok ", summary, re.M), (step, summary)
    assert "FAIL" not in summary
    # The pids limit is declared by a command, not a container input: proven, not "not declared".
    assert "pids limit not declared" not in out
    assert re.search(r"^   \S+: fork bomb stopped by the pids limit: \d+ forks then EAGAIN .* echoed",
                     out, re.M), out[-4000:]
    codename = {12: "bookworm", 13: "trixie"}[version]
    assert re.search(rf"^boot VPS +[\d.]+  ok   Debian GNU/Linux {version} \({codename}\), "
                     rf"docker.io \S+ on its mirror", summary, re.M), summary
    # The engine kept what the plan set: a 1 s start interval on 13 (Docker 26), none on 12,
    # where the provider's client would refuse a create that sets one (the rehearsal's applier
    # refuses it the same way, so a passing apply proves none was sent).
    line = re.search(r"^healthcheck start interval +[\d.]+  ok   (.*)$", summary, re.M)
    assert line, summary
    engine = {12: r"engine 20\.10\.\S+ \(API 1\.41\)", 13: r"engine 26\.\S+ \(API 1\.45\)"}
    assert re.match(rf"Debian {version}, {engine[version]}: Healthcheck.StartInterval ", line[1]), line[1]
    intervals = re.findall(r"jamjam-\w+ (\S+?)(?:,|$)", line[1])
    assert len(intervals) == 3 and set(intervals) == {"1s" if version == 13 else "none"}, line[1]
    assert leftovers(_tag(out)) == []


def test_ctrl_c_mid_apply_cleans_up():
    proc = subprocess.Popen([sys.executable, "-m", "rehearsal", "--stack", "test"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    seen = []
    deadline = time.monotonic() + 300
    # Interrupted once the plan is being applied: the VPS, its namespaces, mounts and an
    # SSH session running the bootstrap all exist at that point.
    for line in proc.stdout:
        seen.append(line)
        if line.startswith("== apply plan"):
            time.sleep(5)
            # As a terminal's Ctrl-C does: to the whole foreground process group.
            os.killpg(proc.pid, signal.SIGINT)
            break
        assert time.monotonic() < deadline, "".join(seen)
    rest, _ = proc.communicate(timeout=120)
    out = "".join(seen) + rest
    assert proc.returncode != 0
    assert re.search(r"^apply plan +[\d.]+  FAIL interrupted", out, re.M), out[-3000:]
    assert re.search(r"^clean up +[\d.]+  ok   nothing left behind", out, re.M), out[-3000:]
    assert leftovers(_tag(out)) == []
