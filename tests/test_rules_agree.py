"""The library and the policy pack decide every shared rule alike (issue 16 point 5).

Both take the rule from jamjam_infra.rules; these tables show they also apply it alike. Per row:
the library's ContainerSpec accepts or refuses the value, and the pack, run offline the way
`make plan` runs it (tools.policy_check.check) on what the library rendered, passes or flags the
same value. What the library refuses can't be rendered, so the pack sees it on a rendered
container changed in that one property, and the library's fix (secret_env, no volume, ...)
is rendered and must pass the pack.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import pytest

from jamjam_infra import rules
from jamjam_infra.container import ContainerSpec, Hardening, Healthcheck, Port, SpecError, Volume
from jamjam_infra.host import Debian, Host, HostArgs
from jamjam_infra.tunnel import Route, Tunnel, TunnelArgs
from rehearsal.checks import health_deadline
from tests.test_library import ACCOUNT, ZONE, render_program, ssh_args
from tools.policy_check import check
from tools.render import RenderedStack, reveal

SECRET_RULE = "env-secrets-are-pulumi-secrets"
PORT_RULE = "database-ports-never-public"
BACKUP_RULE = "database-volumes-backed-up"
RESTART_RULE = "container-restart-policy"
MEMORY_RULE = "container-memory-limited"
ORIGIN_RULE = "tunnel-origin-ports-never-public"


def _credential_url() -> str:
    # Built at run time: no password-shaped literal in the repo.
    return f"postgres://app:{'pw' * 6}@db:5432/app"


# (env name, value, holds a secret)
SECRET_ENV = [
    ("KEYCLOAK_URL", "http://keycloak:8080", False),  # KEY inside a word is no key
    ("MONKEY_COUNT", "3", False),
    ("DB_PASSWD", "x", True),                          # the Unix spelling
    ("DB_PASS", "x", True),
    ("PASSTHROUGH_MODE", "on", False),                 # PASS only as a whole part
    ("API_KEY", "x", True),
    ("STRIPE_APIKEY", "x", True),
    ("PRIVATE_KEY", "x", True),
    ("PRIVATE_KEY_PATH", "/run/secrets/key", False),   # where the key is, not the key
    ("POSTGRES_PASSWORD_FILE", "/run/secrets/db", False),
    ("PGPASSWORD", "x", True),                         # glued: libpq's own variable
    ("AWS_ACCESS_KEY_ID", "x", True),                  # half a credential pair
    ("TWITCH_CLIENT_ID", "abc", False),
    ("JWT_SECRET_KEY", "x", True),
    ("TUNNEL_TOKEN", "x", True),
    ("SSH_PASSPHRASE", "x", True),
    ("GOOGLE_APPLICATION_CREDENTIALS", "/run/creds.json", True),  # a false alarm, by design
    ("SENTRY_DSN", "x", True),
    ("PWD", "/srv/app", False),                        # the shell's directory, not a password
    ("REDIS_URL", "redis://redis:6379", False),        # a URL without a password is an address
    ("DATABASE_URL", "postgres://db:5432/app", False),
    ("DATABASE_URL", _credential_url(), True),         # ... with one, it is a secret
    ("BACKEND_URL", _credential_url(), True),          # whatever its name
]

# (internal port, host port or None, a database/cache port)
PORTS = [(5432, None, True), (3306, None, True), (6379, None, True), (27017, None, True),
         (8000, 5432, True),  # either side of the mapping
         (5000, None, False), (8080, 8081, False)]

# (image, runs a database)
IMAGES = [
    ("postgres:16.4", True),
    ("docker.io/postgis/postgis:16-3.4", True),
    ("mariadb:11.4", True),
    ("redis:7.4", True),
    ("mongo@sha256:" + "ab" * 32, True),
    ("registry.example:5000/tools/mysql:8.4", True),
    ("ghcr.io/example/app:1.0", False),
    ("ghcr.io/example/postgres-tools:1.0", True),  # named like one: the rule reads names
    ("ghcr.io/postgres/app:1.0", False),           # only the last path part counts
]

# (internal, external or None, the tunnel origin's port, a way around the tunnel)
ORIGINS = [(8000, None, 8000, True), (9000, 8000, 8000, True), (8000, 9000, 8000, True),
           (5000, None, 8000, False)]

# (memory limit in MB, Docker creates it)
MEMORY = [(0, False), (5, False), (6, True), (512, True)]

RESTARTS = [("always", True), ("unless-stopped", True), ("no", False), ("on-failure", False)]

HEALTHCHECKS = [
    Healthcheck(("true",)),
    Healthcheck(("true",), interval_s=10, timeout_s=5, retries=5, start_period_s=60),
    Healthcheck(("true",), interval_s=5, timeout_s=1, retries=1, start_period_s=0,
                start_interval_s=5),
]


def _spec(name: str, **changes) -> ContainerSpec:
    fields = dict(role=name, name=name, image="ghcr.io/example/app:1.0", host="vps",
                  healthcheck=Healthcheck(("true",)), aliases=(name,))
    return ContainerSpec(**{**fields, **changes})


def _refuses(**changes) -> bool:
    try:
        _spec("probe", **changes)
    except SpecError:
        return True
    return False


def _render(specs: list[ContainerSpec], debian: Debian | None = None) -> RenderedStack:
    def program() -> None:
        Host("vps", HostArgs(ssh=ssh_args(), stack="test", network="rules", containers=specs,
                             **({"debian": debian} if debian else {})))
    return render_program(program)


def _flags(stack: RenderedStack, policy: str, name: str, **inputs) -> list[str]:
    """What ``policy`` reports about container ``name``, with ``inputs`` changed first."""
    target = stack.named(name)
    changed = dataclasses.replace(target, inputs={**target.inputs, **inputs})
    resources = [changed if r is target else r for r in stack.resources]
    return [v.message for v in check(stack.stack, resources)
            if v.policy == policy and v.resource == target.urn]


def _row_name(index: int) -> str:
    return f"c{index}"


@lru_cache(maxsize=None)
def _secret_env_stack() -> RenderedStack:
    """Each row as the library takes it: in env if it accepts it there, else in secret_env."""
    specs = []
    for index, (name, value, _) in enumerate(SECRET_ENV):
        where = "secret_env" if _refuses(env={name: value}) else "env"
        specs.append(_spec(_row_name(index), **{where: {name: value}}))
    return _render(specs)


@pytest.mark.parametrize("index", range(len(SECRET_ENV)),
                         ids=[f"{n}={'secret' if s else 'plain'}" for n, _, s in SECRET_ENV])
def test_library_and_pack_agree_on_secret_env(index):
    name, value, secret = SECRET_ENV[index]
    assert (rules.says_secret(name) or rules.carries_credentials(value)) is secret
    assert _refuses(env={name: value}) is secret
    assert not _refuses(secret_env={name: value})
    stack = _secret_env_stack()
    row = _row_name(index)
    # What the library rendered (plaintext where it allowed, a secret where it insisted) passes.
    assert _flags(stack, SECRET_RULE, row) == []
    # The same entry in plaintext is flagged exactly when the library refused it.
    flagged = _flags(stack, SECRET_RULE, row, envs=[f"{name}={value}"])
    assert bool(flagged) is secret, flagged


@lru_cache(maxsize=None)
def _port_stack() -> RenderedStack:
    return _render([_spec("ports", ports=(Port(5000, "udp"),))])


@pytest.mark.parametrize("internal,external,database", PORTS)
def test_library_and_pack_agree_on_database_ports(internal, external, database):
    assert _refuses(ports=(Port(internal, external=external),)) is database
    published = [{"internal": internal, "external": external or internal, "protocol": "tcp"}]
    assert bool(_flags(_port_stack(), PORT_RULE, "ports", ports=published)) is database
    assert _flags(_port_stack(), PORT_RULE, "ports") == []


@lru_cache(maxsize=None)
def _image_stack() -> RenderedStack:
    """Each image as the library takes it without a backup job: with its volume when it is no
    database, without one when it is (a database without data needs no backup)."""
    specs = []
    for index, (image, _) in enumerate(IMAGES):
        volume = (Volume(f"v{index}", "/srv/data"),)
        if _refuses(image=image, volumes=volume):
            volume = ()
        specs.append(_spec(_row_name(index), image=image, volumes=volume))
    return _render(specs)


@pytest.mark.parametrize("index", range(len(IMAGES)), ids=[i for i, _ in IMAGES])
def test_library_and_pack_agree_on_database_images(index):
    image, database = IMAGES[index]
    assert _refuses(image=image, volumes=(Volume("data", "/srv/data"),)) is database
    assert rules.image_is_database(image) is database
    stack = _image_stack()
    row = _row_name(index)
    assert _flags(stack, BACKUP_RULE, row) == []
    with_data = [{"volumeName": "data", "containerPath": "/srv/data"}]
    flagged = _flags(stack, BACKUP_RULE, row, volumes=with_data)
    assert bool(flagged) is database, flagged


@lru_cache(maxsize=None)
def _origin_stack() -> RenderedStack:
    spec = _spec("app", ports=(Port(5000, "udp"),))

    def program() -> None:
        Host("vps", HostArgs(ssh=ssh_args(), stack="test", network="rules", containers=[spec]))
        Tunnel("web", TunnelArgs(account_id=ACCOUNT, zone_id=ZONE, tunnel_name="web-test",
                                 routes=[Route("site", "example.koeda.me", spec.origin(8000))]))
    return render_program(program)


@pytest.mark.parametrize("internal,external,origin,around", ORIGINS)
def test_library_and_pack_agree_on_tunnel_origins(internal, external, origin, around):
    """A port a tunnel route reaches is published on neither side of a mapping."""
    spec = _spec("app", ports=(Port(internal, external=external),))
    try:
        spec.origin(origin)
        refused = False
    except SpecError:
        refused = True
    assert refused is around
    published = [{"internal": internal, "external": external or internal, "protocol": "tcp"}]
    assert _flags(_origin_stack(), ORIGIN_RULE, "app") == []
    assert bool(_flags(_origin_stack(), ORIGIN_RULE, "app", ports=published)) is around


@pytest.mark.parametrize("restart,allowed", RESTARTS)
def test_library_and_pack_agree_on_restart_policies(restart, allowed):
    assert _refuses(restart=restart) is not allowed
    assert bool(_flags(_port_stack(), RESTART_RULE, "ports", restart=restart)) is not allowed


@pytest.mark.parametrize("memory_mb,created", MEMORY)
def test_library_and_pack_agree_on_the_memory_limit(memory_mb, created):
    assert _refuses(hardening=Hardening(memory_mb=memory_mb)) is not created
    flagged = _flags(_port_stack(), MEMORY_RULE, "ports", memory=memory_mb, memorySwap=memory_mb)
    assert bool(flagged) is not created, flagged


@pytest.mark.parametrize("debian", [Debian(12), Debian(13)], ids=["debian12", "debian13"])
def test_pulumi_up_and_the_rehearsal_wait_as_long_for_healthy(debian):
    """The container's wait_timeout (how long `pulumi up` waits) is what the rehearsal allows
    the running container, read back from the rendered healthcheck, with or without a start
    interval (Debian 12's Docker takes none)."""
    specs = [_spec(f"h{i}", healthcheck=check) for i, check in enumerate(HEALTHCHECKS)]
    stack = _render(specs, debian)
    for spec in specs:
        inputs = reveal(stack.named(spec.name).inputs)
        assert inputs["waitTimeout"] == spec.healthcheck.wait_timeout_s()
        assert health_deadline(inputs) == spec.healthcheck.wait_timeout_s()


def test_the_pack_defaults_are_the_library_tables():
    from jamjam_policies import CONFIG_DEFAULTS
    assert CONFIG_DEFAULTS[PORT_RULE]["databasePorts"] == list(rules.DATABASE_PORTS)
    assert CONFIG_DEFAULTS[SECRET_RULE]["secretNameMarkers"] == list(rules.SECRET_NAME_MARKERS)
    assert CONFIG_DEFAULTS[BACKUP_RULE]["databaseImages"] == list(rules.DATABASE_IMAGES)
    assert CONFIG_DEFAULTS[BACKUP_RULE]["backupLabel"] == rules.backup_label()

