"""Compliant baseline resources for the policy tests, and the analyzer's way of handing them over.

Each baseline is what the program registers (camelCase inputs, secrets wrapped); a test changes
one property with :func:`changed` and runs one policy with :func:`violations` (a resource rule)
or :func:`stack_violations` (a stack rule).

:data:`BASELINES` holds one compliant resource per type (jamjam's); :data:`SYSTEMS` holds a
compliant stack per system (jamjam and the four siblings of ../shared/SYSTEMS.md), built here
from each system's document because their programs are written in parallel.

A rule module's tests list their breaking cases as ``BREAKS`` (resource rules) and
``STACK_BREAKS`` (stack rules) and run them with :func:`assert_break` /
:func:`assert_stack_break`; tests/test_policies.py checks that every rule has one.
"""

from __future__ import annotations

import base64
import copy
import json
import sys
from pathlib import Path
from types import SimpleNamespace
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
from jamjam_policies._compat import deserialize_properties  # noqa: E402
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
        "securityOpts": ["no-new-privileges=true"],
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
    """Inputs as the pack's analyzer hands them to a policy: through a protobuf Struct
    (numbers become floats), deserialized by the pack's compat (secret strings marked, still
    strings), behind the unknown proxy."""
    struct = struct_pb2.Struct()
    struct.update(dict(inputs))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def policy(name: str) -> Any:
    return next(p for p in ALL_POLICIES if p.name == name)


def resource_options() -> PolicyResourceOptions:
    """Options of a resource that sets none (no parent, provider, dependencies or timeouts)."""
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)


def urn(type_: str, name: str, stack: str = "production", project: str = "jamjam") -> str:
    return f"urn:pulumi:{stack}::{project}::{type_}::{name}"


def violations(policy_name: str, type_: str, inputs: Mapping[str, Any], name: str = "res",
               config: Mapping[str, Any] | None = None) -> list[str]:
    """Messages ``policy_name`` reports for one resource (a ResourceValidationPolicy)."""
    args = ResourceValidationArgs(type_, analyzer_props(inputs), urn(type_, name), name,
                                  resource_options(), None, config)
    found: list[str] = []
    policy(policy_name).validate(args, lambda message, urn=None: found.append(message))
    return found


Res = tuple  # (type, name, inputs) or (type, name, inputs, names of resources it depends on)


def stack_violations(policy_name: str, resources: list[Res],
                     config: Mapping[str, Any] | None = None,
                     stack: str = "production", project: str = "jamjam") -> list[tuple[str, str | None]]:
    """(message, urn) pairs a StackValidationPolicy reports for (type, name, inputs[, depends])
    resources, with dependencies linked the way the analyzer links them."""
    items = {res[1]: PolicyResource(res[0], analyzer_props(res[2]),
                                    urn(res[0], res[1], stack, project),
                                    res[1], resource_options(), None, None, [], {})
             for res in resources}
    for res in resources:
        for dependency in (res[3] if len(res) > 3 else ()):
            items[res[1]].dependencies.append(items[dependency])
    found: list[tuple[str, str | None]] = []
    policy(policy_name).validate(StackValidationArgs(list(items.values()), config),
                                 lambda message, urn=None: found.append((message, urn)))
    return found


def assert_break(policy_name: str, type_: str, inputs: Mapping[str, Any], expected: str,
                 config: Mapping[str, Any] | None = None) -> None:
    """``policy_name`` reports the resource ``broken``, saying ``expected``, in whole sentences."""
    found = violations(policy_name, type_, inputs, name="broken", config=config)
    assert found, f"{policy_name} let this through: {inputs}"
    assert expected in "\n".join(found), found
    for message in found:
        assert f"{type_} 'broken'" in message, "the message names the resource (type and name)"
        assert message.rstrip().endswith("."), "the message is whole sentences"


def assert_stack_break(policy_name: str, resources: list[Res], expected: str,
                       config: Mapping[str, Any] | None = None, broken: str | None = None) -> None:
    """``policy_name`` reports ``resources``, saying ``expected``; with ``broken``, the report is
    about that resource (its URN) and names it."""
    found = stack_violations(policy_name, resources, config)
    assert found, f"{policy_name} let this stack through"
    assert expected in "\n".join(m for m, _ in found), found
    for message, about in found:
        assert message.rstrip().endswith("."), "the message is whole sentences"
        if broken is not None:
            assert about is not None and about.endswith(f"::{broken}"), (message, about)
            assert f"'{broken}'" in message, "the message names the resource"


def replaced(resources: list[Res], name: str, inputs: Mapping[str, Any]) -> list[Res]:
    """``resources`` with the inputs of the one named ``name`` replaced."""
    assert any(res[1] == name for res in resources), name
    return [(res[0], res[1], inputs, *res[3:]) if res[1] == name else res for res in resources]


