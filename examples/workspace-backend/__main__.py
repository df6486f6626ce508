"""workspace-backend: Cloudflare Tunnel -> cloudflared -> the work tracker API; the Twitch bot
calls the tracker on the internal network; PostgreSQL with daily dumps to R2 and a monthly
restore drill.

Composition only: the containers, route and schedules are in workspace.py, the building blocks
in the jamjam_infra library.
"""

import pulumi

import workspace
from jamjam_infra.backup import Backup, BackupArgs
from jamjam_infra.host import Host
from jamjam_infra.log_archive import LogUpload, LogUploadArgs
from jamjam_infra.operations import Operations
from jamjam_infra.r2_store import R2Store
from jamjam_infra.tunnel import PendingToken, Tunnel

config = workspace.load()
app = workspace.app(config)

# The containers first, so every config error (an image or role no container has) is
# raised before any resource is registered; the connector's token arrives with the tunnel.
token = PendingToken()
with token:
    containers = workspace.containers(config, app, tunnel_token=token.output)
    tunnel = Tunnel("api", config.tunnel(workspace.routes(config, app)))
    token.resolve(tunnel.token)

vps = Host(workspace.HOST, config.host(workspace.NETWORK, containers))

ops = Operations("ops", config.operations(vps.connection, vps.ready,
                                          disk_alert_percent=workspace.DISK_ALERT_OVER,
                                          memory_alert_percent=workspace.MEMORY_ALERT_OVER))
offsite = R2Store("offsite", config.store(config.bucket, "offsite", vps.connection,
                                          vps.ready, retention=workspace.retention(app)))
LogUpload("logs", LogUploadArgs(stack=config.stack, store=offsite, connection=vps.connection,
                                prefix=workspace.LOG_PREFIX))
backup = Backup("db-backup", BackupArgs(
    stack=config.stack, database=app.db, sets=workspace.BACKUP_SETS, drill=workspace.DRILL,
    store=offsite, connection=vps.connection, host_ready=vps.ready, after=ops.alerting))

pulumi.export("url", config.url)
pulumi.export("tunnelName", config.tunnel_name)
pulumi.export("tunnelId", tunnel.tunnel_id)
pulumi.export("offsiteBucket", offsite.bucket_name)
pulumi.export("backupJobs", sorted(backup.jobs))
pulumi.export("operatorChecks", workspace.operator_checks(config))
