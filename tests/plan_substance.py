"""The plan's substance for every stack of every project (jamjam and each examples/*/), as one
JSON document: per stack, per resource URN, its type, parent, provider, inputs (secrets
revealed, so a changed secret input shows too) and options. Two such documents are compared
to prove a restructuring changed nothing a `pulumi up` would act on.

    .venv/bin/python tests/plan_substance.py dump OUT.json
    .venv/bin/python tests/plan_substance.py compare BEFORE.json AFTER.json

compare prints every difference and exits 1 on any; a resource whose URN changed must carry
an alias to its old URN (options.aliases), which compare accepts as the same resource.
Not a pytest test: the baseline is a commit chosen by whoever restructures.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _projects() -> list[Path]:
    return [ROOT, *sorted(p.parent for p in (ROOT / "examples").glob("*/Pulumi.yaml"))]


def dump() -> dict[str, Any]:
    from tools import render
    document: dict[str, Any] = {}
    for project_dir in _projects():
        project = render.load_project(project_dir)
        for stack in project.stacks:
            rendered = render.render(stack, project_dir=project_dir)
            document[f"{project.name}/{stack}"] = {
                r.urn: {"type": r.type, "parent": r.parent, "provider": r.provider,
                        "inputs": render.reveal(r.inputs), "options": r.options}
                for r in rendered.resources}
    return document


def compare(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for stack in sorted(set(before) | set(after)):
        old, new = before.get(stack), after.get(stack)
        if old is None or new is None:
            problems.append(f"{stack}: only {'after' if old is None else 'before'}")
            continue
        matched: dict[str, str] = {}
        for urn, resource in new.items():
            if urn in old:
                matched[urn] = urn
                continue
            aliases = [a for a in resource["options"].get("aliases", []) if a in old]
            if aliases:
                matched[urn] = aliases[0]
            else:
                problems.append(f"{stack}: new resource {urn}")
        for urn in sorted(set(old) - set(matched.values())):
            problems.append(f"{stack}: resource gone {urn}")
        for urn, old_urn in matched.items():
            a, b = dict(old[old_urn]), dict(new[urn])
            b_options = dict(b["options"])
            b_options.pop("aliases", None)
            a_options = dict(a["options"])
            a_options.pop("aliases", None)
            # Dependencies name URNs: compare them through the alias map.
            back = {n: o for n, o in matched.items()}
            b_options["dependencies"] = sorted(back.get(u, u)
                                               for u in b_options.get("dependencies", []))
            a_options["dependencies"] = sorted(a_options.get("dependencies", []))
            for field in ("type", "inputs"):
                if a[field] != b[field]:
                    problems.append(f"{stack}: {urn} {field} differs:\n  before "
                                    f"{json.dumps(a[field], sort_keys=True)[:2000]}\n  after  "
                                    f"{json.dumps(b[field], sort_keys=True)[:2000]}")
            for field in ("parent", "provider"):
                av, bv = a[field], b[field]
                if av != (back.get(bv, bv) if bv else bv) and av != bv:
                    problems.append(f"{stack}: {urn} {field} {av} -> {bv}")
            if a_options != b_options:
                problems.append(f"{stack}: {urn} options {a_options} -> {b_options}")
    return problems


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "dump":
        Path(argv[1]).write_text(json.dumps(dump(), sort_keys=True, indent=1, default=str))
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        problems = compare(*(json.loads(Path(p).read_text()) for p in argv[1:]))
        print("\n".join(problems) or "same resources, inputs and options in every stack")
        return 1 if problems else 0
    print("usage: plan_substance.py dump OUT.json | compare BEFORE.json AFTER.json",
          file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
