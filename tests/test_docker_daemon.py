"""The docker step of components/files/bootstrap.sh against a real dockerd.

Each test starts its own dockerd (docker.io from the distribution) inside a network namespace it
creates, with its own data root, exec root, pidfile and socket, and a mount namespace in which
/etc/docker is the test's, so nothing touches this machine's Docker. bootstrap.sh runs as the
program ships it for a Debian 12 host (this machine's docker.io) with JAMJAM_ROOT set (daemon.json
and the os-release it checks go under a temporary root); `systemctl` on its PATH is
tests/fixtures/systemctl-dockerd.sh, which restarts and reloads that dockerd the way systemd
does docker.service, and records each call. The containers
run a one-file image made here from the static busybox (no registry is reachable).
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from jamjam_infra.host import Debian, bootstrap_script
from tests.bootstrap_helpers import filled_bootstrap

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "components/files/bootstrap.sh"
# The tests read the script's text, the engine runs it.
BOOTSTRAP = filled_bootstrap(12)
DEBIAN_12 = 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nID=debian\n'
FAKE_SYSTEMCTL = ROOT / "tests/fixtures/systemctl-dockerd.sh"
PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
IMAGE = "jamjam-test/busybox:1"

# What the program promises in /etc/docker/daemon.json (SPEC: json-file, 100m x 5).
PROMISED = {
    "live-restore": True,
    "no-new-privileges": True,
    "userland-proxy": False,
    "icc": False,
    "log-driver": "json-file",
    "log-opts": {"max-size": "100m", "max-file": "5"},
    "log-level": "info",
    "iptables": True,
    "experimental": False,
}
# Valid on its own, refused when dockerd starts: the service passes --host as a flag (docker.service
# passes -H fd://), and a setting given both ways stops dockerd. `dockerd --validate` reads the
# file without the service's flags, so only the rollback can catch this one.
REFUSED_AT_START = '{"hosts": ["unix:///run/jamjam-test-never.sock"]}\n'
NOT_JSON = '{\n  "live-restore": true,\n'


def shipped_daemon_json() -> dict:
    """The daemon.json bootstrap.sh writes: the heredoc in its daemon_json function."""
    text = BOOTSTRAP.read_text()
    body = text[text.index("daemon_json() {"):]
    body = body[body.index("cat <<'EOF'\n") + len("cat <<'EOF'\n"):]
    return json.loads(body[:body.index("\nEOF\n")])


def tool_path(tool: str) -> str:
    """Where a tool the engine tests need is installed; a missing one fails naming its fix."""
    found = shutil.which(tool, path=PATH)
    assert found, f"{tool} is needed: run `bash .ci/system-packages.sh`"
    return found


@pytest.fixture(scope="module")
def image_tar(tmp_path_factory) -> Path:
    """A root filesystem holding only the static busybox, as `docker import` takes it."""
    busybox = tool_path("busybox")
    linked = subprocess.run(["ldd", busybox], capture_output=True, text=True)
    assert linked.returncode != 0, "busybox must be static (Debian package busybox-static)"
    tar_path = tmp_path_factory.mktemp("image") / "rootfs.tar"
    applets = ["sh", "nc", "httpd", "sleep", "cat", "grep", "sed"]
    with tarfile.open(tar_path, "w") as tar:
        info = tarfile.TarInfo("bin")
        info.type, info.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in applets:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
        page = tarfile.TarInfo("www/index.html")
        page.size = 3
        tar.addfile(page, io.BytesIO(b"ok\n"))
    return tar_path


class Engine:
    """One test's dockerd, its temporary root and the environment bootstrap.sh runs in."""

    def __init__(self, root: Path, state: Path, netns: str) -> None:
        self.root, self.state, self.netns = root, state, netns
        self.daemon_json = root / "etc/docker/daemon.json"
        self.daemon_json.parent.mkdir(parents=True)
        (root / "etc/os-release").write_text(DEBIAN_12)
        self.socket = f"unix://{state}/docker.sock"
        bindir = state / "bin"
        bindir.mkdir()
        (bindir / "systemctl").symlink_to(FAKE_SYSTEMCTL)
        self.env = {"PATH": f"{bindir}:{PATH}", "JAMJAM_ROOT": str(root),
                    "JAMJAM_TEST_DOCKERD": str(state), "JAMJAM_TEST_NETNS": netns,
                    "DOCKER_HOST": self.socket}

    def systemctl(self, *args: str) -> None:
        subprocess.run(["bash", str(FAKE_SYSTEMCTL), *args], env=self.env, check=True,
                       timeout=90)

    def docker(self, *args: str, check: bool = True, timeout: int = 60) -> str:
        result = subprocess.run(["/usr/bin/docker", "--host", self.socket, *args],
                                capture_output=True, text=True, timeout=timeout)
        if check:
            assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
        return result.stdout.strip()

    def info(self) -> dict:
        return json.loads(self.docker("info", "--format", "{{json .}}"))

    def pid(self) -> int:
        return int((self.state / "dockerd.pid").read_text())

    def calls(self) -> list[str]:
        path = self.state / "calls"
        return path.read_text().splitlines() if path.exists() else []

    def bootstrap(self, config: str | None = None,
                  script: Path = BOOTSTRAP) -> subprocess.CompletedProcess:
        env = dict(self.env)
        if config is not None:
            override = self.state / "override.json"
            override.write_text(config)
            env["JAMJAM_DOCKER_DAEMON_JSON"] = str(override)
        return subprocess.run(["bash", str(script), "--user", "jamjam", "--step", "docker"],
                              env=env, capture_output=True, text=True, timeout=300)

    def leftovers(self) -> list[str]:
        # key.json is dockerd 20.10's own identity file, written next to daemon.json.
        return sorted(p.name for p in self.daemon_json.parent.iterdir()
                      if p.name not in ("daemon.json", "key.json"))


