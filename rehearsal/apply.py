"""The rendered plan applied the way the providers would apply it, by resource TYPE only.

- ``command:remote:Command``: its ``create`` (``update`` on a change, ``delete`` on destroy)
  over real SSH as the rendered connection user, with the rendered stdin, secrets included.
- ``docker:*``: through the Docker Engine API of the engine the rendered provider points at
  (``ssh://user@host``), reached over SSH as that user, with every rendered input mapped to the
  field the provider sets. An input this module does not know fails the rehearsal: a field the
  library adds must be rehearsed, not silently dropped.
- ``cloudflare:*``, ``random:*`` and providers: recorded, not applied (there is no cloud here).

Resource names are never looked at: the component library is free to rename everything.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import http.client
import json
import re
import shlex
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import quote, urlencode

from jamjam_infra.host import START_INTERVAL_API, api_version
from rehearsal.engine import RehearsalError, run, wait_for
from rehearsal.images import import_standin, standin_for
from rehearsal.vps import Vps
from tools.render import RenderedStack, Resource, reveal

RECORDED_PREFIXES = ("cloudflare:", "random:", "pulumi:providers:")
COMMAND = "command:remote:Command"
CONTAINER = "docker:index/container:Container"
IMAGE = "docker:index/remoteImage:RemoteImage"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
DOCKER_PROVIDER = "pulumi:providers:docker"
# At most this many resources in flight at once (the engine's default is unbounded; this keeps
# a 2-core machine responsive while still overlapping the slow waits).
PARALLEL = 8

COMMAND_KEYS = {"connection", "create", "update", "delete", "stdin", "triggers", "environment",
                "logging", "addPreviousOutputInEnv"}
CONNECTION_KEYS = {"host", "port", "user", "privateKey", "hostKey", "dialErrorLimit",
                   "perDialTimeout"}
IMAGE_KEYS = {"name", "keepLocally", "forceRemove", "pullTriggers", "triggers", "platform"}
NETWORK_KEYS = {"name", "driver", "options", "internal", "attachable", "labels", "ipv6",
                "ipamConfigs", "ipamDriver", "checkDuplicate"}
VOLUME_KEYS = {"name", "driver", "driverOpts", "labels"}
# How the provider behaves rather than what the container is: handled in _create_container.
CONTAINER_BEHAVIOUR_KEYS = {"mustRun", "start", "wait", "waitTimeout", "destroyGraceSeconds",
                            "rm", "attach", "logs", "removeVolumes",
                            "containerReadRefreshTimeoutMilliseconds", "name", "image"}


def duration_ns(value: Any) -> int:
    """A Docker duration string of the provider ("30s", "1m30s", "500ms") in nanoseconds, as the
    engine API takes it; a value without a unit is an error, not a guess."""
    units = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
             "h": 3_600_000_000_000}
    text, total, number = str(value), 0, ""
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = text[i:i + 2] if text[i:i + 2] in units else ch
        if unit not in units or not number:
            raise RehearsalError(f"cannot read the duration {value!r}")
        total += int(float(number) * units[unit])
        number = ""
        i += len(unit)
    if number:
        raise RehearsalError(f"the duration {value!r} has no unit")
    return total


def _labels(items: list[dict] | None) -> dict[str, str]:
    return {item["label"]: item["value"] for item in items or []}


def _mb(value: Any) -> int:
    return int(value) * 1024 * 1024


def _same(value: Any) -> Any:
    return value


# Inputs the provider copies into one field of the create body ("body") or of its HostConfig
# ("host"), converted; the inputs that need more than a copy are handled one by one below.
_PLAIN_INPUTS: dict[str, tuple[str, str, Any]] = {
    "command": ("body", "Cmd", list),
    "entrypoints": ("body", "Entrypoint", list),
    "envs": ("body", "Env", list),
    "user": ("body", "User", _same),
    "hostname": ("body", "Hostname", _same),
    "domainname": ("body", "Domainname", _same),
    "workingDir": ("body", "WorkingDir", _same),
    "stopSignal": ("body", "StopSignal", _same),
    "stopTimeout": ("body", "StopTimeout", int),
    "networkMode": ("host", "NetworkMode", _same),
    "securityOpts": ("host", "SecurityOpt", list),
    "memory": ("host", "Memory", _mb),
    "memoryReservation": ("host", "MemoryReservation", _mb),
    "shmSize": ("host", "ShmSize", _mb),
    "pidsLimit": ("host", "PidsLimit", int),
    "cpuShares": ("host", "CpuShares", int),
    "init": ("host", "Init", bool),
    "readOnly": ("host", "ReadonlyRootfs", bool),
    "privileged": ("host", "Privileged", bool),
    "dns": ("host", "Dns", list),
    "groupAdds": ("host", "GroupAdd", list),
    "tty": ("body", "Tty", bool),
    "stdinOpen": ("body", "OpenStdin", bool),
}


def container_body(inputs: dict[str, Any], image_id: str) -> tuple[dict, list[dict]]:
    """The engine API's create body for a container's provider inputs, and the networks to
    connect it to after: each supported input lands where the docker provider puts it."""
    body: dict[str, Any] = {"Image": image_id, "Labels": {}}
    host: dict[str, Any] = {}
    networks: list[dict] = []
    for key, value in inputs.items():
        if key in CONTAINER_BEHAVIOUR_KEYS:
            continue
        if key in _PLAIN_INPUTS:
            section, field, convert = _PLAIN_INPUTS[key]
            (body if section == "body" else host)[field] = convert(value)
        elif key == "labels":
            body["Labels"].update(_labels(value))
        elif key == "healthcheck":
            unknown = set(value) - {"tests", "interval", "timeout", "startPeriod", "retries",
                                    "startInterval"}
            if unknown:
                raise RehearsalError(f"healthcheck input(s) {sorted(unknown)} are not rehearsed")
            hc = {"Test": list(value["tests"])}
            for src, dst in (("interval", "Interval"), ("timeout", "Timeout"),
                             ("startPeriod", "StartPeriod"), ("startInterval", "StartInterval")):
                if value.get(src) not in (None, "", "0s"):
                    hc[dst] = duration_ns(value[src])
            if value.get("retries") is not None:
                hc["Retries"] = int(value["retries"])
            body["Healthcheck"] = hc
        elif key == "restart":
            host["RestartPolicy"] = {"Name": value,
                                     "MaximumRetryCount": int(inputs.get("maxRetryCount", 0))}
        elif key == "maxRetryCount":
            continue
        elif key == "logDriver":
            host.setdefault("LogConfig", {})["Type"] = value
        elif key == "logOpts":
            host.setdefault("LogConfig", {})["Config"] = {k: str(v) for k, v in value.items()}
        elif key == "ports":
            exposed, bindings = {}, {}
            for port in value:
                proto = port.get("protocol", "tcp")
                spec = f"{int(port['internal'])}/{proto}"
                exposed[spec] = {}
                if port.get("external") is not None:
                    bindings.setdefault(spec, []).append(
                        {"HostIp": port.get("ip", "") if port.get("ip") != "0.0.0.0" else "",
                         "HostPort": str(int(port["external"]))})
            body["ExposedPorts"] = exposed
            host["PortBindings"] = bindings
        elif key == "networksAdvanced":
            networks = [dict(n) for n in value]
        elif key == "capabilities":
            host["CapAdd"] = list(value.get("adds") or []) or None
            host["CapDrop"] = list(value.get("drops") or []) or None
        elif key == "memorySwap":
            host["MemorySwap"] = -1 if int(value) < 0 else _mb(value)
        elif key == "cpus":
            host["NanoCpus"] = int(float(value) * 1e9)
        elif key == "tmpfs":
            host["Tmpfs"] = {path: opts or "" for path, opts in value.items()}
        elif key == "ulimits":
            host["Ulimits"] = [{"Name": u["name"], "Soft": int(u["soft"]), "Hard": int(u["hard"])}
                               for u in value]
        elif key == "sysctls":
            host["Sysctls"] = {k: str(v) for k, v in value.items()}
        elif key == "hosts":
            host["ExtraHosts"] = [f"{h['host']}:{h['ip']}" for h in value]
        elif key == "volumes":
            binds = []
            for vol in value:
                source = vol.get("volumeName") or vol.get("hostPath")
                if not source or vol.get("fromContainer"):
                    raise RehearsalError(f"volume {vol} is not rehearsed (needs volumeName or hostPath)")
                binds.append(f"{source}:{vol['containerPath']}" + (":ro" if vol.get("readOnly") else ""))
            host["Binds"] = binds
        elif key == "mounts":
            mounts = []
            for m in value:
                unknown = set(m) - {"target", "type", "source", "readOnly", "tmpfsOptions"}
                if unknown:
                    raise RehearsalError(f"mount option(s) {sorted(unknown)} are not rehearsed")
                mount = {"Target": m["target"], "Type": m["type"], "ReadOnly": bool(m.get("readOnly"))}
                if m.get("source"):
                    mount["Source"] = m["source"]
                if m.get("tmpfsOptions"):
                    t = m["tmpfsOptions"]
                    mount["TmpfsOptions"] = {k: v for k, v in (("SizeBytes", t.get("sizeBytes")),
                                                               ("Mode", t.get("mode"))) if v is not None}
                mounts.append(mount)
            host["Mounts"] = mounts
        else:
            raise RehearsalError(f"container input {key!r} is not rehearsed; teach "
                                 f"rehearsal/apply.py how the provider passes it to the engine")
    if networks and "NetworkMode" not in host:
        host["NetworkMode"] = networks[0]["name"]
    body["HostConfig"] = host
    if networks:
        first = networks[0]
        body["NetworkingConfig"] = {"EndpointsConfig": {first["name"]: _endpoint(first)}}
    return body, networks[1:]


def _endpoint(network: dict) -> dict:
    unknown = set(network) - {"name", "aliases", "ipv4Address", "ipv6Address"}
    if unknown:
        raise RehearsalError(f"networksAdvanced input(s) {sorted(unknown)} are not rehearsed")
    endpoint: dict[str, Any] = {"Aliases": list(network.get("aliases") or [])}
    if network.get("ipv4Address") or network.get("ipv6Address"):
        endpoint["IPAMConfig"] = {k: v for k, v in (("IPv4Address", network.get("ipv4Address")),
                                                    ("IPv6Address", network.get("ipv6Address"))) if v}
    return endpoint


class DockerApi:
    """The Docker Engine API over a unix socket (here: the VPS's socket forwarded over SSH)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def request(self, method: str, url: str, body: Any = None, query: dict | None = None,
                ok: tuple[int, ...] = (200, 201, 204, 304), timeout: float = 60) -> Any:
        conn = http.client.HTTPConnection("docker", timeout=timeout)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(str(self.path))
        conn.sock = sock
        if query:
            url += "?" + urlencode(query)
        payload = json.dumps(body).encode() if body is not None else None
        conn.request(method, url, body=payload,
                     headers={"Content-Type": "application/json"} if payload else {})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        if response.status not in ok:
            try:
                message = json.loads(data).get("message", data.decode())
            except ValueError:
                message = data.decode(errors="replace")
            raise RehearsalError(f"docker API {method} {url}: {response.status} {message}")
        if not data:
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode(errors="replace")

    def inspect(self, name: str) -> dict | None:
        try:
            return self.request("GET", f"/containers/{quote(name)}/json", ok=(200,))
        except RehearsalError as err:
            if " 404 " in str(err):
                return None
            raise


