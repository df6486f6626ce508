"""What every offline entry point (tools.plan, tools.policy_check, tools.plan_examples) shares:
one-line argument errors, one line per bad config key, stack resolution and the exit status.

It sits below all of them, so the plan can use the policy check and neither imports the other's
command line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from tools.render import ROOT, ProjectError, load_project

PROJECT_POLICY_CONFIG = "policy-config.json"
"""A project's own --policy-pack-config, beside its Pulumi.yaml (the examples name their log
bucket there); used when present."""


def project_policy_config(project_dir: Path) -> Any:
    """The project's own policy config (PROJECT_POLICY_CONFIG) as JSON, None without one."""
    path = Path(project_dir) / PROJECT_POLICY_CONFIG
    return json.loads(path.read_text()) if path.exists() else None


def stack_file(project_dir: Path, stack: str) -> str:
    """Pulumi.<stack>.yaml as a user would type it from here."""
    path = Path(project_dir).resolve() / f"Pulumi.{stack}.yaml"
    relative = os.path.relpath(path)
    return str(path) if relative.startswith("..") else relative


def config_errors(stack: str, error: Exception, project_dir: Path = ROOT) -> list[str]:
    """One line per bad key, naming the stack file it is about."""
    if isinstance(error, ProjectError):
        return [str(error)]  # names its file already
    lines = getattr(error, "lines", None) or str(error).splitlines() or [type(error).__name__]
    return [f"{stack_file(project_dir, stack)}: {line}" for line in lines]


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (what is wrong, where to look), not the usage
    block followed by the error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def resolve_stacks(parser: argparse.ArgumentParser, project_dir: Path,
                   names: list[str]) -> tuple[str, ...]:
    """The stacks named on the command line (all of the project's without names); an unknown
    one is a one-line parser error listing the project's stacks."""
    try:
        known = load_project(project_dir).stacks
    except ProjectError as error:
        parser.error(str(error))
    for name in names:
        if name not in known:
            parser.error(f"unknown stack {name!r}; choose from {', '.join(known)}")
    return tuple(names) or known


def exit_status(errors: list[str], failed: bool) -> int:
    """The exit status every offline entry point shares: 2 with one stderr line per bad key,
    1 when a mandatory rule is violated, else 0."""
    for line in errors:
        print(line, file=sys.stderr)
    if errors:
        return 2
    if failed:
        print("A mandatory policy is violated; see above.", file=sys.stderr)
    return 1 if failed else 0


def run_quietly_on_broken_pipe(main: Callable[[], int]) -> int:
    """`python -m tools.plan | head`: the reader leaving early is not an error."""
    try:
        return main()
    except BrokenPipeError:
        # Python would complain again while flushing stdout at exit; point it at /dev/null.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
