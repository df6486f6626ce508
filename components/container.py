"""A container as plain data (:class:`ContainerSpec`) and the resources that run it on a host.

A spec is validated when it is built, so a program that breaks one of the rules below fails
before anything is registered, with one line naming the container, the field and the fix:

- a database or cache port (:data:`~jamjam_infra.rules.DATABASE_PORTS`) is never published;
- an env var whose name says it holds a secret (:func:`~jamjam_infra.rules.says_secret`:
  DB_PASSWD, API_KEY; not KEYCLOAK_URL), or whose value is a URL with a password in it, goes in
  ``secret_env`` (a Pulumi secret), never in ``env``;
- a database container with a data volume names its backup job (label ``<ns>.backup``).

The rules themselves live in :mod:`jamjam_infra.rules`, which the policy pack checks with too.

Every container is hardened by default (capabilities dropped, no-new-privileges, memory and
pids limits, an init process) and is health-gated: ``pulumi up`` waits until Docker reports it
healthy, for at most :meth:`Healthcheck.wait_timeout_s` seconds, and fails naming it otherwise.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import pulumi
import pulumi_command as command
import pulumi_docker as docker

from jamjam_infra import rules
from jamjam_infra._remote import sudo
from jamjam_infra.rules import NO_NEW_PRIVILEGES


class SpecError(pulumi.RunError, ValueError):
    """A spec or Args breaks a rule; Pulumi prints a RunError as its one line, no traceback."""


_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Defaults for every container unless its spec or the stack says otherwise.
# 512 MB: several times what the small servers here use (the Rust servers and cloudflared stay
# well under 100 MB), while four containers together still fit a 2-4 GB VPS with room for the
# host; a leak is killed in its own container instead of taking the VPS down.
DEFAULT_MEMORY_MB = 512
# 512 tasks (processes and threads): far above what these servers start (tokio and Go size
# their worker pools by CPU count; PostgreSQL forks one process per connection, 100 by default),
# far below the host's pid_max, so a fork bomb stalls inside its container.
DEFAULT_PIDS_LIMIT = 512


@dataclass(frozen=True)
class Labels:
    """The docker label namespace of one system: ``<ns>.stack``, ``<ns>.role``, ``<ns>.backup``.

    Host scripts filter on these (heal-containers.sh on ``jamjam.stack``), so jamjam keeps the
    default; another system may pick its own namespace.
    """

    namespace: str = rules.LABEL_NAMESPACE

    @property
    def stack(self) -> str:
        return f"{self.namespace}.stack"

    @property
    def role(self) -> str:
        return f"{self.namespace}.role"

    @property
    def backup(self) -> str:
        return rules.backup_label(self.namespace)


@dataclass(frozen=True)
class Port:
    """A port published on the host; the host's firewall opens exactly these."""

    internal: int
    protocol: str = "tcp"
    external: int | None = None
    """Host port; the same as ``internal`` when None."""

    @property
    def host_port(self) -> int:
        return self.external if self.external is not None else self.internal

    @property
    def firewall_rule(self) -> str:
        return f"{self.host_port}/{self.protocol}"


@dataclass(frozen=True)
class Volume:
    """A named Docker volume, its own resource: replacing the container keeps the data."""

    name: str
    """Docker volume name, unique on the host."""
    target: str
    """Mount point inside the container."""
    read_only: bool = False


@dataclass(frozen=True)
class Healthcheck:
    """Docker's healthcheck; the defaults are SPEC's (interval 30s, timeout 3s, retries 3,
    start period 5s), plus a start interval of 1 s.

    The start interval is how often Docker probes during the start period (Docker 25+). Without
    it the first probe runs one full interval after start, so a replaced container counts as
    healthy only ~30 s after it runs, however fast it starts: that is the replacement gap. The
    host's Docker decides whether it is sent (see :class:`~jamjam_infra.host.Debian`)."""

    test: tuple[str, ...]
    """The command, run without a shell: ("pgrep", "echo-server")."""
    interval_s: int = 30
    timeout_s: int = 3
    retries: int = 3
    start_period_s: int = 5
    start_interval_s: int = 1

    def wait_timeout_s(self) -> int:
        """How long ``pulumi up`` waits for healthy before failing
        (:func:`~jamjam_infra.rules.health_deadline_s`)."""
        return int(rules.health_deadline_s(self.start_period_s, self.interval_s, self.timeout_s,
                                           self.retries))


