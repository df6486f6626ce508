"""The rows and Args every project with one public hostname shares (the examples under
``examples/``), on the library's one config schema (:mod:`jamjam_infra.schema`).

A project declares its config rows once, ``TOP_LEVEL``, in its one specifics module: the shared
site rows plus its own, then reads them all at once; every bad or missing key is one line (the
key, what is wrong, a command that fixes it), all raised together as one ``ConfigError`` before
any resource is registered. Components never read config.

    TOP_LEVEL = (*site_rows("api.example.com"), <the project's own Setting rows>)
    config = Config(**site_fields(read(TOP_LEVEL, SITE_CHECKS)), <its own fields>)

where ``Config`` subclasses :class:`SiteConfig` with the project's own fields (see any
example's module), and ``config.containers(specs)`` settles the container specs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

import pulumi
import pulumi_command as command

from jamjam_infra.container import ContainerSpec
from jamjam_infra.host import Debian, HostArgs, SshArgs
from jamjam_infra.operations import OperationsArgs
from jamjam_infra.r2_store import R2StoreArgs, Retention, rclone_config_path
from jamjam_infra.schema import (
    Images, Row, Setting, Values, boolean, containers_section, debian, dns_name,
    hostname_inside_zone, images_section, operator_rows, settle, ssh_args, zone)
from jamjam_infra.tunnel import ExternalCheck, Route, TunnelArgs


def site_rows(hostname_example: str, zone_example: str = "example.com") -> tuple[Row, ...]:
    """The rows of a project with one public hostname: ``zone``, ``hostname`` (inside the
    zone), ``images.<name>``, ``externalHealthChecks``, ``containers.<role>`` overrides and
    the operator's keys."""
    return (
        Setting("zone", zone, zone_example, "Cloudflare zone that holds hostname."),
        Setting("hostname", dns_name, hostname_example,
                "The project's public hostname; must be inside zone."),
        images_section(),
        Setting("externalHealthChecks", boolean, True,
                "A Cloudflare health check per public route (needs a paid plan).",
                default=False, type="boolean"),
        containers_section(),
        *operator_rows(),
    )


SITE_CHECKS = (hostname_inside_zone("hostname"),)
"""The rules over several of :func:`site_rows`' keys."""


def site_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The :class:`SiteConfig` fields from :func:`site_rows`' parsed values, as keywords for a
    subclass."""
    namespace = pulumi.get_project()
    return {"stack": pulumi.get_stack(), "zone": values["zone"], "hostname": values["hostname"],
            "images": values["images"], "external_checks": values["externalHealthChecks"],
            "values": values,
            "operator": Operator(account_id=values["cloudflareAccountId"],
                                 zone_id=values["cloudflareZoneId"], ssh=ssh_args(values),
                                 alert_webhook_url=values["alertWebhookUrl"],
                                 debian=debian(values, namespace))}


@dataclass(frozen=True)
class Operator:
    """What only the operator of a stack can set."""

    account_id: str
    zone_id: str
    ssh: SshArgs
    alert_webhook_url: pulumi.Output[str] | None
    debian: Debian = Debian()
    """The Debian release the VPS runs (``vpsDebianVersion``, default 13)."""

    @property
    def on_host(self) -> str:
        """The ssh command line that runs what follows it on the stack's host, for the
        operator checks a project exports."""
        return f"ssh -p {self.ssh.port} {self.ssh.user}@{self.ssh.host}"


@dataclass(frozen=True)
class SiteConfig:
    """What :func:`site_fields` reads: a project subclasses it with its own keys."""

    stack: str
    zone: str
    hostname: str
    images: Images
    """Pinned images by name: a spec takes its own with ``config.images["name"]``."""
    external_checks: bool
    operator: Operator
    values: Values = field(kw_only=True, repr=False, compare=False)
    """Everything read, for :meth:`containers`."""

    project: ClassVar[str | None] = None
    """What tunnel and R2 token names start with (``<project>-<stack>...``): the project's name
    in Pulumi.yaml unless the subclass keeps an older one its running stacks were created with
    (a tunnel's name is what Cloudflare knows it by)."""

    @property
    def owner(self) -> str:
        return self.project or pulumi.get_project()

    @property
    def url(self) -> str:
        return f"https://{self.hostname}"

    @property
    def tunnel_name(self) -> str:
        return f"{self.owner}-{self.stack}"

    def operator_checks(self, probes: Sequence[str], on_host: Sequence[str]) -> list[str]:
        """Commands the operator runs after an apply: ``probes`` from anywhere, then the
        stack's containers (the library's ``jamjam.stack`` label) and ``on_host`` over ssh."""
        ssh = self.operator.on_host
        return [*probes, f"{ssh} docker ps --filter label=jamjam.stack={self.stack}",
                *(f"{ssh} {line}" for line in on_host)]

    def external(self, check: ExternalCheck) -> ExternalCheck | None:
        """A route's check from outside, if ``externalHealthChecks`` turned them on."""
        return check if self.external_checks else None

    def tunnel(self, routes: Sequence[Route]) -> TunnelArgs:
        """The stack's tunnel in the operator's account and zone."""
        return TunnelArgs(account_id=self.operator.account_id, zone_id=self.operator.zone_id,
                          tunnel_name=self.tunnel_name, routes=routes)

    def containers(self, specs: Sequence[ContainerSpec]) -> list[ContainerSpec]:
        """The specs with the stack's ``containers.<role>`` overrides; refuses an image or role
        the stack sets and no spec has, or the reverse (call it before any resource)."""
        return settle(self.values, specs)

    def host(self, network: str, containers: Sequence[ContainerSpec]) -> HostArgs:
        """The operator's VPS, running ``containers`` on the bridge ``network``."""
        return HostArgs(ssh=self.operator.ssh, stack=self.stack, network=network,
                        containers=containers, debian=self.operator.debian)

    def store(self, bucket: str, purpose: str,
              connection: command.remote.ConnectionArgs | None = None,
              host_ready: pulumi.Resource | None = None,
              retention: Sequence[Retention] = ()) -> R2StoreArgs:
        """A bucket in the operator's account with its own token ``<tunnel name>-<purpose>``;
        with a connection, the host gets the bucket's rclone config."""
        return R2StoreArgs(
            account_id=self.operator.account_id, bucket=bucket,
            token_name=f"{self.tunnel_name}-{purpose}", connection=connection,
            host_ready=host_ready,
            config_path=rclone_config_path(bucket) if connection is not None else None,
            retention=retention)

    def operations(self, connection: command.remote.ConnectionArgs,
                   host_ready: pulumi.Resource, **options: Any) -> OperationsArgs:
        """The host's operations jobs, alerting to the operator's webhook (if set)."""
        return OperationsArgs(stack=self.stack, connection=connection, host_ready=host_ready,
                              webhook_url=self.operator.alert_webhook_url, **options)
