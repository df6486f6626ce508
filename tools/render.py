"""Render a stack of a Pulumi project under Pulumi's mock runtime, with no cloud and no CLI.

The one render helper: tests, the offline plan (tools/plan.py) and the offline policy check all
call :func:`render`. It follows Pulumi's documented unit-test method (``set_mocks`` with the
real project and stack name) and records every resource registration: type, name, parent,
provider, the inputs exactly as the engine would receive them (camelCase, secrets wrapped)
and the resource options that change how Pulumi diffs and replaces.

Any project directory works (jamjam's, this repository's root, is the default):

- ``Pulumi.yaml`` gives the project name, which is also its config namespace, the program
  (``main``, default ``__main__.py``) and the project-level ``config:`` block, whose defaults
  are applied as the CLI applies them: to a key the stack does not set, as a whole value;
- every ``Pulumi.<stack>.yaml`` beside it is a stack;
- ``offline.yaml`` (optional) holds stand-ins for the keys only an operator can set, used where
  the stack file lacks them: ``standIns`` and ``secretStandIns``, each a map from a stack name
  (or ``"*"`` for every stack) to ``{key: value}``. The plan lists each stand-in it used.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import importlib
import json
import os
import pkgutil
import re
import runpy
import shlex
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
from pulumi.runtime.mocks import MockMonitor, Mocks, MockCallArgs, MockResourceArgs  # noqa: E402

import jamjam_infra  # noqa: E402
from tools import _pulumi_compat as compat  # noqa: E402


def _import_library() -> None:
    """Import every module of the component library, and so the provider SDKs behind it
    (pulumi_cloudflare alone is most of a plan's time), before the freeze below; a program
    would import them during its first render."""
    for module in pkgutil.iter_modules(jamjam_infra.__path__, f"{jamjam_infra.__name__}."):
        importlib.import_module(module.name)


_import_library()
# What is alive now (the SDKs: a few hundred thousand objects, thousands of classes) lives as
# long as the process. Frozen, the collector no longer walks it on each full collection during
# a render (that was half of a render's time) nor frees it one object at a time when the
# process exits (a third of a second; the OS takes the memory back in one go).
gc.freeze()
# Nothing here reads the stack trace the SDK captures for each resource (see the compat).
compat.set_source_positions(False)

SECRET_SIG = compat.SECRET_SIG
SECRET_VALUE = compat.SECRET_VALUE
ALL_STACKS = "*"


@dataclass(frozen=True)
class Project:
    """What render needs from a project directory."""
    dir: Path
    name: str
    """Project name; also the namespace of its config keys."""
    program: Path
    config: dict[str, dict[str, Any]]
    """Pulumi.yaml's ``config:`` block, shorthand values expanded to declarations."""
    stand_ins: dict[str, dict[str, Any]]
    secret_stand_ins: dict[str, dict[str, Any]]

    @property
    def stacks(self) -> tuple[str, ...]:
        """The stacks whose Pulumi.<stack>.yaml is present, sorted."""
        return tuple(sorted(p.name[len("Pulumi."):-len(".yaml")]
                            for p in self.dir.glob("Pulumi.*.yaml")))

    def stand_ins_for(self, stack: str, secret: bool = False) -> dict[str, Any]:
        source = self.secret_stand_ins if secret else self.stand_ins
        return {**source.get(ALL_STACKS, {}), **source.get(stack, {})}


class ProjectError(Exception):
    """A project directory that cannot be rendered (no Pulumi.yaml, no such stack...)."""


# libyaml's parser when PyYAML was built with it (the wheels are): the same documents, errors
# and marks as the pure-Python one, at a tenth of the time.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(), Loader=_YAML_LOADER)  # noqa: S506 (a safe loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ProjectError(f"{path}:{where}: not valid YAML ({getattr(err, 'problem', err)})"
                           ) from None


def _stand_in_table(path: Path, document: Mapping[str, Any], key: str) -> dict[str, dict]:
    table = document.get(key) or {}
    if not isinstance(table, Mapping) or not all(isinstance(v, Mapping) for v in table.values()):
        raise ProjectError(f"{path}: {key} must map a stack name (or \"*\") to key: value pairs")
    return {str(stack): dict(values) for stack, values in table.items()}


