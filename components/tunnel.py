"""The Cloudflare side of a system's public routes: a remotely managed tunnel, its ingress
rules, a proxied DNS record per hostname and, per route, an optional external health check."""

from __future__ import annotations

from dataclasses import dataclass
from types import TracebackType
from typing import Sequence

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_random as random

from jamjam_infra.container import ContainerSpec, Hardening, Healthcheck, LogRotation, SpecError

CLOUDFLARED_METRICS = "127.0.0.1:20241"
"""Inside the cloudflared container only; never published. `tunnel ready` asks it."""
# The official image is distroless and runs as nonroot (65532); with a token it writes
# nothing, so its root filesystem can be read-only.
CLOUDFLARED_USER = "65532:65532"


@dataclass(frozen=True)
class ExternalCheck:
    """A Cloudflare health check of a public route from Cloudflare's regions (paid plans)."""

    path: str = "/"
    expected_codes: tuple[str, ...] = ("2xx",)
    """Status classes that count as up, e.g. ("2xx", "3xx")."""
    interval_s: int = 60
    consecutive_fails: int = 2
    """Failures in a row before Cloudflare notifies (SYSTEMS: "alert after 2 failures")."""


@dataclass(frozen=True)
class Route:
    name: str
    """Short, unique in the tunnel: resource names and the health check's name."""
    hostname: str
    """Full name inside the zone."""
    origin: str
    """Where cloudflared sends it, e.g. ``spec.origin(8080)`` -> http://signaling-server:8080."""
    path: str | None = None
    """A path regex (cloudflared ingress ``path``); None matches every path."""
    check: ExternalCheck | None = None


@dataclass(frozen=True)
class TunnelArgs:
    account_id: str
    zone_id: str
    tunnel_name: str
    routes: Sequence[Route]


DNS_COMMENT_MAX = 100
"""Characters Cloudflare keeps in a DNS record comment on the Free plan; the API refuses a
longer one at `pulumi up` (preview does not ask)."""
_DNS_COMMENT = "Cloudflare Tunnel {}; managed by Pulumi (jamjam-infra)"


def dns_comment(tunnel_name: str) -> str:
    """The records' comment, naming the tunnel, never over DNS_COMMENT_MAX: a long project or
    stack name is cut (with "...") rather than letting the API refuse the record."""
    room = DNS_COMMENT_MAX - len(_DNS_COMMENT.format(""))
    if len(tunnel_name) > room:
        tunnel_name = tunnel_name[:room - 3] + "..."
    return _DNS_COMMENT.format(tunnel_name)


class Tunnel(pulumi.ComponentResource):
    """A Cloudflare Tunnel, its ingress rules and the proxied CNAMEs that point at it."""

    tunnel_id: pulumi.Output[str]
    token: pulumi.Output[str]
    """Connector token for cloudflared; secret."""

    def __init__(self, name: str, args: TunnelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:Tunnel", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        routes = _ordered(args.routes)

        # Cloudflare requires at least 32 random bytes, base64-encoded; RandomBytes keeps it
        # in state as a secret and stable across runs.
        secret = random.RandomBytes(f"{name}-secret", length=32, opts=child)
        tunnel = cloudflare.ZeroTrustTunnelCloudflared(
            f"{name}-tunnel",
            account_id=args.account_id,
            name=args.tunnel_name,
            # "cloudflare": ingress lives in the API (the Config resource below), so the
            # connector needs nothing but its token.
            config_src="cloudflare",
            tunnel_secret=secret.base64,
            opts=child,
        )
        cloudflare.ZeroTrustTunnelCloudflaredConfig(
            f"{name}-config",
            account_id=args.account_id,
            tunnel_id=tunnel.id,
            config=cloudflare.ZeroTrustTunnelCloudflaredConfigConfigArgs(
                ingresses=[
                    *(cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                        hostname=route.hostname, path=route.path, service=route.origin)
                      for route in routes),
                    # cloudflared rejects an ingress list without a final catch-all; 404 for
                    # anything else keeps unknown hostnames off the origins.
                    cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                        service="http_status:404"),
                ],
            ),
            opts=child,
        )
        target = tunnel.id.apply(lambda tunnel_id: f"{tunnel_id}.cfargotunnel.com")
        for index, hostname in enumerate(dict.fromkeys(route.hostname for route in routes)):
            cloudflare.DnsRecord(
                f"{name}-dns-{hostname}",
                zone_id=args.zone_id,
                # The full name: the API returns it in full, so a short one diffs on every
                # preview.
                name=hostname,
                type="CNAME",
                content=target,
                # Proxied puts Cloudflare's edge (TLS, DDoS protection) in front; ttl 1 =
                # automatic, the only value Cloudflare accepts for proxied records.
                proxied=True,
                ttl=1,
                comment=dns_comment(args.tunnel_name),
                # `<name>-dns` is what the record was called when a tunnel had one hostname.
                # Without the alias a running stack would create the new record before
                # deleting the old one, and Cloudflare refuses two CNAMEs of one name.
                opts=pulumi.ResourceOptions(parent=self, aliases=[pulumi.Alias(
                    name=f"{name}-dns")]) if index == 0 else child,
            )
        for route in routes:
            if route.check is not None:
                _health_check(f"{name}-{route.name}-check", args, route, route.check, child)
        token = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=args.account_id, tunnel_id=tunnel.id,
            opts=pulumi.InvokeOutputOptions(parent=self))
        self.tunnel_id = tunnel.id
        # The provider does not mark the token secret; it would land in state in plaintext.
        self.token = pulumi.Output.secret(token.token)
        self.register_outputs({"tunnel_id": self.tunnel_id, "token": self.token})


