"""`python -m rehearsal [--project DIR] [--stack STACK] [--config KEY=VALUE ...]`: rehearse
`pulumi up` of a stack on a throwaway Debian VPS (the release the stack's vpsDebianVersion names)
with a real Docker engine, then its re-apply, an image change and its destroy; print a summary
table and exit non-zero if any step failed. The project is jamjam (this repository) unless
--project names another, e.g. examples/thinkring. See docs/rehearsal.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rehearsal import checks  # noqa: E402
from rehearsal.apply import CONTAINER, IMAGE, NETWORK, VOLUME, Applier, State  # noqa: E402
from rehearsal.engine import (CACHE, RehearsalError, leftovers, require_root,  # noqa: E402
                              require_tools, run, suffix, wait_for)
from rehearsal.images import import_standin  # noqa: E402
from rehearsal.vps import (INTERNET_ADDRESS, SUITES, TOOLS, Vps, base_image,  # noqa: E402
                           base_image_path, check_plan_release, debian_version)
from tools.render import (STACKS, ProjectError, RenderedStack, engine_config,  # noqa: E402
                          load_project, render, reveal, stack_config)

BUCKET_TYPE = "cloudflare:index/r2Bucket:R2Bucket"


@dataclass
class Step:
    name: str
    seconds: float
    result: str
    ok: bool
    ran: bool = True     # False: not rehearsable here (said so in the table), not a failure


@dataclass
class Rehearsal:
    stack_name: str
    replace: str | None = None          # image reference whose pin is changed; default: first
    bench: bool = False                 # replace every image in turn, printing each gap
    quiet: bool = False
    config: dict[str, Any] = field(default_factory=dict)   # stack config overrides (--config)
    project_dir: Path = ROOT            # the Pulumi project rehearsed (default: jamjam)
    steps: list[Step] = field(default_factory=list)
    gaps: dict[str, float] = field(default_factory=dict)
    stopped: dict[str, float] = field(default_factory=dict)

    @property
    def jamjam(self) -> bool:
        return self.project_dir.resolve() == ROOT

    @property
    def label(self) -> str:
        """"stack production" for jamjam (as before), "stack production of examples/x" else."""
        if self.jamjam:
            return f"stack {self.stack_name}"
        where = self.project_dir.resolve()
        shown = where.relative_to(ROOT) if where.is_relative_to(ROOT) else where
        return f"stack {self.stack_name} of {shown}"

    def say(self, text: str) -> None:
        if not self.quiet:
            print(text, flush=True)

    def step(self, name: str, action: Callable[[], Any]) -> Any:
        self.say(f"== {name}")
        started = time.monotonic()
        try:
            result = action()
        except RehearsalError as err:
            self.steps.append(Step(name, time.monotonic() - started, f"FAILED: {err}", False))
            self.say(f"   FAILED: {err}")
            raise
        except KeyboardInterrupt:
            self.steps.append(Step(name, time.monotonic() - started, "interrupted", False))
            raise
        text = result if isinstance(result, str) else ""
        if isinstance(result, list):
            text = "; ".join(result)
        self.steps.append(Step(name, time.monotonic() - started, text or "ok", True))
        if isinstance(result, list):
            for line in result:
                self.say(f"   {line}")
        elif text:
            self.say(f"   {text}")
        return result

    def note(self, name: str, result: str, ok: bool = True) -> None:
        self.steps.append(Step(name, 0.0, result, ok))

    # -------------------------------------------------------------------------------------

    def run(self) -> int:
        require_root()
        require_tools({**TOOLS, "dockerd": "docker.io", "docker": "docker.io", "gcc": "gcc",
                       "busybox": "busybox-static", "file": "file"})
        tag = suffix()
        run_dir = Path(f"/run/jamjam-rehearsal-{tag}")
        # Everything this run creates carries the tag; the tests look for it afterwards.
        self.say(f"rehearsal of {self.label}, run tag {tag}")
        self.vps = Vps(tag, run_dir, log=self.say)
        self.applier: Applier | None = None
        self.moto: subprocess.Popen | None = None
        self.receiver: checks.Receiver | None = None
        self.s3 = None
        self.tag = tag
        failed = False
        try:
            self._rehearse()
        except RehearsalError:
            failed = True
        except KeyboardInterrupt:
            self.note("interrupted", "Ctrl-C: stopped, cleaning up", ok=False)
            failed = True
        except Exception as err:  # noqa: BLE001 (a harness bug still cleans up and reports)
            import traceback
            traceback.print_exc()
            self.note("internal error", f"{type(err).__name__}: {err}", ok=False)
            failed = True
        finally:
            started = time.monotonic()
            problems = self._cleanup()
            left = leftovers(tag)
            problems += left
            self.steps.append(Step("clean up", time.monotonic() - started,
                                   "nothing left behind" if not problems else
                                   "LEFT BEHIND: " + "; ".join(problems), not problems))
        self._summary()
        return 1 if failed or not all(s.ok for s in self.steps) else 0

    def _cleanup(self) -> list[str]:
        if self.applier:
            self.applier.close()
        if self.receiver:
            self.receiver.close()
        if self.moto and self.moto.poll() is None:
            self.moto.terminate()
            try:
                self.moto.wait(10)
            except subprocess.TimeoutExpired:
                self.moto.kill()
        return self.vps.stop()

    def _summary(self) -> None:
        width = max(len(s.name) for s in self.steps)
        print(f"\nrehearsal of {self.label}")
        print(f"{'step'.ljust(width)}  seconds  result")
        for s in self.steps:
            result = s.result if len(s.result) < 160 else s.result[:157] + "..."
            status = "FAIL" if not s.ok else "ok  " if s.ran else "n/a "
            print(f"{s.name.ljust(width)}  {s.seconds:7.1f}  {status} {result}")
        total = sum(s.seconds for s in self.steps)
        print(f"{'total'.ljust(width)}  {total:7.1f}  "
              f"{'all steps passed' if all(s.ok for s in self.steps) else 'FAILED'}")

    # -------------------------------------------------------------------------------------

    def _rehearse(self) -> None:
        vps = self.vps
        cold = not any(CACHE.glob("base-*.tar"))
        base = self.step("base image", lambda: self._base(cold))
        self.step("boot VPS", lambda: self._boot(base))
        # Debian 13's minimal image has no /etc/cron.d until cron is installed.
        cron_d = vps.rootfs / "etc/cron.d"
        self.cron_before = set(os.listdir(cron_d)) if cron_d.is_dir() else set()
        self.overrides = {**self.config, "vpsAddress": vps.address,
                          "sshPrivateKey": {"secret": vps.key.read_text()},
                          "ssh": self._ssh_with_host_key()}
        stack = self.step("render plan", self._render)
        self.stack = stack
        self.applier = Applier(vps, self.say)
        state = self.step("apply plan", lambda: self._apply(stack))
        self.state = state
        provider = next(iter(r for r in stack.resources if r.type == "pulumi:providers:docker"), None)
        self.api = self.applier.api(provider)
        self.docker = self.applier.docker_cli(provider)
        self.step("containers healthy", lambda: checks.wait_healthy(self.api, stack))
        self.step("healthcheck start interval",
                  lambda: checks.start_intervals(self.api, stack, self.debian))
        self.step("stand-ins behave", lambda: checks.standins(self.api, self.docker, stack))
        self.step("tunnel origins answer the connector", lambda: checks.tunnel_origins(
            stack, self.docker, import_standin(self.docker, "jamjam-rehearsal/standin:probe")))
        self.step("post-deploy steps", lambda: checks.post_deploy(
            stack, self.api, self.docker, vps,
            {o.resource.urn: o.ended for o in self.last_outcomes}))
        self.step("docker provider over ssh://", lambda: self._provider_transport(provider))
        self.step("internet probes", self._probes)
        self.step("ssh hardened", self._ssh_hardened)
        self.step("engine enforces declared limits",
                  lambda: checks.enforced(self.api, self.docker, stack, vps))
        self.step("pids limit (fork bomb)", lambda: checks.fork_bombs(
            self.api, self.docker, stack, lambda port: checks.probe(
                vps, vps.internet.enter(), "udp", vps.address, str(port), "5", timeout=15)))
        self.step("live-restore", lambda: checks.live_restore(
            self.api, stack, vps, self._restart_docker))
        cron = self.step("cron files parse", self._cron_files)
        self._jobs(cron)
        self.step("re-apply unchanged", self._reapply)
        self.step("replace image pin", self._replace)
        self.step("destroy", self._destroy)

    def _ssh_with_host_key(self) -> dict[str, Any]:
        """The stack's ssh settings with the booted VPS's own host key, as an operator pins it
        (the plan's remote commands and provider then refuse any other key)."""
        project = load_project(self.project_dir)
        config = engine_config(self.stack_name, self.config, project=project)[0]
        ssh = json.loads(config.get(f"{project.name}:ssh") or "{}")
        pub = self.vps.rootfs / "etc/ssh/ssh_host_ed25519_key.pub"
        return {**ssh, "hostKey": " ".join(pub.read_text().split()[:2])}

    def _base(self, cold: bool) -> str:
        started = time.monotonic()
        self.debian = debian_version(engine_config(
            self.stack_name, self.config, project=load_project(self.project_dir))[0])
        self.vps.suite = SUITES[self.debian]
        cold = not base_image_path(self.vps.suite).exists()
        path = base_image(self.say, self.vps.suite)
        self.base_path = path
        return (f"cold build {time.monotonic() - started:.0f} s" if cold else "cached") + f": {path}"

    def _boot(self, base: str) -> str:
        self.vps.start(self.base_path)
        return f"{self.vps.release()} at {self.vps.address}, sshd on 22, root by key only"

    def _render(self) -> RenderedStack:
        stack = self._rendered(self.overrides)
        check_plan_release([str(reveal(r.inputs).get("stdin") or "")
                            for r in stack.of_type("command:remote:Command")], self.debian)
        return stack

    def _rendered(self, overrides: dict[str, Any]) -> RenderedStack:
        return render(self.stack_name, overrides=overrides, project_dir=self.project_dir)

    def _apply(self, stack: RenderedStack, previous: State | None = None) -> State:
        state, outcomes = self.applier.apply(stack, previous)
        self.last_outcomes = outcomes
        counts: dict[str, int] = {}
        for o in outcomes:
            counts[o.action] = counts.get(o.action, 0) + 1
        offline = [o for o in outcomes if o.action in ("offline", "blocked")]
        for o in offline:
            self.steps.append(Step(f"not rehearsable: {o.resource.name}", 0.0,
                                   f"{o.action}: {o.detail}", True, ran=False))
        self.say("   " + ", ".join(f"{n} {a}" for a, n in sorted(counts.items())))
        return state

    def _provider_transport(self, provider) -> str:
        """The provider's own transport once (`docker -H ssh://user@host`), with its ssh
        options: the user can reach the engine the way `pulumi up` will."""
        inputs = reveal(provider.inputs)
        opts = json.loads(inputs.get("sshOpts") or "[]")
        home = self.vps.run_dir / "home"
        (home / ".ssh").mkdir(parents=True, exist_ok=True)
        lines = ["Host *"] + [f"  {o.replace('=', ' ', 1)}" for o in opts[1::2]] + [
            f"  IdentityFile {self.applier.keys_for_docker()}",
            f"  UserKnownHostsFile {self.vps.run_dir / 'known_hosts'}", ""]
        (home / ".ssh/config").write_text("\n".join(lines))
        # ssh reads ~/.ssh/config from the passwd entry, not $HOME: a wrapper first in PATH
        # hands the docker CLI's ssh this run's config instead of root's.
        wrapper = home / "bin/ssh"
        wrapper.parent.mkdir(exist_ok=True)
        wrapper.write_text(f"#!/bin/sh\nexec {shutil.which('ssh')} -F {home / '.ssh/config'} \"$@\"\n")
        wrapper.chmod(0o755)
        out = run(self.vps.in_internet(["env", f"PATH={wrapper.parent}:{os.environ['PATH']}",
                                        "docker", "-H", inputs["host"], "version", "--format",
                                        "{{.Server.Version}}"]), timeout=60)
        return f"docker -H {inputs['host']}: engine {out.stdout.decode().strip()}"

    def _probes(self) -> list[str]:
        vps, lines = self.vps, []
        internet = vps.internet.enter()
        published = [(int(p["external"]), p.get("protocol", "tcp"))
                     for c in checks.containers(self.stack) for p in c.get("ports") or []]
        for port, proto in published:
            if proto == "udp":
                if not checks.probe(vps, internet, "udp", vps.address, str(port), "15", timeout=30):
                    raise RehearsalError(f"{port}/udp does not echo from the internet")
                lines.append(f"{port}/udp echoes")
            elif not checks.probe(vps, internet, "tcp", vps.address, str(port), "5"):
                raise RehearsalError(f"{port}/tcp is published but unreachable")
        if not checks.probe(vps, internet, "tcp", vps.address, "22", "5"):
            raise RehearsalError("22/tcp is closed from the internet")
        lines.append("22/tcp open")
        # A port the plan neither publishes nor opens in the firewall (8080, jamjam's internal
        # signaling port, unless a project opens it).
        opened = {int(p) for r in self.stack.of_type("command:remote:Command")
                  for p in re.findall(r"--allow[ =](\d+)", str(reveal(r.inputs).get("create", "")))}
        closed = str(next(p for p in range(8080, 8200)
                          if p not in opened and p not in {port for port, _ in published}))
        # A service on the host itself listening on every address, on a port the firewall does
        # not allow: reachable inside the VPS, not from the internet.
        listener = subprocess.Popen([*vps.netns.enter(), sys.executable, "-m", "rehearsal.probe",
                                     "listen", closed, "30"], cwd=ROOT, stdout=subprocess.PIPE,
                                    env={**os.environ, "PYTHONPATH": str(ROOT)},
                                    start_new_session=True)
        try:
            listener.stdout.readline()
            if not checks.probe(vps, vps.netns.enter(), "tcp", "127.0.0.1", closed, "3"):
                raise RehearsalError(f"the host listener on {closed} did not come up")
            if checks.probe(vps, internet, "tcp", vps.address, closed, "3"):
                raise RehearsalError(f"a host service on {closed} is reachable from the internet")
            lines.append(f"host listener on {closed} unreachable")
        finally:
            listener.kill()
            listener.wait()
        # A container published on that port by mistake: Docker's DNAT bypasses ufw's INPUT rules;
        # the firewall's DOCKER-USER block must still drop it.
        image = import_standin(self.docker, "jamjam-rehearsal/standin:probe")
        name = f"rehearsal-publish-{closed}-{self.tag}"
        self.api.request("POST", "/containers/create", {
            "Image": image, "Env": [f"JAMJAM_STANDIN_TCP={closed}"], "ExposedPorts": {f"{closed}/tcp": {}},
            "HostConfig": {"PortBindings": {f"{closed}/tcp": [{"HostPort": closed}]}}},
            query={"name": name})
        try:
            self.api.request("POST", f"/containers/{name}/start")
            ip = self.api.inspect(name)["NetworkSettings"]["IPAddress"]
            wait_for(lambda: checks.probe(vps, vps.netns.enter(), "tcp", ip, closed, "2"), 15,
                     f"the {closed} container listening")
            if checks.probe(vps, internet, "tcp", vps.address, closed, "3"):
                raise RehearsalError(f"a container published on {closed} is reachable from the internet")
            lines.append(f"container published on {closed} by mistake unreachable")
        finally:
            self.api.request("DELETE", f"/containers/{name}", query={"force": "true"}, ok=(204, 404))
        return lines

    def _ssh_hardened(self) -> list[str]:
        vps = self.vps
        users = {reveal(r.inputs)["connection"]["user"] for r in self.stack.of_type("command:remote:Command")}
        lines = []
        root = vps.ssh("root", "true")
        if root.returncode == 0:
            raise RehearsalError("root can still log in with its key after bootstrap")
        lines.append("root refused")
        pw = vps.ssh("nobody-in-particular", "true", extra=[
            "-o", "PubkeyAuthentication=no",
            "-o", "PreferredAuthentications=password,keyboard-interactive"])
        err = pw.stderr.decode()
        if "Permission denied (publickey)" not in err:
            raise RehearsalError(f"sshd still offers more than public keys: {err.strip()[-120:]}")
        lines.append("passwords not offered")
        for user in sorted(users - {"root"}):
            ok = vps.ssh(user, "id -un")
            if ok.returncode != 0 or ok.stdout.decode().strip() != user:
                raise RehearsalError(f"{user} cannot log in with its key: {ok.stderr.decode()[-200:]}")
            lines.append(f"{user} accepted by key")
        return lines

    def _sudo(self, command: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return self.vps.ssh(self._user(), f"sudo -n {command}", timeout=timeout)

    def _restart_docker(self) -> None:
        out = self._sudo("systemctl restart docker.service", timeout=120)
        if out.returncode != 0:
            raise RehearsalError("systemctl restart docker failed: " + out.stderr.decode()[-200:])

    def _cron_files(self) -> list[str]:
        now = set(os.listdir(self.vps.rootfs / "etc/cron.d"))
        self.cron_new = sorted(f for f in now - self.cron_before if not f.startswith("."))
        if not self.cron_new:
            return ["the plan installs no cron file"]
        return checks.cron_files(self.vps, self.cron_new)

    def _jobs(self, cron_lines) -> None:
        """Each scheduled job once, as cron runs it (same user, command, environment), with
        the knobs the scripts document turned so that each has something to do: a container
        made unhealthy, a disk threshold of 1 %, R2 replaced by a local S3 server, files in the
        synced directories, tables enough for the restore drill. Backups run before the drill
        that restores them (cron would run the drill on a later day)."""
        if not self.cron_new:
            return
        self.sick = f"rehearsal-unhealthy-{self.tag}"
        self.chatty = f"rehearsal-rotating-{self.tag}"
        self.job_logs: dict[str, list[str]] = {}
        jobs = checks.cron_commands(self.vps, self.cron_new)
        kind = {name: job_kind(env) for name, (_, _, env) in jobs.items()}
        order = sorted(jobs, key=lambda n: (kind[n] == "drill", n))
        try:
            env = self.step("jobs: set up", lambda: self._job_setup(jobs, kind))
            syslog = self.vps.rootfs / "var/log/syslog"
            for name in order:
                user, command, cron_env = jobs[name]
                assigns = " ".join(f"{k}={_q(v)}" for k, v in {**cron_env, **env}.items())
                tag = re.search(r"logger\s+(?:-\S+\s+)*-t\s+(\S+)", command)
                started = time.monotonic()
                seen = len(syslog.read_bytes()) if syslog.exists() else 0
                # pipefail: cron's /bin/sh would report logger's status, not the job's.
                out = self._sudo(f"-u {user} env {assigns} bash -o pipefail -c {_q(command)}",
                                 timeout=300)
                logged = syslog.read_bytes()[seen:].decode(errors="replace").splitlines() \
                    if syslog.exists() else []
                if tag:
                    # Only the job's own lines (sudo and sshd log to the same socket).
                    mark = re.compile(rf"^<\d+>\w+ +\d+ [\d:]+ {re.escape(tag.group(1))}(\[\d+\])?: ")
                    logged = [line for line in logged if mark.match(line)]
                self.job_logs[name] = [line.split(": ", 1)[-1] for line in logged]
                shown = " | ".join(line.split(": ", 1)[-1] for line in logged[-2:])[-200:]
                ok = out.returncode == 0
                if not ok and _calls_trivy(self.vps, command) and not _in_vps_path(self.vps, "trivy"):
                    self.steps.append(Step(f"job {name}", time.monotonic() - started,
                                           "not rehearsable: Trivy is not installed, its apt "
                                           "repository is not reachable here", True, ran=False))
                    continue
                self.steps.append(Step(f"job {name}", time.monotonic() - started,
                                       f"exit {out.returncode}; logged: {shown or 'nothing'}", ok))
                self.say(f"== job {name}: exit {out.returncode}; logged: {shown or 'nothing'}")
            self.step("job effect: unhealthy container restarted", self._healed)
            self.step("job effect: alerts reached the webhook", self._alerted)
            for name in order:
                cron_env = jobs[name][2]
                if kind[name] == "backup" and self.s3 is not None and cron_env.get("JAMJAM_R2_DEST"):
                    self.step(f"job effect: {cron_env['JAMJAM_BACKUP_NAME']} "
                              f"{cron_env['JAMJAM_BACKUP_SET']} dump in S3",
                              lambda e=cron_env: checks.dumps_in_s3(self.s3, self.vps, e))
                elif kind[name] == "drill":
                    self.step(f"job effect: {cron_env['JAMJAM_BACKUP_NAME']} restore drill passed",
                              lambda n=name, e=cron_env: self._drilled(n, e))
                elif kind[name] == "sync" and self.s3 is not None:
                    self.step(f"job effect: {cron_env['JAMJAM_SYNC_NAME']} synced to S3 byte for byte",
                              lambda e=cron_env: checks.synced_in_s3(
                                  self.s3, e, self.synced[e["JAMJAM_SYNC_NAME"]]))
                elif kind[name] == "logs" and self.s3 is not None:
                    bucket, prefix = checks.rclone_path(cron_env.get("JAMJAM_R2_DEST") or "r2:")
                    self.step("job effect: logs in S3 byte for byte", lambda b=bucket, p=prefix: (
                        checks.logs_match(self.s3, b or self.buckets[0], self.vps,
                                          self.stack_name, p)))
        finally:
            for name in (self.sick, self.chatty):
                self.api.request("DELETE", f"/containers/{name}", query={"force": "true"},
                                 ok=(204, 404))
            self._sudo("rm -f /run/jamjam-rehearsal-webhook")

    def _drilled(self, name: str, env: dict[str, str]) -> str:
        """The drill's own report (it exits 0 only when the restored database answered with
        enough tables) and nothing of its throwaway server left."""
        said = [line for line in self.job_logs.get(name, []) if "restored" in line]
        if not said:
            raise RehearsalError(f"the restore drill of {env['JAMJAM_BACKUP_NAME']} did not report "
                                 "a restore: " + " | ".join(self.job_logs.get(name, [])[-2:]))
        left = self.docker("ps", "-aq", "--filter", f"label=jamjam.drill={env['JAMJAM_BACKUP_NAME']}"
                           ).stdout.decode().split()
        if left:
            raise RehearsalError(f"the drill left {len(left)} container(s) behind")
        return said[-1].split("pg-restore-drill: ", 1)[-1][:200]

    def _job_setup(self, jobs: dict[str, tuple[str, str, dict[str, str]]],
                   kind: dict[str, str]) -> dict[str, str]:
        vps, api = self.vps, self.api
        self.receiver = checks.Receiver()
        vps.relay(vps.internet, INTERNET_ADDRESS, 8099, "127.0.0.1", self.receiver.port)
        self._sudo_stdin("install -m 0600 /dev/stdin /run/jamjam-rehearsal-webhook",
                         f"http://{INTERNET_ADDRESS}:8099/rehearsal-hook\n")
        env = {"JAMJAM_DISK_ALERT_PERCENT": "1",
               "JAMJAM_ALERT_WEBHOOK_FILE": "/run/jamjam-rehearsal-webhook"}
        self.buckets = [reveal(r.inputs).get("name") for r in self.stack.of_type(BUCKET_TYPE)]
        self.s3 = None
        parts = []
        if self.buckets:
            self.s3 = self._start_s3(self.buckets)
            # Every rclone config the plan installs (jamjam's one, or one per bucket): each
            # remote's endpoint is pointed at the local S3 server through rclone's own
            # RCLONE_CONFIG_<REMOTE>_ENDPOINT, which wins over the file.
            remotes = set()
            for conf in sorted((vps.rootfs / "etc/jamjam").glob("rclone*.conf")):
                remotes |= {line.strip()[1:-1] for line in conf.read_text().splitlines()
                            if line.strip().startswith("[")}
            for remote in sorted(remotes):
                env[f"RCLONE_CONFIG_{remote.upper()}_ENDPOINT"] = f"http://{INTERNET_ADDRESS}:8098"
            parts.append(f"local S3 (moto) for {', '.join(self.buckets)} at {INTERNET_ADDRESS}:8098")
        # The drill counts the restored tables: the database must have as many as it wants
        # before the backup runs.
        wanted: dict[str, int] = {}
        for name, (_, _, cron_env) in jobs.items():
            if kind[name] in ("backup", "drill"):
                db = cron_env["JAMJAM_DB_CONTAINER"]
                need = int(cron_env.get("JAMJAM_DRILL_MIN_TABLES", "1")) if kind[name] == "drill" else 1
                wanted[db] = max(wanted.get(db, 1), need)
        for db, need in sorted(wanted.items()):
            parts.append(checks.seed_tables(self.docker, db, need))
        # Something for each directory sync to copy.
        self.synced = {}
        for name, (_, _, cron_env) in jobs.items():
            if kind[name] == "sync":
                self.synced[cron_env["JAMJAM_SYNC_NAME"]] = checks.put_sync_files(
                    vps, cron_env["JAMJAM_SYNC_SOURCE"], self.tag)
                parts.append(f"3 files in {cron_env['JAMJAM_SYNC_SOURCE']}")
        # Something for self-healing to heal: a container with the stack's labels whose
        # healthcheck always fails.
        first = checks.containers(self.stack)[0]
        labels = {item["label"]: item["value"] for item in first.get("labels") or []}
        image = import_standin(self.docker, "jamjam-rehearsal/standin:probe")
        api.request("POST", "/containers/create", {
            "Image": image, "Labels": labels,
            "Healthcheck": {"Test": ["CMD", "false"], "Interval": 10**9, "Retries": 1}},
            query={"name": self.sick})
        api.request("POST", f"/containers/{self.sick}/start")
        wait_for(lambda: checks.health(api, self.sick) == "unhealthy", 30,
                 f"{self.sick} turning unhealthy")
        self.sick_started = api.inspect(self.sick)["State"]["StartedAt"]
        # Something for the log upload to ship across a rotation: lines from a container whose
        # log Docker rotates at 4 KiB (the plan's own containers rotate at 100 MB, which a
        # rehearsal cannot wait for).
        api.request("POST", "/containers/create", {
            "Image": image, "Labels": labels,
            "Entrypoint": ["sh", "-c", "i=0; while [ $i -lt 300 ]; do "
                           "echo line $i of the rotation test; i=$((i+1)); done; sleep 3600"],
            "HostConfig": {"LogConfig": {"Type": "json-file",
                                         "Config": {"max-size": "4k", "max-file": "5"}}}},
            query={"name": self.chatty})
        api.request("POST", f"/containers/{self.chatty}/start")
        time.sleep(1)
        parts = [f"{self.sick} unhealthy", f"{self.chatty} rotated its log",
                 f"webhook at {INTERNET_ADDRESS}:8099", *parts]
        self.say("   " + "; ".join(parts))
        return env

    def _sudo_stdin(self, command: str, data: str) -> None:
        out = self.vps.ssh(self._user(), f"sudo -n {command}", stdin=data.encode())
        if out.returncode != 0:
            raise RehearsalError(f"sudo {command} failed: {out.stderr.decode()[-200:]}")

    def _healed(self) -> str:
        info = self.api.inspect(self.sick)
        if info["State"]["StartedAt"] == self.sick_started and info.get("RestartCount", 0) == 0:
            raise RehearsalError(f"no job restarted the unhealthy container {self.sick}")
        return f"{self.sick} restarted"

    def _alerted(self) -> list[str]:
        if not self.receiver.received:
            raise RehearsalError("no job posted an alert to the webhook")
        bodies = [json.loads(body).get("content", "") for _, body in self.receiver.received]
        if not any(" ALERT disk" in b for b in bodies):
            raise RehearsalError("the disk alert (threshold 1 %) did not reach the webhook: "
                                 + "; ".join(b[:80] for b in bodies))
        return [b[:120] for b in bodies]

    def _start_s3(self, buckets: list[str]):
        import boto3
        import socket
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        moto = Path(sys.executable).parent / "moto_server"
        if not moto.exists():
            raise RehearsalError("moto_server is missing: run `make .venv/.requirements-dev`")
        self.moto = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        endpoint = f"http://127.0.0.1:{port}"
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="rehearsal", aws_secret_access_key="rehearsal")

        def up() -> bool:
            try:
                s3.list_buckets()
                return True
            except Exception:  # noqa: BLE001 (botocore raises several kinds while it starts)
                return False

        wait_for(up, 30, "the local S3 server (moto)")
        for bucket in buckets:
            s3.create_bucket(Bucket=bucket)
        self.vps.relay(self.vps.internet, INTERNET_ADDRESS, 8098, "127.0.0.1", port)
        return s3

    def _reapply(self) -> str:
        stack = self._rendered(self.overrides)
        before = {c["name"]: self.api.inspect(c["name"])["Id"] for c in checks.containers(stack)}
        state, outcomes = self.applier.apply(stack, self.state)
        ran = [o for o in outcomes if o.action not in ("same", "record", "offline", "blocked")]
        if ran:
            raise RehearsalError("the unchanged plan ran " + ", ".join(
                f"{o.action} {o.resource.name}" for o in ran))
        after = {n: self.api.inspect(n)["Id"] for n in before}
        if after != before:
            raise RehearsalError("a container was replaced by the unchanged plan")
        self.state = state
        return f"nothing ran; {len(before)} containers kept"

    def _images(self, stack: RenderedStack) -> list[str]:
        return [reveal(r.inputs)["name"] for r in stack.of_type(IMAGE)]

    def _replace(self) -> list[str]:
        lines = []
        targets = self._images(self.stack)
        if self.replace:
            targets = [t for t in targets if self.replace in t] or targets[:0]
            if not targets:
                raise RehearsalError(f"--replace {self.replace}: no rendered image matches")
        elif not self.bench:
            targets = targets[:1]
        for reference in targets:
            lines.append(self._replace_one(reference))
        return lines

    def _replace_one(self, reference: str) -> str:
        overrides = dict(self.overrides)
        new_ref = bumped_reference(reference)
        overrides.update(override_for(self.stack_name, reference, new_ref, self.project_dir))
        stack = self._rendered(overrides)
        users = [c["name"] for c in checks.containers(stack)
                 if any(r.type == IMAGE and reveal(r.inputs)["name"] == new_ref and
                        r.urn in next(x for x in stack.of_type(CONTAINER)
                                      if reveal(x.inputs)["name"] == c["name"]).options["dependencies"]
                        for r in stack.resources)]
        samples: dict[str, list[tuple[float, bool, bool]]] = {n: [] for n in users}
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                for n in users:
                    try:
                        state = checks.health(self.api, n)
                    except Exception:  # noqa: BLE001 (the container may be mid-removal)
                        state = "missing"
                    samples[n].append((time.monotonic(), state == "healthy",
                                       state not in ("missing", "exited", "dead", "created")))
                time.sleep(0.2)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        try:
            state, outcomes = self.applier.apply(stack, self.state)
            replaced = sorted(o.resource.name for o in outcomes if o.action == "replace")
            deadline = time.monotonic() + max(checks.health_deadline(c) for c in checks.containers(stack))
            wait_for(lambda: all(s and s[-1][1] for s in samples.values()) or time.monotonic() > deadline,
                     deadline - time.monotonic() + 5, "replaced containers healthy")
        finally:
            stop.set()
            thread.join()
        self.state, self.stack = state, stack
        parts = []
        for n, s in samples.items():
            if not s or not s[-1][1]:
                raise RehearsalError(f"{n} is not healthy after the replacement")
            gap = _gap([(t, healthy) for t, healthy, _ in s])
            stopped = _gap([(t, running) for t, _, running in s])
            self.gaps[n] = gap
            self.stopped[n] = stopped
            parts.append(f"{n} gap {gap:.1f} s with no healthy container ({stopped:.1f} s not running)")
        return f"{reference} -> {new_ref}: replaced {', '.join(replaced)}; " + ", ".join(parts)

    def _destroy(self) -> list[str]:
        outcomes = self.applier.destroy(self.state, self.stack)
        lines = [f"{sum(o.action == 'delete' for o in outcomes)} deleted, "
                 f"{sum(o.action == 'forget' for o in outcomes)} without a delete command left as they are, "
                 f"{sum(o.action == 'keep' for o in outcomes)} images kept (keepLocally), "
                 f"{sum(o.action == 'retain' for o in outcomes)} retained (retainOnDelete)"]
        if self.vps.ssh(self._user(), "true").returncode != 0:
            raise RehearsalError("SSH is not reachable after destroy")
        lines.append("SSH still reachable")
        left = []
        for c in checks.containers(self.stack):
            if self.api.inspect(c["name"]) is not None:
                left.append(f"container {c['name']}")
        for r in self.stack.of_type(NETWORK):
            name = reveal(r.inputs)["name"]
            if self.api.request("GET", f"/networks/{name}", ok=(200, 404)) not in (None, ""):
                if isinstance(self.api.request("GET", f"/networks/{name}", ok=(200, 404)), dict) and \
                        self.api.request("GET", f"/networks/{name}", ok=(200, 404)).get("Name") == name:
                    left.append(f"network {name}")
        kept = []
        for r in self.stack.of_type(VOLUME):
            name = reveal(r.inputs).get("name")
            got = self.api.request("GET", f"/volumes/{name}", ok=(200, 404))
            there = isinstance(got, dict) and got.get("Name") == name
            if r.options.get("retainOnDelete"):
                # The library keeps data volumes on purpose (retainOnDelete): they must still
                # be there, as `pulumi destroy` would leave them.
                if not there:
                    raise RehearsalError(f"destroy removed the volume {name}, which the plan "
                                         "retains on delete (retainOnDelete)")
                kept.append(name)
            elif there:
                left.append(f"volume {name}")
        for f in getattr(self, "cron_new", []):
            if (self.vps.rootfs / "etc/cron.d" / f).exists():
                left.append(f"/etc/cron.d/{f}")
        if left:
            raise RehearsalError("left on the VPS after destroy: " + ", ".join(left))
        lines.append("no container, network, volume or cron file of the stack left" + (
            f" but the volumes the plan keeps on purpose (retainOnDelete): {', '.join(kept)}"
            if kept else ""))
        return lines

    def _user(self) -> str:
        """The day-to-day user the plan's commands connect as (not the first contact's root)."""
        return next(reveal(r.inputs)["connection"]["user"] for r in
                    self.stack.of_type("command:remote:Command")
                    if reveal(r.inputs)["connection"]["user"] != "root")


def job_kind(env: dict[str, str]) -> str:
    """What a cron file's job is, from the variables its script reads (README per script)."""
    if env.get("JAMJAM_BACKUP_SET"):
        return "backup"
    if env.get("JAMJAM_BACKUP_NAME"):
        return "drill"
    if env.get("JAMJAM_SYNC_NAME"):
        return "sync"
    if env.get("RCLONE_CONFIG") or env.get("JAMJAM_R2_DEST"):
        return "logs"
    return "other"


def _gap(samples: list[tuple[float, bool]]) -> float:
    """Seconds from the first sample that is down to the first one up again after it."""
    down = next((t for t, up in samples if not up), None)
    if down is None:
        return 0.0
    back = next((t for t, up in samples if up and t > down), None)
    return (back - down) if back is not None else float("inf")


def _q(text: str) -> str:
    import shlex
    return shlex.quote(text)


def _in_vps_path(vps: Vps, tool: str) -> bool:
    return any((vps.rootfs / d / tool).exists() for d in ("usr/bin", "usr/local/bin", "usr/sbin", "bin"))


def _calls_trivy(vps: Vps, command: str) -> bool:
    """The job (its command, or the script it runs from /opt/jamjam/scripts) uses Trivy, whose
    installation is not rehearsable here (its apt repository is out of reach)."""
    if "trivy" in command:
        return True
    scripts = re.findall(r"(/opt/jamjam/scripts/\S+\.sh)", command)
    return any("trivy" in (vps.rootfs / s.lstrip("/")).read_text(errors="replace")
               for s in scripts if (vps.rootfs / s.lstrip("/")).exists())


def bumped_reference(reference: str) -> str:
    """The same image under a new tag: what an operator's pin change looks like."""
    ref = reference.split("@")[0]
    path, _, last = ref.rpartition("/")
    repo, _, tag = last.partition(":")
    new = f"{repo}:{tag or 'latest'}-rehearsal"
    return f"{path}/{new}" if path else new


def override_for(stack: str, old: str, new: str, project_dir: Path = ROOT) -> dict[str, Any]:
    """The stack-config override that changes the pin ``old`` to ``new``, wherever the config
    keeps it (the config's shape belongs to the program, not to the rehearsal)."""
    def swap(value):
        if value == old:
            return new, True
        if isinstance(value, dict):
            out, hit = {}, False
            for k, v in value.items():
                out[k], h = swap(v)
                hit |= h
            return out, hit
        if isinstance(value, list):
            items = [swap(v) for v in value]
            return [v for v, _ in items], any(h for _, h in items)
        return value, False

    for key, value in stack_config(stack, project_dir).items():
        new_value, hit = swap(value)
        if hit:
            return {key.split(":", 1)[1]: new_value}
    raise RehearsalError(f"the image {old} is not a value of the stack config; cannot change its pin")


def config_override(text: str) -> tuple[str, Any]:
    """--config KEY=VALUE as a stack-config key and its YAML value; a malformed one is the
    parser's one-line error."""
    import yaml
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"--config takes KEY=VALUE, got {text!r}")
    return key.strip(), yaml.safe_load(value)