def load_project(project_dir: Path | str = ROOT) -> Project:
    """Read ``<project_dir>/Pulumi.yaml`` (and ``offline.yaml`` if present)."""
    project_dir = Path(project_dir).resolve()
    path = project_dir / "Pulumi.yaml"
    if not path.exists():
        raise ProjectError(f"{project_dir}: no Pulumi.yaml; pass the directory of a Pulumi "
                           "project")
    document = _yaml(path) or {}
    name = document.get("name")
    if not isinstance(name, str) or not name:
        raise ProjectError(f"{path}: needs a name")
    config: dict[str, dict[str, Any]] = {}
    for key, value in (document.get("config") or {}).items():
        # The CLI's shorthand (RewriteShorthandConfigValues): a plain value of a key in the
        # project's namespace is its default; of another namespace (aws:region), its value.
        if isinstance(value, Mapping):
            config[key] = dict(value)
        elif ":" not in key or key.startswith(f"{name}:"):
            config[key] = {"default": value}
        else:
            config[key] = {"value": value}
    main = project_dir / str(document.get("main") or ".")
    program = main / "__main__.py" if main.is_dir() else main
    offline_path = project_dir / "offline.yaml"
    offline = (_yaml(offline_path) or {}) if offline_path.exists() else {}
    return Project(
        dir=project_dir, name=name, program=program, config=config,
        stand_ins=_stand_in_table(offline_path, offline, "standIns"),
        secret_stand_ins=_stand_in_table(offline_path, offline, "secretStandIns"),
    )


_JAMJAM = load_project(ROOT)
PROJECT = _JAMJAM.name
NAMESPACE = _JAMJAM.name
STACKS = _JAMJAM.stacks
# jamjam's stand-ins, under the names other modules (the policy fixtures) import.
EXAMPLE_COMMON: dict[str, str] = {k: str(v) for k, v in
                                  _JAMJAM.stand_ins.get(ALL_STACKS, {}).items()}
EXAMPLE_VALUES: dict[str, dict[str, str]] = {
    stack: {k: str(v) for k, v in values.items()}
    for stack, values in _JAMJAM.stand_ins.items() if stack != ALL_STACKS}
EXAMPLE_SECRETS: dict[str, str] = {k: str(v) for k, v in
                                   _JAMJAM.secret_stand_ins.get(ALL_STACKS, {}).items()}


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
    """deleteBeforeReplace, replaceOnChanges, ignoreChanges, dependencies (URNs),
    retainOnDelete."""


@dataclass(frozen=True)
class RenderedStack:
    stack: str
    resources: tuple[Resource, ...]
    outputs: dict[str, Any]
    examples: dict[str, str] = field(default_factory=dict)
    """Operator-only keys that stand-ins (offline.yaml) filled, key -> shown value."""
    project: str = PROJECT
    stand_ins: dict[str, str] = field(default_factory=dict)
    """Values the mock runtime made up where a provider would compute them (ids, image
    digests, random bytes, token values), value -> what it stands for."""

    def of_type(self, type_: str) -> list[Resource]:
        return [r for r in self.resources if r.type == type_]

    def host_files(self) -> dict[str, Any]:
        """Path -> content (the command's stdin, as rendered) of every file the program puts on
        the host, read from the commands components/_remote.py spells: remote_file stages
        under <path>.pulumi-new, remote_script installs the script itself."""
        found = {}
        for resource in self.of_type("command:remote:Command"):
            create = str(resource.inputs.get("create", ""))
            match = (re.search(r"/dev/stdin (\S+)\.pulumi-new", create)
                     or re.search(r"install -D -m 0755 /dev/stdin (\S+)", create))
            if match:
                found[match.group(1)] = resource.inputs.get("stdin")
        return found

    def post_deploy_steps(self) -> list[tuple[Resource, list[dict], list[list[str]]]]:
        """(command, the inputs of the containers that wait for it, the `docker run` argv
        tails after the image) for every command a container depends on that runs an image it
        depends on with `docker run`: the library's post-deploy step, found by what it does,
        not by its name."""
        by_urn = {r.urn: r for r in self.resources}
        found = []
        for command in self.of_type("command:remote:Command"):
            create = reveal(command.inputs).get("create")
            if not isinstance(create, str) or "docker run" not in create:
                continue
            waiting = [reveal(r.inputs) for r in self.of_type("docker:index/container:Container")
                       if command.urn in r.options.get("dependencies", [])]
            if not waiting:
                continue
            images = {reveal(by_urn[u].inputs)["name"]
                      for u in command.options.get("dependencies", [])
                      if u in by_urn and by_urn[u].type == "docker:index/remoteImage:RemoteImage"}
            script = shlex.split(create)[-1] if create.startswith("bash -c") else create
            runs = []
            for line in script.splitlines():
                if "docker run" not in line:
                    continue
                argv = shlex.split(line)
                at = next((i for i, a in enumerate(argv) if a in images), None)
                if at is not None:
                    runs.append(argv[at + 1:])
            found.append((command, waiting, runs))
        return found

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