class Offline(RehearsalError):
    """A command needed a host outside this machine's reach (only Debian's mirror is)."""

    def __init__(self, host: str, message: str) -> None:
        super().__init__(message)
        self.host = host


UNRESOLVED = re.compile(r"(?:Could not resolve host|Temporary failure resolving|"
                        r"Could not resolve)[: ']+([A-Za-z0-9][A-Za-z0-9.-]+\.[A-Za-z]+)")


@dataclass
class Outcome:
    resource: Resource
    action: str            # create, update, replace, delete, retain, record, same
    seconds: float
    detail: str = ""
    # Wall-clock time it finished: the VPS shares this machine's clock, so it compares with
    # the engine's own timestamps (a post-deploy command ending before its container's Created).
    ended: float = field(default_factory=time.time)


@dataclass
class State:
    """What was applied, per URN: the revealed inputs and what the engine made of them."""
    inputs: dict[str, dict] = field(default_factory=dict)
    outputs: dict[str, dict] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    types: dict[str, str] = field(default_factory=dict)
    options: dict[str, dict] = field(default_factory=dict)


def dependency_map(stack: RenderedStack) -> dict[str, set[str]]:
    """URN -> every URN it waits for; a dependency on a component means on all of its
    descendants (as the engine treats it)."""
    by_urn = {r.urn: r for r in stack.resources}
    children: dict[str, list[str]] = {}
    for r in stack.resources:
        if r.parent:
            children.setdefault(r.parent, []).append(r.urn)

    def expand(urn: str) -> set[str]:
        out = {urn}
        for child in children.get(urn, []):
            out |= expand(child)
        return out

    deps = {}
    for r in stack.resources:
        needed = set()
        for dep in r.options.get("dependencies", []):
            needed |= expand(dep)
        deps[r.urn] = {d for d in needed if d in by_urn and d != r.urn}
    return deps


