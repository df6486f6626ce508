"""What the rehearsal proves once the plan is applied: health, the stand-ins' conversations,
the network as the internet sees it, SSH hardening, the engine enforcing what each container
declares (issue 12), and the scheduled jobs doing their work. Each check returns a short
result line or raises RehearsalError; "not declared" is a result, not a pass in disguise: it
is printed so the reader sees what was not exercised.
"""

from __future__ import annotations

import errno
import gzip
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from jamjam_infra.rules import health_deadline_s
from rehearsal.apply import CONTAINER, DockerApi, duration_ns
from rehearsal.engine import RehearsalError, wait_for
from rehearsal.vps import Vps
from tools.render import RenderedStack, reveal

ROOT = Path(__file__).resolve().parent.parent
# The policy pack is imported the way tools/policy_check.py imports it (its own directory on
# sys.path): the rehearsal reads the pids-limit contract with the pack's own parser, so what
# the pack accepts at preview and what the rehearsal proves on the engine cannot drift apart.
if str(ROOT / "policies") not in sys.path:
    sys.path.insert(0, str(ROOT / "policies"))
from jamjam_policies.hardening import pids_limits  # noqa: E402

REMOTE_COMMAND = "command:remote:Command"

# Linux capability numbers (linux/capability.h), for reading CapEff.
CAPS = ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID",
        "SETUID", "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN",
        "NET_RAW", "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE",
        "SYS_PACCT", "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME",
        "SYS_TTY_CONFIG", "MKNOD", "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP",
        "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG", "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ",
        "PERFMON", "BPF", "CHECKPOINT_RESTORE"]
# What Docker grants a container that drops and adds nothing (moby's default profile).
DOCKER_DEFAULT_CAPS = {"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID",
                       "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL",
                       "AUDIT_WRITE"}


def containers(stack: RenderedStack) -> list[dict]:
    return [reveal(r.inputs) for r in stack.of_type(CONTAINER)]


def probe(vps: Vps, netns_argv: list[str], *args: str, timeout: float = 30) -> bool:
    argv = [*netns_argv, sys.executable, "-m", "rehearsal.probe", *args]
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc.returncode == 0


def health(api: DockerApi, name: str) -> str:
    info = api.inspect(name)
    if info is None:
        return "missing"
    state = info["State"]
    if not state.get("Running"):
        return state.get("Status", "stopped")
    return (state.get("Health") or {}).get("Status", "running (no healthcheck)")


def health_deadline(inputs: dict) -> float:
    """How long a container may take to turn healthy under its own healthcheck: as long as
    ``pulumi up`` waits for it (the library's rule)."""
    hc = inputs.get("healthcheck") or {}
    seconds = {k: duration_ns(hc[k]) / 1e9 if hc.get(k) else 0.0
               for k in ("startPeriod", "interval", "timeout")}
    return health_deadline_s(seconds["startPeriod"], seconds["interval"], seconds["timeout"],
                             int(hc.get("retries") or 0))


def start_intervals(api: DockerApi, stack: RenderedStack, version: int) -> str:
    """What the VPS's engine made of the plan's healthchecks: on Debian 13 every container
    runs with the start interval the plan sets; on Debian 12 the plan sets none (the provider's
    client would refuse the create) and the containers exist, with none."""
    engine = api.request("GET", "/version")
    found = []
    for resource in stack.of_type(CONTAINER):
        inputs = reveal(resource.inputs)
        planned = (inputs.get("healthcheck") or {}).get("startInterval")
        info = api.inspect(inputs["name"])
        if info is None:
            raise RehearsalError(f"container {inputs['name']} does not exist")
        actual = (info["Config"].get("Healthcheck") or {}).get("StartInterval") or 0
        if version >= 13 and planned is None:
            raise RehearsalError(f"the Debian {version} plan sets no start interval on "
                                 f"{inputs['name']}")
        if version < 13 and planned is not None:
            raise RehearsalError(f"the Debian {version} plan sets a start interval on "
                                 f"{inputs['name']}, which its Docker cannot take")
        if actual != (duration_ns(planned) if planned else 0):
            raise RehearsalError(f"{inputs['name']}: Healthcheck.StartInterval is {actual} ns, "
                                 f"the plan says {planned or 'none'}")
        found.append(f"{inputs['name']} {planned or 'none'}")
    return (f"Debian {version}, engine {engine.get('Version')} (API {engine.get('ApiVersion')}): "
            f"Healthcheck.StartInterval {', '.join(found)}")


def wait_healthy(api: DockerApi, stack: RenderedStack) -> str:
    pending = {c["name"]: time.monotonic() + health_deadline(c) for c in containers(stack)}
    states: dict[str, str] = {}
    while pending:
        for name, deadline in list(pending.items()):
            states[name] = health(api, name)
            if states[name] in ("healthy", "running (no healthcheck)"):
                del pending[name]
            elif states[name] in ("exited", "dead", "missing", "unhealthy") or time.monotonic() > deadline:
                logs = ""
                info = api.inspect(name)
                if info and (info["State"].get("Health") or {}).get("Log"):
                    logs = info["State"]["Health"]["Log"][-1].get("Output", "").strip()[:200]
                raise RehearsalError(f"{name} is {states[name]}, not healthy"
                                     + (f" (last healthcheck: {logs})" if logs else ""))
        time.sleep(0.5)
    return ", ".join(f"{n} {s}" for n, s in sorted(states.items()))