class OfflineMocks(Mocks):
    """Deterministic stand-ins for what providers would compute, so two renders are identical.

    Each made-up value is kept in ``made_up`` with what it stands for, so the plan can label
    it: a real preview shows these as unknown until the resource exists."""

    def __init__(self, stack: str, preview: bool = False) -> None:
        self.stack = stack
        self.preview = preview
        self.made_up: dict[str, str] = {}

    def _made_up(self, value: str, what: str) -> str:
        self.made_up.setdefault(value, what)
        return value

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        state = dict(args.inputs)
        if self.preview:
            # A first preview: nothing exists yet, so the engine knows only the inputs. The SDK
            # resolves every output the state leaves out, and an empty id, as unknown.
            return "", state
        ident = self._made_up(_stable_id(self.stack, args.typ, args.name), f"id of {args.name}")
        if args.typ == "random:index/randomBytes:RandomBytes":
            raw = hashlib.sha256(ident.encode()).digest()[: int(state.get("length", 32))]
            state["base64"] = self._made_up(base64.b64encode(raw).decode(),
                                            f"random bytes of {args.name}")
            state["hex"] = self._made_up(raw.hex(), f"random bytes of {args.name}")
        elif args.typ == "random:index/randomPassword:RandomPassword":
            # Letters and digits (what the programs ask for), derived from the id: stable.
            digest = hashlib.sha256(("password:" + ident).encode()).hexdigest()
            state["result"] = self._made_up(digest[: int(state.get("length", 32))],
                                            f"random password {args.name}")
        elif args.typ == "docker:index/remoteImage:RemoteImage":
            state["imageId"] = self._made_up(
                "sha256:" + hashlib.sha256(str(state["name"]).encode()).hexdigest(),
                f"digest of {state['name']}")
            state["repoDigest"] = state["imageId"]
        elif args.typ == "cloudflare:index/apiToken:ApiToken":
            state["value"] = self._made_up(f"mock-api-token-value-{self.stack}",
                                           f"value of API token {args.name}")
        elif args.typ.startswith("command:"):
            state.setdefault("stdout", "")
            state.setdefault("stderr", "")
        return ident, state

    def call(self, args: MockCallArgs) -> dict:
        if args.token == ("cloudflare:index/getZeroTrustTunnelCloudflaredToken:"
                          "getZeroTrustTunnelCloudflaredToken"):
            token = self._made_up(f"mock-tunnel-connector-token-{self.stack}",
                                  "tunnel connector token")
            return {"accountId": args.args.get("accountId"), "tunnelId": args.args.get("tunnelId"),
                    "token": token}
        if args.token == ("cloudflare:index/getApiTokenPermissionGroupsList:"
                          "getApiTokenPermissionGroupsList"):
            name = args.args.get("name")
            group = self._made_up(hashlib.md5(name.encode()).hexdigest(),
                                  f"id of permission group {name}")
            return {"results": [{"id": group, "name": name,
                                 "category": "R2", "description": name, "isSelectable": True,
                                 "scopes": [args.args.get("scope")]}]}
        raise NotImplementedError(f"the offline render has no mock for the call {args.token}")


