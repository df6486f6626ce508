"""One-off check for the move onto the component library: jamjam's rendered plan at a
commit before it (default: the branch's fork point, 1301ded) against the working tree.

    .venv/bin/python tests/plan_before_after.py [REV]

Same resources and inputs, apart from the renames below (the Docker provider and
network now belong to the host, one DNS record per hostname) and the fields the library adds on
purpose (hardening, health-gated waits, a pids-limit command per container). Anything else
is printed and the exit status is 1. Not a pytest test: once other branches change the plan,
the old commit is no longer the right baseline.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv/bin/python"

RENAMES = {
    "jamjam-docker": "vps-docker",
    "jamjam-network": "vps-network",
}
GONE = {("jamjam:index:Services", "jamjam")}
ADDED_RESOURCES = re.compile(r"^command:remote:Command::jamjam-(signaling|echo|cloudflared)"
                             r"-pids-limit$")
ADDED_CONTAINER_INPUTS = {"wait", "waitTimeout", "capabilities", "securityOpts", "memory",
                          "memorySwap", "init", "readOnly", "tmpfs", "user"}


def plan(tree: Path, stack: str) -> dict:
    out = subprocess.run([str(PYTHON), "-m", "tools.plan", stack, "--json"], cwd=tree,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out[out.index("{"):])


def _key(resource: dict) -> str:
    name = resource["name"]
    if resource["type"] == "cloudflare:index/dnsRecord:DnsRecord" and name == "signaling-dns":
        name = f"signaling-dns-{resource['inputs']['name']}"
    return f"{resource['type']}::{RENAMES.get(name, name)}"


def _urn_key(urn: str) -> str:
    type_, name = urn.split("::")[2:4]
    return f"{type_.rsplit('$', 1)[-1]}::{RENAMES.get(name, name)}"


def compare(before: dict, after: dict) -> list[str]:
    problems = []
    old = {_key(r): r for r in before["resources"]
           if (r["type"], r["name"]) not in GONE}
    new = {_key(r): r for r in after["resources"]}
    for key in sorted(set(old) - set(new)):
        problems.append(f"missing after: {key}")
    for key in sorted(set(new) - set(old)):
        if not ADDED_RESOURCES.match(key):
            problems.append(f"new after: {key}")
    for key in sorted(set(old) & set(new)):
        a, b = old[key]["inputs"], new[key]["inputs"]
        extra = set(b) - set(a)
        if key.startswith("docker:index/container:Container::"):
            extra -= ADDED_CONTAINER_INPUTS
        for field in sorted(extra):
            problems.append(f"{key}: new input {field}={b[field]!r}")
        for field in sorted(set(a) | set(b)):
            if field in a and a.get(field) != b.get(field):
                problems.append(f"{key}: {field} {a.get(field)!r} -> {b.get(field)!r}")
        deps_a = {_urn_key(u) for u in old[key]["options"]["dependencies"]}
        deps_b = {_urn_key(u) for u in new[key]["options"]["dependencies"]}
        lost = {d for d in deps_a - deps_b if not d.startswith("jamjam:index:")}
        if lost:
            problems.append(f"{key}: no longer depends on {sorted(lost)}")
        for option in ("deleteBeforeReplace", "replaceOnChanges", "ignoreChanges"):
            if old[key]["options"][option] != new[key]["options"][option]:
                problems.append(f"{key}: option {option} changed")
    if before["outputs"] != after["outputs"]:
        problems.append(f"outputs: {before['outputs']} -> {after['outputs']}")
    return problems


def main() -> int:
    rev = sys.argv[1] if len(sys.argv) > 1 else "1301ded"
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", "--quiet", str(old_tree), rev],
                       cwd=ROOT, check=True)
        try:
            for stack in ("production", "test"):
                problems = compare(plan(old_tree, stack), plan(ROOT, stack))
                print(f"{stack}: {'same plan' if not problems else f'{len(problems)} differences'}"
                      " (renames and the library's hardening/wait/pids additions aside)")
                for problem in problems:
                    print(f"  {problem}")
                failed += bool(problems)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT,
                           check=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
