"""A throwaway Debian VPS (12 or 13, the release the rendered stack names in its
``<project>:vpsDebianVersion``): a debootstrap'd rootfs on a tmpfs, booted by vps-init.sh in its
own mount, pid and network namespaces, reachable from an "internet" namespace over a veth pair
on the documentation range 192.0.2.0/24 (both ends live only in namespaces this run made).

Nothing outside changes: the machine's /etc, its iptables and its mount table stay as they
were; the only things created outside the VPS (the two namespace names, one tmpfs, a few
processes) carry the run's suffix and are removed by :meth:`Vps.stop`, which also runs when the
run fails or is interrupted.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from rehearsal.engine import (CACHE, Netns, RehearsalError, children, require_tools, run, veth,
                              wait_for)

HERE = Path(__file__).resolve().parent
SUITES = {12: "bookworm", 13: "trixie"}
"""Debian releases the VPS can run, as the library's DEBIAN_RELEASES: debootstrap suites."""
DEFAULT_DEBIAN = 13
"""What the library assumes when a stack does not say (jamjam_infra.host.Debian)."""
# What a provider's minimal Debian image has: the base system and an SSH server.
BASE_PACKAGES = ("openssh-server",)
VPS_ADDRESS = "192.0.2.10"
INTERNET_ADDRESS = "192.0.2.1"
TOOLS = {"debootstrap": "debootstrap", "unshare": "util-linux", "nsenter": "util-linux",
         "ip": "iproute2", "ssh": "openssh-client", "ssh-keygen": "openssh-client",
         "socat": "socat", "tar": "tar", "pivot_root": "util-linux"}


def mirror_sources() -> tuple[str, list[str]]:
    """The machine's own Debian mirror (its deb822 or one-line sources) and every host in them:
    the VPS uses the same mirror, as a provider image points at the provider's."""
    uris = []
    for path in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*")]:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            if line.startswith("URIs:"):
                uris += line.split()[1:]
            elif line.startswith("deb "):
                uris += [w for w in line.split() if "://" in w][:1]
    uris = [u for u in uris if u.startswith("http://")]
    if not uris:
        raise RehearsalError("no http:// Debian mirror in /etc/apt/sources.list*; the VPS installs "
                             "its packages through the machine's mirror")
    main = next((u for u in uris if u.rstrip("/").endswith("/debian")), uris[0])
    hosts = sorted({u.split("/")[2].split(":")[0] for u in uris})
    return main, hosts


def debian_version(config: Mapping[str, Any]) -> int:
    """The Debian release of the stack's VPS, from the config the engine hands the program
    (``namespace:key`` -> string, defaults applied): its ``<project>:vpsDebianVersion``."""
    found = {k: v for k, v in config.items() if k.endswith(":vpsDebianVersion")}
    if not found:
        return DEFAULT_DEBIAN
    key, value = next(iter(found.items()))
    try:
        version = int(str(value).strip())
    except ValueError:
        version = None
    if version not in SUITES:
        raise RehearsalError(f"{key} is {value!r}; the VPS can run Debian "
                             f"{' or '.join(map(str, SUITES))}: pulumi config set {key} 13")
    return version


def check_plan_release(stdins: list[str], version: int) -> None:
    """The rendered plan's bootstrap checks the same release the VPS boots (it reads the
    stack's setting through the program, the rehearsal through the config)."""
    shipped = {int(m[1]) for text in stdins
               for m in re.finditer(r"^DEBIAN_VERSION=([0-9]+)$", text, re.M)}
    if shipped != {version}:
        raise RehearsalError(f"the VPS runs Debian {version} but the plan's bootstrap expects "
                             f"{', '.join(map(str, sorted(shipped))) or 'no release'}")


def base_image_path(suite: str) -> Path:
    mirror, _ = mirror_sources()
    key = hashlib.sha256(f"{suite} minbase {' '.join(BASE_PACKAGES)} {mirror}".encode()).hexdigest()[:16]
    return CACHE / f"base-{suite}-{key}.tar"


def base_image(log, suite: str = SUITES[DEFAULT_DEBIAN]) -> Path:
    """debootstrap minbase + BASE_PACKAGES as a tar, cached outside the repo keyed by suite,
    package list and mirror (renamed into place whole: the cache is shared with rehearsals
    running beside this one). A cold build takes about 40 s and 240 MB."""
    tar = base_image_path(suite)
    if tar.exists():
        return tar
    log(f"building the Debian {suite} base image (cold cache, about 40 s)")
    debootstrap_tar(tar, suite, BASE_PACKAGES, "base")
    return tar


