"""How long `make check` and `make test` take.

`make check` runs everything but the whole rehearsals, spread over worker processes; `make
test` runs everything, one test at a time, as CI does (.ci/run).

Prints figures; asserts nothing. Goal (issue 16 point 8): `make check` within 3 minutes on
2 cores. Each target runs once, through make as a developer runs it, so its setup (the venv
stamp, .ci/system-packages.sh) is counted. Other processes on the machine slow both: the load
average before and after each run is printed beside its time. `make test` takes 20 minutes
or more; `--check-only` leaves it out.

    .venv/bin/python bench/suite_speed.py [--check-only]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_S = 180
# pytest's last line, e.g. "1546 passed, 7 deselected in 150.23s (0:02:30)".
SUMMARY = re.compile(r"^(?:=+ )?(\d+ \w+.*?) in [\d.]+s", re.M)


def _run(target: str) -> tuple[float, str]:
    before = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run(["make", "--no-print-directory", target], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - start
    after = os.getloadavg()[0]
    found = SUMMARY.findall(proc.stdout)
    counts = found[-1] if found else "no pytest summary: " + proc.stdout.strip()[-200:]
    return elapsed, (f"make {target}: {elapsed:.0f} s ({counts}; exit {proc.returncode}), "
                     f"load average {before:.1f} before, {after:.1f} after, "
                     f"{os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check-only", action="store_true",
                        help="time `make check` only (the full `make test` takes 20+ minutes)")
    check_only = parser.parse_args().check_only
    elapsed, line = _run("check")
    print(line, flush=True)
    print(f"goal: make check <= {GOAL_S} s on 2 CPUs; now {elapsed:.0f} s "
          f"({'met' if elapsed <= GOAL_S else 'not met'})", flush=True)
    if not check_only:
        print(_run("test")[1], flush=True)


if __name__ == "__main__":
    main()