USAGE = ("usage: python -m rehearsal [--project DIR] [--stack STACK] [--replace IMAGE] "
         "[--bench] [--config KEY=VALUE]")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, naming the argument and the fix
        self.exit(2, f"rehearsal: {message}; {USAGE}\n")


def _example_projects() -> str:
    return ", ".join(str(p.parent.relative_to(ROOT)) for p in sorted(ROOT.glob("examples/*/Pulumi.yaml")))


def project_dir(value: str) -> Path:
    """--project's directory: as given (relative to the working directory), else relative to
    the repository (so `make rehearse PROJECT=examples/x` and a run from elsewhere agree)."""
    for candidate in (Path(value), ROOT / value):
        if (candidate / "Pulumi.yaml").is_file():
            return candidate.resolve()
    what = "no such directory" if not any(c.is_dir() for c in (Path(value), ROOT / value)) \
        else "no Pulumi.yaml there"
    raise argparse.ArgumentTypeError(
        f"{value}: {what}; pass a Pulumi project directory: . (jamjam) or one of "
        f"{_example_projects()}")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m rehearsal", description=__doc__)
    parser.add_argument("--project", type=project_dir, default=ROOT, metavar="DIR",
                        help="the Pulumi project to rehearse (default: jamjam, this repository; "
                             "e.g. examples/thinkring)")
    parser.add_argument("--stack", default="production",
                        help=f"which stack to rehearse (default production; jamjam: {'|'.join(STACKS)})")
    parser.add_argument("--replace", metavar="IMAGE",
                        help="change the pin of the rendered image containing IMAGE (default: the first)")
    parser.add_argument("--bench", action="store_true",
                        help="change every image pin in turn and print each replacement gap")
    parser.add_argument("--config", metavar="KEY=VALUE", action="append", default=[],
                        type=config_override,
                        help="override one stack config key (VALUE as YAML), e.g. vpsDebianVersion=12")
    args = parser.parse_args(argv)
    try:
        stacks = load_project(args.project).stacks
    except ProjectError as err:
        parser.error(f"argument --project: {err}")
    if args.stack not in stacks:
        shown = "jamjam" if args.project == ROOT else str(
            args.project.relative_to(ROOT) if args.project.is_relative_to(ROOT) else args.project)
        parser.error(f"argument --stack: {args.stack!r} is not a stack of {shown}; choose one of "
                     f"{'|'.join(stacks)}")

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    rehearsal = Rehearsal(args.stack, replace=args.replace, bench=args.bench,
                          config=dict(args.config), project_dir=args.project)
    try:
        return rehearsal.run()
    except RehearsalError as err:
        print(f"rehearsal: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
