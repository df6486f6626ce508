"""Offline plan: what each stack declares, without a cloud account or the Pulumi CLI.

    python -m tools.plan                 # every stack of jamjam, as a tree
    python -m tools.plan production      # one stack
    python -m tools.plan test --json     # the same, as JSON
    python -m tools.plan --project-dir examples/thinkring [stack]   # another project
    python -m tools.plan --project-dir . --project-dir examples/thinkring   # several, one process

Every stack renders in this one process, so the SDK import is paid once. The policy pack's
rules run against each rendered stack. Exit status: 2 when a stack's config is wrong (one line
per bad key on stderr, after the stacks that did render: each stack is reported on its own),
else 1 when a mandatory policy is violated, else 0.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Callable

import pulumi

from tools.cli import (OneLineParser, config_errors, exit_status, project_policy_config,
                       resolve_stacks, run_quietly_on_broken_pipe)
from tools.render import (
    ROOT, ProjectError, RenderedStack, Resource, is_secret, load_project, render,
)

SECRET = "[secret]"
STAND_IN = "[stand-in]"


def for_display(value: Any) -> Any:
    """Inputs as the plan shows them: secrets masked, shipped files (text of more than one line)
    summarised by size and hash, every other value as itself."""
    if is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: for_display(v) for k, v in value.items()}
    if isinstance(value, list):
        return [for_display(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    # Length is no sign of a file: a digest-pinned image reference runs past 100 characters
    # and must read as the image it is; what marks a shipped file is that it has lines.
    if isinstance(value, str) and "\n" in value:
        digest = hashlib.sha256(value.encode()).hexdigest()[:12]
        first = value.splitlines()[0] if value else ""
        return f"<{len(value.encode())} bytes, sha256 {digest}: {first[:40]}>"
    return value


def _inline(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _children(stack: RenderedStack) -> dict[str | None, list[Resource]]:
    urns = {r.urn for r in stack.resources}
    tree: dict[str | None, list[Resource]] = {}
    for resource in stack.resources:
        parent = resource.parent if resource.parent in urns else None
        tree.setdefault(parent, []).append(resource)
    for items in tree.values():
        items.sort(key=lambda r: (r.custom, r.type, r.name))
    return tree


def _made_up(stack: RenderedStack) -> Callable[[Any], str | None]:
    """What a shown value stands for when it holds a value the mock runtime made up, else None."""
    # Short made-up values (a few random bytes in hex) would match by chance anywhere.
    values = sorted(((v, m) for v, m in stack.stand_ins.items() if len(v) >= 8),
                    key=lambda item: -len(item[0]))

    def what(value: Any) -> str | None:
        text = _inline(value)
        return next((meaning for made_up, meaning in values if made_up in text), None)
    return what


def header(stack: RenderedStack) -> str:
    resources = sum(r.custom for r in stack.resources)
    components = len(stack.resources) - resources
    return (f"Stack {stack.stack} (project {stack.project}): {resources} resources "
            f"in {components} components")


def tree_text(stack: RenderedStack, violations: list | None = None) -> str:
    lines = [header(stack)]
    if stack.examples:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(stack.examples.items()))
        lines.append(f"  Example values stood in for operator-only keys: {shown}")
    made_up = _made_up(stack)
    if stack.stand_ins:
        lines.append(f"  {STAND_IN} marks a value the offline render made up where a provider "
                     "computes it (ids, image digests, random bytes, token values); a real "
                     "preview shows it as unknown")
    tree = _children(stack)

    def walk(parent: str | None, indent: str) -> None:
        items = tree.get(parent, [])
        for index, resource in enumerate(items):
            last = index == len(items) - 1
            branch, more = ("└─ ", "   ") if last else ("├─ ", "│  ")
            lines.append(f"{indent}{branch}{resource.name}  ({resource.type})")
            inner = indent + more
            for key, value in sorted(for_display(resource.inputs).items()):
                mark = f"  {STAND_IN}" if made_up(value) else ""
                lines.append(f"{inner}  {key}: {_inline(value)}{mark}")
            options = [k for k in ("deleteBeforeReplace",) if resource.options.get(k)]
            options += [f"replaceOnChanges={v}" for v in resource.options["replaceOnChanges"]
                        if not v.startswith("triggers")]
            options += [f"ignoreChanges={v}" for v in resource.options["ignoreChanges"]]
            if options:
                lines.append(f"{inner}  [options] {', '.join(options)}")
            walk(resource.urn, inner)

    walk(None, "  ")
    lines.append("  Outputs:")
    for key, value in sorted(for_display(stack.outputs).items()):
        mark = f"  {STAND_IN}" if made_up(value) else ""
        lines.append(f"    {key}: {_inline(value)}{mark}")
    if violations is not None:
        lines.append(_policy_text(violations))
    return "\n".join(lines)


def _policy_text(violations: list) -> str:
    if not violations:
        return "  Policies: every rule passes."
    lines = []
    for level in ("mandatory", "advisory"):
        found = [v for v in violations if v.level == level]
        if found:
            lines.append(f"  Policies, {level} ({len(found)}):")
            lines += [f"    - [{v.policy}] {v.message}" for v in found]
    return "\n".join(lines)


def as_json(stack: RenderedStack, violations: list | None = None) -> dict[str, Any]:
    made_up = _made_up(stack)
    stand_ins = {f"{r.name}.{key}": made_up(value) for r in stack.resources
                 for key, value in for_display(r.inputs).items() if made_up(value)}
    stand_ins.update({f"outputs.{key}": made_up(value)
                      for key, value in for_display(stack.outputs).items() if made_up(value)})
    return {
        "stack": stack.stack,
        "project": stack.project,
        "counts": {"resources": sum(r.custom for r in stack.resources),
                   "components": sum(not r.custom for r in stack.resources)},
        "examples": stack.examples,
        "standIns": stand_ins,
        "resources": [{
            "type": r.type, "name": r.name, "urn": r.urn, "custom": r.custom,
            "parent": r.parent, "inputs": for_display(r.inputs), "options": r.options,
        } for r in stack.resources],
        "outputs": for_display(stack.outputs),
        "violations": None if violations is None else [{
            "policy": v.policy, "level": v.level, "resource": v.resource, "message": v.message,
        } for v in violations],
    }


def _check(stack: RenderedStack, project_dir: Path = ROOT) -> list:
    from tools.policy_check import check  # the pack loads only when a stack rendered
    return check(stack.stack, stack.resources, project_policy_config(project_dir))


def render_or_report(name: str, project_dir: Path) -> tuple[RenderedStack | None, list[str]]:
    """The rendered stack, or the config errors that stopped it (a RunError, as the CLI
    prints one: its message, no traceback)."""
    try:
        return render(name, project_dir=project_dir), []
    except (pulumi.RunError, ProjectError) as error:
        return None, config_errors(name, error, project_dir)


def main(argv: list[str] | None = None) -> int:
    parser = OneLineParser(prog="python -m tools.plan", description=__doc__.split("\n")[0])
    parser.add_argument("stacks", nargs="*", metavar="stack",
                        help="a stack of the project, a Pulumi.<stack>.yaml (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    parser.add_argument("--project-dir", type=Path, action="append", dest="project_dirs",
                        metavar="DIR", help="directory of a Pulumi project (default: jamjam's, "
                        f"{ROOT}); repeat it to plan several projects in one process")
    args = parser.parse_args(argv)
    plans = []
    for project_dir in args.project_dirs or [ROOT]:
        stacks = resolve_stacks(parser, project_dir, args.stacks)
        plans.append((load_project(project_dir).name, project_dir, stacks))
    failed = False
    errors: list[str] = []
    documents = []
    for project, project_dir, stacks in plans:
        for name in stacks:
            stack, stack_errors = render_or_report(name, project_dir)
            if stack is None:
                errors += stack_errors
                if args.json:
                    documents.append({"stack": name, "project": project, "errors": stack_errors})
                continue
            violations = _check(stack, project_dir)
            failed |= any(v.level == "mandatory" for v in violations)
            if args.json:
                documents.append(as_json(stack, violations))
            else:
                print(tree_text(stack, violations), end="\n\n", flush=True)
    if args.json:
        json.dump(documents[0] if len(documents) == 1 else documents, sys.stdout, indent=2)
        print(flush=True)
    return exit_status(errors, failed)


if __name__ == "__main__":
    sys.exit(run_quietly_on_broken_pipe(main))
