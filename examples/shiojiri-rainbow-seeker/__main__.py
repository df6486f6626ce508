"""Shiojiri Rainbow Seeker: Cloudflare Tunnel -> cloudflared -> the Rails API (Puma); a Solid
Queue worker from the same image; PostgreSQL with PostGIS, dumped daily (kept 30 days) and
every 6 hours (kept 7) to R2; uploaded images in their own R2 bucket, kept for ever.

Composition only: the containers, route and schedules are in shiojiri.py, the building blocks
in the jamjam_infra library.
"""

import pulumi

import shiojiri
from jamjam_infra.backup import Backup, BackupArgs
from jamjam_infra.host import Host
from jamjam_infra.log_archive import LogUpload, LogUploadArgs
from jamjam_infra.operations import Operations
from jamjam_infra.r2_store import R2Store
from jamjam_infra.tunnel import PendingToken, Tunnel

config = shiojiri.load()
images = R2Store("images", shiojiri.image_store(config))
app = shiojiri.app(config, images.credentials)

# The containers first, so every config error (an image or role no container has) is
# raised before any resource is registered; the connector's token arrives with the tunnel.
token = PendingToken()
with token:
    containers = shiojiri.containers(config, app, tunnel_token=token.output)
    tunnel = Tunnel("api", config.tunnel(shiojiri.routes(config, app)))
    token.resolve(tunnel.token)

vps = Host(shiojiri.HOST, config.host(shiojiri.NETWORK, containers))

ops = Operations("ops", config.operations(vps.connection, vps.ready,
                                          disk_alert_percent=shiojiri.DISK_ALERT_OVER,
                                          memory_alert_percent=shiojiri.MEMORY_ALERT_OVER))
offsite = R2Store("offsite", config.store(config.backup_bucket, "offsite", vps.connection,
                                          vps.ready, retention=shiojiri.retention(app)))
LogUpload("logs", LogUploadArgs(stack=config.stack, store=offsite, connection=vps.connection,
                                prefix=shiojiri.LOG_PREFIX))
backup = Backup("db-backup", BackupArgs(
    stack=config.stack, database=app.db, sets=shiojiri.BACKUP_SETS, drill=shiojiri.DRILL,
    store=offsite, connection=vps.connection, host_ready=vps.ready, after=ops.alerting))

pulumi.export("url", config.url)
pulumi.export("tunnelName", config.tunnel_name)
pulumi.export("tunnelId", tunnel.tunnel_id)
pulumi.export("offsiteBucket", offsite.bucket_name)
pulumi.export("imageBucket", images.bucket_name)
pulumi.export("backupJobs", sorted(backup.jobs))
pulumi.export("operatorChecks", shiojiri.operator_checks(config))
