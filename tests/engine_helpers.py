"""A throwaway Docker engine for tests that need a real one without the whole rehearsal VPS."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rehearsal.engine import Dockerd, Netns, leftovers, suffix


@contextmanager
def scratch_engine(label: str) -> Iterator[Dockerd]:
    """A dockerd in a network namespace of its own (named ``jr-<label>-<tag>``), removed on exit
    with everything it made; leaving anything behind fails the test that used it."""
    tag = suffix()
    netns = Netns(f"jr-{label}-{tag}").create()
    dockerd = Dockerd(netns, Path(f"/run/jamjam-rehearsal-{tag}"))
    try:
        dockerd.start()
        yield dockerd
    finally:
        dockerd.remove()
        netns.delete()
        assert leftovers(tag) == []
