"""Run the policy pack offline: the same rules `pulumi preview --policy-pack policies` runs.

    python -m tools.policy_check production            # render, check, report; exit 1 if mandatory
    python -m tools.policy_check test --config cfg.json

:func:`check` builds the validation arguments the way pulumi-policy's analyzer does from what the
engine sends (``_PolicyAnalyzerServicer.Analyze``/``AnalyzeStack``): camelCase inputs, secrets
marked as the pack's analyzer marks them (jamjam_policies/_compat.py), numbers as floats, props
behind the unknown-checking proxy, each policy's config (its schema defaults under the config
file's values, validated first as the CLI validates it) and its enforcement level, which the
config may override (``"all"`` or per policy, like `--policy-pack-config`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

ROOT = Path(__file__).resolve().parent.parent
POLICIES_DIR = ROOT / "policies"
if str(POLICIES_DIR) not in sys.path:
    # The analyzer runs policies/__main__.py from policies/, so the package is top-level there.
    sys.path.insert(0, str(POLICIES_DIR))

from jamjam_policies import ALL_POLICIES  # noqa: E402
from jamjam_policies._compat import deserialize_value  # noqa: E402
from jamjam_policies.config import defaults, validate_pack_config  # noqa: E402
from pulumi_policy import (  # noqa: E402
    EnforcementLevel, PolicyCustomTimeouts, PolicyProviderResource, PolicyResource,
    PolicyResourceOptions, ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy  # noqa: E402

import pulumi  # noqa: E402

LEVELS = ("mandatory", "advisory")


@dataclass(frozen=True)
class Violation:
    policy: str
    level: str      # "mandatory" | "advisory"
    resource: str | None
    """URN of the resource the violation is about; None for the stack as a whole."""
    message: str


def _struct_form(value: Any) -> Any:
    """What a protobuf Struct keeps of ``value``: numbers as floats, tuples as lists (secrets
    stay wrapped in the engine's signature, which tools.render writes and the compat reads)."""
    if isinstance(value, Mapping):
        return {str(k): _struct_form(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_struct_form(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return float(value)
    return value


def wire(value: Any) -> Any:
    """A value as the pack's analyzer deserializes it: numbers as floats, secret strings as
    ``SecretStr`` (plain strings to every rule that doesn't ask)."""
    return deserialize_value(_struct_form(value))


def _provider(ref: str | None) -> PolicyProviderResource | None:
    # A provider reference is "<provider urn>::<id>"; the URN ends "<type>::<name>".
    if not ref:
        return None
    urn = ref.rsplit("::", 1)[0]
    qualified, name = urn.rsplit("::", 1)
    return PolicyProviderResource(qualified.rsplit("$", 1)[-1], unknown_checking_proxy({}), urn,
                                  name)


def _options(parent: str | None) -> PolicyResourceOptions:
    return PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


def _policy_settings(config: Mapping[str, Any] | None, policy: Any) -> tuple[str, dict]:
    """(enforcement level, properties) for one policy from a --policy-pack-config mapping."""
    level = policy.enforcement_level.value if policy.enforcement_level else "advisory"
    config = config or {}
    properties = defaults(policy.config_schema)
    for key in ("all", policy.name):
        entry = config.get(key)
        if isinstance(entry, str):
            level = entry
        elif isinstance(entry, Mapping) and key == policy.name:
            level = entry.get("enforcementLevel", level)
            properties.update({k: wire(v) for k, v in entry.items() if k != "enforcementLevel"})
        elif isinstance(entry, Mapping):
            level = entry.get("enforcementLevel", level)
    return EnforcementLevel(level).value, properties


def check(stack_name: str, resources: Iterable[Any],
          config: Mapping[str, Any] | None = None) -> list[Violation]:
    """Every violation of the pack on ``resources`` (objects with type, name, urn, inputs,
    parent, provider: tools.render.Resource), in pack order, each rule's by resource URN."""
    # The SDK registers independent resources in whatever order their inputs resolve; sorting
    # here makes every report (plan, plan-examples, JSON) the same from run to run.
    resources = sorted(resources, key=lambda resource: resource.urn)
    if config is not None:
        validate_pack_config(config, ALL_POLICIES)
    violations: list[Violation] = []
    for policy in ALL_POLICIES:
        level, properties = _policy_settings(config, policy)
        if level == "disabled":
            continue
        if level == "remediate":
            level = "mandatory"
        if policy.config_schema and "stack" in policy.config_schema.properties:
            # Under the CLI the pack reads the running stack; here one process checks several.
            properties.setdefault("stack", stack_name)

        def report(message: str, urn: str | None = None, *, _policy=policy,
                   _level=level) -> None:
            violations.append(Violation(_policy.name, _level, urn, message))

        if isinstance(policy, ResourceValidationPolicy):
            for resource in resources:
                args = ResourceValidationArgs(
                    resource.type, unknown_checking_proxy(wire(resource.inputs)), resource.urn,
                    resource.name, _options(resource.parent), _provider(resource.provider),
                    dict(properties))
                _run(policy, args, lambda m, u=None, r=resource.urn: report(m, u or r),
                     violations)
        elif isinstance(policy, StackValidationPolicy):
            by_urn: dict[str, PolicyResource] = {}
            for resource in resources:
                by_urn[resource.urn] = PolicyResource(
                    resource.type, unknown_checking_proxy(wire(resource.inputs)), resource.urn,
                    resource.name, _options(resource.parent), _provider(resource.provider),
                    None, [], {})
            for resource in resources:
                if resource.parent in by_urn:
                    by_urn[resource.urn].parent = by_urn[resource.parent]
                # The engine sends each resource's dependencies (a container's on its image):
                # render keeps them as URNs in the options.
                options = getattr(resource, "options", None) or {}
                by_urn[resource.urn].dependencies = [
                    by_urn[urn] for urn in options.get("dependencies") or [] if urn in by_urn]
            args = StackValidationArgs(list(by_urn.values()), dict(properties))
            _run(policy, args, report, violations)
    return violations


def _run(policy: Any, args: Any, report: Any, violations: list[Violation]) -> None:
    try:
        policy.validate(args, report)
    except UnknownValueError as err:
        # What the analyzer does with an unknown a rule didn't handle: an advisory note.
        violations.append(Violation(policy.name, "advisory", getattr(args, "urn", None),
                                    f"Policy {policy.name} can't run during preview: {err.message}."))


def format_report(violations: list[Violation]) -> str:
    if not violations:
        return "Policies: every rule passes."
    lines = []
    for level in LEVELS:
        found = [v for v in violations if v.level == level]
        if found:
            lines.append(f"Policies, {level} ({len(found)}):")
            lines += [f"  - [{v.policy}] {v.message}" for v in found]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    # The render (and with it the program's SDKs) loads only for the command line: check()
    # alone serves tests and the plan, which render for themselves.
    from tools import render as rendering
    from tools.cli import (PROJECT_POLICY_CONFIG, OneLineParser, config_errors, exit_status,
                           resolve_stacks)

    parser = OneLineParser(prog="python -m tools.policy_check",
                           description="Run the policy pack on rendered stacks, offline.")
    parser.add_argument("stacks", nargs="*", metavar="stack",
                        help="a stack of the project, a Pulumi.<stack>.yaml (default: all)")
    parser.add_argument("--config", type=Path, help="a --policy-pack-config JSON file")
    parser.add_argument("--project-dir", type=Path, action="append", dest="project_dirs",
                        metavar="DIR", help="directory of a Pulumi project (default: jamjam's, "
                        f"{rendering.ROOT}); repeat it to check several projects")
    args = parser.parse_args(argv)
    plans = [(d, resolve_stacks(parser, d, args.stacks))
             for d in args.project_dirs or [rendering.ROOT]]
    # --config applies to every project; without it a project's own policy-config.json does.
    configs: dict[Path, Any] = {}
    for project_dir, stacks in plans:
        path = args.config
        if path is None and (project_dir / PROJECT_POLICY_CONFIG).exists():
            path = project_dir / PROJECT_POLICY_CONFIG
        config = configs[project_dir] = _policy_config(parser, path)
        if config is not None:
            try:
                # Settings and levels are read before any rule runs on a real resource, so a
                # bad config is one line here, not a traceback halfway through a stack.
                check(next(iter(stacks), ""), [], config)
            except ValueError as error:
                parser.error(f"--config {path}: {error}")
    failed = False
    errors: list[str] = []
    for project_dir, stacks in plans:
        config = configs[project_dir]
        # Only a project other than jamjam is named to render(), so a test may stand in for
        # render with a one-argument function.
        where = {} if project_dir == rendering.ROOT else {"project_dir": project_dir}
        for name in stacks:
            try:
                rendered = rendering.render(name, **where)
            except (pulumi.RunError, rendering.ProjectError) as error:
                errors += config_errors(name, error, project_dir)
                continue
            violations = check(name, rendered.resources, config)
            failed |= any(v.level == "mandatory" for v in violations)
            print(f"Stack {name}:\n{format_report(violations)}\n", flush=True)
    return exit_status(errors, failed)


def _policy_config(parser: argparse.ArgumentParser, path: Path | None) -> Any:
    if path is None:
        return None
    try:
        config = json.loads(path.read_text())
    except OSError as error:
        parser.error(f"--config {path}: {error.strerror}")
    except json.JSONDecodeError as error:
        parser.error(f"--config {path}: not JSON ({error.msg} at line {error.lineno}); "
                     "see policies/config.example.json")
    if not isinstance(config, dict):
        parser.error(f"--config {path}: must be a JSON object of policy name -> level or "
                     "settings; see policies/config.example.json")
    return config


if __name__ == "__main__":
    from tools.cli import run_quietly_on_broken_pipe
    sys.exit(run_quietly_on_broken_pipe(main))
