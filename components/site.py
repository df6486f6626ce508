"""The composition every site project shares: one public hostname through a Cloudflare Tunnel
to containers on one VPS, with the host's operations jobs, an off-site R2 bucket for the
container logs and the database dumps, and a backup with its restore drill. The examples under
``examples/`` are each this plus what is theirs (a second bucket, a directory sync).

A project's specifics module is the :class:`SiteModule` below; its ``__main__`` is then

    config = project.load()
    site = declare(config, project, project.app(config))

Written once here so the examples' programs say only what differs between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import pulumi

from jamjam_infra.backup import Backup, BackupArgs, BackupSet, RestoreDrill, backup_retention
from jamjam_infra.container import ContainerSpec
from jamjam_infra.host import Host
from jamjam_infra.log_archive import LogUpload, LogUploadArgs
from jamjam_infra.operations import Operations
from jamjam_infra.project_settings import SiteConfig
from jamjam_infra.r2_store import R2Store, Retention
from jamjam_infra.tunnel import PendingToken, Route, Tunnel


class SiteModule(Protocol):
    """What :func:`declare` reads from a project's specifics module."""

    HOST: str
    """The host component's name."""
    NETWORK: str
    """The bridge network's Docker name."""
    TUNNEL: str
    """The tunnel component's name."""
    LOG_PREFIX: str
    """Where the container logs go in the off-site bucket."""
    BACKUP_SETS: Sequence[BackupSet]
    DRILL: RestoreDrill | None
    OPERATIONS: Mapping[str, Any]
    """Keywords for :meth:`SiteConfig.operations` (alert thresholds of its document)."""
    LOG_DAYS: int
    """How long the off-site bucket keeps the container logs (unless ``retention`` says)."""

    def containers(self, config: Any, app: Any,
                   tunnel_token: pulumi.Output[str]) -> list[ContainerSpec]: ...

    def routes(self, config: Any, app: Any) -> list[Route]: ...

    def operator_checks(self, config: Any) -> list[str]: ...


@dataclass(frozen=True)
class Site:
    tunnel: Tunnel
    vps: Host
    ops: Operations
    offsite: R2Store
    backup: Backup
    jobs: list[str] = field(default_factory=list)
    """Every backup job's name (exported as ``backupJobs``)."""


def retention(module: SiteModule, app: Any) -> list[Retention]:
    """The off-site bucket's lifecycle by prefix: the module's own ``retention(app)`` where it
    keeps more there, else its dumps (per backup set) and the container logs (``LOG_DAYS``)."""
    own = getattr(module, "retention", None)
    if own is not None:
        return own(app)
    return [*backup_retention(app.db, module.BACKUP_SETS),
            Retention(module.LOG_PREFIX, module.LOG_DAYS)]


def declare(config: SiteConfig, module: SiteModule, app: Any) -> Site:
    """Declare the site; ``app`` carries the project's container specs (``app.db`` is the
    database), ``config.bucket`` is the off-site bucket. Exports url, tunnelName, tunnelId,
    offsiteBucket, backupJobs and operatorChecks (export ``backupJobs`` again to add more)."""
    # The containers first, so every config error (an image or role no container has) is
    # raised before any resource is registered; the connector's token arrives with the tunnel.
    token = PendingToken()
    with token:
        containers = module.containers(config, app, tunnel_token=token.output)
        tunnel = Tunnel(module.TUNNEL, config.tunnel(module.routes(config, app)))
        token.resolve(tunnel.token)
    vps = Host(module.HOST, config.host(module.NETWORK, containers))
    ops = Operations("ops", config.operations(vps.connection, vps.ready, **module.OPERATIONS))
    offsite = R2Store("offsite", config.store(config.bucket, "offsite", vps.connection,
                                              vps.ready, retention=retention(module, app)))
    LogUpload("logs", LogUploadArgs(stack=config.stack, store=offsite, connection=vps.connection,
                                    prefix=module.LOG_PREFIX))
    backup = Backup("db-backup", BackupArgs(
        stack=config.stack, database=app.db, sets=module.BACKUP_SETS, drill=module.DRILL,
        store=offsite, connection=vps.connection, host_ready=vps.ready, after=ops.alerting))
    jobs = sorted(backup.jobs)
    pulumi.export("url", config.url)
    pulumi.export("tunnelName", config.tunnel_name)
    pulumi.export("tunnelId", tunnel.tunnel_id)
    pulumi.export("offsiteBucket", offsite.bucket_name)
    pulumi.export("backupJobs", jobs)
    pulumi.export("operatorChecks", module.operator_checks(config))
    return Site(tunnel=tunnel, vps=vps, ops=ops, offsite=offsite, backup=backup, jobs=jobs)
