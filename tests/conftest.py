"""Shared fixtures: each real stack rendered once per session through tools.render."""

from __future__ import annotations

import os

import pytest

from tools.render import STACKS, RenderedStack, render


@pytest.fixture(scope="session")
def stacks() -> dict[str, RenderedStack]:
    return {name: render(name) for name in STACKS}


@pytest.fixture(scope="session")
def production(stacks) -> RenderedStack:
    return stacks["production"]


@pytest.fixture(scope="session")
def test_stack(stacks) -> RenderedStack:
    return stacks["test"]


# Some tests skip where they cannot run (not root, rclone missing) so that a developer can run
# the rest with a bare `pytest`. `make test` (and so CI) sets JAMJAM_NO_SKIP=1: there a skip
# would be a check that silently did not happen, so it fails instead. pytest has no built-in
# switch for this; the hook below is the documented way to change a report's outcome.
@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("JAMJAM_NO_SKIP") == "1":
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped under JAMJAM_NO_SKIP=1 (make test): {reason}"


# `make check` spreads tests over workers (pytest-xdist, --dist loadgroup). A module-scoped
# fixture (a dockerd with its images, PostgreSQL, an S3 server, a plan run) is made once per
# worker that gets one of its tests: the tests that share one go to one worker, as a group,
# and the biggest groups start first. Derived from the fixtures themselves, so a new shared
# fixture needs no list kept by hand; tests with only function and session fixtures spread
# one by one. (xdist's own marker; without -n it changes nothing.)
SHARED_SCOPES = ("module", "class", "package")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        defs = getattr(item, "_fixtureinfo", None)
        if defs is None:
            continue
        if any(d.scope in SHARED_SCOPES for ds in defs.name2fixturedefs.values() for d in ds):
            item.add_marker(pytest.mark.xdist_group(item.module.__name__))