def inputs_of(resources: list[Res], name: str) -> dict[str, Any]:
    return next(res[2] for res in resources if res[1] == name)


# --- one compliant stack per system (../shared/SYSTEMS.md) ---------------------------------

def firewall(*allow: str) -> dict[str, Any]:
    flags = " ".join(f"--allow {spec}" for spec in allow)
    command = f"sudo -n bash -s -- apply --ssh-port 22 {flags}".rstrip()
    return {**FIREWALL, "create": command, "update": command}


def cron_file(job: str, schedule: str, script: str) -> dict[str, Any]:
    """A job's cron file as the component library installs it."""
    return {
        "connection": FIREWALL["connection"],
        "create": f"sudo -n install -D -o root -g root -m 0644 /dev/stdin /etc/cron.d/jamjam-{job}",
        "delete": f"sudo -n rm -f /etc/cron.d/jamjam-{job}",
        "stdin": (f"SHELL=/bin/bash\n{schedule} root flock -n /run/lock/jamjam-{job}.lock "
                  f"/opt/jamjam/scripts/{script} 2>&1 | logger -t jamjam-{job}\n"),
    }


def tunnel_config(*routes: tuple[str, str | None, str]) -> dict[str, Any]:
    ingresses = []
    for hostname, path, service in routes:
        rule = {"hostname": hostname, "service": service}
        if path:
            rule["path"] = path
        ingresses.append(rule)
    return {**TUNNEL_CONFIG_BASE, "config": {"ingresses": [*ingresses, {"service": "http_status:404"}]}}


def dns(hostname: str) -> dict[str, Any]:
    return {**DNS, "name": hostname}


def bucket_token(bucket: str) -> dict[str, Any]:
    resources = json.dumps({f"com.cloudflare.edge.r2.bucket.{ACCOUNT}_default_{bucket}": "*"})
    return {"name": f"{bucket}-writer", "policies": [{**TOKEN["policies"][0], "resources": resources}]}


def app(name: str, image: str, *, envs: list[Any], health: list[str], **extra: Any) -> dict[str, Any]:
    container = _container(name, name.rsplit("-", 1)[-1], image=image, envs=envs, **extra)
    container["healthcheck"] = {**container["healthcheck"], "tests": health}
    return container


def database(name: str, image: str, *, data: str, volume: str, backup: str | None,
             envs: list[Any], health: list[str]) -> dict[str, Any]:
    container = app(name, image, envs=envs, health=health,
                    volumes=[{"volumeName": volume, "containerPath": data}])
    if backup is not None:
        container["labels"] = [*container["labels"], {"label": "jamjam.backup", "value": backup}]
    return container


def cloudflared(name: str) -> dict[str, Any]:
    return {**CLOUDFLARED, "name": name}


def _pg_env(db: str, user: str) -> list[Any]:
    return [f"POSTGRES_DB={db}", f"POSTGRES_USER={user}",
            secret("POSTGRES_PASSWORD=generated-at-deploy")]


PG_HEALTH = ["CMD", "pg_isready", "-U", "app"]


def _with_pids_limits(resources: list[Res]) -> list[Res]:
    """The stack plus the pids-limit command the library declares next to each container."""
    limits = [(COMMAND, f"{name}-pids-limit", pids_limit(inputs["name"]))
              for type_, name, inputs, *_ in resources if type_ == CONTAINER]
    return [*resources, *limits]


WORKSPACE_BACKEND: list[Res] = _with_pids_limits([
    (CONTAINER, "work-tracker", app(
        "work-tracker", "ghcr.io/example/work-tracker:1.4.2",
        envs=["ENV=production", "PORT=8000",
              secret("DATABASE_URL=postgresql://tracker:generated@db:5432/tracker")],
        health=["CMD", "curl", "-fsS", "http://127.0.0.1:8000/health"])),
    (CONTAINER, "twitch-bot", app(
        "twitch-bot", "ghcr.io/example/twitch-bot:1.4.2",
        envs=["TWITCH_CLIENT_ID=public-client-id", secret("TWITCH_CLIENT_SECRET=from-config"),
              "TRACKER_URL=http://work-tracker:8000"],
        health=["CMD", "pgrep", "-f", "bot"])),
    (CONTAINER, "db", database(
        "db", "postgres:16.4", data="/var/lib/postgresql/data", volume="workspace-db-data",
        backup="workspace-db-backup", envs=_pg_env("tracker", "tracker"), health=PG_HEALTH)),
    (CONTAINER, "cloudflared", cloudflared("workspace-cloudflared")),
    (TUNNEL_CONFIG, "tunnel-config", tunnel_config(
        ("tracker.example.com", None, "http://work-tracker:8000"))),
    (DNS_RECORD, "tracker-dns", dns("tracker.example.com")),
    (COMMAND, "vps-firewall", firewall()),
    (COMMAND, "workspace-db-backup-cron", cron_file("workspace-db-backup", "0 3 * * *", "pg-backup.sh")),
    (COMMAND, "workspace-db-restore-drill-cron",
     cron_file("workspace-db-restore-drill", "0 4 1 * *", "pg-restore-drill.sh")),
    (R2_BUCKET, "backups-bucket", {"accountId": ACCOUNT, "name": "workspace-backend-backups"}),
    (API_TOKEN, "backups-token", bucket_token("workspace-backend-backups")),
])

