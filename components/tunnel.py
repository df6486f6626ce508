"""The Cloudflare side of signaling: a remotely managed tunnel, its ingress and the DNS name."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_random as random


@dataclass(frozen=True)
class TunnelArgs:
    account_id: str
    zone_id: str
    tunnel_name: str       # jamjam-<stack>
    hostname: str          # full name inside the zone
    origin: str            # e.g. "http://signaling-server:8080"


class Tunnel(pulumi.ComponentResource):
    """A Cloudflare Tunnel, its ingress rules and the proxied CNAME that points at it."""

    tunnel_id: pulumi.Output[str]
    token: pulumi.Output[str]
    """Connector token for cloudflared; secret."""

    def __init__(self, name: str, args: TunnelArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:Tunnel", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

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
                    cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                        hostname=args.hostname, service=args.origin),
                    # cloudflared rejects an ingress list without a final catch-all; 404 for
                    # anything else keeps unknown hostnames off the origin.
                    cloudflare.ZeroTrustTunnelCloudflaredConfigConfigIngressArgs(
                        service="http_status:404"),
                ],
            ),
            opts=child,
        )
        cloudflare.DnsRecord(
            f"{name}-dns",
            zone_id=args.zone_id,
            # The full name: the API returns it in full, so a short one diffs on every preview.
            name=args.hostname,
            type="CNAME",
            content=tunnel.id.apply(lambda tunnel_id: f"{tunnel_id}.cfargotunnel.com"),
            # Proxied puts Cloudflare's edge (TLS, DDoS protection) in front; ttl 1 = automatic,
            # the only value Cloudflare accepts for proxied records.
            proxied=True,
            ttl=1,
            comment=f"Cloudflare Tunnel {args.tunnel_name}; managed by Pulumi (jamjam-infra)",
            opts=child,
        )
        token = cloudflare.get_zero_trust_tunnel_cloudflared_token_output(
            account_id=args.account_id, tunnel_id=tunnel.id, opts=pulumi.InvokeOutputOptions(parent=self))
        self.tunnel_id = tunnel.id
        # The provider does not mark the token secret; it would land in state in plaintext.
        self.token = pulumi.Output.secret(token.token)
        self.register_outputs({"tunnel_id": self.tunnel_id, "token": self.token})