def dependency_order(stack: RenderedStack) -> list[Resource]:
    """Every resource after everything it depends on; stable in render order otherwise."""
    by_urn = {r.urn: r for r in stack.resources}
    deps = dependency_map(stack)
    ordered, done = [], set()
    pending = [r.urn for r in stack.resources]
    while pending:
        progressed = False
        for urn in list(pending):
            if deps[urn] <= done:
                ordered.append(by_urn[urn])
                done.add(urn)
                pending.remove(urn)
                progressed = True
        if not progressed:
            raise RehearsalError(f"dependency cycle among {pending[:3]}")
    return ordered


class Applier:
    def __init__(self, vps: Vps, log: Callable[[str], None]) -> None:
        self.vps = vps
        self.log = log
        self.keys: dict[str, Path] = {}
        self.forwards: dict[str, subprocess.Popen] = {}
        self.apis: dict[str, DockerApi] = {}
        self.generic: dict[str, bool] = {}
        # Resources apply from several threads; key files and the engine connection are
        # made once, under this lock.
        self.lock = threading.RLock()

    # ---- transport --------------------------------------------------------------------------

    def _identity(self, private_key: str) -> Path:
        with self.lock:
            return self._identity_locked(private_key)

    def _identity_locked(self, private_key: str) -> Path:
        digest = hashlib.sha256(private_key.encode()).hexdigest()[:12]
        if digest not in self.keys:
            path = self.vps.run_dir / "keys" / f"k{digest}"
            path.write_text(private_key if private_key.endswith("\n") else private_key + "\n")
            path.chmod(0o600)
            self.keys[digest] = path
        return self.keys[digest]

    def run_command(self, resource: Resource, script_key: str) -> str:
        inputs = reveal(resource.inputs)
        unknown = set(inputs) - COMMAND_KEYS
        if unknown:
            raise RehearsalError(f"{COMMAND} input(s) {sorted(unknown)} are not rehearsed")
        conn = inputs["connection"]
        unknown = set(conn) - CONNECTION_KEYS
        if unknown:
            raise RehearsalError(f"connection input(s) {sorted(unknown)} are not rehearsed "
                                 "(password or proxy connections)")
        script = inputs.get(script_key)
        if not script:
            return ""
        extra = []
        if conn.get("hostKey"):
            known = self.vps.run_dir / "pinned_known_hosts"
            known.write_text(f"{conn['host']} {conn['hostKey']}\n")
            extra += ["-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes"]
        for name, value in (inputs.get("environment") or {}).items():
            # pulumi-command sends these as SSH environment requests; sshd takes only what its
            # AcceptEnv allows, the same as here.
            extra += ["-o", f"SetEnv={name}={value}"]
        proc = self.vps.ssh(
            conn["user"], script, identity=self._identity(conn["privateKey"]),
            port=int(conn.get("port", 22)), host=conn["host"],
            stdin=(inputs.get("stdin") or "").encode(),
            connect_timeout=float(conn.get("perDialTimeout", 15)),
            attempts=int(conn.get("dialErrorLimit", 1)), extra=extra)
        if proc.returncode != 0:
            logged = inputs.get("logging", "stdoutAndStderr")
            err = proc.stderr.decode(errors="replace").strip()
            unresolved = UNRESOLVED.search(err)
            if unresolved and unresolved.group(1) not in self.vps.mirror_addresses:
                raise Offline(unresolved.group(1), f"needs {unresolved.group(1)}, which this machine "
                              "cannot reach (only Debian's mirror is)")
            shown = err[-600:] if logged in ("stderr", "stdoutAndStderr") else "(logging off)"
            raise RehearsalError(f"`{script_key}` exited {proc.returncode} as {conn['user']}: {shown}")
        return proc.stdout.decode(errors="replace")

    def api(self, provider: Resource | None) -> DockerApi:
        """The engine a docker resource's provider points at, over SSH as its user, the way
        the provider's ssh:// transport reaches it: the remote /var/run/docker.sock (the
        user must be in the docker group). A forwarded socket rather than `docker -H ssh://`
        per call: one SSH connection for the whole run, and the API's JSON directly."""
        with self.lock:
            return self._api_locked(provider)

    def _api_locked(self, provider: Resource | None) -> DockerApi:
        key = provider.urn if provider else "default"
        if key in self.apis:
            return self.apis[key]
        inputs = reveal(provider.inputs) if provider else {}
        unknown = set(inputs) - {"host", "sshOpts", "disableDockerDaemonCheck"}
        if unknown:
            raise RehearsalError(f"docker provider input(s) {sorted(unknown)} are not rehearsed")
        host = inputs.get("host", "")
        if not host.startswith("ssh://"):
            raise RehearsalError(f"docker provider host {host!r} is not ssh://user@host[:port]")
        user_host = host[len("ssh://"):].rstrip("/")
        user, _, rest = user_host.rpartition("@")
        address, _, port = rest.partition(":")
        opts = json.loads(inputs["sshOpts"]) if isinstance(inputs.get("sshOpts"), str) else (
            inputs.get("sshOpts") or [])
        sock = self.vps.run_dir / f"docker-{len(self.apis)}.sock"
        argv = self.vps.in_internet([
            "ssh", "-F", str(self.vps.ssh_config(self.keys_for_docker())), "-p", port or "22",
            "-o", "ControlPath=none", "-o", "ExitOnForwardFailure=yes", *opts,
            "-N", "-L", f"{sock}:/var/run/docker.sock", f"{user or 'root'}@{address}"])
        proc = subprocess.Popen(argv, stderr=subprocess.PIPE, start_new_session=True)
        self.forwards[key] = proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise RehearsalError(f"ssh to the docker host {host} failed: "
                                     + proc.stderr.read().decode(errors="replace").strip()[-300:])
            return sock.exists()

        wait_for(ready, 30, f"the docker socket of {host} forwarded over SSH")
        api = DockerApi(sock)
        version = api.request("GET", "/version")
        self.log(f"docker engine {version.get('Version')} at {host}, as {user}")
        self.apis[key] = api
        return api

    def keys_for_docker(self) -> Path:
        # The provider uses the operator's ssh agent with the same key the commands use.
        if not self.keys:
            raise RehearsalError("no SSH key rendered before the first docker resource")
        return next(iter(self.keys.values()))

    def docker_cli(self, provider: Resource | None) -> Callable[..., subprocess.CompletedProcess]:
        api = self.api(provider)

        def docker(*args: str, check: bool = True, timeout: float = 60,
                   input: bytes | None = None) -> subprocess.CompletedProcess:
            return run(["docker", "-H", f"unix://{api.path}", *args], check=check,
                       timeout=timeout, input=input)
        return docker

    def close(self) -> None:
        for proc in self.forwards.values():
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.forwards.clear()
        self.apis.clear()

    # ---- apply ------------------------------------------------------------------------------

    def apply(self, stack: RenderedStack, previous: State | None = None) -> tuple[State, list[Outcome]]:
        """Create what is new, update or replace what changed, delete what is gone.

        Like the engine, everything whose dependencies are done runs at once (up to
        PARALLEL): independent commands and containers overlap, which also shows an ordering
        the plan forgot to declare."""
        state = State()
        outcomes: list[Outcome] = []
        providers = {r.urn: r for r in stack.resources if r.type.startswith("pulumi:providers:")}
        ordered = dependency_order(stack)
        deps = dependency_map(stack)
        image_ids: dict[str, str] = {}
        if previous:
            for urn, out in previous.outputs.items():
                if "imageId" in out:
                    image_ids[urn] = out["imageId"]
        # Deletions first for what disappeared from the plan (reverse order), as the engine
        # does for resources with no replacement.
        if previous:
            current = {r.urn for r in stack.resources}
            for urn in reversed(previous.order):
                if urn not in current:
                    outcomes.append(self._delete_from_state(previous, urn, providers))
        for resource in ordered:
            state.order.append(resource.urn)
            state.inputs[resource.urn] = reveal(resource.inputs)
            state.types[resource.urn] = resource.type
            state.options[resource.urn] = {**resource.options, "provider": resource.provider,
                                           "name": resource.name}
        blocked: dict[str, str] = {}
        done: set[str] = set()
        pending = list(ordered)
        failure: RehearsalError | None = None

        def one(resource: Resource) -> tuple[str, str, dict, float]:
            started = time.monotonic()
            old = previous.inputs.get(resource.urn) if previous else None
            action, detail, outputs = self._apply_one(resource, state.inputs[resource.urn], old,
                                                      previous, providers, image_ids, state)
            return action, detail, outputs, time.monotonic() - started

        def drop(resource: Resource, action: str, detail: str, cause: str, seconds: float) -> None:
            blocked[resource.urn] = cause
            outcomes.append(Outcome(resource, action, seconds, detail))
            self.log(f"  {action:8} {resource.type} {resource.name}: {detail}")
            state.order.remove(resource.urn)
            del state.inputs[resource.urn]

        with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
            running: dict[concurrent.futures.Future, Resource] = {}
            while pending or running:
                for resource in [r for r in pending if deps[r.urn] <= done] if failure is None else []:
                    pending.remove(resource)
                    if not resource.custom:
                        done.add(resource.urn)
                        continue
                    # As the engine does: nothing runs after a dependency that failed.
                    cause = next((blocked[d] for d in deps[resource.urn] if d in blocked), None)
                    if cause:
                        drop(resource, "blocked", f"after {cause}", cause, 0.0)
                        done.add(resource.urn)
                        continue
                    running[pool.submit(one, resource)] = resource
                if failure is not None and not running:
                    break
                if not running:
                    continue
                finished, _ = concurrent.futures.wait(running, return_when="FIRST_COMPLETED")
                for future in finished:
                    resource = running.pop(future)
                    done.add(resource.urn)
                    try:
                        action, detail, outputs, seconds = future.result()
                    except Offline as err:
                        # Not a failure of the plan: the host is out of this machine's reach
                        # only. What depends on it still runs, as after a real deploy's success
                        # (a dependency for ordering only must not hide what follows it);
                        # whatever really needs it fails on its own and says so.
                        outcomes.append(Outcome(resource, "offline", 0.0, str(err)))
                        self.log(f"  offline  {resource.type} {resource.name}: {err}")
                        state.order.remove(resource.urn)
                        del state.inputs[resource.urn]
                        continue
                    except RehearsalError as err:
                        failure = failure or RehearsalError(f"{resource.type} {resource.name}: {err}")
                        continue
                    state.outputs[resource.urn] = outputs
                    outcomes.append(Outcome(resource, action, seconds, detail))
                    if action not in ("same", "record"):
                        self.log(f"  {action:8} {resource.type} {resource.name} "
                                 f"({seconds:.1f} s){' ' + detail if detail else ''}")
        if failure is not None:
            raise failure
        return state, outcomes

    def _changed(self, resource: Resource, inputs: dict, old: dict | None) -> set[str]:
        if old is None:
            return {"*"}
        ignored = set(resource.options.get("ignoreChanges", []))
        keys = (set(inputs) | set(old)) - ignored
        return {k for k in keys if inputs.get(k) != old.get(k)}

    def _apply_one(self, resource, inputs, old, previous, providers, image_ids, state):
        type_ = resource.type
        changed = self._changed(resource, inputs, old)
        prev_out = previous.outputs.get(resource.urn, {}) if previous else {}
        if type_.startswith(RECORDED_PREFIXES):
            return "record", "", {}
        if type_ == COMMAND:
            if not changed:
                return "same", "", prev_out
            if old is None:
                self.run_command(resource, "create")
                return "create", "", {}
            replace_keys = {"triggers", *resource.options.get("replaceOnChanges", [])}
            if changed & replace_keys:
                old_resource = _with_inputs(resource, old)
                self.run_command(old_resource, "delete")
                self.run_command(resource, "create")
                return "replace", f"({', '.join(sorted(changed & replace_keys))} changed)", {}
            self.run_command(resource, "update" if inputs.get("update") else "create")
            return "update", f"({', '.join(sorted(changed))} changed)", {}
        if not type_.startswith("docker:"):
            raise RehearsalError(f"resource type {type_} is not rehearsed; teach rehearsal/apply.py "
                                 "how its provider applies it")
        provider = providers.get(_provider_urn(resource.provider))
        api = self.api(provider)
        if type_ == IMAGE:
            _check_keys(inputs, IMAGE_KEYS, type_)
            if not changed:
                return "same", "", prev_out
            if old is not None and prev_out.get("imageId") and not old.get("keepLocally"):
                api.request("DELETE", f"/images/{prev_out['imageId']}", ok=(200, 404, 409))
            image_id = import_standin(self.docker_cli(provider), inputs["name"])
            image_ids[resource.urn] = image_id
            self.generic[image_id] = standin_for(inputs["name"]).kind == "generic"
            return ("create" if old is None else "replace"), f"stand-in for {inputs['name']}", {
                "imageId": image_id}
        if type_ == NETWORK:
            _check_keys(inputs, NETWORK_KEYS, type_)
            if not changed:
                return "same", "", prev_out
            if old is not None:
                api.request("DELETE", f"/networks/{quote(old['name'])}", ok=(204, 404))
            body = {"Name": inputs["name"], "Driver": inputs.get("driver", "bridge"),
                    "Options": inputs.get("options") or {}, "Internal": bool(inputs.get("internal")),
                    "Attachable": bool(inputs.get("attachable")),
                    "EnableIPv6": bool(inputs.get("ipv6")), "CheckDuplicate": True,
                    "Labels": _labels(inputs.get("labels"))}
            if inputs.get("ipamConfigs"):
                body["IPAM"] = {"Driver": inputs.get("ipamDriver", "default"), "Config": [
                    {k2: c[k1] for k1, k2 in (("subnet", "Subnet"), ("gateway", "Gateway"),
                                              ("ipRange", "IPRange")) if c.get(k1)}
                    for c in inputs["ipamConfigs"]]}
            made = api.request("POST", "/networks/create", body)
            return ("create" if old is None else "replace"), "", {"id": made["Id"]}
        if type_ == VOLUME:
            _check_keys(inputs, VOLUME_KEYS, type_)
            if not changed:
                return "same", "", prev_out
            body = {"Name": inputs.get("name", ""), "Driver": inputs.get("driver", "local"),
                    "DriverOpts": inputs.get("driverOpts") or {}, "Labels": _labels(inputs.get("labels"))}
            made = api.request("POST", "/volumes/create", body)
            return ("create" if old is None else "replace"), "", {"name": made["Name"]}
        if type_ == CONTAINER:
            provider_create_checks(inputs)
            image_id = self._image_for(resource, inputs, image_ids, provider)
            body, more_networks = container_body(inputs, image_id)
            if self.generic.get(image_id):
                body["Env"] = [*body.get("Env", []), *generic_ports(inputs)]
            if not changed:
                return "same", "", prev_out
            action = "create"
            if old is not None:
                action = "replace"
                if resource.options.get("deleteBeforeReplace"):
                    self._remove_container(api, old)
            self._create_container(api, inputs, body, more_networks)
            info = api.inspect(inputs["name"])
            return action, "", {"id": info["Id"], "name": inputs["name"]}
        raise RehearsalError(f"resource type {type_} is not rehearsed; teach rehearsal/apply.py "
                             "how the docker provider applies it")

    def _image_for(self, resource, inputs, image_ids, provider) -> str:
        """The engine's id for the container's ``image``: the rendered value is the mock id of
        a RemoteImage the container depends on (or a plain reference)."""
        image = inputs.get("image")
        if not image:
            raise RehearsalError("container has no image")
        if not str(image).startswith("sha256:"):
            image_id = import_standin(self.docker_cli(provider), image)
            self.generic[image_id] = standin_for(image).kind == "generic"
            return image_id
        deps = [u for u in resource.options.get("dependencies", []) if u in image_ids]
        if len(deps) != 1:
            raise RehearsalError(f"cannot tell which image the container runs: it depends on "
                                 f"{len(deps)} RemoteImage resources")
        return image_ids[deps[0]]

    def _create_container(self, api: DockerApi, inputs: dict, body: dict, more: list[dict]) -> None:
        name = inputs["name"]
        if (body.get("Healthcheck") or {}).get("StartInterval"):
            # As the provider's Docker Go client does (client/container_create.go): it refuses
            # the create, rather than letting an older engine ignore the field.
            engine = api.request("GET", "/version").get("ApiVersion", "0")
            if api_version(engine) < api_version(START_INTERVAL_API):
                raise RehearsalError(f'container {name}: "specify health-check start interval" '
                                     f"requires API version {START_INTERVAL_API}, but the Docker "
                                     f"daemon API version is {engine}")
        api.request("POST", "/containers/create", body, query={"name": name})
        for network in more:
            api.request("POST", f"/networks/{quote(network['name'])}/connect",
                        {"Container": name, "EndpointConfig": _endpoint(network)})
        if inputs.get("start", True):
            api.request("POST", f"/containers/{quote(name)}/start")
            if inputs.get("mustRun", True):
                def running() -> bool:
                    info = api.inspect(name)
                    state = info["State"]
                    if state["Status"] in ("exited", "dead"):
                        raise RehearsalError(f"container {name} exited ({state['ExitCode']}) at start")
                    return state["Running"]
                wait_for(running, 30, f"container {name} running")
            if inputs.get("wait"):
                timeout = float(inputs.get("waitTimeout", 60))
                wait_for(lambda: (api.inspect(name)["State"].get("Health") or {}).get("Status")
                         == "healthy", timeout, f"container {name} healthy (wait=true)", 0.5)

    def _remove_container(self, api: DockerApi, inputs: dict) -> None:
        grace = int(inputs.get("destroyGraceSeconds") or 0)
        if grace:
            api.request("POST", f"/containers/{quote(inputs['name'])}/stop", query={"t": grace},
                        ok=(204, 304, 404), timeout=grace + 30)
        api.request("DELETE", f"/containers/{quote(inputs['name'])}",
                    query={"force": "true", "v": "true" if inputs.get("removeVolumes", True) else "false"},
                    ok=(204, 404))

    # ---- destroy ----------------------------------------------------------------------------

    def destroy(self, state: State, stack: RenderedStack) -> list[Outcome]:
        providers = {r.urn: r for r in stack.resources if r.type.startswith("pulumi:providers:")}
        return [self._delete_from_state(state, urn, providers) for urn in reversed(state.order)
                if urn in state.outputs]

    def _delete_from_state(self, state: State, urn: str, providers) -> Outcome:
        started = time.monotonic()
        type_ = state.types[urn]
        inputs = state.inputs[urn]
        opts = state.options[urn]
        fake = Resource(type=type_, name=opts["name"], urn=urn, id="", custom=True, parent=None,
                        provider=opts.get("provider"), inputs=inputs, options=opts)
        action = "delete"
        if type_.startswith(RECORDED_PREFIXES):
            action = "record"
        elif opts.get("retainOnDelete"):
            # As the engine does with retainOnDelete: dropped from the state, left as it is
            # (the library keeps data volumes this way).
            action = "retain"
        elif type_ == COMMAND:
            if inputs.get("delete"):
                self.run_command(fake, "delete")
            else:
                action = "forget"
        else:
            api = self.api(providers.get(_provider_urn(opts.get("provider"))))
            out = state.outputs.get(urn, {})
            if type_ == CONTAINER:
                self._remove_container(api, inputs)
            elif type_ == IMAGE:
                if not inputs.get("keepLocally"):
                    api.request("DELETE", f"/images/{out.get('imageId')}", ok=(200, 404, 409))
                else:
                    action = "keep"
            elif type_ == NETWORK:
                api.request("DELETE", f"/networks/{quote(inputs['name'])}", ok=(204, 404))
            elif type_ == VOLUME:
                api.request("DELETE", f"/volumes/{quote(out.get('name', inputs.get('name', '')))}",
                            ok=(204, 404))
        if action not in ("record",):
            self.log(f"  {action:8} {type_} {opts['name']} ({time.monotonic() - started:.1f} s)")
        return Outcome(fake, action, time.monotonic() - started)


