"""R-Stream's specifics on the jamjam_infra library (SYSTEMS.md, "R-Stream"): the Node.js
server, PostgreSQL, Redis, the tunnel route, the off-site copies (database dumps, archives/,
recordings/, the three kinds of log) and stack config. Every name shared between containers,
routes and jobs is spelled here once.

Assumptions where their document is silent (the README says each): the server listens on
3000, serves the web front end's static build itself, and writes its archives, recordings and
access/error/security logs under /app/{archives,recordings,logs/<kind>}; Redis is a cache and
message bus whose contents may be lost on restart.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_command as command

from jamjam_infra.backup import BackupSet, RestoreDrill, backup_retention, postgres
from jamjam_infra.container import ContainerSpec, Hardening, Healthcheck, Volume
from jamjam_infra.dir_sync import DirSyncArgs, SyncedDir, sync_retention, volume_path
from jamjam_infra.project_settings import SITE_CHECKS, SiteConfig, site_fields, site_rows
from jamjam_infra.schema import Setting, bucket, read
from jamjam_infra.r2_store import R2Store, Retention, rclone_config_path
from jamjam_infra.secrets import generated_secret
from jamjam_infra.tunnel import ExternalCheck, Route, cloudflared

HOST = "vps"
TUNNEL = "live"
"""The tunnel component's name (its resources' URNs start with it)."""
NETWORK = "rstream"

SERVER = "rstream-server"
DB = "rstream-db"
REDIS = "rstream-redis"
CLOUDFLARED = "rstream-cloudflared"
SERVER_ALIAS = "server"
DB_ALIAS = "db"
REDIS_ALIAS = "redis"
SERVER_PORT = 3000
"""Not given in their document: assumed."""
DB_PORT = 5432
REDIS_PORT = 6379
DB_NAME = "rstream"
DB_USER = "rstream"
APP_DIR = "/app"

ARCHIVES = Volume("rstream-archives", f"{APP_DIR}/archives")
RECORDINGS = Volume("rstream-recordings", f"{APP_DIR}/recordings")
APP_LOGS = Volume("rstream-logs", f"{APP_DIR}/logs")

BACKUP = "rstream-db-backup"
# "Use daily": 04:00, a week on the host, a month in R2.
BACKUP_SETS = (BackupSet("daily", "0 4 * * *", keep_days=7, offsite_days=30),)
DRILL = RestoreDrill("0 5 1 * *", min_tables=1, max_age_hours=25)
OPERATIONS: dict = {}
"""The library's host jobs as they are (its document sets no threshold of its own)."""
SYNC_SCHEDULE = "20 * * * *"
# Access logs 90 days, error logs 180, security logs 365 (their document), each a lifecycle
# rule on its prefix. Only files changed within that time go up, or R2 would get back every
# day what its rule has just expired.
LOG_RETENTION = {"access": 90, "error": 180, "security": 365}
LOG_PREFIX = "logs/containers/"
CONTAINER_LOG_DAYS = 180
"""stdout/stderr of every container: kept like the error logs."""
# The stack config: the rows every site shares, then this project's own (README
# "Configuration reference", generated from these rows).
TOP_LEVEL = (
    *site_rows("live.example.com"),
    Setting("bucket", bucket, "rstream-backups",
            "R2 bucket of the dumps and the container logs."),
)


@dataclass(frozen=True)
class Config(SiteConfig):
    project = "rstream"
    bucket: str


def load() -> Config:
    values = read(TOP_LEVEL, SITE_CHECKS)
    return Config(**site_fields(values), bucket=values["bucket"])


@dataclass(frozen=True)
class App:
    db: ContainerSpec
    redis: ContainerSpec
    server: ContainerSpec