R_STREAM: list[Res] = _with_pids_limits([
    (CONTAINER, "rstream-server", app(
        "rstream-server", "ghcr.io/example/rstream-server:2.3.0",
        envs=["NODE_ENV=production", "PORT=3000",
              secret("DATABASE_URL=postgresql://rstream:generated@rstream-db:5432/rstream"),
              "REDIS_URL=redis://rstream-redis:6379/0", secret("R2_ACCESS_KEY_ID=derived"),
              secret("R2_SECRET_ACCESS_KEY=derived")],
        health=["CMD", "wget", "-qO-", "http://127.0.0.1:3000/health"],
        volumes=[{"volumeName": "rstream-recordings", "containerPath": "/app/recordings"},
                 {"volumeName": "rstream-archives", "containerPath": "/app/archives"}])),
    (CONTAINER, "rstream-db", database(
        "rstream-db", "postgres:16.4-alpine", data="/var/lib/postgresql/data",
        volume="rstream-db-data", backup="rstream-db-backup", envs=_pg_env("rstream", "rstream"),
        health=PG_HEALTH)),
    # A cache: no volume, so nothing to back up.
    (CONTAINER, "rstream-redis", app("rstream-redis", "redis:7.2.5", envs=[],
                                     health=["CMD", "redis-cli", "ping"])),
    (CONTAINER, "cloudflared", cloudflared("rstream-cloudflared")),
    (TUNNEL_CONFIG, "tunnel-config", tunnel_config(("stream.example.com", None, "http://rstream-server:3000"))),
    (DNS_RECORD, "stream-dns", dns("stream.example.com")),
    (COMMAND, "vps-firewall", firewall()),
    (COMMAND, "rstream-db-backup-cron", cron_file("rstream-db-backup", "30 2 * * *", "pg-backup.sh")),
    (COMMAND, "rstream-archives-sync-cron",
     cron_file("rstream-archives-sync", "15 * * * *", "sync-dir-to-r2.sh")),
    (COMMAND, "rstream-recordings-sync-cron",
     cron_file("rstream-recordings-sync", "45 * * * *", "sync-dir-to-r2.sh")),
    (R2_BUCKET, "backups-bucket", {"accountId": ACCOUNT, "name": "rstream-backups"}),
    (API_TOKEN, "backups-token", bucket_token("rstream-backups")),
])

_RAILS_ENV = ["RAILS_ENV=production", secret("RAILS_MASTER_KEY=from-config"),
              secret("DATABASE_URL=postgis://shiojiri:generated@shiojiri-db:5432/shiojiri")]
SHIOJIRI: list[Res] = _with_pids_limits([
    (CONTAINER, "shiojiri-api", app(
        "shiojiri-api", "ghcr.io/example/shiojiri-api:3.1.0", envs=_RAILS_ENV,
        health=["CMD", "curl", "-fsS", "http://127.0.0.1:3000/up"])),
    (CONTAINER, "shiojiri-worker", app(
        "shiojiri-worker", "ghcr.io/example/shiojiri-api:3.1.0", envs=_RAILS_ENV,
        command=["bin/jobs"], health=["CMD", "pgrep", "-f", "solid-queue"])),
    (CONTAINER, "shiojiri-db", database(
        "shiojiri-db", "postgis/postgis:16-3.4", data="/var/lib/postgresql/data",
        volume="shiojiri-db-data", backup="shiojiri-db-backup",
        envs=_pg_env("shiojiri", "shiojiri"), health=PG_HEALTH)),
    (CONTAINER, "cloudflared", cloudflared("shiojiri-cloudflared")),
    (TUNNEL_CONFIG, "tunnel-config", tunnel_config(
        ("api.shiojiri-rainbow.app", None, "http://shiojiri-api:3000"))),
    (DNS_RECORD, "api-dns", dns("api.shiojiri-rainbow.app")),
    (COMMAND, "vps-firewall", firewall()),
    # Two schedules of one job: the label names the job, each cron file contains the name.
    (COMMAND, "shiojiri-db-backup-daily-cron",
     cron_file("shiojiri-db-backup-daily", "0 2 * * *", "pg-backup.sh")),
    (COMMAND, "shiojiri-db-backup-6h-cron",
     cron_file("shiojiri-db-backup-6h", "0 */6 * * *", "pg-backup.sh")),
    (COMMAND, "shiojiri-api-migrate", {
        "connection": FIREWALL["connection"],
        "create": ("docker run --rm --network shiojiri --env-file /dev/stdin "
                   "ghcr.io/example/shiojiri-api:3.1.0 bin/rails db:migrate"),
    }),
    (R2_BUCKET, "images-bucket", {"accountId": ACCOUNT, "name": "shiojiri-images"}),
    (R2_BUCKET, "backups-bucket", {"accountId": ACCOUNT, "name": "shiojiri-backups"}),
    (API_TOKEN, "backups-token", bucket_token("shiojiri-backups")),
])

