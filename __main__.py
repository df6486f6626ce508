"""jamjam: Cloudflare Tunnel -> cloudflared -> signaling-server; echo-server on UDP; see README.

Composition only: jamjam's containers and routes are in jamjam_app, the building blocks in
the jamjam_infra library (components/).
"""

import pulumi

import jamjam_app as jamjam
import settings
from jamjam_infra.host import Debian, Host, HostArgs
from jamjam_infra.log_archive import LogArchive, LogArchiveArgs
from jamjam_infra.operations import Operations
from jamjam_infra.tunnel import PendingToken, Tunnel, TunnelArgs

config = settings.load()
# The containers first, so every config error (an image or role no container has) is raised
# before any resource is registered; the connector's token arrives once the tunnel exists.
token = PendingToken()
with token:
    containers = jamjam.containers(config, tunnel_token=token.output)
    tunnel = Tunnel("signaling", TunnelArgs(
        account_id=config.account_id,
        zone_id=config.zone_id,
        tunnel_name=jamjam.tunnel_name(config),
        routes=jamjam.routes(config),
    ))
    token.resolve(tunnel.token)

vps = Host(jamjam.HOST, HostArgs(
    ssh=config.ssh,
    stack=config.stack,
    network=jamjam.NETWORK,
    labels=jamjam.LABELS,
    moved_from=jamjam.MOVED_FROM,
    debian=Debian(config.vps_debian_version),
    containers=containers,
))

if config.log_archive:
    archive = LogArchive("logs", LogArchiveArgs(
        account_id=config.account_id,
        bucket=config.log_archive.bucket,
        retention_days=config.log_archive.retention_days,
        schedule=config.log_archive.schedule,
        stack=config.stack,
        connection=vps.connection,
        host_ready=vps.ready,
    ))
    pulumi.export("logBucket", archive.bucket_name)

Operations("ops", jamjam.operations(config, vps.connection, vps.ready))

pulumi.export("signalingUrl", jamjam.signaling_url(config))
pulumi.export("echoAddress", jamjam.echo_address(config))
pulumi.export("tunnelId", tunnel.tunnel_id)
pulumi.export("tunnelName", jamjam.tunnel_name(config))
pulumi.export("operatorChecks", jamjam.operator_checks(config))
pulumi.export("vpsDebian", vps.debian)
