"""The VPS itself: first contact, bootstrap (Docker, the day-to-day user, SSH hardening) and
the firewall, all over SSH with pulumi-command."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from components._remote import connection, remote_script
from settings import SshSettings


@dataclass(frozen=True)
class HostArgs:
    ssh: SshSettings
    public_ports: tuple[str, ...]
    """Ports open to the internet besides SSH, as ``<port>/<proto>`` (e.g. ``5000/udp``)."""


class Host(pulumi.ComponentResource):
    """A Docker host reachable only on SSH and the declared public ports."""

    connection: command.remote.ConnectionArgs
    """How later components reach the host: the day-to-day user, key auth, sudo -n."""

    ready: pulumi.Resource
    """Depend on this before running anything on the host: Docker is up, the firewall is on."""

    def __init__(self, name: str, args: HostArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:Host", name, None, opts)
        ssh = args.ssh
        self.connection = connection(ssh.host, ssh.port, ssh.user, ssh.private_key, ssh.host_key)
        bootstrap_args = ["--user", ssh.user]

        # A fresh VPS only has its provider's first user (often root). This runs the bootstrap
        # once as that user to create the day-to-day user; after it, root login is off, so it
        # must never run again on the same machine: later changes go through `bootstrap` below.
        # A new address means a new machine, hence the trigger.
        first_contact = remote_script(
            f"{name}-first-contact",
            connection(ssh.host, ssh.port, ssh.initial_user, ssh.private_key, ssh.host_key),
            "bootstrap.sh", bootstrap_args,
            use_sudo=ssh.initial_user != "root",
            triggers=[ssh.host],
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["connection", "create", "update", "stdin"]),
        )
        bootstrap = remote_script(
            f"{name}-bootstrap", self.connection, "bootstrap.sh", bootstrap_args,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[first_contact]),
        )
        port_args = [arg for port in args.public_ports for arg in ("--allow", port)]
        firewall = remote_script(
            f"{name}-firewall", self.connection, "firewall.sh",
            ["apply", "--ssh-port", str(ssh.port), *port_args],
            # Removing the firewall keeps SSH allowed: a removed component must never lock
            # the operator out of the machine.
            delete_args=["remove", "--ssh-port", str(ssh.port)],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[bootstrap]),
        )
        self.ready = firewall
        self.register_outputs({})