def standin_kind(api: DockerApi, name: str) -> str:
    info = api.inspect(name)
    image = api.request("GET", f"/images/{info['Image']}/json")
    return (image.get("Config", {}).get("Labels") or {}).get("jamjam.rehearsal.standin", "")


def logs(docker, name: str) -> str:
    out = docker("logs", name, check=False)
    return out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")


def standins(api: DockerApi, docker, stack: RenderedStack) -> str:
    """Per stand-in kind, the behaviour issue 11 asks of it, from the rendered inputs."""
    results = []
    by_kind = {}
    for c in containers(stack):
        by_kind.setdefault(standin_kind(api, c["name"]), []).append(c)
    for c in by_kind.get("signaling", []):
        port = _arg(c.get("command", []), "--port")
        text = logs(docker, c["name"])
        if f"listening on 0.0.0.0:{port}" not in text:
            raise RehearsalError(f"{c['name']} is not listening on its port {port}: {text[-200:]}")
        results.append(f"{c['name']} listens on {port}")
    for c in by_kind.get("echo", []):
        url = _arg(c.get("command", []), "--signaling-url")
        found = docker("exec", c["name"], "pgrep", "echo-server", check=False)
        if found.returncode != 0:
            raise RehearsalError(f"`docker exec {c['name']} pgrep echo-server` found nothing")
        wait_for(lambda: f"reached {url}" in logs(docker, c["name"]), 20,
                 f"{c['name']} reaching {url}")
        host = url.split("//", 1)[1]
        if not any(f"websocket upgrade for host {host}" in logs(docker, s["name"])
                   for s in by_kind.get("signaling", [])):
            raise RehearsalError(f"no signaling stand-in logged the upgrade from {c['name']} for {host}")
        results.append(f"{c['name']} found by pgrep, reached {url} on the bridge network")
    for c in by_kind.get("cloudflared", []):
        info = api.inspect(c["name"])
        tokens = [e.split("=", 1)[1] for e in c.get("envs", []) if e.startswith("TUNNEL_TOKEN=")]
        if not tokens:
            raise RehearsalError(f"{c['name']}: the plan passes no TUNNEL_TOKEN")
        if f"TUNNEL_TOKEN={tokens[0]}" not in info["Config"]["Env"]:
            raise RehearsalError(f"{c['name']}: the rendered tunnel token is not in its environment")
        if any(tokens[0] in arg for arg in info["Args"] + [info["Path"]]):
            raise RehearsalError(f"{c['name']}: the tunnel token is on its command line")
        if "TUNNEL_TOKEN present" not in logs(docker, c["name"]):
            raise RehearsalError(f"{c['name']}: the stand-in did not receive the token")
        results.append(f"{c['name']} got the rendered token in TUNNEL_TOKEN (not argv), ready")
    for c in by_kind.get("generic", []):
        results.append(f"{c['name']} (generic stand-in)")
    return "; ".join(results)


def _arg(argv: list[str], flag: str) -> str:
    for i, value in enumerate(argv[:-1]):
        if value == flag:
            return argv[i + 1]
    raise RehearsalError(f"no {flag} in {argv}")


# ---- issue 12: what each container declares is what the engine enforces ----------------------

@dataclass
class Declared:
    drops: set[str]
    adds: set[str]
    no_new_privs: bool
    memory: int | None
    pids: int | None
    user: str


def pids_commands(stack: RenderedStack) -> dict[str, int | None]:
    """{container name: N} from every rendered command whose ``create`` runs
    ``docker update --pids-limit N <name>`` (docs/hardening.md: pulumi-docker v5's Container
    has no pids-limit input, so the library declares the limit on a command next to it).
    None where a command names the container without a literal N."""
    found: dict[str, int | None] = {}
    for resource in stack.of_type(REMOTE_COMMAND):
        create = reveal(resource.inputs).get("create")
        if isinstance(create, str) and "update" in create:
            for name, limit in pids_limits(create).items():
                if limit is not None or name not in found:
                    found[name] = limit
    return found


def declared(inputs: dict, daemon: dict, commands: dict[str, int | None] | None = None) -> Declared:
    caps = inputs.get("capabilities") or {}
    norm = lambda names: {n.upper().removeprefix("CAP_") for n in names or []}  # noqa: E731
    opts = [o.replace("=", ":") for o in inputs.get("securityOpts") or []]
    nnp = any(o in ("no-new-privileges", "no-new-privileges:true") for o in opts) or bool(
        daemon.get("no-new-privileges"))
    # The command runs after the container is created, so its N is what the engine ends up
    # with; a provider input (pulumi-docker v5 has none) only where no command names it.
    # ulimits' nproc is no pids limit: it counts the uid's processes on the whole host and
    # root ignores it, so it is not read as one.
    pids = (commands or {}).get(inputs.get("name", ""))
    if pids is None and inputs.get("pidsLimit") is not None:
        pids = int(inputs["pidsLimit"])
    if pids is not None and pids < 1:
        pids = None   # 0 or -1 is Docker's "unlimited": nothing to prove
    memory = int(inputs["memory"]) * 1024 * 1024 if inputs.get("memory") else None
    return Declared(norm(caps.get("drops")), norm(caps.get("adds")), nnp, memory, pids,
                    inputs.get("user") or "")