def generic_ports(inputs: dict) -> list[str]:
    """What the generic stand-in listens on (it plays an image the rehearsal knows nothing
    about): the container's ports and any port its healthcheck names (":8000/health",
    "-p 5432"). Only for generic stand-ins; jamjam's own take their ports from their command."""
    tcp, udp = set(), set()
    for port in inputs.get("ports") or []:
        (udp if port.get("protocol") == "udp" else tcp).add(str(int(port["internal"])))
    test = " ".join((inputs.get("healthcheck") or {}).get("tests") or [])
    tcp |= set(re.findall(r"(?::|-p\s+|--port[ =])(\d{2,5})\b", test))
    env = []
    if tcp:
        env.append("JAMJAM_STANDIN_TCP=" + ",".join(sorted(tcp)))
    if udp:
        env.append("JAMJAM_STANDIN_UDP=" + ",".join(sorted(udp)))
    return env


# The docker provider's own refusals at create time (kreuzwerker/terraform-provider-docker
# v4.5.0, which pulumi-docker 5.x bridges: resource_docker_container_funcs.go and the schema's
# validators). dockerd accepts all of these, so without them the rehearsal would pass a plan
# that `pulumi up` refuses (an empty command element did exactly that).
_RESTART = re.compile(r"^(no|on-failure|always|unless-stopped)$")