def debootstrap_tar(tar: Path, suite: str, packages: Sequence[str], name: str,
                    prepare: Callable[[Path], None] | None = None, timeout: float = 600) -> None:
    """``debootstrap --variant=minbase`` of ``suite`` with ``packages`` from this machine's
    mirror, ``prepare``d, written as the tar ``tar`` (renamed into place whole). Shared by the
    VPS's base image and the example stand-ins' rootfs."""
    mirror, _ = mirror_sources()
    CACHE.mkdir(parents=True, exist_ok=True)
    archives = CACHE / "apt-archives"
    archives.mkdir(exist_ok=True)
    tag = f"{name}-{os.getpid()}-{os.urandom(3).hex()}"
    work = CACHE / f"build-{tag}"
    # debootstrap downloads into a cache of this build's own (seeded with hard links to the
    # shared one), never into the shared one, which other rehearsals read meanwhile.
    debs = work / "debs"
    try:
        debs.mkdir(parents=True)
        for deb in archives.glob("*.deb"):
            try:
                os.link(deb, debs / deb.name)
            except OSError:
                shutil.copyfile(deb, debs / deb.name)
        rootfs = work / "rootfs"
        # Its own mount namespace: debootstrap mounts /proc and /sys inside the target, and an
        # interrupted build must not leave those mounts on the machine. debootstrap fakes
        # start-stop-daemon and invoke-rc.d, so no server starts while it installs.
        run(["unshare", "--mount", "--propagation", "private", "debootstrap", "--variant=minbase",
             f"--include={','.join(packages)}", f"--cache-dir={debs}", suite, str(rootfs),
             mirror], timeout=timeout)
        _share_debs(debs, tag)
        for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
            deb.unlink()
        if prepare is not None:
            prepare(rootfs)
        part = work / "rootfs.tar"
        run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(part), "."], timeout=300)
        part.rename(tar)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _os_release(path: Path) -> dict[str, str]:
    try:
        text = path.read_text()
    except OSError:
        return {}
    return {k: v.strip().strip('"') for k, _, v in
            (line.partition("=") for line in text.splitlines()) if v}


def _share_debs(new: Path, tag: str) -> None:
    """Packages downloaded into ``new`` go into the shared cache, each renamed into place whole,
    so a rehearsal beside this one never reads half a file."""
    cache = CACHE / "apt-archives"
    if not new.is_dir():
        return
    for deb in new.glob("*.deb"):
        target = cache / deb.name
        if target.exists():
            continue
        tmp = cache / f".{deb.name}.{tag}"
        try:
            shutil.copyfile(deb, tmp)
            tmp.rename(target)
        except OSError:
            tmp.unlink(missing_ok=True)


