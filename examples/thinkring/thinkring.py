"""thinkRing's specifics on the jamjam_infra library (SYSTEMS.md, "thinkRing"): its containers,
tunnel routes, backups and stack config. Every name shared between containers, routes and
jobs is spelled here once; ``__main__`` composes, the library builds.

Their nginx routed ``/api/`` to the Django backend and everything else to the Svelte front
end, with TLS; here the tunnel's routes do the same by path and Cloudflare's edge holds TLS.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

from jamjam_infra.backup import BACKUP_DIR, BackupSet, RestoreDrill, postgres
from jamjam_infra.container import ContainerSpec, Healthcheck, LogRotation, PostDeploy, Volume
from jamjam_infra.project_settings import SITE_CHECKS, SiteConfig, site_fields, site_rows
from jamjam_infra.schema import Setting, bucket, read
from jamjam_infra.secrets import generated_secret
from jamjam_infra.tunnel import ExternalCheck, Route, cloudflared

HOST = "vps"
TUNNEL = "web"
"""The tunnel component's name (its resources' URNs start with it)."""
PROJECT = pulumi.get_project()
"""The name in Pulumi.yaml, which every name this project owns starts with (containers, the
network, volumes, jobs, the tunnel): a copy renamed there carries none of thinkRing's."""
NETWORK = PROJECT

FRONTEND = f"{PROJECT}-frontend"
BACKEND = f"{PROJECT}-backend"
DB = f"{PROJECT}-db"
CLOUDFLARED = f"{PROJECT}-cloudflared"
DB_ALIAS = "db"
"""The backend's DB_HOST."""
BACKEND_ALIAS = "backend"
FRONTEND_ALIAS = "frontend"
FRONTEND_PORT = 3000
BACKEND_PORT = 8000
DB_PORT = 5432
DB_NAME = DB_USER = PROJECT.replace("-", "_")
"""PostgreSQL names: SQL identifiers without quoting, so no hyphen."""
HEALTH_PATH = "/api/v1/health/"
API_PATH = r"^/api/"
STATIC_ROOT = "/app/staticfiles"
"""Django's STATIC_ROOT in the backend image (assumed): collectstatic writes here."""

BACKUP = f"{DB}-backup"
LOGS = LogRotation(max_size="10m", max_file=3)
LOG_PREFIX = "logs/"
LOG_DAYS = 30
BACKUP_SETS = (
    # pg_dump daily at 02:00, dumps older than 7 days deleted (their document); R2 keeps a
    # month, so a problem found late can still be rolled back.
    BackupSet("daily", "0 2 * * *", keep_days=7, offsite_days=30),
)
# RPO 24 h: the newest dump may be at most a day old, plus the hour a dump may take. RTO 4 h
# is the whole recovery (a new host, a deploy, the restore): the restore may use one of them.
# Django's own tables (auth, sessions, admin, contenttypes, migrations) are ten: fewer means
# the dump lost the schema. Weekly, so a restore that stopped working is found long before it
# is needed.
DRILL = RestoreDrill("0 5 * * 0", min_tables=10, max_age_hours=25, max_restore_minutes=60)
OPERATIONS: dict = {}
"""The library's host jobs as they are (its document sets no threshold of its own)."""
# The stack config: the rows every site shares, then this project's own (README
# "Configuration reference", generated from these rows).
TOP_LEVEL = (
    *site_rows("thinkring.example.com"),
    Setting("bucket", bucket, "thinkring-backups",
            "R2 bucket of the dumps (db/) and the container logs (logs/)."),
)


@dataclass(frozen=True)
class Config(SiteConfig):
    bucket: str


def load() -> Config:
    values = read(TOP_LEVEL, SITE_CHECKS)
    return Config(**site_fields(values), bucket=values["bucket"])


@dataclass(frozen=True)
class Secrets:
    db_password: pulumi.Output[str]
    django_secret_key: pulumi.Output[str]
    jwt_secret_key: pulumi.Output[str]


def generate_secrets() -> Secrets:
    return Secrets(db_password=generated_secret("db-password"),
                   # Django asks for 50 characters (check --deploy warns below that).
                   django_secret_key=generated_secret("django-secret-key", length=64),
                   jwt_secret_key=generated_secret("jwt-secret-key", length=64))


