"""How long `python -m tools.plan` takes compared with a bare import of the SDKs it needs.

Prints figures; asserts nothing. Goal (issue 2): the whole plan, both stacks and the policy
checks, within 1.25x of the bare import, because both stacks render in one process.

    .venv/bin/python bench/plan_speed.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE_IMPORT = ("import pulumi, pulumi_cloudflare, pulumi_docker, pulumi_command, pulumi_random, "
               "pulumi_policy, yaml")


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    python = sys.executable
    _time([python, "-c", BARE_IMPORT])  # warm the page cache and .pyc files
    bare = [_time([python, "-c", BARE_IMPORT]) for _ in range(runs)]
    plan = [_time([python, "-m", "tools.plan"]) for _ in range(runs)]
    bare_s, plan_s = statistics.median(bare), statistics.median(plan)
    print(f"bare SDK import:          median {bare_s:.2f} s over {runs} runs")
    print(f"make plan (both stacks):  median {plan_s:.2f} s over {runs} runs")
    print(f"ratio plan / bare import: {plan_s / bare_s:.2f} (goal <= 1.25)")


if __name__ == "__main__":
    main()
