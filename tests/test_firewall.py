"""components/files/firewall.sh run for real: ufw and iptables inside network namespaces.

Topology, all in namespaces this test creates and removes (addresses from the documentation
ranges, reachable only between these namespaces):

    client 198.51.100.1 ── veth ── 198.51.100.2 (+ .3) vps ── bridge docker0 192.0.2.1 ─┬─ 192.0.2.2 container
                                                                                      └─ 192.0.2.3 neighbour

The vps namespace gets Docker's own iptables layout (FORWARD -> DOCKER-USER -> DOCKER, DNAT in
nat/DOCKER, MASQUERADE) with 8080/tcp and 5000/udp "published" to the container, as if a
container had been published on 8080 by mistake. The neighbour is a second container on the
same bridge (bridged traffic crosses FORWARD, as on a Docker host with br_netfilter).
`ip netns exec` bind-mounts /etc/netns/<ns>/{ufw,default} over /etc, so ufw's files in the vps
namespace are a copy and this machine's own /etc/ufw is never touched.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import select
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIREWALL = ROOT / "components/files/firewall.sh"
CLIENT, VPS, CONTAINER, NEIGHBOUR = "198.51.100.1", "198.51.100.2", "192.0.2.2", "192.0.2.3"
# A second address of the VPS that Docker does not DNAT: 8080 there is the host's own listener.
VPS_HOST_ONLY = "198.51.100.3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# Docker's filter and nat layout for one bridge, with 8080/tcp and 5000/udp published.
DOCKER_RULES = [
    "-P FORWARD DROP",
    "-N DOCKER-USER", "-A DOCKER-USER -j RETURN",
    "-N DOCKER",
    "-A FORWARD -j DOCKER-USER",
    "-A FORWARD -o docker0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A FORWARD -o docker0 -j DOCKER",
    "-A FORWARD -i docker0 ! -o docker0 -j ACCEPT",
    "-A FORWARD -i docker0 -o docker0 -j ACCEPT",
    f"-A DOCKER -d {CONTAINER}/32 ! -i docker0 -o docker0 -p tcp --dport 8080 -j ACCEPT",
    f"-A DOCKER -d {CONTAINER}/32 ! -i docker0 -o docker0 -p udp --dport 5000 -j ACCEPT",
    "-t nat -N DOCKER",
    "-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
    "-t nat -A POSTROUTING -s 192.0.2.0/24 ! -o docker0 -j MASQUERADE",
    # As `docker run -p 198.51.100.2:8080:8080 -p 198.51.100.2:5000:5000/udp`.
    f"-t nat -A DOCKER -d {VPS}/32 ! -i docker0 -p tcp --dport 8080 -j DNAT --to-destination {CONTAINER}:8080",
    f"-t nat -A DOCKER -d {VPS}/32 ! -i docker0 -p udp --dport 5000 -j DNAT --to-destination {CONTAINER}:5000",
]

TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16); print("ready", flush=True)
while True:
    c, _ = s.accept(); c.sendall(b"hello"); c.close()
"""
UDP_ECHO = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, peer = s.recvfrom(2048); s.sendto(b"echo:" + data, peer)
"""
PROBE = """
import socket, sys
kind, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    if kind == "tcp":
        s = socket.create_connection((host, port), timeout=1.0); ok = s.recv(5) == b"hello"
    else:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1.0)
        s.sendto(b"ping", (host, port)); ok = s.recvfrom(2048)[0] == b"echo:ping"
except OSError:
    ok = False
