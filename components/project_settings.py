"""Reading a project's stack config, for projects built on the library (the examples under
``examples/``). jamjam has its own declarative ``settings.py``; this is the small common part
every other system needs: the operator's keys (VPS address, Cloudflare ids, SSH key, alert
webhook), pinned images, hostnames inside the zone, numbers and switches.

A project reads everything in its one specifics module, then calls :meth:`StackConfig.done`:
every bad or missing key is one line (the key, what is wrong, a command that fixes it), all
raised together before any resource is registered. Components never read config.

    config = StackConfig()
    zone = config.text("zone", example="example.com")
    hostname = config.hostname("hostname", zone, example="api.example.com")
    images = config.images(("api", "db", "cloudflared"))
    operator = config.operator()
    config.done()

A project with one public hostname reads those keys (and ``externalHealthChecks``) with
:meth:`StackConfig.site`, into its own subclass of :class:`SiteConfig`:

    @dataclass(frozen=True)
    class Config(SiteConfig):
        project = "api"
        bucket: str

    config = StackConfig()
    result = Config(**config.site(("api", "db", "cloudflared"), "api.example.com"),
                    bucket=config.bucket("bucket", "api-backups"))
    config.done()
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import pulumi
import pulumi_command as command

from jamjam_infra.container import ContainerSpec
from jamjam_infra.host import DEBIAN_RELEASES, HOST_KEY, Debian, HostArgs, SshArgs
from jamjam_infra.operations import OperationsArgs
from jamjam_infra.r2_store import BUCKET_NAME, R2StoreArgs, Retention, rclone_config_path
from jamjam_infra.tunnel import ExternalCheck, Route, TunnelArgs

# name[:tag][@sha256:digest], a tag or a digest required: a deploy is reproducible and a
# rollback is one config change.
_IMAGE = re.compile(
    r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?::[0-9]+)?(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[0-9a-f]{64}))?$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CLOUDFLARE_ID = re.compile(r"^[0-9a-f]{32}$")
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
_REQUIRED = object()
# Fills SshArgs while a bad key is collected: done() raises before any resource uses it.
_NO_HOST_KEY = "ssh-ed25519 AAAA"


class StackConfigError(pulumi.RunError):
    """Missing or bad stack config: one line per key in ``lines``. Pulumi prints a RunError
    without a traceback."""

    def __init__(self, lines: Iterable[str]) -> None:
        self.lines = tuple(lines)
        super().__init__("\n".join(self.lines))


@dataclass(frozen=True)
class Operator:
    """What only the operator of a stack can set."""

    account_id: str
    zone_id: str
    ssh: SshArgs
    alert_webhook_url: pulumi.Output[str] | None
    debian: Debian = Debian()
    """The Debian release the VPS runs (``vpsDebianVersion``, default 13)."""

    @property
    def on_host(self) -> str:
        """The ssh command line that runs what follows it on the stack's host, for the
        operator checks a project exports."""
        return f"ssh -p {self.ssh.port} {self.ssh.user}@{self.ssh.host}"


@dataclass(frozen=True)
class SiteConfig:
    """What :meth:`StackConfig.site` reads: a project subclasses it with its own keys."""

    stack: str
    zone: str
    hostname: str
    images: dict[str, str]
    external_checks: bool
    operator: Operator

    project: ClassVar[str]
    """The subclass's short name: tunnels and R2 tokens are named ``<project>-<stack>...``."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Checked when the project's module is imported, before any key is read.
        if not isinstance(getattr(cls, "project", None), str):
            raise TypeError(f"{cls.__name__} needs a project name: project = \"<name>\" in its "
                            "class body (tunnel and R2 token names start with it)")

    @property
    def url(self) -> str:
        return f"https://{self.hostname}"

    @property
    def tunnel_name(self) -> str:
        return f"{self.project}-{self.stack}"

    def operator_checks(self, probes: Sequence[str], on_host: Sequence[str]) -> list[str]:
        """Commands the operator runs after an apply: ``probes`` from anywhere, then the
        stack's containers (the library's ``jamjam.stack`` label) and ``on_host`` over ssh."""
        ssh = self.operator.on_host
        return [*probes, f"{ssh} docker ps --filter label=jamjam.stack={self.stack}",
                *(f"{ssh} {line}" for line in on_host)]

    def external(self, check: ExternalCheck) -> ExternalCheck | None:
        """A route's check from outside, if ``externalHealthChecks`` turned them on."""
        return check if self.external_checks else None

    def tunnel(self, routes: Sequence[Route]) -> TunnelArgs:
        """The stack's tunnel in the operator's account and zone."""
        return TunnelArgs(account_id=self.operator.account_id, zone_id=self.operator.zone_id,
                          tunnel_name=self.tunnel_name, routes=routes)

    def host(self, network: str, containers: Sequence[ContainerSpec]) -> HostArgs:
        """The operator's VPS, running ``containers`` on the bridge ``network``."""
        return HostArgs(ssh=self.operator.ssh, stack=self.stack, network=network,
                        containers=containers, debian=self.operator.debian)

    def store(self, bucket: str, purpose: str,
              connection: command.remote.ConnectionArgs | None = None,
              host_ready: pulumi.Resource | None = None,
              retention: Sequence[Retention] = ()) -> R2StoreArgs:
        """A bucket in the operator's account with its own token ``<tunnel name>-<purpose>``;
        with a connection, the host gets the bucket's rclone config."""
        return R2StoreArgs(
            account_id=self.operator.account_id, bucket=bucket,
            token_name=f"{self.tunnel_name}-{purpose}", connection=connection,
            host_ready=host_ready,
            config_path=rclone_config_path(bucket) if connection is not None else None,
            retention=retention)

    def operations(self, connection: command.remote.ConnectionArgs,
                   host_ready: pulumi.Resource, **options: Any) -> OperationsArgs:
        """The host's operations jobs, alerting to the operator's webhook (if set)."""
        return OperationsArgs(stack=self.stack, connection=connection, host_ready=host_ready,
                              webhook_url=self.operator.alert_webhook_url, **options)


