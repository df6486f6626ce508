"""Shiojiri Rainbow Seeker's specifics on the jamjam_infra library (SYSTEMS.md, "Shiojiri
Rainbow Seeker"): the Rails API (Puma), its Solid Queue worker from the same image,
PostgreSQL with PostGIS, the tunnel route, the image store, backups and stack config. Every
name shared between containers, routes and jobs is spelled here once.

Their kamal-proxy (Traefik on 80/443, Let's Encrypt) is replaced by the tunnel route; nothing
is published. Their S3 image store is an R2 bucket the API reaches with a bucket-scoped key.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from jamjam_infra.backup import BACKUP_DIR, BackupSet, RestoreDrill, postgres
from jamjam_infra.container import ContainerSpec, Healthcheck, PostDeploy
from jamjam_infra.project_settings import SITE_CHECKS, SiteConfig, site_fields, site_rows
from jamjam_infra.schema import Setting, bucket, read
from jamjam_infra.r2_store import R2StoreArgs, S3Credentials
from jamjam_infra.secrets import generated_secret
from jamjam_infra.tunnel import ExternalCheck, Route, cloudflared

HOST = "vps"
TUNNEL = "api"
"""The tunnel component's name (its resources' URNs start with it)."""
NETWORK = "shiojiri"

API = "shiojiri-api"
WORKER = "shiojiri-worker"
DB = "shiojiri-db"
CLOUDFLARED = "shiojiri-cloudflared"
API_ALIAS = "api"
DB_ALIAS = "db"
API_PORT = 3000
DB_PORT = 5432
DB_NAME = "rainbow_seeker_production"
DB_USER = "rainbow"
HEALTH_PATH = "/up"
"""Rails' own health endpoint (Rails::HealthController)."""

BACKUP = "shiojiri-db-backup"
# A full dump daily kept 30 days, and another every 6 hours kept 7 (their document calls the
# second "differential"; pg_dump has no such mode, so both are full dumps). R2 keeps each as
# long as the host does.
BACKUP_SETS = (
    BackupSet("daily", "0 3 * * *", keep_days=30),
    BackupSet("every-6h", "0 */6 * * *", keep_days=7),
)
# The newest dump is at most 6 hours old, plus the time a dump takes.
DRILL = RestoreDrill("30 4 1 * *", min_tables=1, max_age_hours=7)
LOG_PREFIX = "logs/"
LOG_DAYS = 30
# Memory warning 80 %, database disk warning 80 % (their document): the resource job has one
# level per metric and alerts over it, so the warning levels are the thresholds.
OPERATIONS: dict = {"disk_alert_percent": 79, "memory_alert_percent": 79}
"""The host jobs' settings from its document, for jamjam_infra.site.declare."""
# The stack config: the rows every site shares, then this project's own (README
# "Configuration reference", generated from these rows).
TOP_LEVEL = (
    *site_rows("api.shiojiri-rainbow.app", zone_example="shiojiri-rainbow.app"),
    Setting("backupBucket", bucket, "shiojiri-rainbow-backups",
            "R2 bucket of the database dumps and the container logs."),
    Setting("imageBucket", bucket, "shiojiri-rainbow-images",
            "R2 bucket the API stores uploaded images in."),
)


@dataclass(frozen=True)
class Config(SiteConfig):
    project = "shiojiri-rainbow-seeker"
    bucket: str
    """The off-site bucket: dumps and container logs (backupBucket)."""
    image_bucket: str


def load() -> Config:
    values = read(TOP_LEVEL, SITE_CHECKS)
    return Config(**site_fields(values), bucket=values["backupBucket"],
                  image_bucket=values["imageBucket"])


def image_store(config: Config) -> R2StoreArgs:
    """The bucket the API keeps uploaded images in: no lifecycle rule (kept for ever), no host
    config (only the API writes to it)."""
    return config.store(config.image_bucket, "images")