def _processes_under(path: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if path.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    """A running dockerd as docker.io leaves it: no /etc/docker/daemon.json yet."""
    if os.geteuid() != 0:
        pytest.skip("dockerd and network namespaces need root")
    for tool in ("dockerd", "containerd", "runc", "nsenter", "ip", "jq"):
        tool_path(tool)
    suffix = secrets.token_hex(3)
    netns = f"jamjam-hd-{suffix}"
    # Unix socket paths are limited to 108 bytes: pytest's tmp_path is too deep for containerd's.
    state = Path(tempfile.mkdtemp(prefix=f"jjd-{suffix}-", dir="/tmp"))
    subprocess.run(["ip", "netns", "add", netns], check=True, timeout=30)
    subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True, timeout=30)
    root = tmp_path / "root"
    root.mkdir()
    engine = Engine(root, state, netns)
    try:
        engine.systemctl("start", "docker.service")
        (state / "calls").unlink()
        yield engine
    finally:
        try:
            ids = engine.docker("ps", "-aq", check=False, timeout=30).split()
            if ids:
                engine.docker("rm", "-f", *ids, check=False, timeout=60)
            engine.systemctl("stop", "docker.service")
        except (subprocess.SubprocessError, OSError, AssertionError):
            pass
        for pid in _processes_under(str(state)):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 30
        while _processes_under(str(state)) and time.monotonic() < deadline:
            time.sleep(0.2)
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
                  if line.split()[1].startswith(str(state))]
        for mount in sorted(mounts, key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], timeout=30, check=False)
        subprocess.run(["ip", "netns", "del", netns], timeout=30, check=False)
        shutil.rmtree(state, ignore_errors=True)


def _single_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


def _verdict(stderr: str) -> str:
    """bootstrap's own last line; systemctl's report of the failed restart comes before it."""
    line = stderr.rstrip().splitlines()[-1]
    assert line.startswith("bootstrap: "), stderr
    return line


def test_the_shipped_daemon_json_is_the_promised_one():
    assert shipped_daemon_json() == PROMISED