class PendingToken:
    """The tunnel's token before the tunnel exists, so a project can build every container spec
    (and so meet every config error: an image or role no container has) before it registers
    any resource, the connector's spec included. ``output`` goes into the connector's spec;
    ``resolve(tunnel.token)`` once the Tunnel is declared, inside ``with`` so that a failure
    before it still ends the program:

        token = PendingToken()
        with token:
            containers = project.containers(config, tunnel_token=token.output)
            tunnel = Tunnel(...)
            token.resolve(tunnel.token)

    (pulumi.deferred_output underneath: the runtime waits for every pending value before the
    program ends, so a value never resolved would hang the run instead of failing it.)"""

    def __init__(self) -> None:
        self.output, self._resolve = pulumi.deferred_output()
        self._resolved = False

    def resolve(self, token: pulumi.Output[str]) -> None:
        self._resolved = True
        self._resolve(token)

    def __enter__(self) -> PendingToken:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if not self._resolved:
            # The program is failing (or forgot the tunnel): end the wait, nothing uses it.
            self.resolve(pulumi.Output.secret(""))
            if error is None:
                raise RuntimeError("PendingToken left without resolve(tunnel.token)")


def cloudflared(name: str, image: str, host: str, token: pulumi.Input[str],
                depends_on: tuple[str, ...] = (), logs: LogRotation = LogRotation(),
                role: str = "cloudflared") -> ContainerSpec:
    """The connector that carries a :class:`Tunnel`'s routes to the origins, as a container
    spec: hardened all the way (read-only, nonroot), nothing published, healthy once
    connected to Cloudflare's edge. List the origins' roles in ``depends_on`` so the tunnel
    never answers 502 while they come up."""
    return ContainerSpec(
        role=role, name=name, image=image, host=host,
        command=("tunnel", "--no-autoupdate", "--metrics", CLOUDFLARED_METRICS, "run"),
        # cloudflared reads TUNNEL_TOKEN; an argument would show in `ps` and in state.
        secret_env={"TUNNEL_TOKEN": token},
        healthcheck=Healthcheck(("cloudflared", "tunnel", "--metrics", CLOUDFLARED_METRICS,
                                 "ready")),
        hardening=Hardening(read_only_rootfs=True, user=CLOUDFLARED_USER,
                            tmpfs={"/tmp": "rw,noexec,nosuid,size=16m"}),
        logs=logs,
        depends_on=depends_on,
    )


def _ordered(routes: Sequence[Route]) -> list[Route]:
    """cloudflared takes the first matching rule: a route with a path must come before the
    same hostname's catch-all, whatever order the program listed them in."""
    names = [route.name for route in routes]
    if len(set(names)) != len(names):
        raise SpecError(f"tunnel routes need unique names, got {names}")
    keys = [(route.hostname, route.path) for route in routes]
    if len(set(keys)) != len(keys):
        raise SpecError("two tunnel routes have the same hostname and path")
    if not routes:
        raise SpecError("a tunnel needs at least one route")
    first_seen = {route.hostname: i for i, route in reversed(list(enumerate(routes)))}
    return sorted(routes, key=lambda r: (first_seen[r.hostname], r.path is None))


def _health_check(name: str, args: TunnelArgs, route: Route, check: ExternalCheck,
                  opts: pulumi.ResourceOptions) -> None:
    path = check.path if check.path.startswith("/") else f"/{check.path}"
    cloudflare.Healthcheck(
        name,
        zone_id=args.zone_id,
        name=f"{args.tunnel_name}-{route.name}",
        description=f"https://{route.hostname}{path} answers through the tunnel",
        address=route.hostname,
        type="HTTPS",
        http_config=cloudflare.HealthcheckHttpConfigArgs(
            method="GET", path=path, port=443, follow_redirects=False,
            expected_codes=list(check.expected_codes)),
        interval=check.interval_s, retries=2, timeout=5,
        consecutive_fails=check.consecutive_fails, consecutive_successes=1,
        opts=opts)
