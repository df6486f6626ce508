"""install-trivy.sh, run for real with fake curl, gpg, dpkg-query and apt-get
(tests/fixtures/bin): no network, no real apt, every call recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.ops_helpers import apt, host, receiver  # noqa: F401 (pytest fixtures)


def test_install_trivy_is_idempotent(host, apt):
    """The first run installs key, repository and packages; the second changes nothing."""
    host.fake("curl", "gpg")
    apt.installed("curl")
    env = {"JAMJAM_TRIVY_KEYRING": str(host.root / "keyrings/trivy.gpg"),
           "JAMJAM_TRIVY_SOURCES": str(host.root / "trivy.list")}
    result = host.run("install-trivy.sh", **env)
    assert result.returncode == 0, result.stderr
    first = apt.calls()
    assert "apt-get install -y -q --no-install-recommends gnupg" in first
    assert first[-1] == "apt-get install -y -q --no-install-recommends trivy jq"
    assert (host.root / "trivy.list").read_text() == (
        f"deb [signed-by={host.root}/keyrings/trivy.gpg] https://aquasecurity.github.io/trivy-repo/deb generic main\n")
    assert (host.root / "keyrings/trivy.gpg").read_text() == "dearmored key"
    assert {p for p, s in apt.status().items() if s == "install ok installed"} == \
        {"curl", "gnupg", "trivy", "jq"}

    result = host.run("install-trivy.sh", **env)
    assert result.returncode == 0, result.stderr
    second = apt.calls()[len(first):]
    assert [c for c in second if c.startswith("apt-get")] == []
    assert len((host.root / "trivy.list").read_text().splitlines()) == 1


@pytest.mark.parametrize("which", ["JAMJAM_TRIVY_SOURCES", "JAMJAM_TRIVY_KEYRING"])
def test_a_directory_in_the_way_fails_the_install(host, apt, which):
    """Before: the source list or key landed inside the directory, the run passed, and apt
    then could not find trivy."""
    host.fake("curl", "gpg")
    apt.installed("curl", "gnupg")
    env = {"JAMJAM_TRIVY_KEYRING": str(host.root / "keyrings/trivy.gpg"),
           "JAMJAM_TRIVY_SOURCES": str(host.root / "trivy.list")}
    Path(env[which]).mkdir(parents=True)
    result = host.run("install-trivy.sh", **env)
    assert result.returncode != 0
    assert "directory" in result.stderr
    assert list(Path(env[which]).iterdir()) == []
    assert not any(c.startswith("apt-get install") for c in apt.calls())
