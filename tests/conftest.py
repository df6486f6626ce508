"""Shared fixtures: each real stack rendered once per session through tools.render."""

from __future__ import annotations

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