def _db(config: Config, secrets: Secrets) -> ContainerSpec:
    return postgres(DB, config.images["db"], HOST, database=DB_NAME, user=DB_USER,
                    password=secrets.db_password, volume=f"{DB}-data", alias=DB_ALIAS,
                    logs=LOGS, backup_job=BACKUP)


def _backend(config: Config, secrets: Secrets) -> ContainerSpec:
    # The health view must answer 200 (their document). Asked with the public Host header,
    # so ALLOWED_HOSTS stays exactly the public name; python is in the image by definition.
    probe = ("import urllib.request; urllib.request.urlopen(urllib.request.Request("
             f"'http://127.0.0.1:{BACKEND_PORT}{HEALTH_PATH}', "
             f"headers={{'Host': '{config.hostname}'}}), timeout=2)")
    return ContainerSpec(
        role="backend", name=BACKEND, image=config.images["backend"], host=HOST,
        env={
            "DEBUG": "False",
            "DB_NAME": DB_NAME,
            "DB_USER": DB_USER,
            "DB_HOST": DB_ALIAS,
            "DB_PORT": str(DB_PORT),
            "ALLOWED_HOSTS": config.hostname,
            "CORS_ALLOWED_ORIGINS": config.url,
        },
        secret_env={
            "SECRET_KEY": secrets.django_secret_key,
            "JWT_SECRET_KEY": secrets.jwt_secret_key,
            "DB_PASSWORD": secrets.db_password,
        },
        volumes=(Volume(f"{PROJECT}-static", STATIC_ROOT),),
        aliases=(BACKEND_ALIAS,),
        healthcheck=Healthcheck(("python", "-c", probe)),
        logs=LOGS,
        depends_on=("db",),
        # After each new image, before it serves: migrations, then the static files.
        post_deploy=PostDeploy((("python", "manage.py", "migrate", "--noinput"),
                                ("python", "manage.py", "collectstatic", "--noinput"))),
    )


def _frontend(config: Config) -> ContainerSpec:
    # node 18 has fetch built in; the image has nothing else we can count on.
    probe = (f"fetch('http://127.0.0.1:{FRONTEND_PORT}/').then("
             "r => process.exit(r.ok ? 0 : 1), () => process.exit(1))")
    return ContainerSpec(
        role="frontend", name=FRONTEND, image=config.images["frontend"], host=HOST,
        env={"PORT": str(FRONTEND_PORT), "ORIGIN": config.url},
        aliases=(FRONTEND_ALIAS,),
        healthcheck=Healthcheck(("node", "-e", probe)),
        logs=LOGS,
        depends_on=("backend",),
    )


def _cloudflared(config: Config, tunnel_token: pulumi.Output[str]) -> ContainerSpec:
    return cloudflared(CLOUDFLARED, config.images["cloudflared"], HOST, tunnel_token,
                       depends_on=("frontend", "backend"), logs=LOGS)


@dataclass(frozen=True)
class App:
    """The three containers of the application; cloudflared joins them once the tunnel
    exists (its token is the tunnel's output, the tunnel's routes are these specs')."""

    db: ContainerSpec
    backend: ContainerSpec
    frontend: ContainerSpec


def app(config: Config, secrets: Secrets) -> App:
    return App(db=_db(config, secrets), backend=_backend(config, secrets),
               frontend=_frontend(config))


def containers(config: Config, specs: App,
               tunnel_token: pulumi.Output[str]) -> list[ContainerSpec]:
    """In start order: the database, the API (migrated first), the front end, the tunnel."""
    return config.containers([specs.db, specs.backend, specs.frontend,
                              _cloudflared(config, tunnel_token)])


def routes(config: Config, specs: App) -> list[Route]:
    # Origins come from the specs, so a route can never point at a published port.
    api_check = ExternalCheck(path=HEALTH_PATH, expected_codes=("200",))
    return [
        Route(name="api", hostname=config.hostname, path=API_PATH,
              origin=specs.backend.origin(BACKEND_PORT),
              check=config.external(api_check)),
        Route(name="web", hostname=config.hostname, origin=specs.frontend.origin(FRONTEND_PORT)),
    ]



def operator_checks(config: Config) -> list[str]:
    return config.operator_checks(
        [f"curl -fsS {config.url}{HEALTH_PATH}", f"curl -fsSI {config.url}/"],
        [f"sudo ls -l {BACKUP_DIR}/{BACKUP}/daily/",
         f"sudo journalctl -t jamjam-{BACKUP}-daily -t jamjam-{BACKUP}-restore-drill"])