print("open" if ok else "closed")
"""


def run(*argv: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                             f"{result.stdout}{result.stderr}")
    return result


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for file in sorted(path.rglob("*")):
        if file.is_file():
            digest.update(str(file).encode() + file.read_bytes())
    return digest.hexdigest()


class Lab:
    """The namespaces and the processes started in them; cleaned up by close()."""

    def __init__(self) -> None:
        suffix = secrets.token_hex(3)
        self.client, self.vps, self.container, self.neighbour = (
            f"jjfw-{role}-{suffix}" for role in ("c", "v", "k", "n"))
        self.etc = Path(f"/etc/netns/{self.vps}")
        self.processes: list[subprocess.Popen] = []
        self.links = {"client": f"jjc{suffix}", "vps": f"jjv{suffix}",
                      "container": f"jjk{suffix}", "bridge_port": f"jjb{suffix}",
                      "neighbour": f"jjn{suffix}", "neighbour_port": f"jjp{suffix}"}
        self.host_ufw = tree_digest(Path("/etc/ufw"))

    @property
    def namespaces(self) -> tuple[str, ...]:
        return (self.client, self.vps, self.container, self.neighbour)

    def ns(self, name: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", name, *argv, **kwargs)

    def start(self) -> "Lab":
        for name in self.namespaces:
            run("ip", "netns", "add", name)
        # ufw in the vps namespace works on copies of its files.
        self.etc.mkdir(parents=True)
        shutil.copytree("/etc/ufw", self.etc / "ufw")
        shutil.copytree("/etc/default", self.etc / "default")
        links = self.links
        run("ip", "link", "add", links["client"], "netns", self.client, "type", "veth",
            "peer", "name", links["vps"], "netns", self.vps)
        for name in self.namespaces:
            self.ns(name, "ip", "link", "set", "lo", "up")
        self.ns(self.client, "ip", "addr", "add", f"{CLIENT}/24", "dev", links["client"])
        self.ns(self.client, "ip", "link", "set", links["client"], "up")
        # A neighbour on the provider's network can route container addresses via the VPS.
        self.ns(self.client, "ip", "route", "add", "192.0.2.0/24", "via", VPS)
        self.ns(self.vps, "ip", "addr", "add", f"{VPS}/24", "dev", links["vps"])
        self.ns(self.vps, "ip", "addr", "add", f"{VPS_HOST_ONLY}/24", "dev", links["vps"])
        self.ns(self.vps, "ip", "link", "set", links["vps"], "up")
        self.ns(self.vps, "ip", "link", "add", "docker0", "type", "bridge")
        self.ns(self.vps, "ip", "addr", "add", "192.0.2.1/24", "dev", "docker0")
        self.ns(self.vps, "ip", "link", "set", "docker0", "up")
        for name, address, link, port in ((self.container, CONTAINER, "container", "bridge_port"),
                                          (self.neighbour, NEIGHBOUR, "neighbour", "neighbour_port")):
            run("ip", "link", "add", links[link], "netns", name, "type", "veth",
                "peer", "name", links[port], "netns", self.vps)
            self.ns(self.vps, "ip", "link", "set", links[port], "master", "docker0", "up")
            self.ns(name, "ip", "addr", "add", f"{address}/24", "dev", links[link])
            self.ns(name, "ip", "link", "set", links[link], "up")
            self.ns(name, "ip", "route", "add", "default", "via", "192.0.2.1")
        self.ns(self.vps, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # As dockerd sets it: traffic between two containers on a bridge crosses FORWARD too.
        self.ns(self.vps, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
        for rule in DOCKER_RULES:
            self.ns(self.vps, "iptables", *rule.split())
        self.serve(self.vps, TCP_SERVER, 22)
        self.serve(self.vps, TCP_SERVER, 8080)
        self.serve(self.container, TCP_SERVER, 8080)
        self.serve(self.container, UDP_ECHO, 5000)
        self.serve(self.client, TCP_SERVER, 9000)
        return self

    def serve(self, ns: str, program: str, port: int) -> None:
        process = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", program,
                                    str(port)], stdout=subprocess.PIPE, text=True)
        self.processes.append(process)
        ready, _, _ = select.select([process.stdout], [], [], 5)
        assert ready and process.stdout.readline().strip() == "ready", \
            f"listener on {port} in {ns} did not start"

    def probe(self, src: str, kind: str, host: str, port: int) -> str:
        return self.ns(src, sys.executable, "-c", PROBE, kind, host, str(port),
                       timeout=5).stdout.strip()

    def reachability(self) -> dict[str, str]:
        """Every path the firewall decides on, probed at once (a closed one costs a timeout)."""
        probes = {
            "ssh": (self.client, "tcp", VPS, 22),
            "echo": (self.client, "udp", VPS, 5000),
            "8080-host": (self.client, "tcp", VPS_HOST_ONLY, 8080),
            "8080-dnat": (self.client, "tcp", VPS, 8080),
            "8080-direct": (self.client, "tcp", CONTAINER, 8080),
            "outbound": (self.container, "tcp", CLIENT, 9000),
            "container-to-container": (self.neighbour, "tcp", CONTAINER, 8080),
        }
        with ThreadPoolExecutor(len(probes)) as pool:
            futures = {name: pool.submit(self.probe, *args) for name, args in probes.items()}
            return {name: future.result() for name, future in futures.items()}

    def firewall(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns(self.vps, "bash", str(FIREWALL), *args, check=check, timeout=30)

    def rules(self) -> str:
        """Every rule and policy in the vps namespace, without counters or timestamps."""
        dumps = [self.ns(self.vps, tool).stdout for tool in ("iptables-save", "ip6tables-save")]
        text = "\n".join(dumps)
        text = re.sub(r"^#.*$", "", text, flags=re.M)
        return re.sub(r"\[\d+:\d+\]", "[0:0]", text)

    def docker_user(self) -> list[str]:
        return self.ns(self.vps, "iptables", "-S", "DOCKER-USER").stdout.splitlines()

    def ufw_status(self) -> str:
        return self.ns(self.vps, "ufw", "status", "verbose").stdout

    def state(self) -> tuple[str, ...]:
        """All a run of firewall.sh could change."""
        return (self.rules(), self.ufw_status(), self.ns(self.vps, "ufw", "show", "added").stdout,
                (self.etc / "ufw/after.rules").read_text(),
                (self.etc / "ufw/after6.rules").read_text())

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=5)
        for name in self.namespaces:
            run("ip", "netns", "delete", name, check=False)
        shutil.rmtree(self.etc, ignore_errors=True)
        assert tree_digest(Path("/etc/ufw")) == self.host_ufw, "this machine's /etc/ufw changed"


def open_lab():
    assert shutil.which("ufw") and shutil.which("iptables"), \
        "ufw and iptables must be on PATH: run `bash .ci/system-packages.sh`"
    lab = Lab()
    try:
        yield lab.start()
    finally:
        lab.close()


@pytest.fixture
def lab():
    yield from open_lab()


@pytest.fixture(scope="module")
def applied_lab():
    """One lab for the read-only checks, with the production firewall applied."""
    for lab in open_lab():
        lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
        yield lab


CLOSED_FROM_OUTSIDE = {"ssh": "open", "echo": "open", "8080-host": "closed", "8080-dnat": "closed",
                       "8080-direct": "closed", "outbound": "open",
                       "container-to-container": "open"}


def test_without_the_firewall_the_mistaken_publish_is_reachable(lab):
    """The control case: it shows the lab would notice if 8080 were left open."""
    assert set(lab.reachability().values()) == {"open"}


def test_apply_keeps_ssh_echo_and_container_traffic_and_closes_8080_everywhere(applied_lab):
    assert applied_lab.reachability() == CLOSED_FROM_OUTSIDE
    status = applied_lab.ufw_status()
    assert "Status: active" in status
    assert "Default: deny (incoming), allow (outgoing)" in status
    assert re.search(r"^22/tcp\s+ALLOW IN\s+Anywhere\s+# jamjam$", status, re.M)
    assert re.search(r"^5000/udp\s+ALLOW IN\s+Anywhere\s+# jamjam$", status, re.M)
    assert "8080" not in status


def test_applying_twice_leaves_identical_rules(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    before = lab.state()
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    assert lab.state() == before
    assert before[3].count("BEGIN jamjam DOCKER-USER") == 1


def test_a_port_dropped_from_the_list_is_closed_again(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp", "--allow", "8080/tcp")
    state = lab.reachability()
    assert state["8080-dnat"] == "open" and state["8080-host"] == "open", "allowlisted ports pass"
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    assert lab.reachability() == CLOSED_FROM_OUTSIDE


def test_rules_survive_a_ufw_reload(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    rules = lab.rules()
    lab.ns(lab.vps, "ufw", "reload")
    assert lab.rules() == rules
    assert lab.reachability()["8080-dnat"] == "closed"


def test_remove_keeps_ssh_open_and_is_idempotent(lab):
    docker_default = lab.docker_user()
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    lab.firewall("remove", "--ssh-port", "22")
    state = lab.reachability()
    assert state["ssh"] == "open"
    assert state["8080-host"] == "closed"
    assert lab.docker_user() == docker_default
    assert "BEGIN jamjam" not in (lab.etc / "ufw/after.rules").read_text()
    assert "5000/udp" not in lab.ufw_status()
    after_once = lab.state()
    lab.firewall("remove", "--ssh-port", "22")
    assert lab.state() == after_once
    assert lab.reachability()["ssh"] == "open"


def test_an_operator_rule_is_left_alone(lab):
    lab.ns(lab.vps, "ufw", "allow", "from", CLIENT, "to", "any", "port", "9100", "proto", "tcp")
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    assert "9100/tcp" in lab.ufw_status()


@pytest.mark.parametrize("args,words", [
    (["apply"], "--ssh-port is required"),
    (["apply", "--ssh-port", "0"], "--ssh-port: '0' is not a port"),
    (["apply", "--ssh-port", "ssh"], "--ssh-port: 'ssh' is not a port"),
    (["apply", "--ssh-port", "22", "--allow", "5000"], "--allow: '5000' is not PORT/PROTO"),
    (["apply", "--ssh-port", "22", "--allow", "70000/udp"], "--allow: '70000/udp'"),
    (["apply", "--ssh-port", "22", "--allow", "05000/udp"], "--allow: '05000/udp'"),
    (["apply", "--ssh-port", "22", "--allow", "53/icmp"], "--allow: '53/icmp'"),
    (["apply", "--ssh-port", "22", "--allow", "5000/udp", "--allow"], "--allow needs"),
    (["remove", "--ssh-port", "22", "--allow", "5000/udp"], "only goes with apply"),
    (["open", "--ssh-port", "22"], "usage"),
    (["apply", "--ssh-port", "22", "--verbose"], "unknown argument"),
])
def test_bad_arguments_change_nothing(applied_lab, args, words):
    before = applied_lab.state()
    result = applied_lab.firewall(*args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert words in lines[0] and "for example" in lines[0], lines[0]
    assert applied_lab.state() == before
