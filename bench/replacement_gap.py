"""The replacement gap per container: how long each of a stack's containers is without a
healthy instance when its image pin changes and `pulumi up` replaces it (delete before
replace), measured on the rehearsal VPS with a real Docker engine.

Prints figures and the Debian release and Docker engine they were measured on (the stack's
vpsDebianVersion picks the release; Debian 13's Docker 26 takes healthcheck start intervals,
Debian 12's 20.10 does not); asserts nothing (it exits non-zero only if the rehearsal itself
fails). Goal (issue 11): at most 10 s per container. Needs root, like `make rehearse`.

    .venv/bin/python bench/replacement_gap.py [--stack production|test] [--config KEY=VALUE]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rehearsal.__main__ import Rehearsal, config_override  # noqa: E402
from rehearsal.engine import RehearsalError  # noqa: E402

GOAL_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stack", default="production", choices=("production", "test"))
    parser.add_argument("--config", metavar="KEY=VALUE", action="append", default=[],
                        type=config_override,
                        help="override one stack config key, e.g. vpsDebianVersion=12")
    args = parser.parse_args()
    rehearsal = Rehearsal(args.stack, bench=True, quiet=True, config=dict(args.config))
    try:
        status = rehearsal.run()
    except RehearsalError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    if not rehearsal.gaps:
        print("bench: the rehearsal stopped before replacing anything", file=sys.stderr)
        return 1
    print(f"\nreplacement gap per container, stack {args.stack} (goal <= {GOAL_SECONDS:.0f} s)")
    print(f"measured on {_measured_on(rehearsal)}")
    print(f"{'container':24} {'no healthy container':>21} {'not running':>12}  goal")
    for name, gap in sorted(rehearsal.gaps.items()):
        met = "met" if gap <= GOAL_SECONDS else "MISSED"
        print(f"{name:24} {gap:19.1f} s {rehearsal.stopped[name]:10.1f} s  {met}")
    return status


def _measured_on(rehearsal: Rehearsal) -> str:
    """The VPS's release (the boot step) and the engine the plan's bootstrap installed (the
    provider transport step), as the rehearsal reported them."""
    results = {step.name: step.result for step in rehearsal.steps}
    release = results.get("boot VPS", "").split(" on its mirror")[0].split(", docker.io")[0]
    engine = re.search(r"engine (\S+)", results.get("docker provider over ssh://", ""))
    return (f"{release or 'an unknown release'}, Docker engine "
            f"{engine[1] if engine else 'unknown'}")


if __name__ == "__main__":
    sys.exit(main())
