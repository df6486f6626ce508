"""heal-containers.sh, run for real against the recorded `docker` (tests/fixtures/bin/docker),
with its clock stepped a minute per run; alerts go through the real jamjam-alert.sh to a
receiver on loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from tests.ops_helpers import (FILES, NAMES, T0, docker, free_port, host,  # noqa: F401
                               make_docker, make_host, receiver)

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




# --- damaged state ------------------------------------------------------------------------
# Each case: the container's state file is damaged, the container is unhealthy. The run must
# log the damage once, remove it, restart the container (recorded by the fake docker) and
# leave a good state behind, so the next minute backs off as usual without a word about it.

DAMAGED = {
    "empty": b"",
    "empty-line": b"\n",
    "truncated": b"3 1763870",                  # cut mid-write, no newline
    "too-few": b"2 1763870400 1763870520\n",
    "garbage": b"hello world\n",
    "binary": b"\x00\x7fELF\x02\x01\xff\xfe garbage",
    "octal": b"08 1763870400 1763870520 0 1\n",
    "not-a-flag": b"1 1763870400 1763870460 0 2\n",
    "too-many": b"1 1763870400 1763870460 0 1 7\n",
    # Evaluated by bash if used in arithmetic unchecked: would run a command as root.
    "injection": b"x[$(touch${IFS}INJECTED)] 1763870400 0 0 0\n",
    # Would mean "back off for three thousand years": the container never restarted again.
    "far-future": b"1 1763870400 99999999999 0 1\n",
    "long-line": b"1 " * 400 + b"\n",
}


def _damaged_then_healed(host, docker, receiver, expected_log: str) -> None:
    docker.health(unhealthy=["jamjam-echo"], healthy=["jamjam-signaling", "jamjam-cloudflared"])
    result = _heal(host, 5)
    assert docker.restarts() == ["jamjam-echo"], "a real heal follows the repair"
    damage = [line for line in result.stderr.splitlines() if "damaged" in line]
    assert len(damage) == 1 and expected_log in damage[0], result.stderr
    assert receiver.contents()[-1].startswith(
        "[production/vps1] ALERT heal/jamjam-echo: restarted jamjam-echo (unhealthy); restart 1 of at most 5")
    state = host.root / "state/jamjam-echo"
    assert state.is_file() and state.read_text() == f"1 {T0 + 300} {T0 + 360} 0 1\n"
    again = _heal(host, 5)
    assert "damaged" not in again.stderr and "backing off" in again.stderr
    assert docker.restarts() == ["jamjam-echo"]


@pytest.mark.parametrize("content", DAMAGED.values(), ids=DAMAGED.keys())
def test_damaged_state_is_logged_once_repaired_and_healing_goes_on(host, receiver, docker,
                                                                   content):
    (host.root / "state").mkdir()
    (host.root / "state/jamjam-echo").write_bytes(content)
    _damaged_then_healed(host, docker, receiver, "state file")
    assert not (host.root / "state/INJECTED").exists() and not (host.root / "INJECTED").exists()


@pytest.mark.parametrize("kind", ["directory", "fifo", "symlink"])
def test_state_that_is_not_a_regular_file_is_replaced(host, receiver, docker, kind):
    """Before: a directory there swallowed every new state (mv into it), so the container was
    restarted every minute without back-off for ever."""
    state = host.root / "state"
    state.mkdir()
    target = state / "jamjam-echo"
    if kind == "directory":
        target.mkdir()
        (target / "inside").write_text("1 2 3 0 1\n")
    elif kind == "fifo":
        os.mkfifo(target)
    else:
        (host.root / "elsewhere").write_text(f"1 {T0} {T0 + 60} 0 1\n")
        target.symlink_to(host.root / "elsewhere")
    _damaged_then_healed(host, docker, receiver, "not a regular file")
    if kind == "symlink":
        assert (host.root / "elsewhere").read_text() == f"1 {T0} {T0 + 60} 0 1\n", \
            "the file a link points at is not the job's to change"


def test_damaged_state_of_a_healthy_container_is_dropped(host, receiver, docker):
    (host.root / "state").mkdir()
    (host.root / "state/jamjam-echo").write_text("")
    result = _heal(host, 0)
    assert "jamjam-echo: state file" in result.stderr and "damaged (empty)" in result.stderr
    assert not (host.root / "state/jamjam-echo").exists()
    assert docker.restarts() == [] and receiver.requests == []


def test_a_directory_left_for_a_removed_container_does_not_fail_the_job(host, receiver, docker):
    (host.root / "state/gone-container").mkdir(parents=True)
    _heal(host, 0)
    assert not (host.root / "state/gone-container").exists()


def test_a_state_dir_that_is_a_file_is_replaced(host, receiver, docker):
    (host.root / "state").write_text("not a directory\n")
    docker.health(unhealthy=["jamjam-echo"])
    result = _heal(host, 0)
    assert "is not a directory" in result.stderr
    assert docker.restarts() == ["jamjam-echo"]
    assert (host.root / "state/jamjam-echo").is_file()


def test_a_temp_file_left_by_a_killed_run_is_removed(host, receiver, docker):
    stale = host.root / "state/.jamjam-echo.tmp"
    stale.parent.mkdir()
    stale.write_text("1 2")
    fresh = host.root / "state/.jamjam-signaling.tmp"
    fresh.write_text("1 2")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    _heal(host, 0)
    assert not stale.exists()
    assert fresh.exists(), "a temp file this young may be a running job's"


def test_state_is_replaced_whole(host, receiver, docker):
    """Written aside and renamed: no temp file stays, the file holds one whole line."""
    docker.health(unhealthy=["jamjam-echo"])
    _heal(host, 0)
    assert sorted(p.name for p in (host.root / "state").iterdir()) == ["jamjam-echo"]
    assert (host.root / "state/jamjam-echo").read_text() == f"1 {T0} {T0 + 60} 0 1\n"


def test_an_unwritable_state_dir_still_heals_and_says_so(host, receiver, docker):
    """A read-only disk must not stop the healing; it fails the run and the alert says there is
    no back-off. Made unwritable with a directory in the way of the temp file."""
    (host.root / "state/.jamjam-echo.tmp").mkdir(parents=True)
    docker.health(unhealthy=["jamjam-echo"])
    result = host.run("heal-containers.sh", JAMJAM_NOW=str(T0))
    assert result.returncode == 1
    assert "jamjam-echo: could not write its state" in result.stderr
    assert docker.restarts() == ["jamjam-echo"]
    assert "(state dir not writable: no back-off or limit until it is)" in receiver.contents()[-1]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the job as another user")
def test_unreadable_state_is_repaired(receiver):
    """As root every file is readable, so this run is as an unprivileged user, for whom a mode
    000 file is what an I/O error is to root: a file that cannot be read."""
    root = Path(tempfile.mkdtemp(prefix="jamjam-heal-"))
    try:
        root.chmod(0o755)
        host = make_host(root, receiver)
        docker = make_docker(host)
        state = root / "state"
        state.mkdir()
        (state / "jamjam-echo").write_text(f"1 {T0} {T0 + 60} 0 1\n")
        (state / "jamjam-echo").chmod(0)
        subprocess.run(["chown", "-R", "65534:65534", str(root)], check=True)
        docker.health(unhealthy=["jamjam-echo"])
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "bash",
             str(FILES / "heal-containers.sh")],
            env={**host.env, "JAMJAM_NOW": str(T0 + 300)}, capture_output=True, text=True,
            timeout=30)
        assert result.returncode == 0, result.stderr
        assert "damaged (unreadable)" in result.stderr
        assert docker.restarts() == ["jamjam-echo"]
        assert (state / "jamjam-echo").read_text() == f"1 {T0 + 300} {T0 + 360} 0 1\n"
    finally:
        shutil.rmtree(root)


# --- settings -----------------------------------------------------------------------------

BIG = "a whole number from 1 to 999999999999"


@pytest.mark.parametrize("name,value,expected", [
    ("JAMJAM_HEAL_MAX_RESTARTS", "five", "a whole number from 1 to 20; unset it for the default, 5"),
    ("JAMJAM_HEAL_MAX_RESTARTS", "21", "a whole number from 1 to 20; unset it for the default, 5"),
    # bash would read 060 as octal, 48 seconds.
    ("JAMJAM_HEAL_BACKOFF_SECONDS", "060", f"{BIG}; unset it for the default, 60"),
    ("JAMJAM_HEAL_WINDOW_SECONDS", "0", f"{BIG}; unset it for the default, 3600"),
    ("JAMJAM_DOCKER_TIMEOUT", "1e3", f"{BIG}; unset it for the default, 120"),
    ("JAMJAM_NOW", "9" * 13, f"{BIG}; unset it for the default, the current time"),
])
def test_a_bad_setting_is_refused_by_its_variable_name(host, receiver, docker, name, value,
                                                       expected):
    docker.health(unhealthy=["jamjam-echo"])
    result = host.run("heal-containers.sh", **{name: value})
    assert result.returncode == 2
    assert result.stderr == f"heal-containers: {name}={value} is not {expected}\n"
    assert docker.restarts() == [] and receiver.requests == []
