"""The three containers on the VPS, managed by pulumi-docker through an ssh:// provider."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_docker as docker

from settings import Images

# Values from SPEC's "Health checks" and "Logs" sections, the same for every container.
_LOG_OPTS = {"max-size": "100m", "max-file": "5"}
_CLOUDFLARED_METRICS = "127.0.0.1:20241"
"""Inside the cloudflared container only; never published. `tunnel ready` asks it."""


@dataclass(frozen=True)
class ServicesArgs:
    stack: str
    docker_host: str             # ssh://user@address:port
    ssh_host_key_check: bool     # False only when the operator has no known host key yet
    images: Images
    log_level: str               # RUST_LOG
    echo_delay_ms: int
    echo_port: int
    signaling_port: int
    public_address: str          # advertised to echo clients
    tunnel_token: pulumi.Output[str]
    host_ready: pulumi.Resource  # Docker installed and the firewall on, before anything runs


class Services(pulumi.ComponentResource):
    """signaling-server, echo-server and cloudflared on one user-defined bridge network."""

    def __init__(self, name: str, args: ServicesArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("jamjam:index:Services", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        provider = docker.Provider(
            f"{name}-docker",
            host=args.docker_host,
            # The docker CLI's ssh transport uses the operator's ssh client and agent. Batch mode
            # makes a missing key fail fast instead of waiting for a password prompt.
            ssh_opts=["-o", "BatchMode=yes", "-o",
                      f"StrictHostKeyChecking={'yes' if args.ssh_host_key_check else 'accept-new'}"],
            # The first preview of a new stack runs before the VPS has Docker; the daemon is
            # only needed when something is actually created.
            disable_docker_daemon_check=True,
            opts=child,
        )
        on_host = pulumi.ResourceOptions(parent=self, provider=provider,
                                         depends_on=[args.host_ready])

        network = docker.Network(f"{name}-network", name="jamjam", driver="bridge", opts=on_host)

        def image(role: str, reference: str) -> docker.RemoteImage:
            # keep_locally: the previous image stays on the host, so rolling back the pin is a
            # quick container swap, not a download.
            return docker.RemoteImage(f"{name}-{role}-image", name=reference, keep_locally=True,
                                      opts=on_host)

        def container(role: str, container_name: str, pulled: docker.RemoteImage,
                      health: list[str], aliases: list[str] | None = None,
                      depends_on: list[pulumi.Resource] | None = None,
                      **kwargs) -> docker.Container:
            return docker.Container(
                f"{name}-{role}",
                name=container_name,
                image=pulled.image_id,
                restart="always",
                log_driver="json-file",
                log_opts=_LOG_OPTS,
                healthcheck=docker.ContainerHealthcheckArgs(
                    tests=["CMD", *health], interval="30s", timeout="3s", retries=3,
                    start_period="5s"),
                networks_advanced=[docker.ContainerNetworksAdvancedArgs(
                    name=network.name, aliases=aliases or [])],
                labels=[docker.ContainerLabelArgs(label="jamjam.stack", value=args.stack),
                        docker.ContainerLabelArgs(label="jamjam.role", value=role)],
                opts=pulumi.ResourceOptions.merge(on_host, pulumi.ResourceOptions(
                    depends_on=depends_on,
                    # The provider does not diff healthcheck edits; replacing is the only way
                    # they reach the host.
                    replace_on_changes=["healthcheck"],
                    # Fixed names are what the runbooks use (`docker exec jamjam-echo ...`), and
                    # 5000/udp can only be published by one container at a time: the old
                    # container has to go before its replacement can start. The gap is seconds.
                    delete_before_replace=True,
                )),
                **kwargs,
            )

        rust_log = f"RUST_LOG={args.log_level}"
        signaling = container(
            "signaling", "jamjam-signaling", image("signaling", args.images.signaling),
            ["pgrep", "-f", "signaling-server"],
            aliases=["signaling-server"],
            entrypoints=["signaling-server"],
            command=["--port", str(args.signaling_port), "--host", "0.0.0.0"],
            envs=[rust_log],
            # No `ports`: the signaling port is reachable only on the bridge network, i.e. by
            # cloudflared and echo-server.
        )
        echo_address = f"{args.public_address}:{args.echo_port}"
        container(
            "echo", "jamjam-echo", image("echo", args.images.echo),
            ["pgrep", "echo-server"],
            entrypoints=["echo-server"],
            command=["--port", str(args.echo_port), "--host", "0.0.0.0",
                     "--delay", str(args.echo_delay_ms),
                     "--signaling-url", f"ws://signaling-server:{args.signaling_port}",
                     "--public-addr", echo_address],
            envs=[rust_log, f"ECHO_DELAY_MS={args.echo_delay_ms}",
                  f"ECHO_PUBLIC_ADDR={echo_address}"],
            ports=[docker.ContainerPortArgs(internal=args.echo_port, external=args.echo_port,
                                            protocol="udp")],
            depends_on=[signaling],
        )
        container(
            "cloudflared", "jamjam-cloudflared", image("cloudflared", args.images.cloudflared),
            ["cloudflared", "tunnel", "--metrics", _CLOUDFLARED_METRICS, "ready"],
            command=["tunnel", "--no-autoupdate", "--metrics", _CLOUDFLARED_METRICS, "run"],
            # cloudflared reads TUNNEL_TOKEN; an argument would show in `ps` and in state.
            envs=[args.tunnel_token.apply(lambda token: f"TUNNEL_TOKEN={token}")],
            # Started after signaling so the tunnel never answers 502 while it comes up.
            depends_on=[signaling],
        )
        self.register_outputs({})