@dataclass(frozen=True)
class Hardening:
    """Per-container security switches; the defaults suit an image whose contents are unknown."""

    cap_add: tuple[str, ...] = ()
    """Capabilities to keep; everything else is dropped (e.g. ("CHOWN", "SETUID", "SETGID")
    for images whose entrypoint drops root itself, like postgres)."""
    memory_mb: int = DEFAULT_MEMORY_MB
    pids_limit: int = DEFAULT_PIDS_LIMIT
    init: bool = True
    """Docker's tini as PID 1 (reaps zombies, forwards signals); off for images with their own."""
    read_only_rootfs: bool = False
    tmpfs: Mapping[str, str] = field(default_factory=dict)
    """Writable in-memory mounts, e.g. {"/tmp": "rw,noexec,nosuid,size=16m"}; needed with
    ``read_only_rootfs`` for whatever the image writes."""
    user: str | None = None
    """``uid[:gid]`` to run as; None keeps the image's own user."""


@dataclass(frozen=True)
class LogRotation:
    """json-file rotation; the defaults are SPEC's (100m x 5)."""

    max_size: str = "100m"
    max_file: int = 5


@dataclass(frozen=True)
class PostDeploy:
    """Commands run once per new image, in a throwaway container of that image on the same
    network with the same env, before the serving container is replaced; a failure fails the
    update and leaves the old container serving. Example (Django):
    ``PostDeploy((("python", "manage.py", "migrate", "--noinput"),
    ("python", "manage.py", "collectstatic", "--noinput")))``."""

    commands: tuple[tuple[str, ...], ...]
    entrypoint: tuple[str, ...] | None = None
    """Overrides the image's entrypoint for these runs; None keeps it."""


