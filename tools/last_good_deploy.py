"""The commit of a stack's last good deploy, from the stack's own update history.

    python -m tools.last_good_deploy production --not <sha of the failed commit>

Prints the commit of the newest update that succeeded (`pulumi stack history --json`), made
from a clean checkout of a commit other than ``--not``; prints nothing and exits 1 when there is
none. The main workflow re-deploys that commit when a production `up` fails.

Why the stack history and not a git tag or the workflow-run list: it records what actually
reached the stack (a deploy from a laptop counts too, a run that failed after some changes
does not), it needs no write access to the repository, and Pulumi writes it on every update.
An update made from a dirty work tree is skipped: its commit does not reproduce it.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

from tools.render import STACKS

PROG = "python -m tools.last_good_deploy"
# Pulumi stores git metadata in each update's environment under these keys (pkg/backend/updates.go).
GIT_HEAD = "git.head"
GIT_DIRTY = "git.dirty"
# Updates are listed newest first, a page at a time; a bad streak longer than this needs a human.
PAGE_SIZE = 50
_SHA = re.compile(r"^[0-9a-f]{40}$")


def last_good(history: list[dict], failed: str) -> str | None:
    for update in history:
        env = update.get("environment") or {}
        head = str(env.get(GIT_HEAD, ""))
        if (update.get("kind") == "update" and update.get("result") == "succeeded"
                and _SHA.match(head) and head != failed and env.get(GIT_DIRTY) != "true"):
            return head
    return None


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:
        print(f"{PROG}: {message} (usage: {PROG} <{'|'.join(STACKS)}> --not <40-hex commit>)",
              file=sys.stderr)
        sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("stack", choices=STACKS)
    parser.add_argument("--not", dest="failed", required=True,
                        help="the commit whose deploy failed (never chosen)")
    args = parser.parse_args(argv)
    if not _SHA.match(args.failed):
        parser.error(f"--not {args.failed!r} is not a full 40-hex commit id")
    pulumi = shutil.which("pulumi")
    if not pulumi:
        print(f"{PROG}: no `pulumi` CLI on PATH", file=sys.stderr)
        return 2
    result = subprocess.run([pulumi, "stack", "history", "--stack", args.stack, "--json",
                             "--page-size", str(PAGE_SIZE), "--non-interactive"],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(f"{PROG}: `pulumi stack history` failed: {result.stderr.strip()}", file=sys.stderr)
        return 1
    try:
        history = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        print(f"{PROG}: `pulumi stack history --json` printed no JSON", file=sys.stderr)
        return 1
    commit = last_good(history if isinstance(history, list) else [], args.failed)
    if commit is None:
        print(f"{PROG}: no earlier successful deploy of {args.stack} from a clean commit",
              file=sys.stderr)
        return 1
    print(commit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
