"""A Docker host over SSH: first contact, bootstrap (Docker, the day-to-day user, SSH
hardening), a firewall that opens SSH and exactly what its containers publish, and the
containers themselves (pulumi-docker through an ssh:// provider).

A host runs Debian 12 (bookworm) or 13 (trixie), as its stack says (:class:`Debian`); the
bootstrap refuses any other release before changing anything. The release decides the Docker
engine (the distribution's docker.io) and so whether healthchecks can probe quickly while a
container starts (``start_interval``, Docker 25+ only).
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from typing import Sequence

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from jamjam_infra._remote import connection, read_file, remote_script
from jamjam_infra.container import (ContainerSpec, DockerHost, Labels, SpecError,
                                    published_ports, run_container)


@dataclass(frozen=True)
class DebianRelease:
    codename: str
    docker: str
    """The docker.io version the release ships (what the bootstrap installs)."""
    docker_api: str
    """That engine's API version."""

    @property
    def start_interval(self) -> bool:
        # The Docker Go client (the provider's) refuses a create that sets a healthcheck start
        # interval when the daemon's API is older than 1.44 (Docker 25): sending it to an older
        # engine fails the deploy instead of being ignored.
        return api_version(self.docker_api) >= api_version(START_INTERVAL_API)


START_INTERVAL_API = "1.44"
DEBIAN_RELEASES: dict[int, DebianRelease] = {
    12: DebianRelease("bookworm", docker="20.10", docker_api="1.41"),
    13: DebianRelease("trixie", docker="26.1", docker_api="1.45"),
}
"""The releases the bootstrap supports (the distribution's docker.io only: no extra source)."""


def api_version(version: str) -> tuple[int, ...]:
    """"1.44" -> (1, 44), comparable."""
    return tuple(int(part) for part in version.split("."))


@dataclass(frozen=True)
class Debian:
    """Which Debian release the VPS runs, and the stack setting that says so."""

    version: int = 13
    setting: str = "jamjam:vpsDebianVersion"
    """Named in the bootstrap's refusal when the host runs another release, with the fix."""

    @property
    def release(self) -> DebianRelease:
        if self.version not in DEBIAN_RELEASES:
            raise SpecError(f"{self.setting} is {self.version}, but the bootstrap supports Debian "
                            f"{' or '.join(map(str, DEBIAN_RELEASES))}; fix: pulumi config set "
                            f"{self.setting} 13 (after installing Debian 13 on the VPS)")
        return DEBIAN_RELEASES[self.version]

    def describe(self) -> str:
        """One line for the plan: the release, its Docker and what that means for a replaced
        container's gap."""
        release = self.release
        head = (f"Debian {self.version} ({release.codename}), docker.io {release.docker} "
                f"(API {release.docker_api})")
        if release.start_interval:
            return (f"{head}: healthchecks probe every start interval while a container starts, "
                    "so a replaced container is healthy again within seconds")
        return (f"{head}: no healthcheck start interval before Docker 25, so a replaced "
                "container is healthy again only after one healthcheck interval (~30 s); "
                "Debian 13 shortens that to seconds (docs/host.md)")


_PLACEHOLDERS = re.compile(r"^(DEBIAN_VERSION|DOCKER_API_MIN|DEBIAN_SETTING)=@[A-Z_]+@$", re.M)


def bootstrap_script(debian: Debian) -> str:
    """bootstrap.sh with the stack's Debian release filled in: in the script's text, so a
    changed setting runs the bootstrap again, and the copy installed on the host checks the
    same release when an operator runs it by hand."""
    release = debian.release
    values = {"DEBIAN_VERSION": str(debian.version),
              "DOCKER_API_MIN": START_INTERVAL_API if release.start_interval else "",
              "DEBIAN_SETTING": debian.setting}
    text, count = _PLACEHOLDERS.subn(lambda m: f"{m[1]}={shlex.quote(values[m[1]])}",
                                     read_file("bootstrap.sh"))
    if count != len(values):
        raise RuntimeError("components/files/bootstrap.sh must keep its DEBIAN_VERSION, "
                           "DOCKER_API_MIN and DEBIAN_SETTING placeholder lines")
    return text


