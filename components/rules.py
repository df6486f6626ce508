"""The rules the library enforces and the policy pack checks, defined once for both.

The library refuses a :class:`~jamjam_infra.container.ContainerSpec` that breaks one of these
before anything is registered; the pack (policies/jamjam_policies) checks whatever a program
registers, built with this library or not, against the same definitions (its config can widen
or narrow them per stack; these are its defaults). tools/ and rehearsal/ read them too, so the
offline plan masks what the pack calls secret and the rehearsal waits as long as ``pulumi up``.

Standard library only, and imported by nothing heavier than itself: the pack runs in its own
virtualenv (policies/requirements.txt) that has pulumi and pulumi-policy but no provider SDK,
and imports this module there. ``tests/test_rules_agree.py`` shows both sides decide alike.
"""

from __future__ import annotations

import re
from typing import Iterable

# --- env vars that hold a secret -------------------------------------------------------------

SECRET_NAME_MARKERS: tuple[str, ...] = (
    # Contained in a part, so the glued spellings count too: PGPASSWORD (libpq's own variable),
    # DBPASSWORD, ACCESSTOKEN, CLIENTSECRET. TOKEN also hits TOKENIZER_MODEL: a name that
    # merely looks secret costs one move into secret_env, a missed password costs a leak.
    "PASSWORD",
    "PASSWD",      # the Unix spelling: MYSQL_ROOT_PASSWD, DB_PASSWD
    "PASSPHRASE",  # an SSH or GPG key's passphrase (PASS alone is a whole-part marker below)
    "SECRET",      # SECRET_KEY, CLIENT_SECRET, SECRET_KEY_BASE
    "TOKEN",
    "CREDENTIAL",  # AWS_CREDENTIALS; GOOGLE_APPLICATION_CREDENTIALS holds a path, hidden anyway
    "APIKEY",      # STRIPE_APIKEY: the one common glued *KEY (KEY itself must be a whole part)
    # Four letters or fewer: a whole part only (see says_secret), or KEY would be found in
    # KEYCLOAK_URL, MONKEY_COUNT and HOCKEY_TEAM, and PASS in PASSTHROUGH and COMPASS.
    "KEY",   # API_KEY, PRIVATE_KEY, RAILS_MASTER_KEY, AWS_ACCESS_KEY_ID (half a credential pair)
    "PASS",  # DB_PASS, SMTP_PASS
    "DSN",   # a data source name carries the database password or Sentry's project key
)
"""Markers of a secret in an env var's name. Deliberately absent: PWD (the shell's working
directory, never a password), AUTH (AUTH_URL is an address), URL (REDIS_URL=redis://redis:6379
is an address: a URL is secret when its value carries a password, see
:func:`carries_credentials`, so DATABASE_URL is judged by what it holds)."""

WHOLE_PART_MAX = 4
"""Markers this long or shorter must be a whole part of the name; longer ones may sit inside one."""

NOT_THE_SECRET = frozenset({"FILE", "PATH"})
"""A name ending in one of these parts says where a secret is, not what it is:
POSTGRES_PASSWORD_FILE (Docker's convention for secret files), PRIVATE_KEY_PATH."""

_PARTS = re.compile(r"[_.\-]+")
# user:password@ in a URL's authority: what makes postgres://app:pw@db/app a secret and
# redis://redis:6379 or ssh://git@host an address.
_CREDENTIAL_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*:[^/?#@\s]+@")


def name_parts(name: str) -> list[str]:
    """``db_passwd`` -> ["DB", "PASSWD"]; the pack also reads command environments, whose
    names may use ``-`` or ``.`` as well as ``_``."""
    return [part for part in _PARTS.split(name.upper()) if part]


def says_secret(name: str, markers: Iterable[str] = SECRET_NAME_MARKERS) -> bool:
    """Whether an env var called ``name`` holds a secret by its name: a part (split on
    ``_ - .``) is a short marker or contains a long one, and the last part is no FILE/PATH."""
    parts = name_parts(name)
    if not parts or parts[-1] in NOT_THE_SECRET:
        return False
    for marker in (m.upper() for m in markers):
        if len(marker) <= WHOLE_PART_MAX:
            if marker in parts:
                return True
        elif any(marker in part for part in parts):
            return True
    return False


def carries_credentials(value: str) -> bool:
    """Whether ``value`` holds a URL with a password in it (``postgres://app:pw@db/app``)."""
    return bool(_CREDENTIAL_URL.search(value))


# --- ports -----------------------------------------------------------------------------------

DATABASE_PORTS: tuple[int, ...] = (5432, 3306, 6379, 27017)
"""PostgreSQL, MySQL/MariaDB, Redis, MongoDB: reached by containers on the bridge network only,
never published on either side of a mapping nor opened in a firewall."""

# --- database containers -------------------------------------------------------------------

DATABASE_IMAGES: tuple[str, ...] = ("postgres", "postgis", "mysql", "mariadb", "mongo", "redis")
"""Image names (the last path part, before tag or digest, starting with one of these) that run
a database, whose data volume must name a backup job."""


LABEL_NAMESPACE = "jamjam"
"""The docker label namespace host scripts filter on (``jamjam.stack``); a system may pick its own."""


def backup_label(namespace: str = LABEL_NAMESPACE) -> str:
    """The label on a database container naming the job that backs up its data."""
    return f"{namespace}.backup"


def image_is_database(image: str, names: Iterable[str] = DATABASE_IMAGES) -> bool:
    """``docker.io/postgis/postgis:16-3.4`` -> True; an image id (``sha256:...``) names nothing."""
    if image.startswith("sha256:"):
        return False
    last = image.split("@", 1)[0].rsplit("/", 1)[-1].split(":", 1)[0].lower()
    return any(last.startswith(name.lower()) for name in names)


# --- containers ------------------------------------------------------------------------------

MIN_MEMORY_MB = 6
"""Docker refuses a smaller memory limit when it creates the container, after preview passed."""

RESTART_POLICIES: tuple[str, ...] = ("always", "unless-stopped")
"""SPEC: services come back by themselves after a crash or a reboot."""

NO_NEW_PRIVILEGES = "no-new-privileges=true"
"""Docker's security option as every container and one-off run gets it (the ``:`` form is
deprecated; the pack still accepts it on a program that writes it)."""

# --- health ----------------------------------------------------------------------------------

HEALTH_MARGIN_S = 15
"""Image start and the provider's polling on top of Docker's own schedule."""


def health_deadline_s(start_period_s: float, interval_s: float, timeout_s: float,
                      retries: int) -> float:
    """How long a container may take to turn healthy: until Docker itself would have called it
    unhealthy. ``pulumi up`` waits this long (the container's ``wait_timeout``) and the
    rehearsal too. Without a start interval the first probe runs one interval after start; a
    start interval (never longer than the interval) only brings probes forward, so the bound
    holds on every engine. Failures inside the start period do not count, then ``retries``
    failures in a row, each up to interval + timeout, make it unhealthy."""
    return start_period_s + interval_s + retries * (interval_s + timeout_s) + HEALTH_MARGIN_S
