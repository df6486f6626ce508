"""A simulated production day of the hourly log upload: this script against the original one.

Prints figures; asserts nothing. Three containers write steadily for 24 hours; Docker's json-file
rotation is scaled down (max-size --max-size, 5 files) so it happens within the day as it does
at 100 MB in production. After every simulated hour both scripts run against the same containers
directory, each into its own bucket on a local S3 server (moto) through a byte-counting proxy.
The original script is run as found, with only its two paths changed and `date` answering the
simulated hour, so its timestamped names do not collide within one real second.

    .venv/bin/python bench/log_archive.py [--hours 24] [--max-size 200000]
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.logarchive_helpers import (  # noqa: E402
    BUCKET, SCRIPT, Archive, Container, ResetProxy, S3Server, adapted_original, lines_of,
    write_rclone_config)

ORIGINAL_BUCKET = "original"
# bytes per simulated hour, scaled like max-size: signaling logs most (every WebSocket event).
RATES = {"jamjam-signaling": 0.75, "jamjam-echo": 0.3, "jamjam-cloudflared": 0.05}
WORDS = ("peer connected", "peer left", "offer relayed", "answer relayed", "ice candidate",
         "room created", "room closed", "echo session started", "echo session ended", "ping")


class ServiceContainer(Container):
    """Lines that compress like real service logs: repeated phrases, unique ids and times."""

    rng: random.Random = random.Random(7)
    rotations: int = 0

    def rotate(self) -> None:
        self.rotations += 1
        super().rotate()

    def line(self, payload_bytes: int = 60) -> str:
        self.seq += 1
        text = (f"INFO {self.name}: {self.rng.choice(WORDS)} room={self.rng.getrandbits(32):08x}"
                f" peer={self.rng.getrandbits(64):016x} seq={self.seq}")
        return ('{"log":"' + text + '\\n","stream":"stdout","time":"2025-01-01T'
                f'{self.seq // 3600 % 24:02d}:{self.seq // 60 % 60:02d}:{self.seq % 60:02d}.'
                f'{self.rng.getrandbits(30):09d}Z"}}\n')


def objects_in(s3: S3Server, bucket: str) -> dict[str, tuple[int, bytes]]:
    out = {}
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for o in page.get("Contents", []):
            body = s3.client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            out[o["Key"]] = (len(body), gzip.decompress(body))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hours", type=int, default=24)
    parser.add_argument("--max-size", type=int, default=200_000,
                        help="json-file max-size in bytes (production: 100 MB)")
    args = parser.parse_args()

    with S3Server() as s3, tempfile.TemporaryDirectory() as tmp_name, \
            ResetProxy(s3.port, resets=0) as new_wire, ResetProxy(s3.port, resets=0) as old_wire:
        tmp = Path(tmp_name)
        s3.client.create_bucket(Bucket=ORIGINAL_BUCKET)
        config = write_rclone_config(tmp / "rclone.conf",
                                     {"new": new_wire.port, "old": old_wire.port})
        archive = Archive(tmp, config, remote="new")
        containers = [ServiceContainer(archive.containers, name, max_size=args.max_size)
                      for name in RATES]
        original = adapted_original(tmp, archive.containers, f"old:{ORIGINAL_BUCKET}")
        shim = tmp / "bin"
        shim.mkdir()
        (shim / "date").write_text('#!/bin/sh\necho "$BENCH_NOW"\n')
        (shim / "date").chmod(0o755)

        line_bytes = len(containers[0].line())
        times = {"new": [], "old": []}
        exits = {"new": Counter(), "old": Counter()}
        for hour in range(args.hours):
            for c in containers:
                c.write(int(RATES[c.name] * args.max_size / line_bytes))
            env_path = f"{shim}:{archive.env()['PATH']}"
            for label, script, extra in (
                    ("new", SCRIPT, {}),
                    ("old", original, {"PATH": env_path, "BENCH_NOW": f"20250101_{hour:02d}0000"})):
                start = time.perf_counter()
                result = archive.run(script, **extra)
                times[label].append(time.perf_counter() - start)
                exits[label][result.returncode] += 1

        written = [line for c in containers for line in c.written]
        new_bytes = sum(len(line) for line in written)
        rotations = sum(c.rotations for c in containers)

        print(f"simulated day: {args.hours} hourly runs, {len(containers)} containers, json-file "
              f"max-size {args.max_size:,} B x 5 files (~{rotations} rotations)")
        print(f"new log bytes written: {new_bytes:,} in {len(written):,} lines\n")
        rows = []
        for label, bucket, wire in (("new", BUCKET, new_wire), ("old", ORIGINAL_BUCKET, old_wire)):
            objects = objects_in(s3, bucket)
            stored = sum(size for size, _ in objects.values())
            decompressed = sum(len(body) for _, body in objects.values())
            got = Counter(lines_of({k: body for k, (_, body) in objects.items()}))
            want = Counter(written)
            rows.append((
                f"{len(objects):,}",
                f"{stored:,}",
                f"{stored / new_bytes:.3f}",
                f"{wire.bytes_up / new_bytes:.3f}",
                f"{decompressed / new_bytes:.2f}",
                f"{sum((want - got).values()):,}",
                f"{sum(n - 1 for n in got.values() if n > 1):,}",
                ", ".join(f"{code}: {n}" for code, n in sorted(exits[label].items())),
                f"{sum(times[label]) / len(times[label]):.2f}",
            ))
        labels = ("objects in the bucket", "bytes stored (gzip)", "stored bytes per new log byte",
                  "sent bytes per new log byte (HTTP)", "log bytes shipped per new log byte",
                  "lines lost", "extra copies of lines", "exit codes (code: runs)",
                  "mean seconds per run")
        print(f"{'':38}{'upload-logs-to-r2.sh':>22}{'original':>16}")
        for label, (new, old) in zip(labels, zip(*rows)):
            print(f"{label:38}{new:>22}{old:>16}")


if __name__ == "__main__":
    main()
