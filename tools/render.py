"""Render a stack of this program under Pulumi's mock runtime, with no cloud and no CLI.

The one render helper: tests, the offline plan (tools/plan.py) and the offline policy check all
call :func:`render`. It follows Pulumi's documented unit-test method (``set_mocks`` with the
real project and stack name) and records every resource registration: type, name, parent,
provider, the inputs exactly as the engine would receive them (camelCase, secrets wrapped)
and the resource options that change how Pulumi diffs and replaces.
"""

from __future__ import annotations

import base64
import hashlib
import json
import runpy
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pulumi  # noqa: E402
from pulumi.runtime import rpc, settings as runtime_settings  # noqa: E402
from pulumi.runtime.mocks import MockMonitor, Mocks, MockCallArgs, MockResourceArgs  # noqa: E402
from pulumi.runtime.stack import run_pulumi_func  # noqa: E402
from pulumi.runtime.sync_await import _sync_await  # noqa: E402

PROJECT = "jamjam"
NAMESPACE = "jamjam"
STACKS = ("production", "test")
SECRET_SIG = rpc._special_sig_key
SECRET_VALUE = rpc._special_secret_sig

# Documentation values (RFC 5737 addresses, obviously fake ids) that stand in for the keys
# only an operator can set; the plan lists which ones it used.
EXAMPLE_VALUES: dict[str, dict[str, str]] = {
    "production": {"vpsAddress": "203.0.113.10"},
    "test": {"vpsAddress": "203.0.113.20"},
}
EXAMPLE_COMMON = {
    "cloudflareAccountId": "0123456789abcdef0123456789abcdef",
    "cloudflareZoneId": "fedcba9876543210fedcba9876543210",
}
EXAMPLE_SECRETS = {
    # Shaped like a key (the settings check looks for PRIVATE KEY), but not one.
    "sshPrivateKey": "-----EXAMPLE OPENSSH PRIVATE KEY (offline plan stand-in)-----",
}


@dataclass(frozen=True)
class Resource:
    type: str
    name: str
    urn: str
    id: str
    custom: bool
    parent: str | None
    provider: str | None
    inputs: dict[str, Any]
    """camelCase, as the engine receives them; secret values wrapped as Pulumi's secret sig."""
    options: dict[str, Any]
    """deleteBeforeReplace, replaceOnChanges, ignoreChanges, dependencies (URNs)."""


@dataclass(frozen=True)
class RenderedStack:
    stack: str
    resources: tuple[Resource, ...]
    outputs: dict[str, Any]
    examples: dict[str, str] = field(default_factory=dict)
    """Operator-only keys that example values stood in for, key -> shown value."""

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def named(self, name: str) -> Resource:
        matches = [r for r in self.resources if r.name == name]
        if len(matches) != 1:
            raise KeyError(f"{len(matches)} resources named {name!r} in stack {self.stack}")
        return matches[0]


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and value.get(SECRET_SIG) == SECRET_VALUE


def reveal(value: Any) -> Any:
    """The same structure with every secret unwrapped (what a provider or policy sees)."""
    if is_secret(value):
        return reveal(value["value"])
    if isinstance(value, dict):
        return {k: reveal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [reveal(v) for v in value]
    return value


def _stable_id(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "jamjam-mock:" + ":".join(parts)))


class _Mocks(Mocks):
    """Deterministic stand-ins for what providers would compute, so two renders are identical."""

    def __init__(self, stack: str) -> None:
        self.stack = stack

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        ident = _stable_id(self.stack, args.typ, args.name)
        if args.typ == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(ident.encode()).digest()[: int(state.get("length", 32))]
            state["base64"] = base64.b64encode(raw).decode()
            state["hex"] = raw.hex()
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            state["imageId"] = "sha256:" + hashlib.sha256(str(state["name"]).encode()).hexdigest()
            state["repoDigest"] = state["imageId"]
        elif args.typ == "cloudflare:index/apiToken:ApiToken":
            state["value"] = f"mock-api-token-value-{self.stack}"
        elif args.typ.startswith("command:"):
            state.setdefault("stdout", "")
            state.setdefault("stderr", "")
        return ident, state

    def call(self, args: MockCallArgs) -> dict:
        if args.token == ("cloudflare:index/getZeroTrustTunnelCloudflaredToken:"
                          "getZeroTrustTunnelCloudflaredToken"):
            return {"accountId": args.args.get("accountId"), "tunnelId": args.args.get("tunnelId"),
                    "token": f"mock-tunnel-connector-token-{self.stack}"}
        if args.token == ("cloudflare:index/getApiTokenPermissionGroupsList:"
                          "getApiTokenPermissionGroupsList"):
            name = args.args.get("name")
            return {"results": [{"id": hashlib.md5(name.encode()).hexdigest(), "name": name,
                                 "category": "R2", "description": name, "isSelectable": True,
                                 "scopes": [args.args.get("scope")]}]}
        raise NotImplementedError(f"the offline render has no mock for the call {args.token}")


