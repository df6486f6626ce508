"""Offline plan: what each stack declares, without a cloud account or the Pulumi CLI.

    python -m tools.plan                 # both stacks, as a tree
    python -m tools.plan production      # one stack
    python -m tools.plan test --json     # the same, as JSON

Both stacks render in this one process, so the SDK import is paid once. The policy pack's
rules run against each rendered stack; a mandatory violation makes the exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from typing import Any

from tools.render import STACKS, RenderedStack, Resource, is_secret, render

SECRET = "[secret]"
_LONG = 100


def _shown(value: Any) -> Any:
    """Inputs for display: secrets masked, shipped files summarised by size and hash."""
    if is_secret(value):
        return SECRET
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_shown(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and ("\n" in value or len(value) > _LONG and " " not in value):
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


def tree_text(stack: RenderedStack, violations: list | None = None) -> str:
    lines = [f"Stack {stack.stack} (project jamjam): {sum(r.custom for r in stack.resources)} "
             "resources"]
    if stack.examples:
        shown = ", ".join(f"{k}={v}" for k, v in sorted(stack.examples.items()))
        lines.append(f"  Example values stood in for operator-only keys: {shown}")
    tree = _children(stack)

    def walk(parent: str | None, indent: str) -> None:
        items = tree.get(parent, [])
        for index, resource in enumerate(items):
            last = index == len(items) - 1
            branch, more = ("└─ ", "   ") if last else ("├─ ", "│  ")
            lines.append(f"{indent}{branch}{resource.name}  ({resource.type})")
            inner = indent + more
            for key, value in sorted(_shown(resource.inputs).items()):
                lines.append(f"{inner}  {key}: {_inline(value)}")
            options = [k for k in ("deleteBeforeReplace",) if resource.options.get(k)]
            options += [f"replaceOnChanges={v}" for v in resource.options["replaceOnChanges"]
                        if not v.startswith("triggers")]
            options += [f"ignoreChanges={v}" for v in resource.options["ignoreChanges"]]
            if options:
                lines.append(f"{inner}  [options] {', '.join(options)}")
            walk(resource.urn, inner)

    walk(None, "  ")
    lines.append("  Outputs:")
    for key, value in sorted(_shown(stack.outputs).items()):
        lines.append(f"    {key}: {_inline(value)}")
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
    return {
        "stack": stack.stack,
        "examples": stack.examples,
        "resources": [{
            "type": r.type, "name": r.name, "urn": r.urn, "custom": r.custom,
            "parent": r.parent, "inputs": _shown(r.inputs), "options": r.options,
        } for r in stack.resources],
        "outputs": _shown(stack.outputs),
        "violations": None if violations is None else [{
            "policy": v.policy, "level": v.level, "resource": v.resource, "message": v.message,
        } for v in violations],
    }


def _check(stack: RenderedStack) -> list:
    from tools.policy_check import check
    return check(stack.stack, stack.resources)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.plan", description=__doc__.split("\n")[0])
    parser.add_argument("stacks", nargs="*", metavar="stack", help=f"one of {', '.join(STACKS)} "
                        "(default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a tree")
    args = parser.parse_args(argv)
    for name in args.stacks:
        if name not in STACKS:
            parser.error(f"unknown stack {name!r}; choose from {', '.join(STACKS)}")
    failed = False
    documents = []
    for name in args.stacks or STACKS:
        stack = render(name)
        violations = _check(stack)
        failed |= any(v.level == "mandatory" for v in violations)
        if args.json:
            documents.append(as_json(stack, violations))
        else:
            print(tree_text(stack, violations), end="\n\n", flush=True)
    if args.json:
        json.dump(documents[0] if len(documents) == 1 else documents, sys.stdout, indent=2)
        print()
    if failed:
        print("A mandatory policy is violated; see above.", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
