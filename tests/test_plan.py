"""`make plan`'s command, run as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _plan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.plan", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def tree() -> subprocess.CompletedProcess:
    return _plan()


def test_plan_prints_both_stacks_and_passes_the_policies(tree):
    assert tree.returncode == 0, tree.stderr[-2000:]
    out = tree.stdout
    assert "Stack production (project jamjam)" in out and "Stack test (project jamjam)" in out
    assert "jamjam-signaling  (docker:index/container:Container)" in out
    assert "Example values stood in for operator-only keys:" in out
    assert "vpsAddress=203.0.113.10" in out and "sshPrivateKey=[secret]" in out
    assert "signalingUrl: wss://signaling-jamjam.koeda.me" in out
    assert "Policies" in out


def test_plan_masks_every_secret(tree):
    out = tree.stdout
    assert "[secret]" in out
    for secret in ("mock-tunnel-connector-token", "EXAMPLE OPENSSH PRIVATE KEY",
                   "mock-api-token-value", "secret_access_key = "):
        assert secret not in out


def test_plan_json_is_the_same_content():
    result = _plan("test", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["stack"] == "test"
    names = {r["name"] for r in document["resources"]}
    assert {"jamjam-echo", "signaling-tunnel", "vps-firewall"} <= names
    tunnel = next(r for r in document["resources"] if r["name"] == "signaling-tunnel")
    assert tunnel["inputs"]["tunnelSecret"] == "[secret]"
    assert document["examples"]["vpsAddress"] == "203.0.113.20"
    assert isinstance(document["violations"], list)


def test_unknown_stack_is_a_clear_error():
    result = _plan("staging")
    assert result.returncode == 2
    assert "unknown stack 'staging'" in result.stderr