class RecordingMonitor(MockMonitor):
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
                inputs=compat.deserialize_properties(request.object),
                options={
                    "deleteBeforeReplace": bool(request.deleteBeforeReplace),
                    "replaceOnChanges": list(request.replaceOnChanges),
                    "ignoreChanges": list(request.ignoreChanges),
                    "dependencies": sorted(request.dependencies),
                    "retainOnDelete": bool(request.retainOnDelete),
                },
            ))
        return response


def stack_config(stack: str, project_dir: Path | str = ROOT) -> dict[str, Any]:
    """The ``config:`` map of Pulumi.<stack>.yaml."""
    return _stack_config(load_project(project_dir), stack)


def _stack_config(project: Project, stack: str) -> dict[str, Any]:
    path = project.dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise ProjectError(f"no stack file {path.name} in {project.dir}; stacks there: "
                           f"{', '.join(project.stacks) or 'none'}")
    document = _yaml(path) or {}
    config = document.get("config") or {}
    if not isinstance(config, Mapping):
        raise ProjectError(f"{path}: config must be a map of key: value")
    return dict(config)


def config_string(value: Any) -> str:
    """A stack-config value as the engine hands it to the program: a string, objects as JSON."""
    return value if isinstance(value, str) else json.dumps(value)


def _full_key(namespace: str, key: str) -> str:
    return key if ":" in key else f"{namespace}:{key}"


def _isolate(project: Project) -> None:
    """Let a project import its own modules when another project ran before in this process.

    Two projects may each have a module of the same name (``settings``); Python would hand the
    second one the first's from its cache. A cached module is dropped when the project about
    to run has a file of that name and the cached one is not that file (a project nested in
    another's directory, examples/<name>/, has its own)."""
    # The project's own top-level names, listed once: asking the file system about each of
    # the thousands of cached SDK modules cost a fifth of a render.
    own_names = {entry.name[:-3] if entry.name.endswith(".py") else entry.name
                 for entry in os.scandir(project.dir)
                 if entry.name.endswith(".py") or entry.is_dir()}
    for name, module in list(sys.modules.items()):
        top = name.split(".")[0]
        if top not in own_names:
            continue
        own_file, own_package = project.dir / f"{top}.py", project.dir / top
        if not (own_file.exists() or own_package.is_dir()):
            continue
        origin = getattr(module, "__file__", None)
        if not origin:
            continue
        origin_path = Path(origin).resolve()
        if origin_path != own_file.resolve() and own_package.resolve() not in origin_path.parents:
            del sys.modules[name]


def fill_nested(config: dict[str, str], namespace: str, key: str, value: Any) -> bool:
    """Set ``key`` (``object.field``) inside the object the config holds (or a new one) when
    the field is unset; True when it was. A stand-in for one field of an object the stack file
    sets in part (``ssh.hostKey`` beside ``ssh.user``)."""
    top, field = key.split(".", 1)
    full = _full_key(namespace, top)
    try:
        current = json.loads(config[full]) if full in config else {}
    except json.JSONDecodeError:
        return False
    if not isinstance(current, dict) or current.get(field) not in (None, ""):
        return False
    config[full] = config_string({**current, field: value})
    return True