@pytest.mark.parametrize("stack", ["production", "test"])
def test_every_stack_runs_the_docker_step_with_the_shipped_script(stacks, stack):
    """The bootstrap command runs every step (no --step), so the daemon step reaches each VPS,
    and a change to the daemon config changes the script, which reruns it on `pulumi up`."""
    bootstrap = stacks[stack].named("vps-bootstrap")
    assert bootstrap.inputs["stdin"] == bootstrap_script(Debian(13))
    assert "--step" not in bootstrap.inputs["create"]
    assert "packages docker user ssh" in SHIPPED.read_text(), "the default step order"


def test_the_fake_systemctl_is_shellcheck_clean():
    result = subprocess.run(["shellcheck", "-S", "style", str(FAKE_SYSTEMCTL)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_first_run_installs_the_config_and_dockerd_restarts_with_it(engine):
    before = engine.pid()
    assert engine.info()["LiveRestoreEnabled"] is False, "the control case: docker.io's default"
    result = engine.bootstrap()
    assert result.returncode == 0, result.stderr
    assert json.loads(engine.daemon_json.read_text()) == PROMISED
    assert oct(engine.daemon_json.stat().st_mode & 0o777) == "0o644"
    assert engine.calls() == ["reload docker.service", "restart docker.service"], "live-restore on by reload, then the restart"
    assert engine.pid() != before
    info = engine.info()
    assert info["LiveRestoreEnabled"] is True
    assert info["LoggingDriver"] == "json-file"
    assert info["ExperimentalBuild"] is False
    assert engine.leftovers() == [], "no staged or previous copy left behind"


def test_a_second_run_changes_nothing_and_does_not_restart(engine):
    assert engine.bootstrap().returncode == 0
    stat, pid = engine.daemon_json.stat(), engine.pid()
    result = engine.bootstrap()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert engine.calls() == ["reload docker.service", "restart docker.service"], "only the first run restarted dockerd"
    assert engine.pid() == pid
    assert (engine.daemon_json.stat().st_mtime_ns, engine.daemon_json.stat().st_ino) == \
        (stat.st_mtime_ns, stat.st_ino)
    assert engine.leftovers() == []


@pytest.mark.parametrize("config", [NOT_JSON, "[]\n", "", "{}\n{}\n"],
                         ids=["truncated", "array", "empty", "two-objects"])
def test_a_config_that_does_not_validate_is_refused_before_any_restart(engine, config):
    assert engine.bootstrap().returncode == 0
    good, pid = engine.daemon_json.read_bytes(), engine.pid()
    result = engine.bootstrap(config)
    assert result.returncode == 1
    line = _single_line(result.stderr)
    assert "did not install the new" in line and "daemon.json" in line and "nor restart" in line
    assert engine.daemon_json.read_bytes() == good
    assert engine.calls() == ["reload docker.service", "restart docker.service"]
    assert engine.pid() == pid
    assert engine.leftovers() == []


def test_a_config_dockerd_refuses_at_start_is_rolled_back_and_dockerd_comes_back(engine):
    assert engine.bootstrap().returncode == 0
    good = engine.daemon_json.read_bytes()
    result = engine.bootstrap(REFUSED_AT_START)
    assert result.returncode == 1
    line = _verdict(result.stderr)
    assert "did not come back with the new" in line
    assert "the previous configuration is back and dockerd runs with it" in line
    assert engine.daemon_json.read_bytes() == good
    assert engine.calls() == ["reload docker.service", "restart docker.service", "restart docker.service", "reset-failed docker.service", "restart docker.service"]
    assert engine.info()["LiveRestoreEnabled"] is True, "dockerd runs the restored file"
    assert engine.leftovers() == []


def test_a_refused_first_config_is_removed_and_dockerd_comes_back(engine):
    result = engine.bootstrap(REFUSED_AT_START)
    assert result.returncode == 1 and "previous configuration is back" in result.stderr
    assert not engine.daemon_json.exists()
    assert engine.info()["LiveRestoreEnabled"] is False
    assert engine.leftovers() == []


def test_when_the_previous_config_fails_too_the_step_says_docker_is_down(engine):
    # A file dockerd would refuse, put there by hand while dockerd kept running.
    engine.daemon_json.parent.mkdir(parents=True, exist_ok=True)
    engine.daemon_json.write_text('{"storage-driver": "jamjam-other-missing-driver"}\n')
    before = engine.daemon_json.read_bytes()
    result = engine.bootstrap(REFUSED_AT_START)
    assert result.returncode == 1
    line = _verdict(result.stderr)
    assert "nor with the previous configuration" in line and "Docker is down" in line
    assert engine.daemon_json.read_bytes() == before, "the operator's file is back as it was"
    assert engine.leftovers() == []


def test_a_run_that_stopped_before_dockerd_came_back_is_finished(engine):
    """Killed between installing the file and the restart: the next run must still restart."""
    engine.daemon_json.parent.mkdir(parents=True, exist_ok=True)
    engine.daemon_json.write_text(json.dumps(PROMISED))
    (engine.daemon_json.parent / ".daemon.json.jamjam-previous").write_text("")  # none before
    assert engine.info()["LiveRestoreEnabled"] is False, "dockerd never loaded the new file"
    result = engine.bootstrap()
    assert result.returncode == 0, result.stderr
    assert "finishing a change" in result.stderr
    assert engine.calls() == ["reload docker.service", "restart docker.service"]
    assert engine.info()["LiveRestoreEnabled"] is True
    assert engine.leftovers() == []


def test_an_interrupted_change_that_fails_rolls_back_to_what_ran_before_it(engine):
    engine.daemon_json.parent.mkdir(parents=True, exist_ok=True)
    engine.daemon_json.write_text(json.dumps(PROMISED))
    (engine.daemon_json.parent / ".daemon.json.jamjam-previous").write_text("")
    result = engine.bootstrap(REFUSED_AT_START)
    assert result.returncode == 1 and "previous configuration is back" in result.stderr
    assert not engine.daemon_json.exists(), "there was no daemon.json before the first change"
    assert engine.info()["LiveRestoreEnabled"] is False
    assert engine.leftovers() == []


def import_image(engine: Engine, tar: Path) -> None:
    """Load the test image (``tar``, a rootfs) into ``engine`` as IMAGE."""
    with tar.open("rb") as stream:
        subprocess.run(["/usr/bin/docker", "--host", engine.socket, "import", "-", IMAGE],
                       stdin=stream, check=True, capture_output=True, timeout=60)


def test_containers_get_the_daemon_defaults(engine, image_tar):
    assert engine.bootstrap().returncode == 0
    import_image(engine, image_tar)
    cid = engine.docker("run", "-d", "-p", "127.0.0.1:18080:8080", IMAGE,
                        "httpd", "-f", "-p", "8080", "-h", "/www")
    status = engine.docker("exec", cid, "cat", "/proc/1/status")
    assert "NoNewPrivs:\t1" in status, "no-new-privileges by default"
    log_config = json.loads(engine.docker("inspect", "--format", "{{json .HostConfig.LogConfig}}", cid))
    assert log_config == {"Type": "json-file", "Config": {"max-size": "100m", "max-file": "5"}}
    # With the userland proxy on, dockerd starts a docker-proxy child per published port.
    children = subprocess.run(["pgrep", "-P", str(engine.pid()), "-f", "docker-proxy"],
                              capture_output=True, text=True, timeout=30)
    assert children.stdout == "", "no docker-proxy: published ports are DNAT only"


def test_icc_off_isolates_the_default_bridge_but_not_a_user_defined_network(engine, image_tar):
    """Why icc can be off: it is docker0's setting; the jamjam network keeps its own (on)."""
    assert engine.bootstrap().returncode == 0
    import_image(engine, image_tar)
    serve = ["httpd", "-f", "-p", "8080", "-h", "/www"]
    probe = "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {} 8080"
    on_bridge = engine.docker("run", "-d", IMAGE, *serve)
    address = engine.docker("inspect", "--format",
                            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", on_bridge)
    blocked = subprocess.run(["/usr/bin/docker", "--host", engine.socket, "run", "--rm", IMAGE,
                              "sh", "-c", probe.format(address)],
                             capture_output=True, text=True, timeout=60)
    assert "200 OK" not in blocked.stdout, "docker0 lets containers talk although icc is off"
    engine.docker("network", "create", "jamjam")
    engine.docker("run", "-d", "--network", "jamjam", "--network-alias", "signaling-server",
                  IMAGE, *serve)
    reached = engine.docker("run", "--rm", "--network", "jamjam", IMAGE,
                            "sh", "-c", probe.format("signaling-server"))
    assert "200 OK" in reached, "containers on the jamjam network must reach each other"


def test_the_first_install_leaves_running_containers_running(engine, image_tar):
    """dockerd without live-restore stops its containers when it stops: the step turns it on by
    reload before the restart, so even that restart leaves them running."""
    import_image(engine, image_tar)
    engine.docker("network", "create", "jamjam")
    cid = engine.docker("run", "-d", "--restart", "always", "--network", "jamjam", IMAGE,
                        "sleep", "3600")
    started = engine.docker("inspect", "--format", "{{.State.StartedAt}} {{.State.Pid}}", cid)
    before = engine.pid()
    result = engine.bootstrap()
    assert result.returncode == 0, result.stderr
    assert engine.pid() != before, "dockerd did restart"
    assert engine.docker("inspect", "--format", "{{.State.StartedAt}} {{.State.Pid}}", cid) == started


def test_a_config_change_restarts_dockerd_but_not_the_containers(engine, image_tar):
    """live-restore, in force since the first run, keeps containers up across the next restart."""
    assert engine.bootstrap().returncode == 0
    import_image(engine, image_tar)
    cid = engine.docker("run", "-d", "--restart", "always", IMAGE, "sleep", "3600")
    started = engine.docker("inspect", "--format", "{{.State.StartedAt}} {{.State.Pid}}", cid)
    changed = dict(PROMISED, **{"log-level": "warn"})
    result = engine.bootstrap(json.dumps(changed, indent=2) + "\n")
    assert result.returncode == 0, result.stderr
    assert engine.calls() == ["reload docker.service", "restart docker.service", "restart docker.service"], "live-restore already on: no reload"
    assert engine.docker("inspect", "--format", "{{.State.StartedAt}} {{.State.Pid}}", cid) == started
    assert engine.docker("inspect", "--format", "{{.State.Running}}", cid) == "true"


def test_the_engine_api_is_checked_where_the_plan_sends_start_intervals(engine, tmp_path):
    """A plan for Debian 13 sends healthcheck start intervals, which the provider's client
    refuses to send an engine older than API 1.44: the docker step says so in one line. On an
    engine that has it, the same script passes."""
    (engine.root / "etc/os-release").write_text(DEBIAN_12.replace("12", "13"))
    script = filled_bootstrap(13)
    api = engine.docker("version", "--format", "{{.Server.APIVersion}}")
    result = engine.bootstrap(script=script)
    if tuple(map(int, api.split("."))) >= (1, 44):
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 1
    line = _verdict(result.stderr)
    assert line == (f"bootstrap: dockerd speaks API {api}, older than the 1.44 the plan's "
                    "healthcheck start intervals need; fix: install Debian 13's own docker.io "
                    "(apt-get install docker.io docker-cli), or pulumi config set "
                    "jamjam:vpsDebianVersion 12 to leave start intervals out")
    # The Debian 12 script on the same engine does not ask for it.
    (engine.root / "etc/os-release").write_text(DEBIAN_12)
    assert engine.bootstrap().returncode == 0


# --- Debian 13's dockerd: `dockerd --validate` judges the file --------------------------------

REHEARSAL_DEBS = Path(os.environ.get("JAMJAM_REHEARSAL_CACHE", "/var/cache/jamjam-rehearsal")) \
    / "apt-archives"


@pytest.fixture(scope="module")
def trixie_dockerd(tmp_path_factory) -> Path:
    """dockerd from Debian 13's docker.io, the engine the bootstrap installs there (this
    machine's is 20.10, which has no --validate): from the rehearsal's package cache, else
    downloaded from the machine's Debian mirror with apt, checked against its signed index."""
    work = tmp_path_factory.mktemp("trixie")
    debs = sorted(REHEARSAL_DEBS.glob("docker.io_26.*_amd64.deb"))
    if not debs:
        mirror = "http://deb.debian.org/debian"
        lists, cache = work / "lists", work / "cache"
        (lists / "partial").mkdir(parents=True)
        (cache / "archives/partial").mkdir(parents=True)
        (work / "sources.list").write_text(f"deb {mirror} trixie main\n")
        apt = ["apt-get", "-q", "-o", f"Dir::Etc::sourcelist={work / 'sources.list'}",
               "-o", "Dir::Etc::sourceparts=-", "-o", f"Dir::State::Lists={lists}",
               "-o", f"Dir::Cache={cache}", "-o", "APT::Get::List-Cleanup=0"]
        subprocess.run([*apt, "update"], check=True, capture_output=True, timeout=300)
        subprocess.run([*apt, "download", "docker.io"], check=True, capture_output=True,
                       timeout=300, cwd=work)
        debs = sorted(work.glob("docker.io_26.*_amd64.deb"))
        assert debs, "Debian 13's mirror has no docker.io 26"
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(work / "root")], check=True, timeout=120)
    dockerd = work / "root/usr/sbin/dockerd"
    help_text = subprocess.run([str(dockerd), "--help"], capture_output=True, text=True,
                               timeout=30).stdout
    assert "--validate" in help_text
    return dockerd


def test_debian_13s_dockerd_accepts_the_shipped_daemon_json(trixie_dockerd, tmp_path):
    shipped = tmp_path / "daemon.json"
    shipped.write_text(json.dumps(shipped_daemon_json()))
    result = subprocess.run([str(trixie_dockerd), "--validate", "--config-file", str(shipped)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "configuration OK" in result.stdout + result.stderr, \
        result.stdout + result.stderr


@pytest.mark.parametrize("config,why", [
    ('{"live-restore": "yes"}\n', "cannot unmarshal string"),
    ('{"log-opts": {"max-size": "100m"}, "no-such-option": true}\n',
     "don't match any configuration option: no-such-option"),
])
def test_on_debian_13_dockerd_validate_refuses_a_bad_daemon_json_before_any_restart(
        trixie_dockerd, tmp_path, config, why):
    """The bootstrap's docker step on a Debian 13 host: `dockerd --validate` (not jq) judges
    the new file, and a refused one is neither installed nor followed by a restart."""
    root, bindir = tmp_path / "root", tmp_path / "bin"
    (root / "etc/docker").mkdir(parents=True)
    (root / "etc/os-release").write_text(DEBIAN_12.replace("12", "13"))
    bindir.mkdir()
    (bindir / "dockerd").symlink_to(trixie_dockerd)
    # Any restart would be a failure of the test: this systemctl records and refuses.
    (bindir / "systemctl").write_text(f"#!/bin/sh\necho \"$*\" >>{tmp_path}/calls\nexit 1\n")
    (bindir / "systemctl").chmod(0o755)
    script = filled_bootstrap(13)
    override = tmp_path / "override.json"
    override.write_text(config)
    result = subprocess.run(
        ["bash", str(script), "--user", "jamjam", "--step", "docker"],
        env={"PATH": f"{bindir}:{PATH}", "JAMJAM_ROOT": str(root),
             "JAMJAM_DOCKER_DAEMON_JSON": str(override)},
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    line = _single_line(result.stderr)
    assert line.startswith(f"bootstrap: did not install the new {root}/etc/docker/daemon.json "
                           "nor restart dockerd: dockerd --validate rejects it: "), line
    assert why in line, line
    assert not (root / "etc/docker/daemon.json").exists()
    assert not (tmp_path / "calls").exists(), "systemctl was called"
