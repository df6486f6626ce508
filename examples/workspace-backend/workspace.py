"""workspace-backend's specifics on the jamjam_infra library (SYSTEMS.md, "workspace-backend"):
the work tracker API, the Twitch bot, PostgreSQL, their tunnel route, backups and stack config.
Every name shared between containers, routes and jobs is spelled here once.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from jamjam_infra.backup import BACKUP_DIR, BackupSet, RestoreDrill, postgres
from jamjam_infra.container import ContainerSpec, Healthcheck, LogRotation
from jamjam_infra.project_settings import SITE_CHECKS, SiteConfig, site_fields, site_rows
from jamjam_infra.schema import Setting, bucket, text, read
from jamjam_infra.secrets import generated_secret
from jamjam_infra.tunnel import ExternalCheck, Route, cloudflared

HOST = "vps"
TUNNEL = "api"
"""The tunnel component's name (its resources' URNs start with it)."""
NETWORK = "workspace"

TRACKER = "work-tracker"
BOT = "twitch-bot"
DB = "workspace-db"
CLOUDFLARED = "workspace-cloudflared"
TRACKER_ALIAS = "work-tracker"
DB_ALIAS = "db"
TRACKER_PORT = 8000
DB_PORT = 5432
DB_NAME = "workspace"
DB_USER = "workspace"
HEALTH_PATH = "/health"
TRACKER_URL = f"http://{TRACKER_ALIAS}:{TRACKER_PORT}"
"""The tracker on the internal network, for the bot."""

BACKUP = "workspace-db-backup"
# json-file 10 MB x 3 (their document). "Keep at least 7 days" is more than 30 MB a container
# may hold on a busy day, so every line also goes to R2, kept 30 days.
LOGS = LogRotation(max_size="10m", max_file=3)
LOG_PREFIX = "logs/"
LOG_DAYS = 30
BACKUP_SETS = (
    # pg_dump every day at 03:00, inside the 03:00-04:00 maintenance window; 7 days on the
    # host (their document), a month in R2.
    BackupSet("daily", "0 3 * * *", keep_days=7, offsite_days=30),
)
# "A restore test once a month": the 1st at 04:30, after the window; the newest dump must be
# from the last 25 hours (a daily schedule plus the time a dump takes).
DRILL = RestoreDrill("30 4 1 * *", min_tables=1, max_age_hours=25)
# "At or above 80 % / 90 %": the resource job alerts when use is over the threshold, in whole
# percent, so 79 and 89.
OPERATIONS: dict = {"disk_alert_percent": 79, "memory_alert_percent": 89}
"""The host jobs' settings from its document, for jamjam_infra.site.declare."""
# The stack config: the rows every site shares, then this project's own (README
# "Configuration reference", generated from these rows).
TOP_LEVEL = (
    *site_rows("work-tracker.example.com"),
    Setting("twitchClientId", text, "<client id from dev.twitch.tv>",
            "The bot's Twitch application client id."),
    Setting("twitchClientSecret", text, "<client secret>",
            "The bot's Twitch client secret; set with --secret.", secret=True, operator=True),
    Setting("bucket", bucket, "workspace-backend-backups",
            "R2 bucket of the dumps (db/) and the container logs (logs/)."),
)


@dataclass(frozen=True)
class Config(SiteConfig):
    project = "workspace-backend"
    twitch_client_id: str
    twitch_client_secret: pulumi.Output[str]
    bucket: str


def load() -> Config:
    values = read(TOP_LEVEL, SITE_CHECKS)
    return Config(**site_fields(values), twitch_client_id=values["twitchClientId"],
                  twitch_client_secret=values["twitchClientSecret"],
                  bucket=values["bucket"])


@dataclass(frozen=True)
class App:
    db: ContainerSpec
    tracker: ContainerSpec
    bot: ContainerSpec


def app(config: Config) -> App:
    password = generated_secret("db-password")
    db = postgres(DB, config.images["db"], HOST, database=DB_NAME, user=DB_USER,
                  password=password, volume="workspace-db-data", alias=DB_ALIAS,
                  logs=LOGS, backup_job=BACKUP)
    tracker = ContainerSpec(
        role="tracker", name=TRACKER, image=config.images["tracker"], host=HOST,
        env={"ENV": "production", "PORT": str(TRACKER_PORT)},
        # Built from the generated password, so the db and the tracker agree by construction.
        secret_env={"DATABASE_URL": password.apply(
            lambda pw: f"postgres://{DB_USER}:{pw}@{DB_ALIAS}:{DB_PORT}/{DB_NAME}")},
        aliases=(TRACKER_ALIAS,),
        # Assumes curl in the image (not given); the external check asks the same endpoint.
        healthcheck=Healthcheck(("curl", "-fsS", "-o", "/dev/null",
                                 f"http://127.0.0.1:{TRACKER_PORT}{HEALTH_PATH}")),
        logs=LOGS,
        depends_on=("db",),
    )
    bot = ContainerSpec(
        role="bot", name=BOT, image=config.images["bot"], host=HOST,
        # The variable's name for the tracker's URL is not given; TRACKER_URL is assumed.
        env={"ENV": "production", "TWITCH_CLIENT_ID": config.twitch_client_id,
             "TRACKER_URL": TRACKER_URL},
        secret_env={"TWITCH_CLIENT_SECRET": config.twitch_client_secret},
        healthcheck=Healthcheck(("pgrep", "-f", "twitch-bot")),
        logs=LOGS,
        depends_on=("tracker",),
    )
    return App(db=db, tracker=tracker, bot=bot)


def _cloudflared(config: Config, tunnel_token: pulumi.Output[str]) -> ContainerSpec:
    return cloudflared(CLOUDFLARED, config.images["cloudflared"], HOST, tunnel_token,
                       depends_on=("tracker",), logs=LOGS)


def containers(config: Config, specs: App,
               tunnel_token: pulumi.Output[str]) -> list[ContainerSpec]:
    """In start order: the database, the tracker, the bot that calls it, the tunnel."""
    return config.containers([specs.db, specs.tracker, specs.bot,
                              _cloudflared(config, tunnel_token)])


def routes(config: Config, specs: App) -> list[Route]:
    # /health from outside every 5 minutes, an alert after 2 failures in a row.
    check = ExternalCheck(path=HEALTH_PATH, expected_codes=("2xx",), interval_s=300,
                          consecutive_fails=2)
    return [Route(name="tracker", hostname=config.hostname,
                  origin=specs.tracker.origin(TRACKER_PORT),
                  check=config.external(check))]



def operator_checks(config: Config) -> list[str]:
    return config.operator_checks(
        [f"curl -fsS {config.url}{HEALTH_PATH}"],
        [f"sudo ls -l {BACKUP_DIR}/{BACKUP}/daily/",
         f"sudo journalctl -t jamjam-{BACKUP}-daily -t jamjam-{BACKUP}-restore-drill"])