DB_IMAGE_ID = "sha256:" + "5e" * 32
THINKRING: list[Res] = _with_pids_limits([
    (CONTAINER, "frontend", app(
        "thinkring-frontend", "ghcr.io/example/thinkring-frontend:1.0.3", envs=["NODE_ENV=production"],
        health=["CMD", "wget", "-qO-", "http://127.0.0.1:3000/"])),
    (CONTAINER, "backend", app(
        "thinkring-backend", "ghcr.io/example/thinkring-backend:1.0.3",
        envs=["DEBUG=False", secret("SECRET_KEY=generated"), secret("JWT_SECRET_KEY=generated"),
              "DB_NAME=thinkring", "DB_USER=thinkring", secret("DB_PASSWORD=generated"),
              "DB_HOST=db", "DB_PORT=5432", "ALLOWED_HOSTS=thinkring.example.com",
              "CORS_ALLOWED_ORIGINS=https://thinkring.example.com"],
        health=["CMD", "curl", "-fsS", "http://127.0.0.1:8000/api/v1/health/"])),
    # The container runs the image's id; the RemoteImage it depends on says it is postgres.
    (REMOTE_IMAGE, "db-image", {"name": "postgres:15.8", "keepLocally": True}),
    (CONTAINER, "db", database(
        "thinkring-db", DB_IMAGE_ID, data="/var/lib/postgresql/data", volume="thinkring-db-data",
        backup="thinkring-db-backup", envs=_pg_env("thinkring", "thinkring"), health=PG_HEALTH),
     ("db-image",)),
    (CONTAINER, "cloudflared", cloudflared("thinkring-cloudflared")),
    (TUNNEL_CONFIG, "tunnel-config", tunnel_config(
        ("thinkring.example.com", "/api/*", "http://thinkring-backend:8000"),
        ("thinkring.example.com", None, "http://thinkring-frontend:3000"))),
    (DNS_RECORD, "site-dns", dns("thinkring.example.com")),
    (COMMAND, "vps-firewall", firewall()),
    (COMMAND, "thinkring-db-backup-cron", cron_file("thinkring-db-backup", "0 2 * * *", "pg-backup.sh")),
    (COMMAND, "backend-post-deploy", {
        "connection": FIREWALL["connection"],
        "create": ("docker run --rm --network thinkring ghcr.io/example/thinkring-backend:1.0.3 "
                   "sh -c 'python manage.py migrate && python manage.py collectstatic --noinput'"),
    }),
    (R2_BUCKET, "backups-bucket", {"accountId": ACCOUNT, "name": "thinkring-backups"}),
    (API_TOKEN, "backups-token", bucket_token("thinkring-backups")),
])

JAMJAM: list[Res] = [(type_, name, inputs) for name, (type_, inputs) in BASELINES.items()]

SYSTEMS: dict[str, tuple[list[Res], dict[str, Any]]] = {
    "jamjam": (JAMJAM, {}),
    "workspace-backend": (WORKSPACE_BACKEND, {}),
    "r-stream": (R_STREAM, {}),
    "shiojiri-rainbow-seeker": (SHIOJIRI, {}),
    "thinkring": (THINKRING, {}),
}
"""System (its Pulumi project name) -> (its compliant production stack, the pack config its
project uses: none, the defaults fit every system)."""


def offline_resources(resources: list[Res], stack: str = "production",
                      project: str = "jamjam") -> list[SimpleNamespace]:
    """``resources`` in the shape tools.render returns (what tools.policy_check.check takes)."""
    def urn_of(type_: str, name: str) -> str:
        return f"urn:pulumi:{stack}::{project}::{type_}::{name}"

    return [SimpleNamespace(type=res[0], name=res[1], urn=urn_of(res[0], res[1]), inputs=res[2],
                            parent=None, provider=None,
                            options={"dependencies": [urn_of(t, n) for d in
                                                      (res[3] if len(res) > 3 else ())
                                                      for t, n, *_ in resources if n == d]})
            for res in resources]
