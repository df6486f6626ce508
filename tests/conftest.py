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
