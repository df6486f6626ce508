"""R-Stream: Cloudflare Tunnel -> cloudflared -> the Node.js server (WebSocket); PostgreSQL and
Redis on the internal network only; the database, archives/, recordings/ and logs copied to the
R2 bucket rstream-backups, each with its retention.

Composition only: the containers, route and schedules are in rstream.py, the building blocks in
the jamjam_infra library.
"""

import pulumi

import rstream
from jamjam_infra.backup import Backup, BackupArgs
from jamjam_infra.dir_sync import DirSync
from jamjam_infra.host import Host
from jamjam_infra.log_archive import LogUpload, LogUploadArgs
from jamjam_infra.operations import Operations
from jamjam_infra.r2_store import R2Store
from jamjam_infra.tunnel import PendingToken, Tunnel

config = rstream.load()
app = rstream.app(config)

# The containers first, so every config error (an image or role no container has) is
# raised before any resource is registered; the connector's token arrives with the tunnel.
token = PendingToken()
with token:
    containers = rstream.containers(config, app, tunnel_token=token.output)
    tunnel = Tunnel("live", config.tunnel(rstream.routes(config, app)))
    token.resolve(tunnel.token)

vps = Host(rstream.HOST, config.host(rstream.NETWORK, containers))

ops = Operations("ops", config.operations(vps.connection, vps.ready))
offsite = R2Store("offsite", config.store(config.bucket, "offsite", vps.connection,
                                          vps.ready, retention=rstream.retention(app)))
LogUpload("logs", LogUploadArgs(stack=config.stack, store=offsite, connection=vps.connection,
                                prefix=rstream.CONTAINER_LOG_PREFIX))
backup = Backup("db-backup", BackupArgs(
    stack=config.stack, database=app.db, sets=rstream.BACKUP_SETS, drill=rstream.DRILL,
    store=offsite, connection=vps.connection, host_ready=vps.ready, after=ops.alerting))
media = DirSync("media", rstream.sync(config, vps.connection, vps.ready, offsite,
                                      after=ops.alerting))

pulumi.export("url", config.url)
pulumi.export("tunnelName", config.tunnel_name)
pulumi.export("tunnelId", tunnel.tunnel_id)
pulumi.export("offsiteBucket", offsite.bucket_name)
pulumi.export("backupJobs", sorted([*backup.jobs, *media.jobs]))
pulumi.export("operatorChecks", rstream.operator_checks(config))