def app(config: Config) -> App:
    password = generated_secret("db-password")
    db = postgres(DB, config.images["db"], HOST, database=DB_NAME, user=DB_USER,
                  password=password, volume="rstream-db-data", alias=DB_ALIAS,
                  backup_job=BACKUP)
    redis = ContainerSpec(
        role="redis", name=REDIS, image=config.images["redis"], host=HOST,
        # A cache, not a store: no snapshot, no append-only file, so no volume to back up.
        # `--save` followed by another option is `save ""` (Redis 7.0+; the pin is 7.x): the
        # docker provider refuses the empty argument `--save ""` would need.
        command=("redis-server", "--save", "--appendonly", "no"),
        aliases=(REDIS_ALIAS,),
        healthcheck=Healthcheck(("redis-cli", "ping")),
        # The image's own unprivileged user: its entrypoint then needs no capabilities.
        hardening=Hardening(user="redis"),
    )
    server = ContainerSpec(
        role="server", name=SERVER, image=config.images["server"], host=HOST,
        env={"NODE_ENV": "production", "PORT": str(SERVER_PORT),
             "REDIS_URL": f"redis://{REDIS_ALIAS}:{REDIS_PORT}"},
        secret_env={"DATABASE_URL": password.apply(
            lambda pw: f"postgres://{DB_USER}:{pw}@{DB_ALIAS}:{DB_PORT}/{DB_NAME}")},
        volumes=(ARCHIVES, RECORDINGS, APP_LOGS),
        aliases=(SERVER_ALIAS,),
        # Any answer under 500 proves the server is up; node 18+ has fetch built in.
        healthcheck=Healthcheck(("node", "-e", f"fetch('http://127.0.0.1:{SERVER_PORT}/')"
                                 ".then(r => process.exit(r.status < 500 ? 0 : 1),"
                                 " () => process.exit(1))")),
        depends_on=("db", "redis"),
    )
    return App(db=db, redis=redis, server=server)


def _cloudflared(config: Config, tunnel_token: pulumi.Output[str]) -> ContainerSpec:
    return cloudflared(CLOUDFLARED, config.images["cloudflared"], HOST, tunnel_token,
                       depends_on=("server",))


def containers(config: Config, specs: App,
               tunnel_token: pulumi.Output[str]) -> list[ContainerSpec]:
    return config.containers([specs.db, specs.redis, specs.server,
                              _cloudflared(config, tunnel_token)])


def routes(config: Config, specs: App) -> list[Route]:
    # WebSocket upgrades pass through the tunnel like any request.
    check = ExternalCheck(path="/", expected_codes=("2xx", "3xx", "4xx"))
    return [Route(name="live", hostname=config.hostname, origin=specs.server.origin(SERVER_PORT),
                  check=config.external(check))]


SYNCED = (
    # Sync: R2 mirrors the folder; what the server deletes stays 30 days under deleted/.
    SyncedDir("archives", volume_path(ARCHIVES.name), "archives/"),
    SyncedDir("recordings", volume_path(RECORDINGS.name), "recordings/"),
    # Copy: a log file the server rotates away stays in R2 for its retention.
    *(SyncedDir(f"{kind}-logs", f"{volume_path(APP_LOGS.name)}/{kind}", f"logs/{kind}/",
                mode="copy", max_age_days=days)
      for kind, days in LOG_RETENTION.items()),
)


def retention(specs: App) -> list[Retention]:
    """rstream-backups: dumps, synced folders and logs, each prefix with its retention."""
    return [*backup_retention(specs.db, BACKUP_SETS), *sync_retention(SYNCED),
            *(Retention(f"logs/{kind}/", days) for kind, days in LOG_RETENTION.items()),
            Retention(LOG_PREFIX, CONTAINER_LOG_DAYS)]


def sync(config: Config, connection: command.remote.ConnectionArgs,
         host_ready: pulumi.Resource, offsite: R2Store,
         after: list[pulumi.Resource]) -> DirSyncArgs:
    return DirSyncArgs(stack=config.stack, dirs=SYNCED, store=offsite, schedule=SYNC_SCHEDULE,
                       connection=connection, host_ready=host_ready, after=after)


def operator_checks(config: Config) -> list[str]:
    rclone = f"sudo rclone --config {rclone_config_path(config.bucket)}"
    return config.operator_checks(
        [f"curl -sSI {config.url}/"],
        [f"{rclone} lsd r2:{config.bucket}",
         f"sudo journalctl -t jamjam-{BACKUP}-daily -t jamjam-sync-recordings"])
