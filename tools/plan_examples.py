"""What each example project declares, offline: rendered under the mock runtime like
``make plan``, summarised, and checked by the policy pack with the project's own
``policy-config.json``.

    python -m tools.plan_examples                  # the four projects under examples/
    python -m tools.plan_examples --tree           # and each one's full resource tree
    python -m tools.plan_examples --with-jamjam    # jamjam's stacks first, as `make plan` shows them
    python -m tools.plan_examples examples/thinkring

Everything renders in this one process, so the SDKs are imported once (bench/plan_speed.py
compares that with a bare import). The summary is read back from the rendered resources, by
type, never from the programs' own modules: it says what the plan holds. Exit status 1 when a
mandatory policy is violated, 2 when a project does not render (one line per problem).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pickle
import pkgutil
import re
import shlex
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import jamjam_infra
import pulumi
from jamjam_infra.rules import carries_credentials, says_secret

from tools.cli import (OneLineParser, config_errors, exit_status, project_policy_config,
                       run_quietly_on_broken_pipe)
from tools.plan import for_display, tree_text
from tools.render import ROOT, ProjectError, RenderedStack, Resource, is_secret, load_project, \
    render, reveal

EXAMPLES = ROOT / "examples"
CONTAINER = "docker:index/container:Container"
REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
COMMAND = "command:remote:Command"
DAY = 86_400


def example_dirs() -> list[Path]:
    return sorted(p.parent for p in EXAMPLES.glob("*/Pulumi.yaml"))


def _by_urn(stack: RenderedStack) -> dict[str, Resource]:
    return {r.urn: r for r in stack.resources}


def _image_of(container: Resource, urns: dict[str, Resource]) -> str:
    for urn in container.options["dependencies"]:
        dep = urns.get(urn)
        if dep is not None and dep.type == REMOTE_IMAGE:
            return str(dep.inputs.get("name"))
    return str(container.inputs.get("image"))


def _env(container: Resource) -> tuple[list[str], bool]:
    """``NAME=value`` per variable, credentials masked; whether the list is a secret (Pulumi
    keeps a list secret as a whole once one element is)."""
    envs = container.inputs.get("envs") or []
    whole = is_secret(envs)
    shown = []
    for entry in reveal(envs):
        name, _, value = str(entry).partition("=")
        if says_secret(name) or carries_credentials(value):
            value = "[secret]"
        shown.append(f"{name}={value}")
    return shown, whole


def _container_lines(stack: RenderedStack) -> list[str]:
    urns = _by_urn(stack)
    lines = []
    # Registration order varies from run to run (the SDK registers from threads): by name.
    for c in sorted(stack.of_type(CONTAINER), key=lambda r: r.inputs["name"]):
        i = c.inputs
        env, secret_list = _env(c)
        labels = {e["label"]: e["value"] for e in i.get("labels") or []}
        ports = [f"{p.get('external')}->{p['internal']}/{p.get('protocol', 'tcp')}"
                 for p in i.get("ports") or []]
        volumes = [f"{v['volumeName']}:{v['containerPath']}" for v in i.get("volumes") or []]
        health = i.get("healthcheck") or {}
        logs = i.get("logOpts") or {}
        lines.append(f"    {i['name']}  {_image_of(c, urns)}  (restart {i.get('restart')})")
        lines.append(f"      published: {', '.join(ports) or 'nothing'}; aliases: "
                     f"{', '.join(a for n in i.get('networksAdvanced') or [] for a in n.get('aliases') or []) or '-'}")
        if volumes:
            lines.append(f"      volumes: {', '.join(volumes)}")
        if env:
            lines.append(f"      env{' (a Pulumi secret)' if secret_list else ''}: {' '.join(env)}")
        test = " ".join(str(t) for t in (health.get("tests") or [])[1:])
        lines.append(f"      health: {test[:70]}{'...' if len(test) > 70 else ''} every "
                     f"{health.get('interval')}, {int(health.get('retries') or 0)} retries; logs "
                     f"{logs.get('max-size')} x {logs.get('max-file')}")
        caps = (i.get("capabilities") or {}).get("adds") or []
        lines.append(f"      limits: memory {int(i.get('memory') or 0)} MB, capabilities kept: "
                     f"{', '.join(caps) or 'none'}"
                     + (f"; backup: {labels['jamjam.backup']}" if "jamjam.backup" in labels else ""))
    return lines


def _route_lines(stack: RenderedStack) -> list[str]:
    lines = []
    tunnels = stack.of_type("cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared")
    checks = {(h.inputs["address"], h.inputs["httpConfig"]["path"]): h
              for h in stack.of_type("cloudflare:index/healthcheck:Healthcheck")}
    for tunnel in sorted(tunnels, key=lambda r: r.inputs["name"]):
        lines.append(f"  Tunnel {tunnel.inputs['name']}:")
    for config in stack.of_type(
            "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig"):
        for ingress in config.inputs["config"]["ingresses"]:
            if "hostname" not in ingress:
                lines.append(f"    anything else -> {ingress['service']}")
                continue
            path = f" path {ingress['path']}" if ingress.get("path") else ""
            lines.append(f"    https://{ingress['hostname']}{path} -> {ingress['service']}")
    for (address, path), check in sorted(checks.items()):
        http = check.inputs["httpConfig"]
        lines.append(f"    external check: GET https://{address}{path} expects "
                     f"{'/'.join(http['expectedCodes'])}, every {int(check.inputs['interval'])} s, "
                     f"alert after {int(check.inputs['consecutiveFails'])} failures")
    records = [r.inputs["name"] for r in stack.of_type("cloudflare:index/dnsRecord:DnsRecord")]
    if records:
        lines.append(f"    DNS (proxied CNAME): {', '.join(records)}")
    return lines


def _firewall_lines(stack: RenderedStack) -> list[str]:
    lines = []
    for command in stack.of_type(COMMAND):
        create = command.inputs.get("create")
        if isinstance(create, str) and "jamjam-firewall apply" in create:
            argv = shlex.split(create.split("&&")[-1])
            opened = [f"{argv[argv.index('--ssh-port') + 1]}/tcp (ssh)"]
            opened += [argv[n + 1] for n, a in enumerate(argv) if a == "--allow"]
            host = reveal(command.inputs["connection"])["host"]
            lines.append(f"  Host {host}: firewall opens {', '.join(opened)}, nothing else")
    return lines


def _job_lines(stack: RenderedStack) -> list[str]:
    lines = []
    for path, content in sorted(stack.host_files().items()):
        if not path.startswith("/etc/cron.d/") or not isinstance(content, str):
            continue
        description = next((line.split(": ", 1)[1] for line in content.splitlines()
                            if line.startswith("# Managed by Pulumi")), "")
        for line in content.splitlines():
            fields = line.split()
            if len(fields) > 6 and not line.startswith("#") and "=" not in fields[0]:
                lines.append(f"    {' '.join(fields[:5]):<14} {path.rsplit('/', 1)[1][7:]:<34} "
                             f"{description}")
    return lines


def _os_update_lines(stack: RenderedStack) -> list[str]:
    written = stack.host_files()
    # os-updates.sh owns the timer drop-in (one owner per file), so the window is read from it.
    timer = written.get("/usr/local/sbin/jamjam-os-updates")
    policy = written.get("/etc/apt/apt.conf.d/52jamjam-unattended-upgrades")
    if not isinstance(timer, str) or not isinstance(policy, str):
        return []
    when = [line.split("=", 1)[1] for line in timer.splitlines()
            if line.startswith("OnCalendar=") and line != "OnCalendar="]
    reboot = re.search(r'Automatic-Reboot "(\w+)"', policy)
    return [f"    OS security updates (unattended-upgrades): {', '.join(when)}; reboot by "
            f"itself: {'yes' if reboot and reboot.group(1) == 'true' else 'no'}"]


def _post_deploy_lines(stack: RenderedStack) -> list[str]:
    return [f"    before {', '.join(c['name'] for c in waiting)}: "
            f"{'; '.join(shlex.join(run) for run in runs)}"
            for _, waiting, runs in sorted(stack.post_deploy_steps(), key=lambda s: s[0].name)]


def _bucket_lines(stack: RenderedStack) -> list[str]:
    lines = []
    public = {r.inputs["bucketName"]: r.inputs["enabled"]
              for r in stack.of_type("cloudflare:index/r2ManagedDomain:R2ManagedDomain")}
    rules: dict[str, list[str]] = {}
    for lifecycle in stack.of_type("cloudflare:index/r2BucketLifecycle:R2BucketLifecycle"):
        for rule in lifecycle.inputs["rules"]:
            delete = rule.get("deleteObjectsTransition")
            if delete:
                rules.setdefault(lifecycle.inputs["bucketName"], []).append(
                    f"{rule['conditions']['prefix'] or '(all)'} {int(delete['condition']['maxAge'] // DAY)} d")
    for bucket in sorted(stack.of_type("cloudflare:index/r2Bucket:R2Bucket"),
                         key=lambda r: r.inputs["name"]):
        name = bucket.inputs["name"]
        lines.append(f"    {name}: {'PUBLIC r2.dev URL' if public.get(name) else 'private'}; "
                     f"expiry: {', '.join(rules.get(name, [])) or 'none (kept until deleted)'}")
    return lines


def summary(stack: RenderedStack, project_dir: Path, violations: list) -> str:
    components = sum(not r.custom for r in stack.resources)
    resources = sum(r.custom for r in stack.resources)
    where = project_dir.relative_to(ROOT) if project_dir.is_relative_to(ROOT) else project_dir
    lines = [f"Project {stack.project} ({where}), stack {stack.stack}: {resources} resources "
             f"in {components} components"]
    if stack.examples:
        lines.append("  Stand-ins for operator-only keys: "
                     + ", ".join(f"{k}={v}" for k, v in sorted(stack.examples.items())))
    lines += _route_lines(stack)
    lines += _firewall_lines(stack)
    lines.append("  Containers:")
    lines += _container_lines(stack)
    post = _post_deploy_lines(stack)
    if post:
        lines.append("  After a new image, before it serves:")
        lines += post
    lines.append("  Scheduled jobs on the host (cron):")
    lines += _job_lines(stack)
    lines += _os_update_lines(stack)
    lines.append("  R2 buckets:")
    lines += _bucket_lines(stack)
    generated = sorted(r.name for r in stack.of_type("random:index/randomPassword:RandomPassword"))
    if generated:
        lines.append(f"  Generated secrets: {', '.join(generated)}")
    lines.append("  Outputs: " + ", ".join(
        f"{k}={v}" for k, v in sorted(for_display(stack.outputs).items()) if k != "operatorChecks"))
    lines.append(_policies(violations))
    return "\n".join(lines)


def _policies(violations: list) -> str:
    if not violations:
        return "  Policies: every rule passes."
    return "\n".join([f"  Policies ({len(violations)} violations):"]
                     + [f"    - {v.level} [{v.policy}] {v.message}" for v in violations])


def _check(stack: RenderedStack, project_dir: Path) -> list:
    from tools.policy_check import check
    return check(stack.stack, stack.resources, project_policy_config(project_dir))


@dataclass(frozen=True)
class _Job:
    project_dir: Path
    stack: str
    full_tree: bool
    """jamjam: printed as `make plan` prints it; examples: summarised (and a tree on request)."""
    tree: bool


@dataclass(frozen=True)
class _Result:
    text: str
    failed: bool
    errors: tuple[str, ...]


def _run(job: _Job) -> _Result:
    try:
        stack = render(job.stack, project_dir=job.project_dir)
    except (pulumi.RunError, ProjectError) as error:
        return _Result("", False, tuple(f"{job.project_dir.name}: {line}"
                                        for line in config_errors(job.stack, error)))
    violations = _check(stack, job.project_dir)
    parts = []
    if job.full_tree or job.tree:
        parts.append(tree_text(stack, violations))
    if not job.full_tree:
        parts.append(summary(stack, job.project_dir, violations))
    return _Result("\n\n".join(parts), any(v.level == "mandatory" for v in violations), ())


def _results(jobs: list[_Job], workers: int) -> Iterator[_Result]:
    """Each job's result, in order. Rendering is CPU-bound and single-threaded, so the jobs are
    spread over forked workers, one per CPU, which inherit the imported SDKs (the expensive
    part of a plan). The workers fork before anything renders here: a render leaves executor
    threads behind, and forking a process with threads can copy a held lock into the child.
    os.fork and a pipe per worker rather than multiprocessing: nothing but the results (plain
    text and flags) crosses, and a worker that dies shows as a short read, not a hang."""
    if workers < 2 or len(jobs) < 2 or not hasattr(os, "fork"):
        yield from map(_run, jobs)
        return
    # Imported once here rather than once per worker: the library, the policy pack, and the
    # provider modules the SDK loads lazily on first use.
    import pulumi_command.remote  # noqa: F401
    import tools.policy_check  # noqa: F401
    for module in pkgutil.iter_modules(jamjam_infra.__path__, "jamjam_infra."):
        importlib.import_module(module.name)
    workers = min(workers, len(jobs))
    streams = []
    for worker in range(workers):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            status = 0
            try:
                with os.fdopen(write, "wb") as out:
                    for index in range(worker, len(jobs), workers):
                        result = _run(jobs[index])
                        pickle.dump((index, result.text, result.failed, result.errors), out)
                        out.flush()
            except BrokenPipeError:
                # The reader is gone (`| head` closed the plan): nothing left to say.
                status = 0
            except BaseException:  # noqa: BLE001 (reported, then the worker ends)
                traceback.print_exc()
                status = 1
            finally:
                os._exit(status)
        os.close(write)
        streams.append((pid, os.fdopen(read, "rb")))
    try:
        for index in range(len(jobs)):
            try:
                got, text, failed, errors = pickle.load(streams[index % workers][1])
            except EOFError:
                raise RuntimeError("a plan worker stopped early (its error is above); "
                                   "run with --jobs 1 to render in this process") from None
            assert got == index
            yield _Result(text, failed, errors)
    finally:
        for pid, stream in streams:
            stream.close()
            os.waitpid(pid, 0)


def plan(project_dirs: Iterable[Path], tree: bool, with_jamjam: bool,
         workers: int = os.cpu_count() or 1) -> int:
    failed, errors = False, []
    projects: list[tuple[Path, bool]] = [(ROOT, True)] if with_jamjam else []
    projects += [(Path(d).resolve(), False) for d in project_dirs]
    jobs = []
    for project_dir, full_tree in projects:
        try:
            jobs += [_Job(project_dir, name, full_tree, tree)
                     for name in load_project(project_dir).stacks]
        except ProjectError as error:
            errors.append(str(error))
    # Closed however the loop ends (a reader that went away), so the workers are reaped.
    with contextlib.closing(_results(jobs, workers)) as results:
        for result in results:
            if result.text:
                print(result.text, end="\n\n", flush=True)
            failed |= result.failed
            errors += result.errors
    return exit_status(errors, failed)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.plan_examples",
                           description=__doc__.split("\n")[0])
    parser.add_argument("projects", nargs="*", type=Path,
                        help="project directories (default: every examples/*/)")
    parser.add_argument("--tree", action="store_true", help="also print each full resource tree")
    parser.add_argument("--with-jamjam", action="store_true",
                        help="first render jamjam's stacks, as `make plan` prints them")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="stacks rendered at once, in forked workers (default: CPUs)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    return plan(args.projects or example_dirs(), args.tree, args.with_jamjam, args.jobs)


if __name__ == "__main__":
    sys.exit(run_quietly_on_broken_pipe(main))