def daemon_config(vps: Vps | None) -> dict:
    if vps is None:
        return {}
    path = vps.rootfs / "etc/docker/daemon.json"
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise RehearsalError(f"/etc/docker/daemon.json on the VPS is not JSON: {err}") from None


def enforced(api: DockerApi, docker, stack: RenderedStack, vps: Vps | None) -> list[str]:
    daemon = daemon_config(vps)
    commands = pids_commands(stack)
    lines = []
    for c in containers(stack):
        want = declared(c, daemon, commands)
        status = docker("exec", c["name"], "cat", "/proc/1/status").stdout.decode()
        field = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        cap_eff = int(field["CapEff"].strip(), 16)
        uid = int(field["Uid"].split()[1])
        info = api.inspect(c["name"])
        notes = []
        if want.drops or want.adds:
            base = set(CAPS) if "ALL" not in want.drops else set()
            base = (base & DOCKER_DEFAULT_CAPS if "ALL" not in want.drops else base) - want.drops
            expect_caps = (base | want.adds) if uid == 0 else set()
            expect = sum(1 << CAPS.index(n) for n in expect_caps if n in CAPS)
            if cap_eff != expect:
                raise RehearsalError(f"{c['name']}: CapEff {cap_eff:016x}, expected {expect:016x} "
                                     f"from drops {sorted(want.drops)} adds {sorted(want.adds)}")
            notes.append(f"CapEff {cap_eff:x}" + (" (empty)" if cap_eff == 0 else ""))
        else:
            notes.append(f"capabilities not declared (CapEff {cap_eff:x})")
        nnp = field.get("NoNewPrivs", "").strip()
        if want.no_new_privs:
            if nnp != "1":
                raise RehearsalError(f"{c['name']}: no-new-privileges declared, NoNewPrivs is {nnp}")
            notes.append("NoNewPrivs 1")
        else:
            notes.append(f"no-new-privileges not declared (NoNewPrivs {nnp})")
        host = info["HostConfig"]
        if want.memory is not None:
            if host.get("Memory") != want.memory:
                raise RehearsalError(f"{c['name']}: memory {host.get('Memory')} in docker inspect, "
                                     f"declared {want.memory}")
            notes.append(f"memory {want.memory // 2**20} MiB")
        else:
            notes.append("memory limit not declared")
        if want.pids is not None:
            seen = host.get("PidsLimit")
            if seen != want.pids:
                shown = seen if seen and seen > 0 else f"{seen} (unlimited)"
                raise RehearsalError(f"{c['name']}: HostConfig.PidsLimit {shown} in docker inspect, "
                                     f"declared {want.pids} (docker update --pids-limit)")
            notes.append(f"pids {want.pids}")
        else:
            notes.append("pids limit not declared" + (
                " (its docker update sets no positive literal --pids-limit N)" if c["name"] in commands else ""))
        lines.append(f"{c['name']}: " + ", ".join(notes))
    return lines


# How long the bomb keeps its container at the limit: long enough to run every neighbour's
# healthcheck and a UDP probe (up to 5 s) while it sits there.
FORK_HOLD = 10
FORKBOMB = re.compile(r"forked (\d+) of (\d+): (.*) \(errno (\d+)\); pids\.current (\S+) pids\.max (\S+)")


def _healthcheck_argv(inputs: dict) -> list[str] | None:
    tests = list((inputs.get("healthcheck") or {}).get("tests") or [])
    if tests[:1] == ["CMD"] and len(tests) > 1:
        return tests[1:]
    if tests[:1] == ["CMD-SHELL"] and len(tests) > 1:
        return ["sh", "-c", tests[1]]
    return None