@dataclass(frozen=True)
class ContainerSpec:
    role: str
    """Short, unique in the stack: resource names and the ``<ns>.role`` label."""
    name: str
    """Docker container name (what runbooks use: ``docker exec <name> ...``)."""
    image: str
    """Pinned reference (tag or digest)."""
    host: str
    """Name of the :class:`~jamjam_infra.host.Host` it runs on."""
    healthcheck: Healthcheck
    entrypoint: tuple[str, ...] | None = None
    command: tuple[pulumi.Input[str], ...] | None = None
    env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    secret_env: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """Marked secret whatever is passed in (generated passwords, tokens)."""
    volumes: tuple[Volume, ...] = ()
    ports: tuple[Port, ...] = ()
    aliases: tuple[str, ...] = ()
    """Names on the bridge network; the first is what :meth:`origin` uses."""
    restart: str = "always"
    logs: LogRotation = LogRotation()
    depends_on: tuple[str, ...] = ()
    """Roles of containers (on the same host) that must be running first."""
    labels: Mapping[str, str] = field(default_factory=dict)
    hardening: Hardening = Hardening()
    post_deploy: PostDeploy | None = None
    backup_job: str | None = None
    """Name of the job that backs up this container's data (label ``<ns>.backup``)."""

    def __post_init__(self) -> None:
        def fail(problem: str) -> SpecError:
            return SpecError(f"container {self.name!r}: {problem}")

        for key, value in (("role", self.role), ("name", self.name), ("host", self.host)):
            if not _NAME.match(value):
                raise fail(f"{key} {value!r} must be lower-case letters, digits, '-', '_' or '.'")
        for key, argv in (("command", self.command), ("entrypoint", self.entrypoint)):
            # The docker provider refuses an empty command element at create time, after
            # preview passed (and on every later replacement); dockerd itself would accept it.
            # Refused for the entrypoint too: an empty program name never runs.
            if argv is not None and any(isinstance(a, str) and not a.strip() for a in argv):
                raise fail(f"{key} has an empty element; the docker provider refuses it at "
                           "`pulumi up`: drop it or pass the setting another way (a config "
                           "file, an env var)")
        for port in self.ports:
            if port.protocol not in ("tcp", "udp"):
                raise fail(f"port {port.internal} protocol must be tcp or udp, "
                           f"got {port.protocol!r}")
            if port.internal in rules.DATABASE_PORTS or port.host_port in rules.DATABASE_PORTS:
                raise fail(f"port {port.internal} is a database/cache port and must never be "
                           "published; reach it on the bridge network through an alias instead")
        for key in [*self.env, *self.secret_env]:
            if not _ENV_NAME.match(key):
                raise fail(f"env name {key!r} is not a valid variable name")
        for key, value in self.env.items():
            if rules.says_secret(key):
                raise fail(f"env {key} looks like a secret; pass it in secret_env so it is "
                           "stored encrypted")
            if isinstance(value, str) and rules.carries_credentials(value):
                raise fail(f"env {key} is a URL with a password in it; pass it in secret_env "
                           "so it is stored encrypted")
        both = set(self.env) & set(self.secret_env)
        if both:
            raise fail(f"env {sorted(both)[0]} is set in both env and secret_env")
        if self.volumes and rules.image_is_database(self.image) and not self.backup_job:
            raise fail("is a database with a data volume but names no backup job; set "
                       "backup_job to the backup that covers it")
        if self.restart not in rules.RESTART_POLICIES:
            raise fail(f"restart must be {' or '.join(map(repr, rules.RESTART_POLICIES))}, "
                       f"got {self.restart!r}")
        health = self.healthcheck
        if not health.test or min(health.interval_s, health.timeout_s, health.retries) < 1 \
                or health.start_period_s < 0:
            raise fail("healthcheck needs a command, interval/timeout/retries >= 1 and a "
                       "start period >= 0")
        if not 1 <= health.start_interval_s <= health.interval_s:
            # A start interval longer than the interval would make starting probes rarer than
            # running ones, and wait_timeout_s() would no longer bound the wait.
            raise fail(f"healthcheck start_interval_s must be from 1 to interval_s "
                       f"({health.interval_s}), got {health.start_interval_s}")
        if self.hardening.memory_mb < rules.MIN_MEMORY_MB or self.hardening.pids_limit < 1:
            raise fail(f"hardening.memory_mb must be >= {rules.MIN_MEMORY_MB} (Docker's "
                       "minimum) and pids_limit >= 1")

    def origin(self, port: int, scheme: str = "http") -> str:
        """Where a tunnel route sends traffic: this container on the bridge network. The port
        must not also be published, or the tunnel would not be the only way in."""
        if any(p.internal == port or p.host_port == port for p in self.ports):
            raise SpecError(f"container {self.name!r}: port {port} is published; a tunnel "
                             "origin must be reachable only through the tunnel")
        return f"{scheme}://{(self.aliases or (self.name,))[0]}:{port}"

    def with_overrides(self, memory_mb: int | None = None, pids_limit: int | None = None,
                       read_only_rootfs: bool | None = None, user: str | None = None,
                       cap_add: Sequence[str] | None = None) -> ContainerSpec:
        """The same spec with per-stack hardening overrides; None keeps the spec's value."""
        given = {"memory_mb": memory_mb, "pids_limit": pids_limit,
                 "read_only_rootfs": read_only_rootfs, "user": user,
                 "cap_add": tuple(cap_add) if cap_add is not None else None}
        return replace(self, hardening=replace(
            self.hardening, **{k: v for k, v in given.items() if v is not None}))


def published_ports(specs: Sequence[ContainerSpec]) -> tuple[str, ...]:
    """``<port>/<proto>`` of everything the containers publish, each once, in spec order."""
    seen: dict[str, None] = {}
    for spec in specs:
        for port in spec.ports:
            seen.setdefault(port.firewall_rule, None)
    return tuple(seen)