class StackConfig:
    """The project's config namespace (its name in Pulumi.yaml), read key by key."""

    def __init__(self, config: pulumi.Config | None = None) -> None:
        self._config = config or pulumi.Config()
        self.namespace = self._config.name
        self.stack = pulumi.get_stack()
        self._errors: list[str] = []

    # --- one key -------------------------------------------------------------------------

    def _fix(self, key: str, example: Any, secret: bool = False) -> str:
        path = "--path " if "." in key else ""
        flag = "--secret " if secret else ""
        return (f"pulumi config set {flag}{path}{shlex.quote(f'{self.namespace}:{key}')} "
                f"{shlex.quote(str(example))}")

    def _fail(self, key: str, problem: str, example: Any, secret: bool = False) -> None:
        self._errors.append(f"{self.namespace}:{key} {problem}; fix: "
                            f"{self._fix(key, example, secret)}")

    def _read(self, key: str, example: Any, default: Any, parse: Callable[[Any], Any]) -> Any:
        raw = self._config.get(key)
        if raw is None:
            if default is _REQUIRED:
                self._fail(key, "is not set", example)
                return None
            return default
        try:
            return parse(raw)
        except ValueError as err:
            self._fail(key, f"{err}, got {raw!r}", example)
            return None

    def text(self, key: str, example: str, default: Any = _REQUIRED,
             pattern: str | None = None) -> str:
        def parse(raw: str) -> str:
            if pattern and not re.fullmatch(pattern, raw):
                raise ValueError(f"must look like {example!r}")
            return raw
        return self._read(key, example, default, parse)

    def whole(self, key: str, default: int, low: int, high: int) -> int:
        def parse(raw: str) -> int:
            if not re.fullmatch(r"[0-9]+", raw.strip()) or not low <= int(raw) <= high:
                raise ValueError(f"must be a whole number from {low} to {high}")
            return int(raw)
        return self._read(key, default, default, parse)

    def flag(self, key: str, default: bool) -> bool:
        def parse(raw: str) -> bool:
            if raw.strip().lower() not in ("true", "false"):
                raise ValueError("must be true or false")
            return raw.strip().lower() == "true"
        return self._read(key, str(not default).lower(), default, parse)

    def zone(self, key: str = "zone", example: str = "example.com") -> str:
        def parse(raw: str) -> str:
            labels = raw.lower().rstrip(".").split(".")
            if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
                raise ValueError("is not a DNS zone name")
            return ".".join(labels)
        return self._read(key, example, _REQUIRED, parse)

    def hostname(self, key: str, zone: str | None, example: str) -> str:
        def parse(raw: str) -> str:
            name = raw.lower().rstrip(".")
            if not all(_LABEL.match(label) for label in name.split(".")):
                raise ValueError("is not a host name")
            if zone and not (name == zone or name.endswith(f".{zone}")):
                raise ValueError(f"must be inside the zone {zone}")
            return name
        return self._read(key, example, _REQUIRED, parse)

    def images(self, roles: Iterable[str], key: str = "images") -> dict[str, str]:
        """``<key>.<role>`` for each role: pinned image references (tag or digest)."""
        found: dict[str, str] = {}
        raw = self._config.get_object(key) or {}
        if not isinstance(raw, Mapping):
            self._fail(key, "must be a map of role: image", "{}")
            return found
        roles = tuple(roles)
        for extra in sorted(set(raw) - set(roles)):
            self._errors.append(f"{self.namespace}:{key}.{extra} is not a known image (known: "
                                f"{', '.join(roles)}); fix: pulumi config rm --path "
                                f"'{self.namespace}:{key}.{extra}'")
        for role in roles:
            value = raw.get(role)
            example = f"registry.example/{role}:1.0.0"
            if value is None:
                self._fail(f"{key}.{role}", "is not set", example)
                continue
            match = _IMAGE.match(str(value))
            if not match or not (match["tag"] or match["digest"]) or match["tag"] == "latest":
                self._fail(f"{key}.{role}", f"must be an image pinned by tag or digest (not "
                           f"latest), got {value!r}", example)
                continue
            found[role] = str(value)
        return found

    def secret(self, key: str, example: str) -> pulumi.Output[str]:
        """A required secret the operator sets (``pulumi config set --secret``)."""
        value = self._config.get_secret(key)
        if value is None:
            self._fail(key, "is not set", example, secret=True)
            return pulumi.Output.secret("")
        if not _is_secret_key(self._config, key):
            self._fail(key, "is stored in plaintext in the stack file; it must be a secret",
                       example, secret=True)
        return value

    def operator(self) -> Operator:
        """vpsAddress, cloudflareAccountId, cloudflareZoneId, ssh.hostKey, sshPrivateKey
        (secret), and the optional ssh.user / alertWebhookUrl (secret) / vpsDebianVersion (12
        or 13, default 13)."""
        def ipv4(raw: str) -> str:
            try:
                address = ipaddress.IPv4Address(raw.strip())
            except ipaddress.AddressValueError:
                raise ValueError("is not an IPv4 address") from None
            return str(address)

        def cloudflare_id(raw: str) -> str:
            if not _CLOUDFLARE_ID.match(raw):
                raise ValueError("must be 32 lowercase hex digits")
            return raw

        address = self._read("vpsAddress", "203.0.113.10", _REQUIRED, ipv4)
        account = self._read("cloudflareAccountId", "<32-hex account id>", _REQUIRED,
                             cloudflare_id)
        zone_id = self._read("cloudflareZoneId", "<32-hex zone id>", _REQUIRED, cloudflare_id)
        debian = self.debian_version()
        ssh = self._config.get_object("ssh") or {}
        user = str(ssh.get("user", "ops"))
        if not _USER.match(user) or user == "root":
            self._fail("ssh.user", f"must be a non-root user name, got {user!r}", "ops")
        host_key = str(ssh.get("hostKey") or "").strip()
        if not HOST_KEY.match(host_key):
            problem = "is not set" if not host_key else \
                f"must be the VPS's SSH host public key as 'type base64', got {host_key!r}"
            # Without it every remote command would trust whatever answers on the address.
            self._fail("ssh.hostKey", problem, "ssh-ed25519 <base64> (ssh-keyscan -t ed25519 "
                       "<vpsAddress>; compare ssh-keygen -lf with the provider's console)")
            host_key = _NO_HOST_KEY
        key = self.secret("sshPrivateKey", "\"$(cat ~/.ssh/id_ed25519)\"")
        webhook = None
        if self._config.get("alertWebhookUrl") is not None:
            webhook = self.secret("alertWebhookUrl", "https://discord.com/api/webhooks/...")
        return Operator(
            account_id=account or "", zone_id=zone_id or "",
            ssh=SshArgs(host=address or "", port=int(ssh.get("port", 22)), user=user,
                        initial_user=str(ssh.get("initialUser", "root")),
                        private_key=key,
                        host_key=host_key),
            alert_webhook_url=webhook,
            debian=Debian(debian or 13, f"{self.namespace}:vpsDebianVersion"),
        )

    def debian_version(self, key: str = "vpsDebianVersion") -> int | None:
        """The VPS's Debian release, one of DEBIAN_RELEASES (default 13)."""
        known = " or ".join(f"{v} ({r.codename})" for v, r in DEBIAN_RELEASES.items())

        def parse(raw: str) -> int:
            if raw.strip() not in {str(v) for v in DEBIAN_RELEASES}:
                raise ValueError(f"must be the VPS's Debian release, {known} (upgrade an "
                                 "older host first)")
            return int(raw)
        return self._read(key, 13, 13, parse)

    def bucket(self, key: str, example: str) -> str:
        """A required R2 bucket name."""
        return self.text(key, example, pattern=BUCKET_NAME.pattern)

    def site(self, roles: Iterable[str], hostname_example: str,
             zone_example: str = "example.com") -> dict[str, Any]:
        """The :class:`SiteConfig` fields, as keywords for a subclass: ``zone``, ``hostname``
        (inside the zone), ``images.<role>`` for each role, ``externalHealthChecks`` (default
        false) and the operator's keys."""
        zone = self.zone(example=zone_example)
        return {"stack": self.stack, "zone": zone,
                "hostname": self.hostname("hostname", zone, hostname_example),
                "images": self.images(roles),
                "external_checks": self.flag("externalHealthChecks", False),
                "operator": self.operator()}

    def done(self) -> None:
        if self._errors:
            raise StackConfigError(self._errors)


def _is_secret_key(config: pulumi.Config, key: str) -> bool:
    # Exported by pulumi.runtime (its __all__); the offline render marks stand-ins the same way.
    return pulumi.runtime.is_config_secret(config.full_key(key))
