"""heal-containers.sh, run for real against the recorded `docker` (tests/fixtures/bin/docker),
with its clock stepped a minute per run; alerts go through the real jamjam-alert.sh to a
receiver on loopback."""

from __future__ import annotations

import subprocess

import pytest

from tests.ops_helpers import (NAMES, T0, Docker, Host, docker, free_port,  # noqa: F401
                               host, receiver)

# --- restarts, back-off, give-up -------------------------------------------------------------------

def _heal(host, minute: int, **env) -> subprocess.CompletedProcess:
    result = host.run("heal-containers.sh", JAMJAM_NOW=str(T0 + 60 * minute), **env)
    assert result.returncode == 0, result.stderr
    return result


def test_an_unhealthy_container_is_restarted_and_alerted(host, receiver, docker):
    """Fake `docker` replays recorded `docker ps --format '{{.Names}}'` output."""
    docker.health(unhealthy=["jamjam-echo"], healthy=["jamjam-signaling", "jamjam-cloudflared"])
    _heal(host, 0)
    assert docker.restarts() == ["jamjam-echo"]
    assert "ps --filter label=jamjam.stack=production --filter health=unhealthy --format {{.Names}}" \
        in docker.calls()
    (content,) = receiver.contents()
    assert content.startswith("[production/vps1] ALERT heal/jamjam-echo: restarted jamjam-echo (unhealthy); restart 1 of at most 5")


def test_other_stacks_containers_are_left_alone(host, receiver, docker):
    """Fake `docker` answers only for the label filter of the stack it was recorded for."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0, JAMJAM_STACK="test")
    assert docker.restarts() == [] and receiver.requests == []


def test_restarts_back_off_exponentially(host, receiver, docker):
    """Fake `docker`, recorded `docker ps` lines; the clock is stepped a minute per run.
    Restarts at minutes 0, 1, 3, 7: waits of 1, 2, 4 minutes."""
    docker.health(unhealthy=["jamjam-signaling"])
    restarted_at = []
    for minute in range(10):
        before = len(docker.restarts())
        _heal(host, minute)
        if len(docker.restarts()) > before:
            restarted_at.append(minute)
    assert restarted_at == [0, 1, 3, 7]
    assert len(receiver.requests) == 4


def test_gives_up_after_the_limit_with_one_alert(host, receiver, docker):
    """Fake `docker`, recorded `docker ps` lines. With at most 3 restarts (minutes 0, 1, 3) the
    run at minute 7 gives up; later minutes neither restart nor alert again."""
    docker.health(unhealthy=["jamjam-signaling"])
    for minute in range(20):
        _heal(host, minute, JAMJAM_HEAL_MAX_RESTARTS="3")
    assert docker.restarts() == ["jamjam-signaling"] * 3
    gave_up = [c for c in receiver.contents() if "gave up" in c]
    assert len(gave_up) == 1
    assert gave_up[0].startswith("[production/vps1] ALERT heal/jamjam-signaling: gave up restarting jamjam-signaling: still unhealthy after 3 restarts since 04:00Z")
    assert len(receiver.requests) == 4


def test_a_give_up_alert_that_did_not_arrive_is_sent_again(host, receiver, docker):
    """Fake `docker` replaying recorded `docker ps` lines; the webhook is down for one minute."""
    docker.health(unhealthy=["jamjam-echo"])
    env = {"JAMJAM_HEAL_MAX_RESTARTS": "1"}
    _heal(host, 0, **env)
    good = (host.root / "alert-webhook").read_text()
    (host.root / "alert-webhook").write_text(f"http://127.0.0.1:{free_port()}/down\n")
    result = host.run("heal-containers.sh", JAMJAM_NOW=str(T0 + 60), **env)
    assert result.returncode == 1
    (host.root / "alert-webhook").write_text(good)
    _heal(host, 2, **env)
    _heal(host, 3, **env)
    assert docker.restarts() == ["jamjam-echo"]
    assert len([c for c in receiver.contents() if "gave up" in c]) == 1


def test_healthy_again_resolves_and_resets(host, receiver, docker):
    """Fake `docker`, recorded `docker ps` lines. Healthy within the window: RESOLVED, but the
    count stays (a flapping container still reaches the limit); healthy after the window, or
    after giving up: forgotten, and the next incident starts again at restart 1."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0, JAMJAM_HEAL_MAX_RESTARTS="2")
    docker.health(healthy=NAMES)
    _heal(host, 2, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert receiver.contents()[-1] == "[production/vps1] RESOLVED heal/jamjam-echo: jamjam-echo is healthy again after 1 restart(s)."
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 4, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert "restart 2 of at most 2" in receiver.contents()[-1], "flapping keeps its count"
    for minute in (5, 6, 7, 8):
        _heal(host, minute, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert "gave up" in receiver.contents()[-1]
    docker.health(healthy=NAMES)
    _heal(host, 9, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert receiver.contents()[-1].startswith("[production/vps1] RESOLVED heal/jamjam-echo")
    assert not (host.root / "state/jamjam-echo").exists()
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 10, JAMJAM_HEAL_MAX_RESTARTS="2")
    assert docker.restarts() == ["jamjam-echo"] * 3
    assert "restart 1 of at most 2" in receiver.contents()[-1]


def test_a_quiet_window_forgets_the_count(host, receiver, docker):
    """Fake `docker` replaying recorded `docker ps` lines; healthy an hour after the restart."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0)
    docker.health(healthy=NAMES)
    _heal(host, 2)
    assert (host.root / "state/jamjam-echo").exists()
    _heal(host, 61)
    assert not (host.root / "state/jamjam-echo").exists()


def test_docker_down_checks_nothing_and_fails(host, receiver, docker):
    """Fake `docker` fails the way the CLI does when the daemon is not running."""
    (docker.dir / "down").touch()
    result = host.run("heal-containers.sh", JAMJAM_NOW=str(T0))
    assert result.returncode == 1
    assert "docker did not answer" in result.stderr
    assert receiver.requests == []


def test_state_of_removed_containers_is_dropped(host, receiver, docker):
    """Fake `docker`: the recorded `docker ps -a` listing loses jamjam-echo."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0)
    (docker.dir / "ps-a-all.names").write_text("jamjam-signaling\njamjam-cloudflared\n")
    docker.health(healthy=["jamjam-signaling", "jamjam-cloudflared"])
    _heal(host, 1)
    assert not (host.root / "state/jamjam-echo").exists()