def engine_config(stack: str, overrides: Mapping[str, Any] | None = None,
                  remove: Iterable[str] = (), use_examples: bool = True,
                  project: Project | None = None) -> tuple[dict[str, str], list[str],
                                                           dict[str, str]]:
    """The config the engine would hand the program for ``stack``: (``namespace:key`` ->
    string, the secret keys, the stand-ins used as key -> shown value). See :func:`render`."""
    project = project or _JAMJAM
    namespace = project.name
    raw = _stack_config(project, stack)
    config: dict[str, str] = {}
    secret_keys: list[str] = []
    for key, value in raw.items():
        if isinstance(value, dict) and "secure" in value:
            # Encrypted values need the stack's secrets provider, which is not here.
            continue
        config[_full_key(namespace, key)] = config_string(value)
    examples: dict[str, str] = {}
    nested: dict[str, Any] = {}
    if use_examples:
        for secret in (False, True):
            for key, value in project.stand_ins_for(stack, secret).items():
                if "." in key:
                    # A field inside an object the stack file may set (ssh.hostKey): filled
                    # once the stack's own values and the overrides are known.
                    nested[key] = value
                    continue
                full = _full_key(namespace, key)
                if full not in config:
                    config[full] = config_string(value)
                    examples[key] = "[secret]" if secret else str(value)
                    if secret:
                        secret_keys.append(full)
    for key, value in (overrides or {}).items():
        full = _full_key(namespace, key)
        if isinstance(value, dict) and set(value) == {"secret"}:
            config[full] = config_string(value["secret"])
            secret_keys.append(full)
        else:
            config[full] = config_string(value)
            if full in secret_keys:
                secret_keys.remove(full)
        examples.pop(key, None)
    for key in remove:
        config.pop(_full_key(namespace, key), None)
        examples.pop(key, None)
    for key, value in nested.items():
        if key not in remove and key.split(".", 1)[0] not in remove and \
                fill_nested(config, namespace, key, value):
            examples[key] = str(value)
    for key, declaration in project.config.items():
        # pkg/workspace/config.go mergeConfig: a default (or value) fills a key the stack
        # lacks, whole; a key the stack sets is kept as it is, never merged with the default.
        full = _full_key(namespace, key)
        for attribute in ("default", "value"):
            if full not in config and declaration.get(attribute) is not None:
                config[full] = config_string(declaration[attribute])
    return config, secret_keys, examples


def render(stack: str, overrides: Mapping[str, Any] | None = None,
           remove: Iterable[str] = (), use_examples: bool = True,
           project_dir: Path | str = ROOT, preview: bool = False) -> RenderedStack:
    """Run the program of ``project_dir`` for ``stack`` under mocks; return what it registers.

    ``overrides`` (short keys, e.g. ``{"echoDelayMs": 0}``) and ``remove`` change the stack
    config for this render only; ``{"secret": value}`` marks an override as a secret. Operator
    keys missing from the stack file are filled with offline.yaml's stand-ins unless
    ``use_examples`` is False; then project-level defaults fill what is still unset. Raises
    whatever the program raises (a ``SettingsError`` for bad config), and ProjectError for a
    project or stack that is not there.

    ``preview=True`` renders the stack's first ``pulumi preview``: no resource exists yet, so
    what a provider would compute (ids, image ids, token values, random bytes, command output)
    is unknown, and so is every input built from it; inputs keep the engine's unknown marker.
    """
    project = load_project(project_dir)
    config, secret_keys, examples = engine_config(stack, overrides, remove, use_examples,
                                                  project)
    mocks = OfflineMocks(stack, preview)
    monitor = RecordingMonitor(mocks)
    compat.reset_root_resource()
    pulumi.runtime.set_all_config(config, secret_keys)
    pulumi.runtime.set_mocks(mocks, project=project.name, stack=stack, preview=preview,
                             monitor=monitor)
    root = compat.root_resource()
    root.outputs = {}
    _isolate(project)
    added_path = str(project.dir) not in sys.path
    if added_path:
        sys.path.insert(0, str(project.dir))
    try:
        compat.run_program(lambda: runpy.run_path(str(project.program), run_name="__main__"))
    except Exception as err:
        # Lets a caller (the settings tests) prove a bad value stopped the program early.
        err.registered = tuple(monitor.registrations)  # type: ignore[attr-defined]
        raise
    finally:
        if added_path:
            sys.path.remove(str(project.dir))
    outputs = {name: _resolve(value) for name, value in root.outputs.items()}
    return RenderedStack(stack=stack, resources=tuple(monitor.registrations), outputs=outputs,
                         examples=examples, project=project.name, stand_ins=dict(mocks.made_up))


def _resolve(value: Any) -> Any:
    output = pulumi.Output.from_input(value)
    resolved = compat.sync_await(output.future())
    if compat.sync_await(output.is_secret()):
        return {SECRET_SIG: SECRET_VALUE, "value": resolved}
    return resolved