HOST_KEY = re.compile(r"^(ssh-ed25519|ecdsa-sha2-\S+|ssh-rsa) \S+$")
"""An SSH public host key as ``type base64`` (the first two fields of a .pub file)."""


@dataclass(frozen=True)
class SshArgs:
    host: str
    """Address the program and the operator reach the machine at."""
    port: int
    user: str
    """Day-to-day user Pulumi connects as after the first contact (key only, passwordless sudo)."""
    initial_user: str
    """User that exists on a fresh VPS (often root); used once to create ``user``."""
    private_key: pulumi.Input[str]
    host_key: str
    """The VPS's SSH host public key ("type base64"), required: every remote command and the
    Docker provider's ssh:// connection refuse any other key, so nothing trusts whatever
    answers on the address first."""

    def __post_init__(self) -> None:
        if not isinstance(self.host_key, str) or not HOST_KEY.match(self.host_key.strip()):
            raise SpecError(f"ssh host {self.host}: host_key must be the VPS's SSH host public "
                             "key as 'type base64' (ssh-keyscan -t ed25519 <address>)")

    @property
    def known_hosts_line(self) -> str:
        """The host key as a known_hosts line for this address and port."""
        pattern = self.host if self.port == 22 else f"[{self.host}]:{self.port}"
        return f"{pattern} {self.host_key.strip()}"

    @property
    def docker_ssh_opts(self) -> list[str]:
        """ssh options of the Docker provider's ssh:// transport: batch mode, and this host key
        only (see Host)."""
        return ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "GlobalKnownHostsFile=/dev/null",
                "-o", f"KnownHostsCommand=/bin/echo {self.known_hosts_line}"]

    @property
    def docker_host(self) -> str:
        return f"ssh://{self.user}@{self.host}:{self.port}"


@dataclass(frozen=True)
class MovedFrom:
    """The component that owned a host's Docker resources in an earlier version of a program
    (jamjam's were children of ``jamjam:index:Services`` ``jamjam``). Its resources become
    aliases, so a stack that already runs moves them in state instead of replacing them."""

    type: str
    name: str


@dataclass(frozen=True)
class HostArgs:
    ssh: SshArgs
    stack: str
    containers: Sequence[ContainerSpec] = ()
    """What runs here; each must name this host. The firewall opens what they publish."""
    network: str | None = None
    """Name of the user-defined bridge network the containers share (required with containers)."""
    labels: Labels = Labels()
    moved_from: MovedFrom | None = None
    debian: Debian = field(default_factory=Debian)
    """The release the VPS runs: the bootstrap checks it, containers use what its Docker can."""