@dataclass(frozen=True)
class App:
    db: ContainerSpec
    api: ContainerSpec
    worker: ContainerSpec


def app(config: Config, images: S3Credentials) -> App:
    password = generated_secret("db-password")
    db = postgres(DB, config.images["db"], HOST, database=DB_NAME, user=DB_USER,
                  password=password, volume="shiojiri-db-data", alias=DB_ALIAS,
                  backup_job=BACKUP)
    # The API and the worker run the same image with the same environment.
    env = {
        "RAILS_ENV": "production",
        "RAILS_LOG_TO_STDOUT": "1",
        "PORT": str(API_PORT),
        # The image store, under the AWS SDK's own variable names (ActiveStorage's S3 service).
        "AWS_REGION": images.region,
        "AWS_ENDPOINT_URL_S3": images.endpoint,
        "S3_BUCKET": images.bucket,
    }
    secret_env = {
        "DATABASE_URL": password.apply(
            lambda pw: f"postgis://{DB_USER}:{pw}@{DB_ALIAS}:{DB_PORT}/{DB_NAME}"),
        "SECRET_KEY_BASE": generated_secret("secret-key-base", length=128),
        "AWS_ACCESS_KEY_ID": images.access_key_id,
        "AWS_SECRET_ACCESS_KEY": images.secret_access_key,
    }
    api = ContainerSpec(
        role="api", name=API, image=config.images["api"], host=HOST,
        env=env, secret_env=secret_env,
        aliases=(API_ALIAS,),
        # Rails' Dockerfile template installs curl.
        healthcheck=Healthcheck(("curl", "-fsS", "-o", "/dev/null",
                                 f"http://127.0.0.1:{API_PORT}{HEALTH_PATH}"),
                                start_period_s=30),
        depends_on=("db",),
        # Migrations run in the new image before it serves, and fail the deploy if they fail.
        post_deploy=PostDeploy((("./bin/rails", "db:migrate"),)),
    )
    worker = ContainerSpec(
        role="worker", name=WORKER, image=config.images["api"], host=HOST,
        command=("./bin/jobs",),
        env=env, secret_env=secret_env,
        # Is a Solid Queue supervisor running? ruby is in the image; pgrep need not be. Solid
        # Queue sets its process title ($0) to "solid-queue-supervisor(<version>): ...", so
        # the command line starts with it; a substring search would also find this probe's
        # own command line and could never fail.
        healthcheck=Healthcheck(("ruby", "-e", "exit Dir['/proc/[0-9]*/cmdline'].any? { |f| "
                                 "(File.read(f) rescue '').start_with?('solid-queue-supervisor') }"),
                                start_period_s=30),
        # After the API, whose post-deploy step migrated the schema the jobs use.
        depends_on=("api",),
    )
    return App(db=db, api=api, worker=worker)


def _cloudflared(config: Config, tunnel_token: pulumi.Output[str]) -> ContainerSpec:
    return cloudflared(CLOUDFLARED, config.images["cloudflared"], HOST, tunnel_token,
                       depends_on=("api",))


def containers(config: Config, specs: App,
               tunnel_token: pulumi.Output[str]) -> list[ContainerSpec]:
    return config.containers([specs.db, specs.api, specs.worker,
                              _cloudflared(config, tunnel_token)])


def routes(config: Config, specs: App) -> list[Route]:
    check = ExternalCheck(path=HEALTH_PATH, expected_codes=("2xx",))
    return [Route(name="api", hostname=config.hostname, origin=specs.api.origin(API_PORT),
                  check=config.external(check))]



def operator_checks(config: Config) -> list[str]:
    return config.operator_checks(
        [f"curl -fsS {config.url}{HEALTH_PATH}"],
        [f"sudo ls -l {BACKUP_DIR}/{BACKUP}/daily/ {BACKUP_DIR}/{BACKUP}/every-6h/",
         f"sudo journalctl -t jamjam-{BACKUP}-every-6h -t jamjam-{BACKUP}-restore-drill"])
