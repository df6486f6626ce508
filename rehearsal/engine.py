"""A real Docker engine and network namespaces for the rehearsal (and for any test that wants
one): namespaces with random-suffixed names, veth pairs between them, dockerd inside one, and
the stand-in images that replace what no registry here can serve.

Everything here is created with a name that carries the run's suffix and torn down by the same
object that made it, so a run that fails or is interrupted leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import shutil
import signal
import subprocess
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

STANDINS = Path(__file__).resolve().parent / "standins"
CACHE = Path(os.environ.get("JAMJAM_REHEARSAL_CACHE", "/var/cache/jamjam-rehearsal"))
BUSYBOX = Path("/bin/busybox")

# The stand-in binaries, one per C file; the image holds them all (they are small) and each
# stand-in image differs only in its entrypoint and user, like the real images.
BINARIES = ("signaling-server", "echo-server", "cloudflared", "standin", "forkbomb", "pgrep")


class RehearsalError(RuntimeError):
    """A step failed; the message says what and, where there is one, the fix."""


def suffix() -> str:
    return secrets.token_hex(3)


def run(argv: list[str], *, check: bool = True, timeout: float = 60, input: bytes | None = None,
        capture: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(argv, input=input, capture_output=capture, timeout=timeout, env=env)
    except FileNotFoundError:
        raise RehearsalError(f"{argv[0]} is not installed; run `bash .ci/system-packages.sh`") from None
    except subprocess.TimeoutExpired:
        raise RehearsalError(f"{' '.join(argv[:4])} ... did not finish within {timeout:.0f} s") from None
    if check and proc.returncode != 0:
        err = (proc.stderr or b"").decode(errors="replace").strip().splitlines()
        raise RehearsalError(f"{' '.join(argv[:6])} exited {proc.returncode}: "
                             f"{err[-1] if err else 'no message'}")
    return proc


def require_root() -> None:
    if os.geteuid() != 0:
        raise RehearsalError("the rehearsal needs root (network and mount namespaces, dockerd); "
                             "run it as root, e.g. `sudo make rehearse`")


def require_tools(tools: dict[str, str]) -> None:
    """tools: command -> Debian package. One line listing every missing one."""
    missing = sorted({pkg for cmd, pkg in tools.items()
                      if shutil.which(cmd) is None and not Path(f"/usr/sbin/{cmd}").exists()})
    if missing:
        raise RehearsalError(f"missing system packages: {' '.join(missing)}; install them with "
                             f"`bash .ci/system-packages.sh` (or apt-get install {' '.join(missing)})")


@dataclass
class Netns:
    """A named network namespace (/var/run/netns/NAME) with loopback up."""

    name: str

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.name}"

    def create(self) -> "Netns":
        run(["ip", "netns", "add", self.name])
        self.ip("link", "set", "lo", "up")
        return self

    def ip(self, *args: str) -> None:
        run(["ip", "-n", self.name, *args])

    def enter(self) -> list[str]:
        """Argv prefix running a command in this namespace. nsenter rather than `ip netns
        exec`: the latter remounts /sys, which hides the cgroup mounts dockerd needs."""
        return ["nsenter", f"--net={self.path}"]

    def delete(self) -> None:
        if Path(self.path).exists():
            # Processes still inside would keep the namespace alive without its name; the
            # owner of each process stops it first, this only drops the name.
            run(["ip", "netns", "delete", self.name], check=False)


def veth(a: Netns, a_addr: str, b: Netns, b_addr: str, prefix: str) -> None:
    """A veth pair a<->b with one /24 address on each end. Names are at most 15 characters."""
    left, right = f"{prefix}a", f"{prefix}b"
    run(["ip", "link", "add", left, "netns", a.name, "type", "veth", "peer", "name", right,
         "netns", b.name])
    a.ip("addr", "add", f"{a_addr}/24", "dev", left)
    b.ip("addr", "add", f"{b_addr}/24", "dev", right)
    a.ip("link", "set", left, "up")
    b.ip("link", "set", right, "up")


def leftovers(tag: str) -> list[str]:
    """Namespaces, veths, mounts and processes whose name carries ``tag`` (a run's suffix):
    what a clean exit must not leave behind. Used by the tests and at the end of each run."""
    found = []
    netns_dir = Path("/var/run/netns")
    if netns_dir.exists():
        found += [f"netns {p.name}" for p in netns_dir.iterdir() if tag in p.name]
    links = run(["ip", "-o", "link"], check=False).stdout.decode()
    found += [f"link {line.split(':')[1].strip()}" for line in links.splitlines() if tag in line]
    found += [f"directory {p}" for p in Path("/run").glob(f"*{tag}*")]
    found += [f"mount {line.split()[1]}" for line in Path("/proc/self/mounts").read_text().splitlines()
              if tag in line.split()[1]]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if tag in cmdline:
            found.append(f"process {proc.name}: {cmdline[:120]}")
    return found


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RehearsalError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


@dataclass
class Dockerd:
    """dockerd (and the containerd it starts) inside ``netns``, in its own pid and mount
    namespaces, with its state under ``root``. The pid namespace is what makes stopping it
    complete: when dockerd, its pid 1, exits, the kernel ends every containerd and shim left,
    so the next start never finds a stale socket. The mount namespace keeps its overlay mounts
    out of the machine's mount table."""

    netns: Netns
    root: Path
    extra_args: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def start(self, timeout: float = 60) -> "Dockerd":
        require_tools({"dockerd": "docker.io", "containerd": "containerd", "nsenter": "util-linux"})
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "dockerd.log", "ab")
        argv = [*self.netns.enter(), "unshare", "--mount", "--pid", "--fork", "--kill-child",
                "--mount-proc", "--propagation", "private",
                "dockerd", "--data-root", str(self.root / "data"),
                "--exec-root", str(self.root / "exec"), "--pidfile", str(self.root / "dockerd.pid"),
                "--host", self.host, "--containerd-namespace", f"jamjam-{self.netns.name}",
                *self.extra_args]
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()

        def up() -> bool:
            if self.proc.poll() is not None:
                tail = (self.root / "dockerd.log").read_text(errors="replace").splitlines()[-3:]
                raise RehearsalError(f"dockerd could not start in netns {self.netns.name}: "
                                     + " | ".join(tail))
            return self.socket.exists() and self.docker("version", check=False).returncode == 0

        wait_for(up, timeout, f"dockerd answering on {self.socket}")
        return self

    def docker(self, *args: str, check: bool = True, timeout: float = 60,
               input: bytes | None = None) -> subprocess.CompletedProcess:
        return run(["docker", "-H", self.host, *args], check=check, timeout=timeout, input=input)

    def stop(self, timeout: float = 30) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM to dockerd itself (unshare's child): it stops containers and its containerd.
        for child in children(self.proc.pid):
            os.kill(child, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def remove(self) -> None:
        """Stop, then delete its state (images, containers, logs) with the directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def children(pid: int) -> list[int]:
    """The pids of ``pid``'s direct children (a namespace's init is its launcher's child)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


# ---- stand-in images ------------------------------------------------------------------------

def _compile(out: Path) -> dict[str, Path]:
    require_tools({"gcc": "gcc", "busybox": "busybox-static"})
    built = {}
    for name in BINARIES:
        target = out / name
        run(["gcc", "-static", "-O2", "-Wall", "-Werror", "-o", str(target),
             str(STANDINS / f"{name}.c")], timeout=120)
        built[name] = target
    return built


def standin_rootfs() -> Path:
    """A tar of the stand-in root filesystem: busybox-static (sh, pgrep, wget, nc ...) plus the
    stand-in binaries, cached by the hash of their sources and busybox."""
    if not BUSYBOX.exists() or b"statically linked" not in run(["file", "-L", str(BUSYBOX)],
                                                              check=False).stdout:
        require_tools({"busybox": "busybox-static"})
    digest = hashlib.sha256(BUSYBOX.read_bytes())
    # Only what goes into this tar: the example images' scripts beside them must not rebuild it.
    for name in sorted(p.name for p in STANDINS.iterdir() if p.suffix in (".c", ".h")):
        digest.update(name.encode() + (STANDINS / name).read_bytes())
    tar_path = CACHE / f"standins-{digest.hexdigest()[:16]}.tar"
    if tar_path.exists():
        return tar_path
    CACHE.mkdir(parents=True, exist_ok=True)
    work = CACHE / f"build-{suffix()}"
    work.mkdir()
    try:
        binaries = _compile(work)
        applets = run([str(BUSYBOX), "--list"]).stdout.decode().split()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            def add_dir(path: str, mode: int = 0o755) -> None:
                info = tarfile.TarInfo(path)
                info.type, info.mode = tarfile.DIRTYPE, mode
                tar.addfile(info)

            def add_file(path: str, data: bytes, mode: int = 0o644) -> None:
                info = tarfile.TarInfo(path)
                info.size, info.mode = len(data), mode
                tar.addfile(info, io.BytesIO(data))

            for d in ("bin", "etc", "usr", "usr/local", "usr/local/bin", "home", "home/nonroot",
                      "proc", "sys", "dev", "run", "var", "var/run"):
                add_dir(d)
            add_dir("tmp", 0o1777)
            add_file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
            for applet in applets:
                if applet != "busybox":
                    link = tarfile.TarInfo(f"bin/{applet}")
                    link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                    tar.addfile(link)
            for name, path in binaries.items():
                add_file(f"usr/local/bin/{name}", path.read_bytes(), 0o755)
            # /usr/local/bin comes first in PATH: our pgrep wins over any busybox applet.
            # nonroot (65532) is the user cloudflare/cloudflared's image runs as.
            add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"
                     b"nobody:x:65534:65534:nobody:/:/bin/false\n"
                     b"nonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\n")
            add_file("etc/group", b"root:x:0:\nnogroup:x:65534:\nnonroot:x:65532:\n")
            add_file("etc/nsswitch.conf", b"hosts: files dns\n")
        tmp = tar_path.with_suffix(f".{work.name}.tmp")
        tmp.write_bytes(buf.getvalue())
        tmp.rename(tar_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return tar_path
