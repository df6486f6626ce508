"""components/files/firewall.sh run for real: ufw and iptables inside network namespaces.

Topology, all in namespaces this test creates and removes (addresses from the documentation
ranges, reachable only between these namespaces):

    client 198.51.100.1 ── veth ── 198.51.100.2 (+ .3) vps ── bridge jjbr0 192.0.2.1 ── 192.0.2.2 container

The vps namespace gets Docker's own iptables layout (FORWARD -> DOCKER-USER -> DOCKER, DNAT in
nat/DOCKER, MASQUERADE) with 8080/tcp and 5000/udp "published" to the container, as if a
container had been published on 8080 by mistake. `ip netns exec` bind-mounts
/etc/netns/<ns>/{ufw,default} over /etc, so ufw's files in the vps namespace are a copy and
this machine's own /etc/ufw is never touched.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIREWALL = ROOT / "components/files/firewall.sh"
CLIENT, VPS, CONTAINER = "198.51.100.1", "198.51.100.2", "192.0.2.2"
# A second address of the VPS that Docker does not DNAT: 8080 there is the host's own listener.
VPS_HOST_ONLY = "198.51.100.3"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")

# Docker's filter and nat layout for one bridge, with 8080/tcp and 5000/udp published.
DOCKER_RULES = [
    "-P FORWARD DROP",
    "-N DOCKER-USER", "-A DOCKER-USER -j RETURN",
    "-N DOCKER",
    "-A FORWARD -j DOCKER-USER",
    "-A FORWARD -o jjbr0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    "-A FORWARD -o jjbr0 -j DOCKER",
    "-A FORWARD -i jjbr0 ! -o jjbr0 -j ACCEPT",
    "-A FORWARD -i jjbr0 -o jjbr0 -j ACCEPT",
    f"-A DOCKER -d {CONTAINER}/32 ! -i jjbr0 -o jjbr0 -p tcp --dport 8080 -j ACCEPT",
    f"-A DOCKER -d {CONTAINER}/32 ! -i jjbr0 -o jjbr0 -p udp --dport 5000 -j ACCEPT",
    "-t nat -N DOCKER",
    "-t nat -A PREROUTING -m addrtype --dst-type LOCAL -j DOCKER",
    "-t nat -A POSTROUTING -s 192.0.2.0/24 ! -o jjbr0 -j MASQUERADE",
    # As `docker run -p 198.51.100.2:8080:8080 -p 198.51.100.2:5000:5000/udp`.
    f"-t nat -A DOCKER -d {VPS}/32 ! -i jjbr0 -p tcp --dport 8080 -j DNAT --to-destination {CONTAINER}:8080",
    f"-t nat -A DOCKER -d {VPS}/32 ! -i jjbr0 -p udp --dport 5000 -j DNAT --to-destination {CONTAINER}:5000",
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


def run(*argv: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n"
                             f"{result.stdout}{result.stderr}")
    return result


class Lab:
    """The three namespaces and the processes started in them; cleaned up by close()."""

    def __init__(self) -> None:
        suffix = secrets.token_hex(3)
        self.client, self.vps, self.container = (f"jjfw-{role}-{suffix}"
                                                 for role in ("c", "v", "k"))
        self.etc = Path(f"/etc/netns/{self.vps}")
        self.processes: list[subprocess.Popen] = []
        self.links = {"client": f"jjc{suffix}", "vps": f"jjv{suffix}",
                      "container": f"jjk{suffix}", "bridge_port": f"jjb{suffix}"}

    def ns(self, name: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", name, *argv, **kwargs)

    def start(self) -> "Lab":
        for name in (self.client, self.vps, self.container):
            run("ip", "netns", "add", name)
        # ufw in the vps namespace works on copies of its files.
        self.etc.mkdir(parents=True)
        shutil.copytree("/etc/ufw", self.etc / "ufw")
        shutil.copytree("/etc/default", self.etc / "default")
        links = self.links
        run("ip", "link", "add", links["client"], "netns", self.client, "type", "veth",
            "peer", "name", links["vps"], "netns", self.vps)
        run("ip", "link", "add", links["container"], "netns", self.container, "type", "veth",
            "peer", "name", links["bridge_port"], "netns", self.vps)
        for ns in (self.client, self.vps, self.container):
            self.ns(ns, "ip", "link", "set", "lo", "up")
        self.ns(self.client, "ip", "addr", "add", f"{CLIENT}/24", "dev", links["client"])
        self.ns(self.client, "ip", "link", "set", links["client"], "up")
        self.ns(self.vps, "ip", "addr", "add", f"{VPS}/24", "dev", links["vps"])
        self.ns(self.vps, "ip", "addr", "add", f"{VPS_HOST_ONLY}/24", "dev", links["vps"])
        self.ns(self.vps, "ip", "link", "set", links["vps"], "up")
        self.ns(self.vps, "ip", "link", "add", "jjbr0", "type", "bridge")
        self.ns(self.vps, "ip", "addr", "add", "192.0.2.1/24", "dev", "jjbr0")
        self.ns(self.vps, "ip", "link", "set", "jjbr0", "up")
        self.ns(self.vps, "ip", "link", "set", links["bridge_port"], "master", "jjbr0", "up")
        self.ns(self.container, "ip", "addr", "add", f"{CONTAINER}/24", "dev", links["container"])
        self.ns(self.container, "ip", "link", "set", links["container"], "up")
        self.ns(self.container, "ip", "route", "add", "default", "via", "192.0.2.1")
        self.ns(self.vps, "sysctl", "-qw", "net.ipv4.ip_forward=1")
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
        assert process.stdout.readline().strip() == "ready"

    def probe(self, src: str, kind: str, host: str, port: int) -> str:
        return self.ns(src, sys.executable, "-c", PROBE, kind, host, str(port),
                       timeout=10).stdout.strip()

    def reachability(self) -> dict[str, str]:
        return {
            "ssh": self.probe(self.client, "tcp", VPS, 22),
            "echo": self.probe(self.client, "udp", VPS, 5000),
            "8080-host": self.probe(self.client, "tcp", VPS_HOST_ONLY, 8080),
            "8080-dnat": self.probe(self.client, "tcp", VPS, 8080),
            "outbound": self.probe(self.container, "tcp", CLIENT, 9000),
        }

    def firewall(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns(self.vps, "bash", str(FIREWALL), *args, check=check, timeout=60)

    def rules(self) -> str:
        """Every rule and policy in the vps namespace, without counters or timestamps."""
        dumps = [self.ns(self.vps, tool).stdout for tool in ("iptables-save", "ip6tables-save")]
        text = "\n".join(dumps)
        text = re.sub(r"^#.*$", "", text, flags=re.M)
        return re.sub(r"\[\d+:\d+\]", "[0:0]", text)

    def ufw_status(self) -> str:
        return self.ns(self.vps, "ufw", "status", "verbose").stdout

    def close(self) -> None:
        for process in self.processes:
            process.kill()
            process.wait(timeout=5)
        for name in (self.client, self.vps, self.container):
            run("ip", "netns", "delete", name, check=False)
        shutil.rmtree(self.etc, ignore_errors=True)


@pytest.fixture
def lab():
    assert shutil.which("ufw") and shutil.which("iptables"), \
        "ufw and iptables are needed: run `bash .ci/system-packages.sh`"
    lab = Lab()
    try:
        yield lab.start()
    finally:
        lab.close()


def test_without_the_firewall_the_mistaken_publish_is_reachable(lab):
    """The control case: it shows the lab would notice if 8080 were left open."""
    state = lab.reachability()
    assert state == {"ssh": "open", "echo": "open", "8080-host": "open", "8080-dnat": "open",
                     "outbound": "open"}


def test_apply_keeps_ssh_and_echo_and_closes_8080_everywhere(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    assert lab.reachability() == {"ssh": "open", "echo": "open", "8080-host": "closed",
                                  "8080-dnat": "closed", "outbound": "open"}
    status = lab.ufw_status()
    assert "Status: active" in status
    assert "Default: deny (incoming), allow (outgoing)" in status
    assert re.search(r"^22/tcp\s+ALLOW IN\s+Anywhere\s+# jamjam$", status, re.M)
    assert re.search(r"^5000/udp\s+ALLOW IN\s+Anywhere\s+# jamjam$", status, re.M)
    assert "8080" not in status


def test_applying_twice_leaves_identical_rules(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    rules, status = lab.rules(), lab.ufw_status()
    after = (lab.etc / "ufw/after.rules").read_text()
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    assert lab.rules() == rules
    assert lab.ufw_status() == status
    assert (lab.etc / "ufw/after.rules").read_text() == after
    assert after.count("BEGIN jamjam DOCKER-USER") == 1


def test_a_port_dropped_from_the_list_is_closed_again(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp", "--allow", "8080/tcp")
    assert lab.reachability()["8080-dnat"] == "open", "allowlisted ports pass DOCKER-USER"
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    state = lab.reachability()
    assert state["8080-dnat"] == "closed" and state["8080-host"] == "closed"
    assert state["echo"] == "open" and state["ssh"] == "open"


def test_rules_survive_a_ufw_reload(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    rules = lab.rules()
    lab.ns(lab.vps, "ufw", "reload")
    assert lab.rules() == rules
    assert lab.reachability()["8080-dnat"] == "closed"


def test_remove_keeps_ssh_open(lab):
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    lab.firewall("remove", "--ssh-port", "22")
    state = lab.reachability()
    assert state["ssh"] == "open"
    assert state["8080-host"] == "closed"
    assert "BEGIN jamjam" not in (lab.etc / "ufw/after.rules").read_text()
    assert "5000/udp" not in lab.ufw_status()
    lab.firewall("remove", "--ssh-port", "22")
    assert lab.reachability()["ssh"] == "open"


def test_an_operator_rule_is_left_alone(lab):
    lab.ns(lab.vps, "ufw", "allow", "from", CLIENT, "to", "any", "port", "9100", "proto", "tcp")
    lab.firewall("apply", "--ssh-port", "22", "--allow", "5000/udp")
    assert "9100/tcp" in lab.ufw_status()


@pytest.mark.parametrize("args,words", [
    (["apply"], "--ssh-port is required"),
    (["apply", "--ssh-port", "0"], "not a port"),
    (["apply", "--ssh-port", "22", "--allow", "5000"], "PORT/PROTO"),
    (["apply", "--ssh-port", "22", "--allow", "70000/udp"], "PORT/PROTO"),
    (["apply", "--ssh-port", "22", "--allow", "53/icmp"], "PORT/PROTO"),
    (["remove", "--ssh-port", "22", "--allow", "5000/udp"], "only goes with apply"),
    (["open", "--ssh-port", "22"], "usage"),
    (["apply", "--ssh-port", "22", "--verbose"], "unknown argument"),
])
def test_bad_arguments_change_nothing(lab, args, words):
    before = lab.rules(), lab.ufw_status(), (lab.etc / "ufw/after.rules").read_text()
    result = lab.firewall(*args, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert words in lines[0] and "for example" in lines[0], lines[0]
    assert (lab.rules(), lab.ufw_status(), (lab.etc / "ufw/after.rules").read_text()) == before
