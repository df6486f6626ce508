"""R-Stream: Cloudflare Tunnel -> cloudflared -> the Node.js server (WebSocket); PostgreSQL and
Redis on the internal network only; the database, archives/, recordings/ and logs copied to the
R2 bucket rstream-backups, each with its retention.

Composition only: the containers, route and schedules are in rstream.py, the building blocks in
the jamjam_infra library.
"""

import pulumi

import rstream
from jamjam_infra.dir_sync import DirSync
from jamjam_infra.site import declare

config = rstream.load()
site = declare(config, rstream, rstream.app(config))
media = DirSync("media", rstream.sync(config, site.vps.connection, site.vps.ready, site.offsite,
                                      after=site.ops.alerting))
pulumi.export("backupJobs", sorted([*site.jobs, *media.jobs]))
