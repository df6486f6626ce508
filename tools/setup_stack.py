"""First-time setup of a stack: what it still lacks, and the exact commands that add it.

    python -m tools.setup_stack production           # check; with a `pulumi` CLI, set it up
    python -m tools.setup_stack production --check   # only report (CI's preflight)

It reads Pulumi.<stack>.yaml and checks, in order: the stack file, the stack in the backend
and its secrets provider (the passphrase provider's `encryptionsalt`), each operator key,
each secret key (set, and encrypted), and the pinned SSH host key CI needs. For each gap it
prints the `pulumi stack init` / `pulumi config set [--secret] [--path]` command to run.
Where a `pulumi` CLI is on PATH (and without --check) it runs them itself, asking for each
value on the terminal; a secret value goes to `pulumi config set --secret` on stdin, never
on a command line. Exit status: 0 nothing lacking, 1 something still lacking, 2 bad arguments.

The key names come from settings (OPERATOR_KEYS, SECRET_KEYS, NAMESPACE), and settings' own
validation decides which secrets are required and whether a value is acceptable, so this tool
never disagrees with what `pulumi up` will accept.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from tools.render import (EXAMPLE_COMMON, EXAMPLE_SECRETS, EXAMPLE_VALUES, ROOT, STACKS,
                          config_string, fill_nested)

import pulumi  # noqa: E402  (after tools.render, which puts the repo on sys.path)
import settings  # noqa: E402

NS = settings.NAMESPACE
PROG = "python -m tools.setup_stack"
# Not one of settings' top-level operator keys (it sits inside jamjam:ssh), but required like
# them: without it a remote command would trust whatever answers on the VPS address.
HOST_KEY_PATH = ("ssh", "hostKey")
HOST_KEY = f"{NS}:{'.'.join(HOST_KEY_PATH)}"
HOST_KEY_FILE = "/etc/ssh/ssh_host_ed25519_key.pub"


class UsageError(Exception):
    """Bad arguments: one line, exit 2."""


@dataclass
class Gap:
    """One thing the stack lacks, and the command that adds it."""

    what: str
    argv: list[str]
    """The pulumi command, without the value when the value is asked for."""
    value: str = "none"
    """How the value is supplied: plain (last argument), secret (stdin), inherit (the CLI asks
    on the terminal itself), manual (printed only: a fix this tool cannot make)."""
    shown: str = ""
    """The command as printed, when it differs from argv (a placeholder for the value)."""
    required: bool = True
    prompt: str = ""
    check: Callable[[str], str | None] | None = None
    """Validates an entered value; returns a one-line problem or None."""
    before: list[list[str]] = field(default_factory=list)
    """Commands to run first (e.g. removing a plaintext value before storing it encrypted)."""

    def printable(self) -> list[str]:
        return [shlex.join(argv) for argv in self.before] + [self.shown or shlex.join(self.argv)]


# ----- reading the stack file -------------------------------------------------------------------

def _stack_file(project: Path, stack: str) -> Path:
    return project / f"Pulumi.{stack}.yaml"


def _read_stack_file(path: Path) -> dict[str, Any]:
    try:
        document = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UsageError(f"{path.name}{where} is not valid YAML; fix it or restore it with "
                         f"`git checkout -- {path.name}`") from None
    if not isinstance(document, dict):
        raise UsageError(f"{path.name} is not a map of settings; restore it with "
                         f"`git checkout -- {path.name}`")
    return document


def _is_secure(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"secure"}


# ----- what settings accepts ----------------------------------------------------------------------

def _settings_error(stack: str, config: dict[str, str], secret_keys: list[str]) -> str | None:
    """settings.load's one-line complaint about this config, or None when it accepts it."""
    pulumi.runtime.set_all_config(config, secret_keys)
    try:
        settings.load(pulumi.Config(NS), stack)
    except settings.SettingsError as err:
        return str(err)
    return None