class Host(pulumi.ComponentResource):
    """A machine reachable only on SSH and the ports its containers publish."""

    connection: command.remote.ConnectionArgs
    """How later components reach the host: the day-to-day user, key auth, sudo -n."""

    ready: pulumi.Resource
    """Depend on this before running anything on the host: Docker is up, the firewall is on."""

    containers: dict[str, docker.Container]
    """By role."""

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:Host", name, None, opts)
        ssh = args.ssh
        _check_placement(name, args)
        self.debian = args.debian.describe()
        """What the release means for this host (the plan shows it)."""
        script = bootstrap_script(args.debian)
        self.connection = connection(ssh.host, ssh.port, ssh.user, ssh.private_key, ssh.host_key)
        bootstrap_args = ["--user", ssh.user]

        # A fresh VPS only has its provider's first user (often root). This runs the bootstrap
        # once as that user to create the day-to-day user; after it, root login is off, so it
        # must never run again on the same machine: later changes go through `bootstrap` below.
        # A new address means a new machine, hence the trigger.
        first_contact = remote_script(
            f"{name}-first-contact",
            connection(ssh.host, ssh.port, ssh.initial_user, ssh.private_key, ssh.host_key),
            "bootstrap.sh", bootstrap_args, text=script,
            use_sudo=ssh.initial_user != "root",
            triggers=[ssh.host],
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["connection", "create", "update", "stdin"]),
        )
        bootstrap = remote_script(
            f"{name}-bootstrap", self.connection, "bootstrap.sh", bootstrap_args, text=script,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[first_contact]),
        )
        # Derived from the specs, so a port is opened exactly when a container publishes it.
        port_args = [arg for port in published_ports(args.containers) for arg in ("--allow", port)]
        firewall = remote_script(
            f"{name}-firewall", self.connection, "firewall.sh",
            ["apply", "--ssh-port", str(ssh.port), *port_args],
            # Removing the firewall keeps SSH allowed: a removed component must never lock
            # the operator out of the machine.
            delete_args=["remove", "--ssh-port", str(ssh.port)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bootstrap]),
        )
        self.ready = firewall
        self.containers = {}
        if args.containers:
            self._run(name, args)
        self.register_outputs({})

    def _run(self, name: str, args: HostArgs) -> None:
        assert args.network is not None
        provider = docker.Provider(
            f"{name}-docker",
            host=args.ssh.docker_host,
            # The docker CLI's ssh transport uses the operator's ssh client and agent. Batch mode
            # makes a missing key fail fast instead of waiting for a password prompt. The host
            # key is the stack's pinned one only: no known_hosts file is read (the operator's
            # may hold an old key for the address) and none is written (nothing to keep in
            # step on every laptop and CI runner); KnownHostsCommand (OpenSSH 8.5+; an older
            # ssh refuses the option, so it still fails closed) hands ssh the one line.
            ssh_opts=args.ssh.docker_ssh_opts,
            # The first preview of a new stack runs before the VPS has Docker; the daemon is
            # only needed when something is actually created.
            disable_docker_daemon_check=True,
            opts=pulumi.ResourceOptions(parent=self, aliases=_moved(args, "docker")),
        )
        network = docker.Network(
            f"{name}-network", name=args.network, driver="bridge",
            opts=pulumi.ResourceOptions(parent=self, provider=provider, depends_on=[self.ready],
                                        aliases=_moved(args, "network")))
        old = args.moved_from
        host = DockerHost(name=name, provider=provider, network=network,
                          connection=self.connection, ready=self.ready, stack=args.stack,
                          labels=args.labels, network_name=args.network,
                          start_interval=args.debian.release.start_interval,
                          moved_from=pulumi.create_urn(old.name, old.type) if old else None)
        # Specs come in dependency order (checked by _check_placement).
        for spec in args.containers:
            self.containers[spec.role] = run_container(
                spec, host, parent=self,
                depends_on=[self.containers[role] for role in spec.depends_on])


def _moved(args: HostArgs, role: str) -> list[pulumi.Alias] | None:
    old = args.moved_from
    if old is None:
        return None
    return [pulumi.Alias(name=f"{old.name}-{role}", parent=pulumi.create_urn(old.name, old.type))]


def _check_placement(name: str, args: HostArgs) -> None:
    seen: set[str] = set()
    names: set[str] = set()
    bound: dict[str, str] = {}
    for spec in args.containers:
        for port in spec.ports:
            if port.firewall_rule in bound:
                raise SpecError(f"container {spec.name!r} publishes {port.firewall_rule}, which "
                                f"{bound[port.firewall_rule]!r} already publishes on host {name!r}")
            bound[port.firewall_rule] = spec.name
        if spec.host != name:
            raise SpecError(f"container {spec.name!r} names host {spec.host!r} but was given to "
                             f"host {name!r}; pass each host only its own containers")
        if spec.role in seen or spec.name in names:
            raise SpecError(f"container {spec.name!r}: role {spec.role!r} or name used twice "
                             f"on host {name!r}")
        missing = [role for role in spec.depends_on if role not in seen]
        if missing:
            raise SpecError(f"container {spec.name!r} depends on {missing[0]!r}, which is not "
                             f"listed before it on host {name!r}")
        seen.add(spec.role)
        names.add(spec.name)
    if args.containers and not args.network:
        raise SpecError(f"host {name!r} runs containers but HostArgs.network is not set")