def fork_bombs(api: DockerApi, docker, stack: RenderedStack,
               udp_probe: Callable[[int], bool] | None = None) -> list[str]:
    """A fork bomb in one container whose pids limit the plan declares (preferably one that
    does not serve a UDP port): its forks must fail with EAGAIN at its pids cgroup's limit
    (pids.max N, pids.current never above N), and while it holds the limit every other
    container passes its own rendered healthcheck (run now, by `docker exec`, which must fork
    in there) and every published UDP port echoes (``udp_probe(port)``, from the internet).
    Then the bombed container passes its healthcheck again and nobody is unhealthy."""
    commands = pids_commands(stack)
    every = containers(stack)
    limits = {c["name"]: declared(c, {}, commands).pids for c in every}
    lines = [f"{n}: pids limit not declared, no fork bomb" for n, v in limits.items() if v is None]
    limited = [c for c in every if limits[c["name"]] is not None]
    if not limited:
        return lines + ["no container declares a pids limit: no fork bomb run"]
    udp = {c["name"]: [int(p["external"]) for p in c.get("ports") or []
                       if p.get("protocol") == "udp" and p.get("external") is not None]
           for c in every}
    # A bomb next to the UDP server, so the echo answering is a neighbour's health, not luck;
    # in a container whose stand-in image carries the bomb (`forkbomb`, rehearsal/standins).
    candidates = sorted(limited, key=lambda c: (bool(udp[c["name"]]), c["name"]))
    target = next((c for c in candidates if docker(
        "exec", c["name"], "sh", "-c", "command -v forkbomb", check=False).returncode == 0), None)
    if target is None:
        raise RehearsalError("no container with a declared pids limit has the forkbomb stand-in "
                             f"binary (tried {', '.join(c['name'] for c in candidates)}); the "
                             "stand-in images must carry /usr/local/bin/forkbomb")
    name, limit = target["name"], limits[target["name"]]
    others = [c for c in every if c["name"] != name]
    done: dict[str, Any] = {}

    def bomb() -> None:
        try:
            done["out"] = docker("exec", name, "forkbomb", str(limit * 4), str(FORK_HOLD),
                                 check=False, timeout=FORK_HOLD + 60)
        except RehearsalError as err:
            done["error"] = err

    thread = threading.Thread(target=bomb, daemon=True)
    thread.start()
    # Forking up to a few hundred processes takes well under a second; the hold is 10 s.
    time.sleep(2)
    problems, watched = [], []
    for c in others:
        argv = _healthcheck_argv(c)
        if argv is None:
            continue
        try:
            ran = docker("exec", c["name"], *argv, check=False, timeout=FORK_HOLD)
            if ran.returncode != 0:
                problems.append(f"{c['name']}'s healthcheck exited {ran.returncode}")
        except RehearsalError as err:
            problems.append(f"{c['name']}'s healthcheck: {err}")
        watched.append(c["name"])
    echoed = []
    for c in others:
        for port in udp[c["name"]]:
            if udp_probe is None:
                continue
            if udp_probe(port):
                echoed.append(f"{port}/udp")
            else:
                problems.append(f"{port}/udp ({c['name']}) did not echo")
    held = thread.is_alive()
    thread.join(FORK_HOLD + 90)
    if "error" in done:
        raise RehearsalError(f"fork bomb in {name}: {done['error']}")
    out = done["out"]
    text = (out.stdout.decode(errors="replace") + out.stderr.decode(errors="replace")).strip()
    m = FORKBOMB.search(text)
    if not m or int(m.group(4)) != errno.EAGAIN:
        raise RehearsalError(f"{name}: fork bomb not stopped by the pids limit {limit}: "
                             f"{text[:300] or 'no output'}")
    made, current, cg_max = int(m.group(1)), m.group(5), m.group(6)
    if cg_max != str(limit):
        raise RehearsalError(f"{name}: forks failed with EAGAIN but its pids cgroup has pids.max "
                             f"{cg_max}, declared {limit}: the limit that stopped it is not the declared one")
    if made >= limit:
        raise RehearsalError(f"{name}: fork bomb not stopped by the pids limit {limit}: {text[:300]}")
    if not current.isdigit() or int(current) > limit:
        raise RehearsalError(f"{name}: pids.current {current} when fork failed, above the limit {limit}")
    if problems:
        raise RehearsalError(f"while {name} sat at its pids limit: " + "; ".join(problems))
    if not held:
        raise RehearsalError(f"the fork bomb in {name} let go before its neighbours were checked "
                             f"(hold {FORK_HOLD} s): nothing was proven about them")
    for other in [c["name"] for c in others]:
        state = health(api, other)
        if state not in ("healthy", "running (no healthcheck)"):
            raise RehearsalError(f"after the fork bomb in {name}, {other} is {state}")
    # Docker's own healthcheck of the bombed container may have failed during the hold (it
    # could not fork in there either); it must recover under its own rendered schedule.
    wait_for(lambda: health(api, name) in ("healthy", "running (no healthcheck)"),
             health_deadline(target), f"{name} healthy again after the fork bomb")
    lines.insert(0, (
        f"{name}: fork bomb stopped by the pids limit: {made} forks then EAGAIN at pids.current "
        f"{current} = pids.max {cg_max} (declared {limit}), held {FORK_HOLD} s; meanwhile "
        + (", ".join(watched) + " passed their healthchecks" if watched else "no neighbour has a healthcheck")
        + (f", {', '.join(echoed)} echoed" if echoed else
           (", UDP not probed" if udp_probe is None and any(udp.values()) else ""))
        + f"; {name} healthy again"))
    return lines


