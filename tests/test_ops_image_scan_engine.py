"""image-scan.sh against a real dockerd and a real registry, where tests/test_ops_image_scan.py
replays recorded `docker ps` and `docker image inspect` lines: containers created from image IDs
(as the program creates them) and images pulled from a registry (so they carry the repo digest
the script scans by) are Docker's own here. Trivy stays the recorded fake: its database and
Aqua's repository are out of reach. The registry is Debian's docker-registry, on loopback inside
the engine's network namespace, so nothing outside the test sees it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from tests.ops_helpers import FIXTURES, host, receiver  # noqa: F401 (fixtures)
from tests.test_docker_daemon import tool_path, engine, image_tar  # noqa: F401 (fixtures)
from tests.test_ops_image_scan import report_name

REPORTS = {"koeda/jamjam-signaling-server:0.1.0": "ops_trivy_signaling.json",
           "cloudflare/cloudflared:2025.11.1": "ops_trivy_cloudflared.json"}


@pytest.fixture
def registry(engine, tmp_path):  # noqa: F811 (fixture)
    """A registry on 127.0.0.1 in the engine's namespace; dockerd trusts loopback registries
    without TLS. Returns its host:port."""
    binary = tool_path("docker-registry")
    with socket.socket() as probe:          # a free port number; the netns is the test's own
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "registry.yml"
    config.write_text(f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'blobs'}\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    server = subprocess.Popen(["nsenter", f"--net=/var/run/netns/{engine.netns}", binary, "serve",
                               str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while subprocess.run(["nsenter", f"--net=/var/run/netns/{engine.netns}", "bash", "-c",
                              f"exec 3<>/dev/tcp/127.0.0.1/{port}"],
                             capture_output=True, timeout=10).returncode != 0:
            assert server.poll() is None, "docker-registry exited"
            assert time.monotonic() < deadline, "docker-registry did not listen"
            time.sleep(0.3)
        yield f"127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def _pulled(engine, image_tar, reference: str) -> str:
    """Import, push, forget, pull: the image now has the repo digest a real pull gives."""
    with image_tar.open("rb") as stream:
        subprocess.run([tool_path("docker"), "--host", engine.socket, "import", "-", reference],
                       stdin=stream, check=True, capture_output=True, timeout=60)
    engine.docker("push", reference, timeout=120)
    engine.docker("rmi", reference)
    engine.docker("pull", reference, timeout=120)
    return engine.docker("image", "inspect", "--format", "{{index .RepoDigests 0}}", reference)


def test_running_images_are_scanned_by_repo_digest_and_named_by_tag(
        engine, image_tar, registry, host, receiver):  # noqa: F811 (fixtures)
    reports = host.root / "trivy"
    reports.mkdir()
    host.fake("trivy")
    host.env["FAKE_TRIVY_DIR"] = str(reports)
    digests = {}
    for name, report in REPORTS.items():
        reference = f"{registry}/{name}"
        digests[reference] = _pulled(engine, image_tar, reference)
        shutil.copy(FIXTURES / report, reports / report_name(digests[reference]))
        image_id = engine.docker("image", "inspect", "--format", "{{.Id}}", reference)
        # By id, as the program creates containers; two of the same image count once.
        for _ in range(2):
            engine.docker("run", "--detach", "--label", "jamjam.stack=production", image_id,
                          "sleep", "3600")
    engine.docker("run", "--detach", "--label", "jamjam.stack=test", image_id, "sleep", "3600")

    result = host.run("image-scan.sh", JAMJAM_SCAN_TOP="2", DOCKER_HOST=engine.socket)
    assert result.returncode == 0, result.stderr
    calls = (reports / "calls").read_text().splitlines()
    assert sorted(calls) == sorted(f"image --quiet --format json --severity HIGH,CRITICAL {d}"
                                   for d in digests.values())
    (content,) = receiver.contents()
    assert "HIGH/CRITICAL vulnerabilities in 2 of 2 running image(s)" in content
    for reference in digests:
        assert f"- {reference}: " in content, content
