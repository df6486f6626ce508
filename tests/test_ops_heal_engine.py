"""heal-containers.sh against a real dockerd rather than the recorded `docker` output the other
heal tests replay: the label and health filters, the names it reads and the restart it issues
are Docker's own, so a format the recording got wrong (or a Docker release that changes it)
fails here. The back-off arithmetic stays covered, faster, by tests/test_ops_heal.py."""

from __future__ import annotations

import time

from tests.ops_helpers import T0, host, receiver  # noqa: F401 (fixtures)
from tests.test_docker_daemon import IMAGE, import_image, engine, image_tar  # noqa: F401 (fixtures)

# Probes every second, unhealthy after one failure: the test waits seconds, not minutes.
FAST = ["--health-interval", "1s", "--health-retries", "1", "--health-timeout", "1s"]


def _container(engine, name: str, stack: str, probe: str) -> None:
    engine.docker("run", "--detach", "--name", name, "--label", f"jamjam.stack={stack}",
                  "--health-cmd", probe, *FAST, IMAGE, "sleep", "3600")


def _started(engine, name: str) -> str:
    return engine.docker("inspect", "--format", "{{.State.StartedAt}}", name)


def _wait_health(engine, expected: dict[str, str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        now = {n: engine.docker("inspect", "--format", "{{.State.Health.Status}}", n)
               for n in expected}
        if now == expected:
            return
        assert time.monotonic() < deadline, f"health is {now}, expected {expected}"
        time.sleep(0.3)


def test_only_this_stacks_unhealthy_container_is_restarted_then_backed_off(
        engine, image_tar, host, receiver):  # noqa: F811 (fixtures)
    import_image(engine, image_tar)
    _container(engine, "jamjam-sick", "production", "false")
    _container(engine, "jamjam-fine", "production", "true")
    _container(engine, "other-sick", "test", "false")
    _wait_health(engine, {"jamjam-sick": "unhealthy", "jamjam-fine": "healthy",
                          "other-sick": "unhealthy"})
    before = {n: _started(engine, n) for n in ("jamjam-sick", "jamjam-fine", "other-sick")}
    env = {"DOCKER_HOST": engine.socket}

    first = host.run("heal-containers.sh", JAMJAM_NOW=str(T0), **env)
    assert first.returncode == 0, first.stderr
    after = {n: _started(engine, n) for n in before}
    assert after["jamjam-sick"] != before["jamjam-sick"], "the unhealthy container was not restarted"
    assert after["jamjam-fine"] == before["jamjam-fine"], "a healthy container was restarted"
    assert after["other-sick"] == before["other-sick"], "another stack's container was restarted"
    assert any("jamjam-sick" in c for c in receiver.contents()), receiver.contents()

    # Still failing: within the first back-off (60 s) nothing is restarted, after it again.
    _wait_health(engine, {"jamjam-sick": "unhealthy"})
    held = host.run("heal-containers.sh", JAMJAM_NOW=str(T0 + 30), **env)
    assert held.returncode == 0, held.stderr
    assert _started(engine, "jamjam-sick") == after["jamjam-sick"], "restarted inside the back-off"
    again = host.run("heal-containers.sh", JAMJAM_NOW=str(T0 + 61), **env)
    assert again.returncode == 0, again.stderr
    assert _started(engine, "jamjam-sick") != after["jamjam-sick"], "not restarted after the back-off"