def live_restore(api: DockerApi, stack: RenderedStack, vps: Vps, restart_docker) -> str:
    """With live-restore declared: a dockerd restart keeps every container (same start time)
    and the published UDP port answering. Watched from the internet twice a second across the
    restart, both from new sockets (new clients) and from one kept socket (a client that stays
    on its port): the latter can stay cut off after a restart while a stale conntrack entry
    without Docker's DNAT lives on, which is reported, not hidden."""
    daemon = daemon_config(vps)
    if not daemon.get("live-restore"):
        return "live-restore not declared in /etc/docker/daemon.json: dockerd restart not rehearsed"
    names = [c["name"] for c in containers(stack)]
    udp = [int(p["external"]) for c in containers(stack) for p in c.get("ports") or []
           if p.get("protocol") == "udp"]
    before = {n: api.inspect(n)["State"]["StartedAt"] for n in names}
    watch = None
    if udp:
        watch = subprocess.Popen(
            [*vps.internet.enter(), sys.executable, "-m", "rehearsal.probe", "udpwatch",
             vps.address, str(udp[0]), "15"], cwd=ROOT, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True)
        time.sleep(2)
    started = time.monotonic()
    try:
        restart_docker()
        took = time.monotonic() - started
    finally:
        # The watch goes on after the restart (new rules, conntrack), then reports.
        report = json.loads(watch.communicate(timeout=60)[0]) if watch else {}
    after = {}
    for n in names:
        info = wait_for(lambda: _try_inspect(api, n), 60, f"{n} visible after the dockerd restart")
        after[n] = info["State"]["StartedAt"]
    moved = [n for n in names if before[n] != after[n]]
    if moved:
        raise RehearsalError(f"restarting dockerd restarted {', '.join(moved)} despite live-restore")
    result = f"dockerd restarted in {took:.1f} s; {len(names)} containers kept their start time"
    if report:
        new, kept = report["new_socket"], report["kept_socket"]
        if not new["answering_at_end"] or new["longest_gap"] > 5:
            raise RehearsalError(f"UDP {udp[0]} stopped answering new clients across the dockerd "
                                 f"restart (longest gap {new['longest_gap']} s)")
        result += f"; UDP {udp[0]}: new clients' longest gap {new['longest_gap']} s"
        result += (f", a client keeping its port {'answered again' if kept['answering_at_end'] else 'was NOT answered again'}"
                   f" (gap {kept['longest_gap']} s)")
    return result


def _try_inspect(api: DockerApi, name: str):
    try:
        return api.inspect(name)
    except (RehearsalError, OSError):
        return None


# ---- scheduled jobs ----------------------------------------------------------------------------

CRON_FIELDS = [(0, 59, {}), (0, 23, {}), (1, 31, {}),
               (1, 12, {m: i + 1 for i, m in enumerate(
                   "jan feb mar apr may jun jul aug sep oct nov dec".split())}),
               (0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())})]
CRON_SPECIAL = {"@reboot", "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight",
                "@hourly"}


def cron_field_ok(text: str, low: int, high: int, names: dict[str, int]) -> bool:
    """One time field as Debian's cron reads it: lists of *, n, n-m, with /step; names for
    months and weekdays. Written here because no Debian tool checks a cron file without
    installing it, and cron itself only logs a rejected line."""
    def value(v: str) -> int | None:
        if v.lower() in names:
            return names[v.lower()]
        return int(v) if v.isdigit() else None

    for part in text.split(","):
        rng, _, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            return False
        if rng == "*":
            continue
        a, _, b = rng.partition("-")
        lo, hi = value(a), value(b) if b else value(a)
        if lo is None or hi is None or not (low <= lo <= hi <= high):
            return False
    return True


def cron_files(vps: Vps, files: list[str]) -> list[str]:
    users = {line.split(":")[0] for line in (vps.rootfs / "etc/passwd").read_text().splitlines()}
    lines = []
    for name in files:
        path = vps.rootfs / "etc/cron.d" / name
        st = path.stat()
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise RehearsalError(f"/etc/cron.d/{name}: cron ignores files whose name has other "
                                 "characters than letters, digits, - and _")
        if st.st_uid != 0 or st.st_mode & 0o022:
            raise RehearsalError(f"/etc/cron.d/{name}: cron ignores it unless root owns it and only "
                                 "root can write it")
        entries = 0
        for number, line in enumerate(path.read_text().splitlines(), 1):
            text = line.strip()
            if not text or text.startswith("#") or re.match(r"^[A-Za-z_][A-Za-z0-9_]*\s*=", text):
                continue
            words = text.split()
            if words[0] in CRON_SPECIAL:
                time_ok, rest = True, words[1:]
            else:
                time_ok = len(words) > 5 and all(
                    cron_field_ok(w, *spec) for w, spec in zip(words[:5], CRON_FIELDS))
                rest = words[5:]
            if not time_ok or len(rest) < 2 or rest[0] not in users:
                raise RehearsalError(f"/etc/cron.d/{name} line {number} does not parse: {text[:80]}")
            entries += 1
        if not path.read_text().endswith("\n"):
            raise RehearsalError(f"/etc/cron.d/{name}: cron drops a last line without a newline")
        lines.append(f"{name} ({entries} entr{'y' if entries == 1 else 'ies'})")
    return lines