class _RecordingMonitor(MockMonitor):
    """MockMonitor that also keeps parent, provider and replacement options of each resource."""

    def __init__(self, mocks: Mocks) -> None:
        super().__init__(mocks)
        self.registrations: list[Resource] = []

    def RegisterResource(self, request):  # noqa: N802 (gRPC method name)
        response = super().RegisterResource(request)
        if request.type != "pulumi:pulumi:Stack":
            self.registrations.append(Resource(
                type=request.type,
                name=request.name,
                urn=response.urn,
                id=response.id,
                custom=bool(request.custom),
                parent=request.parent or None,
                provider=request.provider or None,
                inputs=rpc.deserialize_properties(request.object, keep_unknowns=True),
                options={
                    "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "ignoreChanges": list(request.ignoreChanges),
                    "dependencies": sorted(request.dependencies),
                },
            ))
        return response


def stack_config(stack: str) -> dict[str, Any]:
    """The ``config:`` map of Pulumi.<stack>.yaml."""
    path = ROOT / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise SystemExit(f"no stack file {path.name}; stacks here: {', '.join(STACKS)}")
    return (yaml.safe_load(path.read_text()) or {}).get("config") or {}


def _as_config_string(value: Any) -> str:
    # The engine hands the program every value as a string, objects as JSON.
    return value if isinstance(value, str) else json.dumps(value)


def render(stack: str, overrides: Mapping[str, Any] | None = None,
           remove: Iterable[str] = (), use_examples: bool = True) -> RenderedStack:
    """Run the program for ``stack`` under mocks and return what it registers.

    ``overrides`` (short keys, e.g. ``{"echoDelayMs": 0}``) and ``remove`` change the stack
    config for this render only; ``{"secret": value}`` marks an override as a secret. Operator
    keys missing from the stack file are filled with example values unless ``use_examples``
    is False. Raises whatever the program raises (a ``SettingsError`` for bad config).
    """
    raw = stack_config(stack)
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        if isinstance(value, dict) and "secure" in value:
            # Encrypted values need the stack's secrets provider, which is not here.
            continue
        config[key] = _as_config_string(value)
    examples: dict[str, str] = {}
    if use_examples:
        for key, value in {**EXAMPLE_COMMON, **EXAMPLE_VALUES.get(stack, {})}.items():
            if f"{NAMESPACE}:{key}" not in config:
                config[f"{NAMESPACE}:{key}"] = value
                examples[key] = value
        for key, value in EXAMPLE_SECRETS.items():
            if f"{NAMESPACE}:{key}" not in config:
                config[f"{NAMESPACE}:{key}"] = value
                secret_keys.append(f"{NAMESPACE}:{key}")
                examples[key] = "[secret]"
    for key, value in (overrides or {}).items():
        full = f"{NAMESPACE}:{key}"
        if isinstance(value, dict) and set(value) == {"secret"}:
            config[full] = _as_config_string(value["secret"])
            secret_keys.append(full)
        else:
            config[full] = _as_config_string(value)
            if full in secret_keys:
                secret_keys.remove(full)
        examples.pop(key, None)
    for key in remove:
        config.pop(f"{NAMESPACE}:{key}", None)
        examples.pop(key, None)

    mocks = _Mocks(stack)
    monitor = _RecordingMonitor(mocks)
    runtime_settings.set_root_resource(None)
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False,
                             monitor=monitor)
    root = runtime_settings.get_root_resource()
    root.outputs = {}
    program = str(ROOT / "__main__.py")
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(program, run_name="__main__")))
    except Exception as err:
        # Lets a caller (the settings tests) prove a bad value stopped the program early.
        err.registered = tuple(monitor.registrations)  # type: ignore[attr-defined]
        raise
    outputs = {name: _resolve(value) for name, value in root.outputs.items()}
    return RenderedStack(stack=stack, resources=tuple(monitor.registrations), outputs=outputs,
                         examples=examples)


def _resolve(value: Any) -> Any:
    output = pulumi.Output.from_input(value)
    resolved = _sync_await(output.future())
    if _sync_await(output.is_secret()):
        return {SECRET_SIG: SECRET_VALUE, "value": resolved}
    return resolved