def _probe_config(stack: str, document: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """The stack's plain values, with stand-ins where a value is missing or encrypted."""
    config = {k: config_string(v) for k, v in (document.get("config") or {}).items()
              if not _is_secure(v)}
    for key, value in {**EXAMPLE_COMMON, **EXAMPLE_VALUES.get(stack, {})}.items():
        if "." in key:
            fill_nested(config, NS, key, value)
        else:
            config.setdefault(f"{NS}:{key}", value)
    secret_keys = []
    for key, value in EXAMPLE_SECRETS.items():
        full = f"{NS}:{key}"
        if full not in config:
            config[full] = value
            secret_keys.append(full)
    return config, secret_keys


def _secret_required(stack: str, document: dict[str, Any], key: str) -> bool:
    """Whether settings refuses the stack without ``key`` (asked of settings, not assumed)."""
    config, secret_keys = _probe_config(stack, document)
    full = f"{NS}:{key}"
    config.pop(full, None)
    problem = _settings_error(stack, config, [k for k in secret_keys if k != full])
    # A complaint about another key says nothing either way; asking for it is the safe side.
    return problem is not None and (problem.startswith(f"{full}:") or
                                    not problem.startswith(f"{NS}:"))


def value_check(stack: str, document: dict[str, Any], key: str,
                secret: bool) -> Callable[[str], str | None]:
    """Validates one entered value the way settings will, with the stack's other values."""
    def check(value: str) -> str | None:
        config, secret_keys = _probe_config(stack, document)
        full = f"{NS}:{key}"
        if "." in key:
            section, name = key.split(".", 1)
            current = json.loads(config.get(f"{NS}:{section}", "{}"))
            current[name] = value
            config[f"{NS}:{section}"] = json.dumps(current)
        else:
            config[full] = value
            if secret and full not in secret_keys:
                secret_keys.append(full)
        problem = _settings_error(stack, config, secret_keys)
        if problem and problem.startswith(f"{full}:"):
            return problem
        return None
    return check


# ----- the pulumi CLI -----------------------------------------------------------------------------

class Cli:
    def __init__(self, executable: str, project: Path) -> None:
        self.executable = executable
        self.project = project

    def run(self, argv: list[str], stdin: bytes | None = None, inherit: bool = False,
            capture: bool = False) -> subprocess.CompletedProcess:
        """Run ``pulumi <argv[1:]>`` in the project; a value goes on stdin, never in argv."""
        assert argv[0] == "pulumi"
        kwargs: dict[str, Any] = {"cwd": self.project}
        if capture:
            kwargs.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if stdin is not None:
            kwargs["input"] = stdin
        elif not inherit:
            kwargs["stdin"] = subprocess.DEVNULL
        return subprocess.run([self.executable, *argv[1:]], check=False, **kwargs)

    def backend_url(self) -> str | None:
        result = self.run(["pulumi", "whoami", "--json", "--non-interactive"], capture=True)
        if result.returncode != 0:
            return None
        try:
            return str(json.loads(result.stdout).get("url") or "")
        except (json.JSONDecodeError, AttributeError):
            return ""

    def stacks(self) -> set[str] | None:
        result = self.run(["pulumi", "stack", "ls", "--json", "--non-interactive"], capture=True)
        if result.returncode != 0:
            return None
        try:
            # Pulumi Cloud names stacks org/project/stack; self-managed backends just stack.
            return {str(s["name"]).rsplit("/", 1)[-1] for s in json.loads(result.stdout)}
        except (json.JSONDecodeError, KeyError, TypeError):
            return None


def _self_managed(url: str | None) -> bool:
    # Pulumi Cloud (and a self-hosted Pulumi Cloud) speak https and keep secrets themselves;
    # every other backend (s3://, file://, ...) needs a secrets provider of its own.
    return not (url or "").startswith("https://")


# ----- what the stack lacks -----------------------------------------------------------------------

def find_gaps(stack: str, project: Path, cli: Cli | None) -> tuple[list[Gap], list[str]]:
    """The gaps, in the order they must be filled, and notes to show alongside."""
    notes: list[str] = []
    gaps: list[Gap] = []
    path = _stack_file(project, stack)
    if not path.exists():
        raise UsageError(f"{path.name} is missing; it holds the stack's committed settings: "
                         f"restore it with `git checkout -- {path.name}`")
    document = _read_stack_file(path)
    config = document.get("config") or {}
    at = ["--stack", stack]

    url: str | None = os.environ.get("PULUMI_BACKEND_URL")
    existing: set[str] | None = None
    if cli:
        url = cli.backend_url()
        if url is None:
            gaps.append(Gap("not logged in to a state backend (set PULUMI_BACKEND_URL as README "
                            "'Deploying for real' says, then log in)", ["pulumi", "login"],
                            value="inherit"))
            return gaps, notes
        existing = cli.stacks()
    if url:
        notes.append(f"backend: {url.split('?', 1)[0]}")
    else:
        notes.append("backend: PULUMI_BACKEND_URL is not set; assuming README's self-managed "
                     "R2 backend (passphrase secrets)")
    self_managed = _self_managed(url)

    has_provider = "secretsprovider" in document or "encryptionsalt" in document
    if existing is not None and stack not in existing:
        argv = ["pulumi", "stack", "init", stack]
        if self_managed:
            argv += ["--secrets-provider", "passphrase"]
        gaps.append(Gap(f"stack {stack} does not exist in the backend", argv, value="inherit"))
    elif self_managed and not has_provider:
        if existing is None:
            gaps.append(Gap(f"{path.name} has no encryptionsalt: the stack was never initialised "
                            "with the passphrase secrets provider",
                            ["pulumi", "stack", "init", stack, "--secrets-provider", "passphrase"],
                            value="inherit"))
        else:
            gaps.append(Gap(f"{path.name} has no encryptionsalt although the stack exists: "
                            f"restore it from git history, or make a new one",
                            ["pulumi", "stack", "change-secrets-provider", *at, "passphrase"],
                            value="inherit"))

    for key in settings.OPERATOR_KEYS:
        full = f"{NS}:{key}"
        if config.get(full) in (None, ""):
            hint = _settings_error(stack, *_without(stack, document, full)) or f"{full} is not set"
            gaps.append(Gap(hint, ["pulumi", "config", "set", *at, full], value="plain",
                            shown=shlex.join(["pulumi", "config", "set", *at, full]) + " <value>",
                            prompt=f"{full}", check=value_check(stack, document, key, False)))

    for key in settings.SECRET_KEYS:
        full = f"{NS}:{key}"
        current = config.get(full)
        argv = ["pulumi", "config", "set", *at, "--secret", full]
        shown = shlex.join(argv) + " < <file holding the value>"
        if _is_secure(current):
            continue
        required = _secret_required(stack, document, key)
        check = value_check(stack, document, key, True)
        if current not in (None, ""):
            # A plaintext secret sits readable in a committed file: store it encrypted instead.
            gaps.append(Gap(f"{full} is stored in plaintext in {path.name}; store it encrypted "
                            "(and rotate it if the file was ever pushed)", argv, value="secret",
                            shown=shown, prompt=full, check=check,
                            before=[["pulumi", "config", "rm", *at, full]]))
        else:
            what = f"{full} is not set" + ("" if required else " (optional)")
            gaps.append(Gap(what, argv, value="secret", shown=shown, required=required,
                            prompt=full, check=check))

    # A value that is set but wrong: settings' own line says what is wrong and how to fix it.
    problem = _settings_error(stack, *_probe_config(stack, document))
    if problem:
        key = problem.split(":", 2)[1] if problem.startswith(f"{NS}:") else ""
        host_key = ".".join(HOST_KEY_PATH)
        if key in settings.OPERATOR_KEYS or key == host_key:
            full = f"{NS}:{key}"
            argv = ["pulumi", "config", "set", *at, *(["--path"] if key == host_key else []), full]
            gaps.append(Gap(problem, argv, value="plain", shown=shlex.join(argv) + " <value>",
                            prompt=full, check=value_check(stack, document, key, False)))
        elif key not in settings.SECRET_KEYS:
            # A plaintext secret already has its gap below; anything else is fixed by hand.
            gaps.append(Gap(problem, [], value="manual", shown=f"edit {path.name} (see above)"))

    section = config.get(f"{NS}:{HOST_KEY_PATH[0]}") or {}
    if not (isinstance(section, dict) and section.get(HOST_KEY_PATH[1])):
        argv = ["pulumi", "config", "set", *at, "--path", HOST_KEY]
        gaps.append(Gap(f"{HOST_KEY} is not set: every remote command and the Docker provider "
                        "refuse a VPS host key they have not been given; get it with "
                        "`ssh-keyscan -t ed25519 <vpsAddress>` and check `ssh-keygen -lf` of it "
                        f"against the fingerprint of {HOST_KEY_FILE} shown on the provider's "
                        "console (a scan alone trusts whatever answers on the network)",
                        argv, value="plain",
                        shown=shlex.join(argv) + " '<type> <base64 key>'",
                        prompt=HOST_KEY,
                        check=value_check(stack, document, ".".join(HOST_KEY_PATH), False)))
    return gaps, notes


def _without(stack: str, document: dict[str, Any], full: str) -> tuple[dict[str, str], list[str]]:
    config, secret_keys = _probe_config(stack, document)
    config.pop(full, None)
    return config, secret_keys


# ----- asking for values and running --------------------------------------------------------------

def _ask(gap: Gap, ask_plain: Callable[[str], str], ask_secret: Callable[[str], str]) -> str | None:
    """The operator's value for ``gap``, validated; None when they leave it empty."""
    for _ in range(3):
        if gap.value == "secret":
            value = ask_secret(f"{gap.prompt} (hidden; or @path to read a file; empty to skip): ")
            if value.startswith("@"):
                source = Path(value[1:].strip()).expanduser()
                try:
                    # As is: an OpenSSH key without its final newline is refused by ssh-add.
                    value = source.read_text()
                except OSError as err:
                    print(f"  cannot read {source}: {err.strerror}", file=sys.stderr)
                    continue
            else:
                value = value.strip()
        else:
            value = ask_plain(f"{gap.prompt} (empty to skip): ").strip()
        if gap.prompt == HOST_KEY:
            # The .pub file ends with a comment (root@host) that settings does not accept.
            value = " ".join(value.split()[:2])
        if not value.strip():
            return None
        problem = gap.check(value) if gap.check else None
        if problem is None:
            return value
        print(f"  {problem}", file=sys.stderr)
    return None


def _read_secret(prompt: str) -> str:
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    # Piped (scripted) input: no echo to suppress, and getpass would warn on every read.
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().rstrip("\n")


def _read_plain(prompt: str) -> str:
    print(prompt, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().rstrip("\n")


def apply(gaps: list[Gap], cli: Cli) -> bool:
    """Fill each gap with the CLI; False at the first command that fails (nothing after it runs)."""
    for gap in gaps:
        print(f"- {gap.what}")
        if gap.value == "manual":
            print(f"  fix this by hand: {gap.shown}")
            continue
        if gap.value in ("plain", "secret"):
            value = _ask(gap, _read_plain, _read_secret)
            if value is None:
                print("  skipped")
                continue
        else:
            value = None
        for argv in gap.before:
            print(f"  $ {shlex.join(argv)}")
            if cli.run(argv).returncode != 0:
                print(f"{PROG}: `{shlex.join(argv)}` failed; nothing after it was run",
                      file=sys.stderr)
                return False
        argv = list(gap.argv)
        stdin = None
        if gap.value == "plain":
            argv.append(value)
        elif gap.value == "secret":
            stdin = value.encode()
        print(f"  $ {gap.shown or shlex.join(argv)}" if gap.value == "secret"
              else f"  $ {shlex.join(argv)}")
        result = cli.run(argv, stdin=stdin, inherit=gap.value == "inherit")
        if result.returncode != 0:
            print(f"{PROG}: `{shlex.join(gap.argv)}` failed (exit {result.returncode}); "
                  "nothing after it was run; fix the cause and run this again", file=sys.stderr)
            return False
    return True


def report(stack: str, gaps: list[Gap], notes: list[str]) -> None:
    for note in notes:
        print(f"{stack}: {note}")
    lacking = [g for g in gaps if g.required]
    if not lacking:
        print(f"{stack}: nothing lacking")
    for gap in gaps:
        label = "lacks" if gap.required else "optional"
        print(f"{stack} {label}: {gap.what}")
        for line in gap.printable():
            print(f"    {line}")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2 (argparse prints usage too)
        raise UsageError(f"{message} (usage: {PROG} <{'|'.join(STACKS)}> [--check])")


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("stack")
    parser.add_argument("--check", action="store_true",
                        help="only report what is lacking; never prompt or change anything")
    parser.add_argument("--project-dir", type=Path, default=ROOT,
                        help="directory holding Pulumi.yaml (default: this repository)")
    try:
        args = parser.parse_args(argv)
        if args.stack not in STACKS:
            raise UsageError(f"unknown stack {args.stack!r}; use one of {', '.join(STACKS)} "
                             f"(for example: {PROG} {STACKS[0]})")
        if not (args.project_dir / "Pulumi.yaml").is_file():
            raise UsageError(f"--project-dir {args.project_dir} holds no Pulumi.yaml; "
                             "point it at the project (default: this repository)")
        executable = shutil.which("pulumi")
        cli = Cli(executable, args.project_dir) if executable else None
        gaps, notes = find_gaps(args.stack, args.project_dir, cli)
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2

    if args.check or cli is None or not gaps:
        report(args.stack, gaps, notes)
        if cli is None and gaps and not args.check:
            print(f"{args.stack}: no `pulumi` CLI on PATH: run the commands above, or install "
                  "the CLI and run this again to have them run for you")
        return 1 if any(g.required for g in gaps) else 0

    for note in notes:
        print(f"{args.stack}: {note}")
    try:
        if gaps[0].argv == ["pulumi", "login"]:
            # Until logged in, the backend cannot say which stacks exist: log in, then look again.
            if not apply(gaps[:1], cli):
                return 1
            gaps, notes = find_gaps(args.stack, args.project_dir, cli)
            if gaps and gaps[0].argv == ["pulumi", "login"]:
                report(args.stack, gaps, notes)
                return 1
        if not apply(gaps, cli):
            return 1
        # Whatever was skipped or refused shows up again here.
        gaps, notes = find_gaps(args.stack, args.project_dir, cli)
    except UsageError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    print()
    report(args.stack, gaps, [])
    if not any(g.required for g in gaps):
        print(f"{args.stack}: commit {_stack_file(args.project_dir, args.stack).name} so CI "
              "sees the same settings (secrets in it are encrypted)")
    return 1 if any(g.required for g in gaps) else 0


if __name__ == "__main__":
    sys.exit(main())
