"""Compliant baseline resources for the policy tests, and the analyzer's way of handing them over.

Each baseline is what the program registers (camelCase inputs, secrets wrapped); a test changes
one property with :func:`changed` and runs one policy with :func:`violations`.
"""

from __future__ import annotations

import base64
import copy
import json
import sys
from pathlib import Path
from typing import Any, Mapping

from google.protobuf import json_format, struct_pb2

POLICIES_DIR = Path(__file__).resolve().parent.parent / "policies"
if str(POLICIES_DIR) not in sys.path:
    sys.path.insert(0, str(POLICIES_DIR))

from jamjam_policies import ALL_POLICIES  # noqa: E402
from pulumi_policy import (  # noqa: E402
    PolicyCustomTimeouts, PolicyResource, PolicyResourceOptions, ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties  # noqa: E402
from pulumi_policy.proxy import UNKNOWN_STRING_VALUE, unknown_checking_proxy  # noqa: E402

from tools.render import EXAMPLE_COMMON, SECRET_SIG, SECRET_VALUE  # noqa: E402

UNKNOWN = UNKNOWN_STRING_VALUE
"""What the engine sends for a value it can't know at preview."""

ACCOUNT = EXAMPLE_COMMON["cloudflareAccountId"]
ZONE = EXAMPLE_COMMON["cloudflareZoneId"]
TUNNEL_ID = "e1f4e159-1251-540a-b170-e4fbf15f3666"

CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
COMMAND = "command:remote:Command"
DNS_RECORD = "cloudflare:index/dnsRecord:DnsRecord"
TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
R2_BUCKET = "cloudflare:index/r2Bucket:R2Bucket"
R2_MANAGED_DOMAIN = "cloudflare:index/r2ManagedDomain:R2ManagedDomain"
R2_CUSTOM_DOMAIN = "cloudflare:index/r2CustomDomain:R2CustomDomain"
API_TOKEN = "cloudflare:index/apiToken:ApiToken"


def fake_tunnel_token() -> str:
    """A value shaped like a cloudflared tunnel token (base64 of its JSON), made at run time so
    that no token-shaped literal sits in the repo for a leak scanner to stop on."""
    claims = {"a": ACCOUNT, "t": TUNNEL_ID, "s": "not-a-secret"}
    return base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()


def fake_tunnel_secret() -> str:
    """32 bytes in base64, the shape of a tunnel secret; fixed bytes, so it is no secret."""
    return base64.b64encode(bytes(range(32))).decode()


def secret(value: Any) -> dict[str, Any]:
    return {SECRET_SIG: SECRET_VALUE, "value": value}


def _container(name: str, role: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "image": "ghcr.io/koeda/jamjam-echo-server:0.1.0",
        "restart": "always",
        "logDriver": "json-file",
        "logOpts": {"max-size": "100m", "max-file": "5"},
        "healthcheck": {"tests": ["CMD", "pgrep", "echo-server"], "interval": "30s",
                        "timeout": "3s", "retries": 3, "startPeriod": "5s"},
        "networksAdvanced": [{"name": "jamjam", "aliases": []}],
        "labels": [{"label": "jamjam.role", "value": role}],
        # Hardening (policies/jamjam_policies/hardening.py); the pids limit is a command below.
        "capabilities": {"drops": ["ALL"]},
        "securityOpts": ["no-new-privileges:true"],
        "memory": 512,
        "memorySwap": 512,
        "init": True,
        "readOnly": True,
        "tmpfs": {"/tmp": "rw,noexec,nosuid,size=16m"},
        "user": "65532:65532",
        **extra,
    }


ECHO = _container(
    "jamjam-echo", "echo",
    entrypoints=["echo-server"],
    command=["--port", "5000", "--host", "0.0.0.0", "--delay", "3000",
             "--signaling-url", "ws://signaling-server:8080", "--public-addr", "203.0.113.10:5000"],
    envs=["RUST_LOG=info", "ECHO_DELAY_MS=3000"],
    ports=[{"internal": 5000, "external": 5000, "protocol": "udp"}],
)
CLOUDFLARED = _container(
    "jamjam-cloudflared", "cloudflared",
    image="cloudflare/cloudflared:2025.11.1",
    command=["tunnel", "--no-autoupdate", "--metrics", "127.0.0.1:20241", "run"],
    envs=[secret("TUNNEL_TOKEN=" + fake_tunnel_token())],
)
SIGNALING = _container(
    "jamjam-signaling", "signaling",
    image="sha256:8abe19cf442d76babc93f03415de1248e56d58a5fc23bce87138f9b83030e0ea",
    entrypoints=["signaling-server"],
    command=["--port", "8080", "--host", "0.0.0.0"],
    envs=["RUST_LOG=info"],
)
REMOTE_IMAGE_BASE = {"name": "cloudflare/cloudflared:2025.11.1", "keepLocally": True}


def pids_limit(container: str, limit: int = 512) -> dict[str, Any]:
    """The command the library declares next to each container (pulumi-docker has no pids-limit)."""
    return {"connection": {"host": "203.0.113.10", "user": "jamjam", "port": 22,
                           "privateKey": secret("not-a-real-ssh-key")},
            "create": f"sudo -n docker update --pids-limit {limit} {container}",
            "triggers": ["container-id"]}
FIREWALL_CMD = "sudo -n bash -s -- apply --ssh-port 22 --allow 5000/udp"
FIREWALL = {
    "connection": {"host": "203.0.113.10", "user": "jamjam", "port": 22,
                   "privateKey": secret("not-a-real-ssh-key")},
    "create": FIREWALL_CMD,
    "update": FIREWALL_CMD,
    "delete": "sudo -n bash -s -- remove --ssh-port 22",
    # The script's rules are parameterised; the flags above carry the values.
    "stdin": ("#!/usr/bin/env bash\n# ufw alone would let a container published on 8080 through\n"
              "ufw allow \"$ssh_port/tcp\" comment jamjam\nfor w in \"$@\"; do ufw allow \"$w\"; done\n"),
}
UPLOAD_CRON = {
    "create": ("sudo -n install -D -o root -g root -m 0644 /dev/stdin "
               "/etc/cron.d/jamjam-upload-logs-to-r2"),
    "stdin": "0 * * * * root /opt/jamjam/scripts/upload-logs-to-r2.sh\n",
}
DNS = {"zoneId": ZONE, "name": "signaling-jamjam.koeda.me", "type": "CNAME",
       "content": f"{TUNNEL_ID}.cfargotunnel.com", "proxied": True, "ttl": 1}
TUNNEL_CONFIG_BASE = {
    "accountId": ACCOUNT, "tunnelId": TUNNEL_ID,
    "config": {"ingresses": [
        {"hostname": "signaling-jamjam.koeda.me", "service": "http://signaling-server:8080"},
        {"service": "http_status:404"},
    ]},
}
LOGS_BUCKET = {"accountId": ACCOUNT, "name": "jamjam-logs"}
MANAGED_DOMAIN = {"accountId": ACCOUNT, "bucketName": "jamjam-logs", "enabled": False}
CUSTOM_DOMAIN = {"accountId": ACCOUNT, "bucketName": "jamjam-site", "domain": "site.koeda.me",
                 "zoneId": ZONE, "enabled": True}
BUCKET_RESOURCES = f'{{"com.cloudflare.edge.r2.bucket.{ACCOUNT}_default_jamjam-logs": "*"}}'
TOKEN = {"name": "jamjam-production-log-archive", "policies": [{
    "effect": "allow",
    "permissionGroups": [{"id": "example-r2-object-write-group"}],
    "resources": BUCKET_RESOURCES,
}]}

BASELINES: dict[str, tuple[str, dict[str, Any]]] = {
    "jamjam-echo": (CONTAINER, ECHO),
    "jamjam-cloudflared": (CONTAINER, CLOUDFLARED),
    "jamjam-signaling": (CONTAINER, SIGNALING),
    "cloudflared-image": (REMOTE_IMAGE, REMOTE_IMAGE_BASE),
    "vps-firewall": (COMMAND, FIREWALL),
    "jamjam-echo-pids-limit": (COMMAND, pids_limit("jamjam-echo")),
    "jamjam-cloudflared-pids-limit": (COMMAND, pids_limit("jamjam-cloudflared")),
    "jamjam-signaling-pids-limit": (COMMAND, pids_limit("jamjam-signaling")),
    "logs-upload-cron": (COMMAND, UPLOAD_CRON),
    "signaling-dns": (DNS_RECORD, DNS),
    "signaling-config": (TUNNEL_CONFIG, TUNNEL_CONFIG_BASE),
    "logs-bucket": (R2_BUCKET, LOGS_BUCKET),
    "logs-public-url": (R2_MANAGED_DOMAIN, MANAGED_DOMAIN),
    "site-domain": (R2_CUSTOM_DOMAIN, CUSTOM_DOMAIN),
    "logs-token": (API_TOKEN, TOKEN),
}


def changed(base: Mapping[str, Any], path: str, value: Any = ...) -> dict[str, Any]:
    """A deep copy of ``base`` with one property set (``value``) or removed (no ``value``).

    ``path`` is dotted; list indexes are numbers: ``"ports.0.external"``.
    """
    result = copy.deepcopy(dict(base))
    *parents, last = path.split(".")
    node: Any = result
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = int(last) if isinstance(node, list) else last
    if value is ...:
        del node[key]
    else:
        node[key] = value
    return result


def analyzer_props(inputs: Mapping[str, Any]) -> Any:
    """Inputs as the analyzer's Analyze hands them to a policy: through a protobuf Struct
    (numbers become floats), deserialized (secrets unwrapped), behind the unknown proxy."""
    struct = struct_pb2.Struct()
    struct.update(dict(inputs))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def policy(name: str) -> Any:
    return next(p for p in ALL_POLICIES if p.name == name)


def _options() -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def urn(type_: str, name: str, stack: str = "production") -> str:
    return f"urn:pulumi:{stack}::jamjam::{type_}::{name}"


def violations(policy_name: str, type_: str, inputs: Mapping[str, Any], name: str = "res",
               config: Mapping[str, Any] | None = None) -> list[str]:
    """Messages ``policy_name`` reports for one resource (a ResourceValidationPolicy)."""
    args = ResourceValidationArgs(type_, analyzer_props(inputs), urn(type_, name), name,
                                  _options(), None, config)
    found: list[str] = []
    policy(policy_name).validate(args, lambda message, urn=None: found.append(message))
    return found


def stack_violations(policy_name: str, resources: list[tuple[str, str, Mapping[str, Any]]],
                     config: Mapping[str, Any] | None = None) -> list[tuple[str, str | None]]:
    """(message, urn) pairs a StackValidationPolicy reports for (type, name, inputs) resources."""
    items = [PolicyResource(type_, analyzer_props(inputs), urn(type_, name), name, _options(),
                            None, None, [], {}) for type_, name, inputs in resources]
    found: list[tuple[str, str | None]] = []
    policy(policy_name).validate(StackValidationArgs(items, config),
                                 lambda message, urn=None: found.append((message, urn)))
    return found