def cron_commands(vps: Vps, files: list[str]) -> dict[str, tuple[str, str, dict[str, str]]]:
    """file -> (user, command, environment) of its first entry, as cron would run it."""
    out = {}
    for name in files:
        env: dict[str, str] = {}
        for line in (vps.rootfs / "etc/cron.d" / name).read_text().splitlines():
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            m = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", text)
            if m:
                env[m.group(1)] = m.group(2).strip().strip('"')
                continue
            words = text.split(None, 5 if not text.startswith("@") else 1)
            if text.startswith("@"):
                user, _, command = words[1].partition(" ")
            else:
                user, _, command = words[5].partition(" ")
            out[name] = (user, command, env)
            break
    return out


class Receiver:
    """A webhook receiver on the machine's loopback; requests are kept for the checks."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                received.append((self.path, self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def logs_match(s3, bucket: str, vps: Vps, stack_name: str, prefix: str = "") -> list[str]:
    """Every byte each container wrote to its json log (current file and the ones Docker
    rotated) is in the bucket (under ``prefix``, the upload's JAMJAM_R2_DEST path) once, in
    order: objects of one inode, sorted by start offset, concatenated, equal the file's leading
    bytes up to the last shipped offset."""
    lead = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    objects = sorted(s3_objects(s3, bucket, lead))
    if not objects:
        raise RehearsalError(f"the upload job put nothing in the bucket {bucket}"
                             + (f" under {lead}" if lead else ""))
    pattern = re.compile(rf"^{re.escape(lead)}(?P<stack>[^/]+)/(?P<host>[^/]+)/(?P<container>[^/]+)/[^/]+/"
                         r"(?P<id>[0-9a-f]{12})-(?P<inode>\d+)-(?P<start>\d+)-(?P<end>\d+)-[0-9a-f]{8}\.log\.gz$")
    chunks: dict[tuple[str, str], list[tuple[int, int, bytes]]] = {}
    for key in objects:
        m = pattern.match(key)
        if not m:
            raise RehearsalError(f"object {key} does not follow the documented naming")
        if m["stack"] != stack_name:
            raise RehearsalError(f"object {key} is not under the stack {stack_name}")
        data = gzip.decompress(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        start, end = int(m["start"]), int(m["end"])
        if len(data) != end - start:
            raise RehearsalError(f"object {key} holds {len(data)} bytes, its name says {end - start}")
        chunks.setdefault((m["id"], m["inode"]), []).append((start, end, data))
    files: dict[tuple[str, str], Path] = {}
    base = vps.rootfs / "var/lib/docker/containers"
    for cdir in base.iterdir():
        for f in cdir.glob(f"{cdir.name}-json.log*"):
            files[(cdir.name[:12], str(f.stat().st_ino))] = f
    lines = []
    for (cid, inode), parts in sorted(chunks.items()):
        parts.sort()
        joined, expected_start = b"", 0
        for start, end, data in parts:
            if start != expected_start:
                raise RehearsalError(f"container {cid} inode {inode}: bytes {expected_start}..{start} "
                                     "missing or shipped twice")
            joined += data
            expected_start = end
        path = files.get((cid, inode))
        if path is None:
            raise RehearsalError(f"container {cid} inode {inode}: no such log file on the VPS")
        if path.read_bytes()[:len(joined)] != joined:
            raise RehearsalError(f"{path.name}: shipped bytes differ from the file")
        lines.append(f"{path.name} {len(joined)} bytes")
    shipped = {k for k in chunks}
    for key, path in files.items():
        size = path.stat().st_size
        if size and key not in shipped and path.read_bytes().count(b"\n"):
            raise RehearsalError(f"{path.name}: {size} bytes of whole lines were not shipped")
    return lines


# ---- the tunnel's origins, as the connector reaches them -----------------------------------

TUNNEL_CONFIG = "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"
HTTP_STATUS = re.compile(r"HTTP/\d(?:\.\d)? (\d{3})[^\r\n]*")


def connectors(stack: RenderedStack) -> list[str]:
    """The containers that run the tunnel's connector: those the plan hands TUNNEL_TOKEN."""
    return [c["name"] for c in containers(stack)
            if any(e.startswith("TUNNEL_TOKEN=") for e in c.get("envs") or [])]


def tunnel_routes(stack: RenderedStack) -> list[dict]:
    """Every rendered ingress rule whose service is an HTTP(S) origin (not http_status:...)."""
    return [ingress for resource in stack.of_type(TUNNEL_CONFIG)
            for ingress in ((reveal(resource.inputs).get("config") or {}).get("ingresses") or [])
            if str(ingress.get("service", "")).startswith(("http://", "https://"))]


def route_path(regex: str | None) -> str:
    """A request path the ingress's path rule matches: its literal prefix ("^/api/" -> "/api/").
    Tunnel path rules are regular expressions; the ones the library writes are anchored
    literals, and anything past the literal part is left out (still a match for a prefix)."""
    if not regex:
        return "/"
    literal = re.match(r"\^?((?:[^\\.*+?()\[\]{}|$^]|\\.)*)", regex).group(1)
    literal = re.sub(r"\\(.)", r"\1", literal)
    return literal if literal.startswith("/") else "/" + literal


def tunnel_origins(stack: RenderedStack, docker, probe_image: str) -> list[str]:
    """Each route's origin answers HTTP from inside the connector container's network
    namespace (a throwaway container joined to it with --network container:<connector>, so
    the same DNS and bridge network the connector's requests use), with the public hostname
    as Host (cloudflared passes the visitor's), and a status below 500: the connector would
    get a real answer, not a dial error or a broken origin."""
    routes = tunnel_routes(stack)
    if not routes:
        return ["the tunnel routes to no HTTP origin"]
    names = connectors(stack)
    if not names:
        raise RehearsalError("the tunnel has HTTP routes but no container runs its connector "
                             "(none gets TUNNEL_TOKEN)")
    lines = []
    for connector in names:
        for ingress in routes:
            service = ingress["service"].rstrip("/")
            m = re.fullmatch(r"http://([^:/]+)(?::(\d+))?", service)
            if m is None:
                raise RehearsalError(f"origin {service}: only plain http:// origins are rehearsed")
            host, port = m.group(1), m.group(2) or "80"
            path = route_path(ingress.get("path"))
            shown = (f"{ingress.get('hostname', '*')}"
                     + (f" path {ingress['path']}" if ingress.get("path") else "")
                     + f" -> {service}{path}")
            # busybox's nc with a hand-written request: its `wget -S` crashes, and a plain
            # wget hides the status of an error answer.
            request = f"GET {path} HTTP/1.0\r\nHost: {ingress.get('hostname') or host}\r\n\r\n"
            out = docker("run", "--rm", "--network", f"container:{connector}", "--entrypoint",
                         "sh", probe_image, "-c", 'printf "$1" | nc -w 10 "$2" "$3" | head -n 1',
                         "probe", request, host, port, check=False, timeout=60)
            text = (out.stdout + out.stderr).decode(errors="replace")
            status = HTTP_STATUS.search(text)
            if status is None:
                last = text.strip().splitlines()[-1:] or ["no answer"]
                raise RehearsalError(f"{shown}: no HTTP answer from inside {connector}'s network: "
                                     f"{last[0][:160]}")
            if int(status.group(1)) >= 500:
                raise RehearsalError(f"{shown}: the origin answers {status.group(0).strip()} "
                                     f"from inside {connector}'s network")
            lines.append(f"{shown}: {status.group(0).strip()} from {connector}'s network")
    return lines


# ---- databases, post-deploy steps and the backup jobs' effects ------------------------------

def psql(docker, container: str, sql: str) -> str:
    """One statement in a PostgreSQL container's own database, as its own user (the official
    image's POSTGRES_USER/POSTGRES_DB in the container's environment; the socket needs no
    password), via `docker exec`; returns the unaligned tuples."""
    out = docker("exec", container, "sh", "-c",
                 'exec psql -v ON_ERROR_STOP=1 --no-psqlrc -tA -U "$POSTGRES_USER" '
                 '-d "${POSTGRES_DB:-$POSTGRES_USER}" -c "$1"', "psql", sql, check=False)
    if out.returncode != 0:
        raise RehearsalError(f"psql in {container}: {out.stderr.decode(errors='replace').strip()[-200:]}")
    return out.stdout.decode().strip()


USER_TABLES = ("SELECT count(*) FROM information_schema.tables "
               "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")


def seed_tables(docker, container: str, wanted: int) -> str:
    """Tables up to ``wanted`` (the drill's JAMJAM_DRILL_MIN_TABLES), one row each, where the
    database has fewer: the drill counts the restored tables, and a stand-in app's migration
    creates only one."""
    have = int(psql(docker, container, USER_TABLES) or 0)
    if have >= wanted:
        return f"{container}: {have} tables, none seeded"
    for n in range(have, wanted):
        psql(docker, container, f"CREATE TABLE rehearsal_seed_{n} (id int); "
                                f"INSERT INTO rehearsal_seed_{n} VALUES ({n})")
    return (f"{container}: {have} tables, {wanted - have} seeded by docker exec psql "
            f"(the drill wants {wanted})")


def _created(info: dict) -> float:
    """Docker's RFC 3339 Created (nanoseconds, Z) as a POSIX time."""
    import datetime
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", info["Created"])
    if not m:
        raise RehearsalError(f"cannot read the engine's Created time {info['Created']!r}")
    whole = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
    return whole.timestamp() + float(f"0.{m.group(2) or 0}")


def post_deploy(stack: RenderedStack, api: DockerApi, docker, vps: Vps, ended: dict[str, float]) -> list[str]:
    """Each post-deploy command ran before the container waiting for it was created (its end
    time, ``ended[urn]``, against the engine's Created), and its steps left their mark: a
    `migrate` the stand-in's table ``rehearsal_migrations`` in the database container the
    command waits for; a `collectstatic` files in the static volume it mounts."""
    found = stack.post_deploy_steps()
    if not found:
        return ["the plan has no post-deploy step"]
    by_urn = {r.urn: r for r in stack.resources}
    lines = []
    for command, waiting, runs in found:
        if command.urn not in ended:
            raise RehearsalError(f"{command.name} did not run")
        for container in waiting:
            created = _created(api.inspect(container["name"]))
            if ended[command.urn] > created:
                raise RehearsalError(f"{container['name']} was created before {command.name} ended")
            lines.append(f"{command.name} ended {created - ended[command.urn]:.2f} s before "
                         f"{container['name']} was created")
        dbs = [reveal(by_urn[u].inputs)["name"] for u in command.options.get("dependencies", [])
               if u in by_urn and by_urn[u].type == CONTAINER]
        for argv in runs:
            step = " ".join(argv)
            # Django's `manage.py migrate`, Rails' `bin/rails db:migrate`.
            if any(a == "migrate" or a.endswith(":migrate") for a in argv):
                if not dbs:
                    raise RehearsalError(f"{command.name} runs `{step}` but waits for no database container")
                for db in dbs:
                    table = psql(docker, db, "SELECT to_regclass('public.rehearsal_migrations')")
                    if table != "rehearsal_migrations":
                        raise RehearsalError(f"after `{step}`, {db} has no table rehearsal_migrations")
                    lines.append(f"`{step}`: table rehearsal_migrations in {db}")
            elif "collectstatic" in argv:
                create = reveal(command.inputs)["create"]
                volumes = re.findall(r"--volume (\S+?):(\S+)", create)
                static = [(v, t) for v, t in volumes if "static" in t] or volumes
                if not static:
                    raise RehearsalError(f"{command.name} runs `{step}` but mounts no volume")
                files = [p for v, _ in static
                         for p in (vps.rootfs / "var/lib/docker/volumes" / v / "_data").rglob("*")
                         if p.is_file()]
                if not files:
                    raise RehearsalError(f"after `{step}`, the volume {static[0][0]} holds no file")
                lines.append(f"`{step}`: {len(files)} file(s) in volume {static[0][0]}, e.g. "
                             f"{files[0].name}")
            else:
                lines.append(f"`{step}`: exit 0 (no effect known to check)")
    return lines


def s3_objects(s3, bucket: str, prefix: str) -> dict[str, dict]:
    objects, token = {}, None
    while True:
        kw = {"Bucket": bucket, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        page = s3.list_objects_v2(**kw)
        objects.update({o["Key"]: o for o in page.get("Contents", [])})
        if not page.get("IsTruncated"):
            return objects
        token = page["NextContinuationToken"]


def rclone_path(dest: str) -> tuple[str, str]:
    """"r2:bucket/some/prefix" -> ("bucket", "some/prefix")."""
    bucket, _, prefix = dest.split(":", 1)[1].strip("/").partition("/")
    return bucket, prefix


def dumps_in_s3(s3, vps: Vps, env: dict[str, str]) -> str:
    """The backup job's newest dump on the host is in the bucket under JAMJAM_R2_DEST, byte
    for byte, and is a PostgreSQL custom-format archive."""
    name, set_ = env["JAMJAM_BACKUP_NAME"], env["JAMJAM_BACKUP_SET"]
    local_dir = vps.rootfs / env.get("JAMJAM_BACKUP_DIR", "/var/backups/jamjam").lstrip("/") / name / set_
    dumps = sorted(local_dir.glob(f"{name}-*.dump"))
    if not dumps:
        raise RehearsalError(f"no dump of {name}/{set_} on the host under {local_dir}")
    newest = dumps[-1]
    data = newest.read_bytes()
    if not data.startswith(b"PGDMP"):
        raise RehearsalError(f"{newest.name} is not a pg_dump custom-format archive")
    bucket, prefix = rclone_path(env["JAMJAM_R2_DEST"])
    key = f"{prefix}/{newest.name}" if prefix else newest.name
    if key not in s3_objects(s3, bucket, prefix):
        raise RehearsalError(f"{newest.name} is not in S3 under {bucket}/{prefix}")
    if s3.get_object(Bucket=bucket, Key=key)["Body"].read() != data:
        raise RehearsalError(f"{bucket}/{key} differs from the dump on the host")
    return f"{bucket}/{key}: {len(data)} bytes, same as the host's"


def put_sync_files(vps: Vps, source: str, tag: str) -> dict[str, bytes]:
    """A few files (one in a subdirectory) in a synced directory; returns path -> bytes."""
    root = vps.rootfs / source.lstrip("/")
    made = {}
    for rel, size in ((f"rehearsal-{tag}-a.bin", 1), (f"rehearsal-{tag}-b.bin", 70_000),
                      (f"rehearsal-{tag}/nested.bin", 4096)):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        path.write_bytes(data)
        made[rel] = data
    return made


def synced_in_s3(s3, env: dict[str, str], files: dict[str, bytes]) -> str:
    bucket, prefix = rclone_path(env["JAMJAM_R2_DEST"])
    for rel, data in files.items():
        key = f"{prefix}/{rel}" if prefix else rel
        try:
            got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as err:  # noqa: BLE001 (botocore's NoSuchKey and friends)
            raise RehearsalError(f"{env['JAMJAM_SYNC_SOURCE']}/{rel} is not in S3 as "
                                 f"{bucket}/{key}: {err}") from None
        if got != data:
            raise RehearsalError(f"{bucket}/{key} differs from {env['JAMJAM_SYNC_SOURCE']}/{rel}")
    return f"{env['JAMJAM_SYNC_NAME']}: {len(files)} files in {bucket}/{prefix} byte for byte"