@dataclass(frozen=True)
class DockerHost:
    """What a container needs of the host it runs on (built by :class:`~jamjam_infra.host.Host`)."""

    name: str
    provider: docker.Provider
    network: docker.Network
    network_name: str
    """The network's Docker name as a plain string (``network.name`` is an Output, unknown at
    preview), so a command that names it is known at preview."""
    connection: command.remote.ConnectionArgs
    ready: pulumi.Resource
    stack: str
    labels: Labels
    moved_from: pulumi.Output[str] | None = None
    """URN of the component that owned these containers before (see host.MovedFrom)."""
    start_interval: bool = False
    """The host's engine takes a healthcheck start interval (Docker 25+, API 1.44)."""


def run_container(spec: ContainerSpec, host: DockerHost, parent: pulumi.Resource,
                  depends_on: Sequence[pulumi.Resource] = ()) -> docker.Container:
    """One :class:`ContainerSpec` on a host: its image, volumes, post-deploy run, the container
    and its pids limit, named ``<container name>[-image|-volume-<v>|-post-deploy|-pids-limit]``
    (the container's own resource carries its Docker name, which runbooks already use)."""
    name = spec.name
    on_host = pulumi.ResourceOptions(
        parent=parent, provider=host.provider, depends_on=[host.ready],
        # Same names as before under another parent: the alias keeps a running stack's
        # images and containers in state instead of replacing them.
        aliases=[pulumi.Alias(parent=host.moved_from)] if host.moved_from is not None else None)
    # keep_locally: the previous image stays on the host, so rolling back the pin is a
    # quick container swap, not a download.
    image = docker.RemoteImage(f"{name}-image", name=spec.image, keep_locally=True,
                               opts=on_host)
    volumes = [
        docker.Volume(f"{name}-volume-{volume.name}", name=volume.name,
                      # Deleting the stack or the spec must not delete the data with it.
                      opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(
                          retain_on_delete=True)))
        for volume in spec.volumes
    ]
    envs = _env_list(spec)
    before: list[pulumi.Resource] = list(depends_on)
    if spec.post_deploy is not None:
        before.append(_post_deploy(name, spec, host, image, [*volumes, *depends_on], parent))

    hard = spec.hardening
    container = docker.Container(
        name,
        name=spec.name,
        image=image.image_id,
        entrypoints=list(spec.entrypoint) if spec.entrypoint is not None else None,
        command=list(spec.command) if spec.command is not None else None,
        envs=envs or None,
        restart=spec.restart,
        log_driver="json-file",
        log_opts={"max-size": spec.logs.max_size, "max-file": str(spec.logs.max_file)},
        healthcheck=docker.ContainerHealthcheckArgs(
            tests=["CMD", *spec.healthcheck.test],
            interval=f"{spec.healthcheck.interval_s}s",
            timeout=f"{spec.healthcheck.timeout_s}s",
            retries=spec.healthcheck.retries,
            start_period=f"{spec.healthcheck.start_period_s}s",
            # Only where the engine has it: the provider's Docker client refuses the whole
            # create when an older engine would be sent one.
            start_interval=(f"{spec.healthcheck.start_interval_s}s" if host.start_interval
                            else None)),
        # Health-gated rollout: `pulumi up` fails on this container, by name, when the new
        # one is not healthy within the time Docker would take to call it unhealthy.
        wait=True,
        wait_timeout=spec.healthcheck.wait_timeout_s(),
        networks_advanced=[docker.ContainerNetworksAdvancedArgs(
            name=host.network.name, aliases=list(spec.aliases))],
        ports=[docker.ContainerPortArgs(internal=p.internal, external=p.host_port,
                                        protocol=p.protocol) for p in spec.ports] or None,
        volumes=[docker.ContainerVolumeArgs(volume_name=v.name, container_path=spec_v.target,
                                            read_only=spec_v.read_only or None)
                 for v, spec_v in zip(volumes, spec.volumes)] or None,
        labels=[docker.ContainerLabelArgs(label=k, value=v)
                for k, v in _labels(spec, host).items()],
        capabilities=docker.ContainerCapabilitiesArgs(
            drops=["ALL"], adds=list(hard.cap_add) or None),
        # `=`, not the `:` separator dockerd has deprecated (it still reads both).
        security_opts=[NO_NEW_PRIVILEGES],
        memory=hard.memory_mb,
        # Without swap the limit is the limit: a container at its ceiling is OOM-killed
        # and restarted rather than paging the whole VPS to a crawl.
        memory_swap=hard.memory_mb,
        init=hard.init,
        read_only=hard.read_only_rootfs or None,
        tmpfs=dict(hard.tmpfs) or None,
        user=hard.user,
        opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(
            depends_on=before,
            # The provider does not diff healthcheck edits; replacing is the only way
            # they reach the host.
            replace_on_changes=["healthcheck"],
            # Fixed names are what the runbooks use (`docker exec jamjam-echo ...`), and a
            # published port can only be bound by one container at a time: the old
            # container has to go before its replacement can start. The gap is seconds.
            delete_before_replace=True,
        )),
    )
    # pulumi-docker v5's Container has no pids-limit argument (the upstream Terraform
    # provider lacks it). The alternatives are worse: RLIMIT_NPROC (ulimits) counts every
    # process of that uid on the whole host, not the container's, and a daemon-wide default
    # would not show in the plan per container. `docker update` sets the cgroup's pids.max
    # on the running container and Docker keeps it in the container's config across
    # restarts; keyed on the container id, a replaced container gets it again. It applies
    # once the container is healthy (wait=True): a start-up window of seconds, not a gap.
    command.remote.Command(
        f"{name}-pids-limit",
        connection=host.connection,
        # By name, so the command is known at preview (the policy pack reads it there);
        # the id as trigger reruns it for every new container of that name.
        create=sudo("docker", "update", "--pids-limit", str(hard.pids_limit), spec.name),
        triggers=[container.id],
        add_previous_output_in_env=False,
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[container]),
    )
    return container


