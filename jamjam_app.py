"""jamjam's own specifics on the component library: its containers, its tunnel route, its host
and what an operator is told. Every name other modules or runbooks share (container names, the
signaling alias, the network, the echo address) is spelled here and nowhere else.

Only this module and ``__main__`` know ``settings``; the library gets plain Args.
"""

from __future__ import annotations

import pulumi

from jamjam_infra.container import ContainerSpec, Healthcheck, Labels, Port
from jamjam_infra.host import MovedFrom
from jamjam_infra.log_archive import RCLONE_CONFIG
from jamjam_infra.operations import OperationsArgs
from jamjam_infra.schema import settle
from jamjam_infra.tunnel import ExternalCheck, Route, cloudflared
from settings import Settings

HOST = "vps"
MOVED_FROM = MovedFrom(type="jamjam:index:Services", name="jamjam")
"""Where the Docker resources lived before the component library: kept by alias."""
NETWORK = "jamjam"
LABELS = Labels()
"""The library's default namespace (jamjam.stack, ...), which the host scripts filter on."""

SIGNALING = "jamjam-signaling"
SIGNALING_ALIAS = "signaling-server"
"""What echo-server and the tunnel's ingress call signaling on the bridge network."""
ECHO = "jamjam-echo"
CLOUDFLARED = "jamjam-cloudflared"
SIGNALING_BINARY = "signaling-server"
ECHO_BINARY = "echo-server"
"""The programs in the two images: entrypoints, and what the health checks look for."""


def tunnel_name(config: Settings) -> str:
    return f"jamjam-{config.stack}"


def echo_address(config: Settings) -> str:
    """What echo-server advertises to clients and what the operator is told."""
    return f"{config.vps_address}:{config.echo_port}"


def signaling_url(config: Settings) -> str:
    return f"wss://{config.signaling_hostname}"


def _signaling(config: Settings) -> ContainerSpec:
    return ContainerSpec(
        role="signaling", name=SIGNALING, image=config.images["signaling"], host=HOST,
        entrypoint=(SIGNALING_BINARY,),
        command=("--port", str(config.signaling_port), "--host", "0.0.0.0"),
        env={"RUST_LOG": config.log_level},
        aliases=(SIGNALING_ALIAS,),
        healthcheck=Healthcheck(("pgrep", "-f", SIGNALING_BINARY)),
        # No ports: signaling is reachable only on the bridge network, i.e. by cloudflared
        # and echo-server.
    )


def routes(config: Settings) -> list[Route]:
    check = ExternalCheck(
        path="/",
        # Any answer from signaling-server proves tunnel and origin are up; it need not
        # serve plain GETs. Down shows as 5xx (502, 530) from Cloudflare.
        expected_codes=("2xx", "3xx", "4xx"),
    ) if config.operations.external_health_check else None
    return [Route(name="signaling", hostname=config.signaling_hostname,
                  origin=_signaling(config).origin(config.signaling_port), check=check)]


def containers(config: Settings, tunnel_token: pulumi.Output[str]) -> list[ContainerSpec]:
    """SPEC's three containers, in start order, with the stack's hardening overrides
    (``jamjam:containers.<role>``); refuses an image or role the stack sets and no container
    has, or the reverse, before any resource is registered."""
    signaling = _signaling(config)
    address = echo_address(config)
    echo = ContainerSpec(
        role="echo", name=ECHO, image=config.images["echo"], host=HOST,
        entrypoint=(ECHO_BINARY,),
        command=("--port", str(config.echo_port), "--host", "0.0.0.0",
                 "--delay", str(config.echo_delay_ms),
                 "--signaling-url", f"ws://{SIGNALING_ALIAS}:{config.signaling_port}",
                 "--public-addr", address),
        env={"RUST_LOG": config.log_level, "ECHO_DELAY_MS": str(config.echo_delay_ms),
             "ECHO_PUBLIC_ADDR": address},
        ports=(Port(config.echo_port, "udp"),),
        healthcheck=Healthcheck(("pgrep", ECHO_BINARY)),
        depends_on=("signaling",),
    )
    tunnel = cloudflared(CLOUDFLARED, config.images["cloudflared"], HOST, tunnel_token,
                         depends_on=("signaling",))
    return settle(config.values, (signaling, echo, tunnel))


def operations(config: Settings, connection, host_ready: pulumi.Resource) -> OperationsArgs:
    ops = config.operations
    return OperationsArgs(
        stack=config.stack, connection=connection, host_ready=host_ready,
        webhook_url=config.alert_webhook_url,
        self_heal=ops.self_heal, resource_alerts=ops.resource_alerts,
        disk_alert_percent=ops.disk_alert_percent, memory_alert_percent=ops.memory_alert_percent,
        image_scan=ops.image_scan, image_scan_schedule=ops.image_scan_schedule,
        os_updates=ops.os_updates, os_updates_reboot=ops.os_updates_reboot,
    )


def operator_checks(config: Settings) -> list[str]:
    """SPEC's runbook checks, spelled out for this stack."""
    s = config.ssh
    on_host = f"ssh -p {s.port} {s.user}@{s.host}"
    checks = [
        f"curl -I https://{config.signaling_hostname}",
        f"{on_host} docker ps --filter label={LABELS.stack}={config.stack}",
        f"{on_host} docker exec {ECHO} pgrep {ECHO_BINARY}",
    ]
    if config.log_archive:
        checks.append(f"{on_host} sudo rclone --config {RCLONE_CONFIG} "
                      f"ls r2:{config.log_archive.bucket} --max-depth 1")
    return checks