@dataclass
class Vps:
    tag: str                      # the run's suffix: every name made here carries it
    run_dir: Path
    log: object = print
    suite: str = SUITES[DEFAULT_DEBIAN]
    address: str = VPS_ADDRESS
    internet: Netns = field(init=False)
    netns: Netns = field(init=False)
    init: subprocess.Popen | None = None
    helpers: list[subprocess.Popen] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.internet = Netns(f"jr-net-{self.tag}")
        self.netns = Netns(f"jr-vps-{self.tag}")

    @property
    def rootfs(self) -> Path:
        return self.run_dir / "vps"

    @property
    def key(self) -> Path:
        return self.run_dir / "keys" / "admin"

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self, base: Path) -> None:
        require_tools(TOOLS)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        # One tmpfs holds the VPS's disk, the SSH keys and the sockets: no key ever touches a
        # disk, and unmounting it removes every trace of the run.
        run(["mount", "-t", "tmpfs", "-o", "size=6g,mode=0700", f"jamjam-rehearsal-{self.tag}",
             str(self.run_dir)])
        self.rootfs.mkdir()
        (self.run_dir / "keys").mkdir(mode=0o700)
        run(["tar", "-C", str(self.rootfs), "--numeric-owner", "-xf", str(base)], timeout=120)
        self._prepare_image()
        self.internet.create()
        self.netns.create()
        veth(self.internet, INTERNET_ADDRESS, self.netns, self.address, f"jr{self.tag}")
        self._start_mirror()
        archives = CACHE / "apt-archives"
        archives.mkdir(parents=True, exist_ok=True)
        console = open(self.run_dir / "console.log", "ab")
        self.init = subprocess.Popen(
            [*self.netns.enter(), "unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child",
             "--propagation", "private", "bash", str(self.run_dir / "vps-init.sh"),
             str(self.rootfs), str(archives), str(self.run_dir / "apt-upper")],
            stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        console.close()

        def booted() -> bool:
            if self.init.poll() is not None:
                raise RehearsalError("the VPS did not boot: " + self.console_tail())
            return "vps-init: booted" in (self.run_dir / "console.log").read_text(errors="replace")

        wait_for(booted, 60, "the VPS booting")
        try:
            wait_for(lambda: self.port_open(22), 30, "sshd listening on the VPS's port 22")
        except RehearsalError:
            log = self.rootfs / "var/log/ssh.service.log"
            tail = log.read_text(errors="replace").splitlines()[-2:] if log.exists() else []
            raise RehearsalError("sshd did not start on the VPS: " + (" | ".join(tail) or
                                 self.console_tail())) from None

    def console_tail(self, lines: int = 5) -> str:
        try:
            text = (self.run_dir / "console.log").read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return " | ".join(text.splitlines()[-lines:])

    def _prepare_image(self) -> None:
        """What the provider does to its image before handing the VPS over: the admin's key
        for root, a hostname, the mirror, systemd's stand-in."""
        root = self.rootfs
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"rehearsal-admin-{self.tag}",
             "-f", str(self.key)])
        ssh_dir = root / "root/.ssh"
        ssh_dir.mkdir(mode=0o700, exist_ok=True)
        (ssh_dir / "authorized_keys").write_text(self.key.with_suffix(".pub").read_text())
        os.chmod(ssh_dir / "authorized_keys", 0o600)
        (root / "etc/hostname").write_text("vps1\n")
        mirror, hosts = mirror_sources()
        lines = ["127.0.0.1 localhost", "127.0.1.1 vps1", "::1 localhost ip6-localhost"]
        self.mirror_addresses = {}
        for host in hosts:
            try:
                addr = socket.gethostbyname(host)
            except OSError:
                raise RehearsalError(f"the Debian mirror host {host} does not resolve here") from None
            self.mirror_addresses[host] = addr
            lines.append(f"{addr} {host}")
        (root / "etc/hosts").write_text("\n".join(lines) + "\n")
        (root / "etc/resolv.conf").write_text("# no DNS in the rehearsal: names are in /etc/hosts\n")
        sources = root / "etc/apt/sources.list.d"
        sources.mkdir(parents=True, exist_ok=True)
        (root / "etc/apt/sources.list").unlink(missing_ok=True)
        for path in Path("/etc/apt/sources.list.d").glob("*.sources"):
            (sources / path.name).write_text(self._for_suite(path.read_text()))
        if not any(sources.glob("*.sources")):
            (root / "etc/apt/sources.list").write_text(
                self._for_suite(Path("/etc/apt/sources.list").read_text()))
        shutil.copy(HERE / "standins" / "systemctl", root / "usr/bin/systemctl")
        os.chmod(root / "usr/bin/systemctl", 0o755)
        shutil.copy(HERE / "vps-init.sh", self.run_dir / "vps-init.sh")

    def _for_suite(self, sources: str) -> str:
        """The machine's apt sources pointed at the VPS's release (bookworm-security becomes
        trixie-security, and so on): same mirror, the VPS's own suites."""
        machine = _os_release(Path("/etc/os-release")).get("VERSION_CODENAME")
        if not machine or machine == self.suite:
            return sources
        return re.sub(rf"\b{re.escape(machine)}\b", self.suite, sources)

    def release(self) -> str:
        """Which Debian the VPS runs and which docker.io its mirror offers the bootstrap."""
        info = _os_release(self.rootfs / "etc/os-release")
        docker = "unknown"
        for index in (self.rootfs / "var/lib/apt/lists").glob("*_Packages"):
            match = re.search(r"^Package: docker\.io\n(?:[^\n]+\n)*?Version: (\S+)$",
                              index.read_text(errors="replace"), re.M)
            if match:
                docker = match[1]
                break
        return f"{info.get('PRETTY_NAME', 'Debian ' + self.suite)}, docker.io {docker} on its mirror"

    def _start_mirror(self) -> None:
        """The Debian mirror, reachable from inside the VPS at its usual address."""
        for host, addr in sorted(self.mirror_addresses.items()):
            self.netns.ip("addr", "add", f"{addr}/32", "dev", "lo")
            self.relay(self.netns, addr, 80, addr, 80)

    def relay(self, into: Netns, addr: str, port: int, target: str, target_port: int) -> None:
        """Makes ``target:target_port`` of the machine's namespace answer at ``addr:port`` in
        ``into``, which has no route out. A socat pair carries each connection over a unix
        socket: one end listening in ``into``, the other connecting from the machine's
        namespace. No NAT and no change to the machine's iptables."""
        sock = self.run_dir / f"relay-{len(self.helpers)}.sock"
        out = subprocess.Popen(["socat", f"UNIX-LISTEN:{sock},fork,mode=600",
                                f"TCP:{target}:{target_port},connect-timeout=20"],
                               stderr=subprocess.DEVNULL, start_new_session=True)
        self.helpers.append(out)
        wait_for(sock.exists, 10, f"the relay to {target}:{target_port}")
        inside = subprocess.Popen([*into.enter(), "socat",
                                   f"TCP-LISTEN:{port},bind={addr},fork,reuseaddr",
                                   f"UNIX-CONNECT:{sock}"],
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        self.helpers.append(inside)

    def stop(self) -> list[str]:
        """Stops everything this VPS started and returns what could not be removed."""
        problems = []
        container_ids = []
        containers = self.rootfs / "var/lib/docker/containers"
        if containers.is_dir():
            container_ids = [p.name for p in containers.iterdir()]
        if self.init is not None and self.init.poll() is None:
            os.killpg(self.init.pid, signal.SIGTERM)
            try:
                self.init.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.init.pid, signal.SIGKILL)
                self.init.wait(10)
        for proc in self.helpers:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
        for ns in (self.internet, self.netns):
            # An ssh forward or a probe may still sit in a namespace.
            pids = run(["ip", "netns", "pids", ns.name], check=False).stdout.split()
            for pid in pids:
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            ns.delete()
        # Containers killed with the namespace leave their (empty) cgroups behind.
        for cid in container_ids:
            for cg in Path("/sys/fs/cgroup").glob(f"*/docker/{cid}"):
                try:
                    cg.rmdir()
                except OSError as err:
                    problems.append(f"cgroup {cg}: {err}")
        self._keep_downloads()
        if os.path.ismount(self.run_dir):
            if run(["umount", str(self.run_dir)], check=False).returncode != 0:
                run(["umount", "-l", str(self.run_dir)], check=False)
        try:
            self.run_dir.rmdir()
        except FileNotFoundError:
            pass
        except OSError as err:
            problems.append(f"{self.run_dir}: {err}")
        return problems

    def _keep_downloads(self) -> None:
        """Packages this run downloaded go into the shared cache."""
        _share_debs(self.run_dir / "apt-upper" / "data", self.tag)

    # ---- access ---------------------------------------------------------------------------

    def in_internet(self, argv: list[str]) -> list[str]:
        return [*self.internet.enter(), *argv]

    def in_vps(self, argv: list[str]) -> list[str]:
        """Run as root inside the VPS (all its namespaces and root), for checks that an
        operator would make from a root shell on the host."""
        return ["nsenter", "-t", str(self.vps_init_pid()), "--mount", "--net", "--pid", "--uts",
                "--root", "--wd=/", *argv]

    def vps_init_pid(self) -> int:
        found = children(self.init.pid) if self.init else []
        if not found:
            raise RehearsalError("the VPS is not running")
        return found[0]

    def ssh_config(self, identity: Path) -> Path:
        """An ssh client config for this run only: its own known_hosts (never ~/.ssh). No
        connection sharing: like pulumi-command, every command opens its own connection, so a
        step that breaks logging in is seen by the next command, not hidden by an open one."""
        path = identity.with_suffix(".config")
        if not path.exists():
            path.write_text("\n".join([
                "Host *",
                f"  IdentityFile {identity}",
                "  IdentitiesOnly yes",
                f"  UserKnownHostsFile {self.run_dir / 'known_hosts'}",
                "  GlobalKnownHostsFile /dev/null",
                "  BatchMode yes",
                "  StrictHostKeyChecking accept-new",
                "  ServerAliveInterval 10",
                "  LogLevel ERROR",
                ""]))
        return path

    def ssh(self, user: str, command: str, *, identity: Path | None = None, port: int = 22,
            host: str | None = None, stdin: bytes | None = None, timeout: float = 600,
            connect_timeout: float = 15, attempts: int = 1, check: bool = False,
            extra: list[str] | None = None) -> subprocess.CompletedProcess:
        identity = identity or self.key
        argv = self.in_internet(["ssh", "-F", str(self.ssh_config(identity)), "-p", str(port),
                                 "-o", f"ConnectTimeout={int(connect_timeout)}",
                                 "-o", f"ConnectionAttempts={max(1, int(attempts))}",
                                 *(extra or []), f"{user}@{host or self.address}", command])
        try:
            proc = subprocess.run(argv, input=stdin or b"", capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RehearsalError(f"ssh {user}@{host or self.address} {command[:60]!r} did not finish "
                                 f"within {timeout:.0f} s") from None
        if check and proc.returncode != 0:
            raise RehearsalError(f"ssh {user}@ {command[:80]!r} exited {proc.returncode}: "
                                 + proc.stderr.decode(errors="replace").strip()[-300:])
        return proc

    def port_open(self, port: int, host: str | None = None) -> bool:
        probe = ["bash", "-c", f"exec 3<>/dev/tcp/{host or self.address}/{port}"]
        return run(self.in_internet(["timeout", "3", *probe]), check=False).returncode == 0
