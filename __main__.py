"""jamjam: Cloudflare Tunnel -> cloudflared -> signaling-server; echo-server on UDP; see README."""

import pulumi

import settings
from components.host import Host, HostArgs
from components.log_archive import LogArchive, LogArchiveArgs
from components.operations import Operations, OperationsArgs
from components.services import Services, ServicesArgs
from components.tunnel import Tunnel, TunnelArgs

config = settings.load()

tunnel = Tunnel("signaling", TunnelArgs(
    account_id=config.account_id,
    zone_id=config.zone_id,
    tunnel_name=config.tunnel_name,
    hostname=config.signaling_hostname,
    origin=config.signaling_origin,
))

host = Host("vps", HostArgs(
    ssh=config.ssh,
    public_ports=config.public_ports,
))

services = Services("jamjam", ServicesArgs(
    stack=config.stack,
    docker_host=config.docker_host,
    ssh_host_key_check=config.ssh.host_key_pinned,
    images=config.images,
    log_level=config.log_level,
    echo_delay_ms=config.echo_delay_ms,
    echo_port=config.echo_port,
    signaling_port=config.signaling_port,
    public_address=config.vps_address,
    tunnel_token=tunnel.token,
    host_ready=host.ready,
))

if config.log_archive:
    archive = LogArchive("logs", LogArchiveArgs(
        account_id=config.account_id,
        bucket=config.log_archive.bucket,
        retention_days=config.log_archive.retention_days,
        schedule=config.log_archive.schedule,
        stack=config.stack,
        connection=host.connection,
        host_ready=host.ready,
    ))
    pulumi.export("logBucket", archive.bucket_name)

Operations("ops", OperationsArgs(
    stack=config.stack,
    settings=config.operations,
    signaling_hostname=config.signaling_hostname,
    zone_id=config.zone_id,
    webhook_url=config.alert_webhook_url,
    connection=host.connection,
    host_ready=host.ready,
))

pulumi.export("signalingUrl", config.signaling_url)
pulumi.export("echoAddress", config.echo_address)
pulumi.export("tunnelId", tunnel.tunnel_id)
pulumi.export("tunnelName", config.tunnel_name)
pulumi.export("operatorChecks", config.operator_checks)