def provider_create_checks(inputs: dict[str, Any]) -> None:
    """Raise RehearsalError, in the provider's words, for a container the provider refuses."""
    name = inputs.get("name", "?")
    for item in inputs.get("command") or []:
        if item == "":
            raise RehearsalError(f"container {name}: values for command may not be empty "
                                 "(the docker provider refuses the create)")
    restart = inputs.get("restart")
    if restart is not None and not _RESTART.match(str(restart)):
        raise RehearsalError(f"container {name}: restart must be one of no, on-failure, "
                             f"always or unless-stopped, got {restart!r}")
    if inputs.get("memory") is not None and int(inputs["memory"]) < 0:
        raise RehearsalError(f"container {name}: memory must be at least 0")
    if inputs.get("memorySwap") is not None and int(inputs["memorySwap"]) < -1:
        raise RehearsalError(f"container {name}: memory_swap must be at least -1")


def _check_keys(inputs: dict, known: set[str], type_: str) -> None:
    unknown = set(inputs) - known
    if unknown:
        raise RehearsalError(f"{type_} input(s) {sorted(unknown)} are not rehearsed; teach "
                             "rehearsal/apply.py how the provider passes them")


def _provider_urn(reference: str | None) -> str | None:
    # Provider references are "<urn>::<id>".
    if not reference:
        return None
    return reference.rsplit("::", 1)[0]


def _with_inputs(resource: Resource, inputs: dict) -> Resource:
    return Resource(type=resource.type, name=resource.name, urn=resource.urn, id=resource.id,
                    custom=resource.custom, parent=resource.parent, provider=resource.provider,
                    inputs=inputs, options=resource.options)


def shell(argv: list[str]) -> str:
    return shlex.join(argv)
