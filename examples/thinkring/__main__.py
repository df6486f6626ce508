"""thinkRing: Cloudflare Tunnel -> cloudflared -> /api/ to the Django backend, the rest to the
Svelte front end; PostgreSQL 15 with daily dumps to R2 and a weekly restore drill.

Composition only: thinkRing's containers, routes and schedules are in thinkring.py, the
building blocks in the jamjam_infra library.
"""

import pulumi

import thinkring
from jamjam_infra.backup import Backup, BackupArgs
from jamjam_infra.host import Host
from jamjam_infra.log_archive import LogUpload, LogUploadArgs
from jamjam_infra.operations import Operations
from jamjam_infra.r2_store import R2Store
from jamjam_infra.tunnel import PendingToken, Tunnel

config = thinkring.load()
secrets = thinkring.generate_secrets()
app = thinkring.app(config, secrets)

# The containers first, so every config error (an image or role no container has) is
# raised before any resource is registered; the connector's token arrives with the tunnel.
token = PendingToken()
with token:
    containers = thinkring.containers(config, app, tunnel_token=token.output)
    tunnel = Tunnel("web", config.tunnel(thinkring.routes(config, app)))
    token.resolve(tunnel.token)

vps = Host(thinkring.HOST, config.host(thinkring.NETWORK, containers))

ops = Operations("ops", config.operations(vps.connection, vps.ready))
offsite = R2Store("offsite", config.store(config.bucket, "offsite", vps.connection,
                                          vps.ready, retention=thinkring.retention(app)))
LogUpload("logs", LogUploadArgs(stack=config.stack, store=offsite, connection=vps.connection,
                                prefix=thinkring.LOG_PREFIX))
backup = Backup("db-backup", BackupArgs(
    stack=config.stack, database=app.db, sets=thinkring.BACKUP_SETS, drill=thinkring.DRILL,
    store=offsite, connection=vps.connection, host_ready=vps.ready, after=ops.alerting))

pulumi.export("url", config.url)
pulumi.export("tunnelName", config.tunnel_name)
pulumi.export("tunnelId", tunnel.tunnel_id)
pulumi.export("offsiteBucket", offsite.bucket_name)
pulumi.export("backupJobs", sorted(backup.jobs))
pulumi.export("operatorChecks", thinkring.operator_checks(config))