def _labels(spec: ContainerSpec, host: DockerHost) -> dict[str, str]:
    reserved = [key for key in spec.labels if key.startswith(f"{host.labels.namespace}.")]
    if reserved:
        # Host scripts and policies trust these to say which stack, role and backup a
        # container belongs to; a spec must not be able to claim another.
        raise SpecError(f"container {spec.name!r}: label {reserved[0]!r} is set by the library; "
                        "use role/backup_job, or a label outside "
                        f"{host.labels.namespace}.*")
    labels = {host.labels.stack: host.stack, host.labels.role: spec.role}
    if spec.backup_job:
        labels[host.labels.backup] = spec.backup_job
    return {**labels, **spec.labels}


def _env_list(spec: ContainerSpec) -> list[pulumi.Input[str]]:
    envs: list[pulumi.Input[str]] = [
        pulumi.Output.from_input(v).apply(lambda v, k=k: f"{k}={v}") if isinstance(v, pulumi.Output)
        else f"{k}={v}" for k, v in spec.env.items()]
    envs += [pulumi.Output.secret(pulumi.Output.from_input(v).apply(lambda v, k=k: f"{k}={v}"))
             for k, v in spec.secret_env.items()]
    return envs


def docker_run_flags(spec: ContainerSpec, network: str) -> list[str]:
    """`docker run` flags giving a one-off container the serving container's hardening, volumes
    and network (the same limits, so a migration cannot do what the app could not)."""
    hard = spec.hardening
    flags = ["--rm", "--network", network, "--cap-drop", "ALL",
             "--security-opt", NO_NEW_PRIVILEGES,
             "--memory", f"{hard.memory_mb}m", "--memory-swap", f"{hard.memory_mb}m",
             "--pids-limit", str(hard.pids_limit)]
    for cap in hard.cap_add:
        flags += ["--cap-add", cap]
    if hard.init:
        flags.append("--init")
    if hard.read_only_rootfs:
        flags.append("--read-only")
    for path, options in hard.tmpfs.items():
        flags += ["--tmpfs", f"{path}:{options}" if options else path]
    if hard.user:
        flags += ["--user", hard.user]
    for volume in spec.volumes:
        mode = ":ro" if volume.read_only else ""
        flags += ["--volume", f"{volume.name}:{volume.target}{mode}"]
    return flags


