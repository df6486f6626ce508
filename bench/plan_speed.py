"""How long the offline plan takes compared with a bare import of the SDKs it needs.

Prints figures; asserts nothing. Goal (issue 10 §6): the plan over jamjam's two stacks plus the
four example projects within 1.25x of the bare import. Rendered in one process
(`make plan-all`: `python -m tools.plan_examples --with-jamjam`) the SDKs are imported once;
the figures for `make plan` (jamjam alone) and for `make plan` followed by
`make plan-examples` (two processes, two imports) are printed beside it. Each command runs
``--runs`` times, alternating with the bare import so that load from other processes on the
machine hits both alike; medians are compared.

    .venv/bin/python bench/plan_speed.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BARE_IMPORT = ("import pulumi, pulumi_cloudflare, pulumi_docker, pulumi_command, pulumi_random, "
               "pulumi_policy, yaml")
# The same import, frozen before exit as tools/render.py freezes the SDKs: what a process that
# imports them and does nothing else cannot go below (a bare import spends a third of its time
# freeing the SDKs' classes at exit). Printed so the plan's own cost stays visible.
FROZEN_IMPORT = BARE_IMPORT + "; import gc; gc.freeze()"
GOAL = 1.25


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    python = sys.executable
    commands = {
        "make plan (jamjam, 2 stacks)": [[python, "-m", "tools.plan"]],
        "make plan-examples (4 projects)": [[python, "-m", "tools.plan_examples"]],
        "make plan + make plan-examples": [[python, "-m", "tools.plan"],
                                           [python, "-m", "tools.plan_examples"]],
        "make plan-all (all 6 stacks, one process)": [[python, "-m", "tools.plan_examples",
                                                       "--with-jamjam"]],
    }
    # Warm the page cache and the .pyc files of everything once.
    _time([python, "-c", BARE_IMPORT])
    for argvs in commands.values():
        for argv in argvs:
            _time(argv)
    bare: list[float] = []
    frozen: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):
        for name, argvs in commands.items():
            bare.append(_time([python, "-c", BARE_IMPORT]))
            frozen.append(_time([python, "-c", FROZEN_IMPORT]))
            times[name].append(sum(_time(argv) for argv in argvs))
    bare_s = statistics.median(bare)
    frozen_s = statistics.median(frozen)
    load = os.getloadavg()[0]
    print(f"{runs} runs each, load average {load:.1f} on {os.cpu_count()} CPUs "
          "(other processes slow both sides alike, not the ratio)")
    print(f"{'bare SDK import':<44} median {bare_s:5.2f} s")
    print(f"{'SDK import, frozen before exit':<44} median {frozen_s:5.2f} s")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<44} median {median:5.2f} s   ratio {median / bare_s:4.2f}"
              f"   (to the frozen import {median / frozen_s:4.2f})")
    goal = statistics.median(times["make plan-all (all 6 stacks, one process)"]) / bare_s
    print(f"goal: plan of all six stacks <= {GOAL} x bare import; now {goal:.2f} "
          f"({'met' if goal <= GOAL else 'not met'})")


if __name__ == "__main__":
    main()