def _post_deploy(name: str, spec: ContainerSpec, host: DockerHost, image: docker.RemoteImage,
                 after: list[pulumi.Resource], parent: pulumi.Resource) -> command.remote.Command:
    """A one-off `docker run --rm` of the new image per command, before the serving container
    is replaced.

    Why this shape: the serving container is deleted before its successor starts (fixed name,
    published ports), so running the migration inside it would mean running it either in the
    old image or after traffic reaches the new one. A throwaway container of the new image, on
    the same network with the same env, runs while the old one still serves; the serving
    container depends on it, so a failed migration fails the update before anything is
    replaced. Its trigger is the image id: a new image migrates again, nothing else does
    (env changes rerun it too, harmlessly: migrations are idempotent). Its command line names
    the image and network by their plain names, so it is known at a preview (where the policy
    pack reads it) even when the image is new.

    The env, secrets included, goes to an env file that `mktemp` creates 0600 on the host,
    filled from stdin (kept encrypted in state), removed on exit: never a command line.
    """
    post = spec.post_deploy
    assert post is not None
    env_file = pulumi.Output.all(*_env_list(spec)).apply(
        lambda lines: "".join(f"{line}\n" for line in lines))
    if spec.secret_env:
        env_file = pulumi.Output.secret(env_file)
    for value in [*spec.env.values(), *spec.secret_env.values()]:
        if isinstance(value, str) and "\n" in value:
            raise SpecError(f"container {spec.name!r}: env values cannot span lines "
                             "(docker env files are one variable per line)")

    def script(network: str) -> str:
        # The image by the reference the RemoteImage pulled (spec.image, a plain string), not by
        # its id: the id is unknown at preview, and a create unknown at preview fails the port
        # policies closed. `--pull never` keeps it exact: docker run would otherwise pull a
        # missing tag from the registry, where it may have moved since; the RemoteImage this
        # command depends on has just pulled it (keep_locally), so it is there.
        flags = [*docker_run_flags(spec, network), "--pull", "never"]
        if post.entrypoint is not None:
            flags += ["--entrypoint", post.entrypoint[0]]
        runs = []
        for argv in post.commands:
            rest = [*post.entrypoint[1:], *argv] if post.entrypoint else list(argv)
            runs.append(sudo("docker", "run", *flags) + ' --env-file "$f" '
                        + shlex.join([spec.image, *rest]))
        return "bash -c " + shlex.quote("\n".join([
            "set -eu",
            'f=$(sudo -n mktemp /run/jamjam-post-deploy.XXXXXX)',
            "trap 'sudo -n rm -f \"$f\"' EXIT",
            'sudo -n tee "$f" >/dev/null',
            *runs,
        ]))

    return command.remote.Command(
        f"{name}-post-deploy",
        connection=host.connection,
        create=script(host.network_name),
        stdin=env_file,
        # The image id reruns it for every new image (a new pin, or the same tag pulled anew).
        triggers=[image.image_id],
        # Secrets are in the env; a migration printing its settings must not land in logs.
        logging=(command.remote.Logging.NONE if spec.secret_env
                 else command.remote.Logging.STDOUT_AND_STDERR),
        add_previous_output_in_env=False,
        # After the containers this one depends on (the database a migration needs: they are
        # created with wait=True, so they are healthy by then) and its volumes.
        opts=pulumi.ResourceOptions(parent=parent,
                                    depends_on=[host.ready, image, host.network, *after]),
    )
