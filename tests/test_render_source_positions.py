"""The offline render skips the SDK's per-resource stack trace (tools/_pulumi_compat.py,
for speed); what it records must be the same as with the trace."""

from __future__ import annotations

import pytest

from tools import _pulumi_compat as compat
from tools import render as rendering


@pytest.fixture
def traces(monkeypatch) -> list[int]:
    """Frames in the stack trace of each registration request the monitor receives."""
    seen: list[int] = []
    register = rendering.RecordingMonitor.RegisterResource

    def spy(self, request):
        if request.type != "pulumi:pulumi:Stack":
            seen.append(len(request.stackTrace.frames))
        return register(self, request)

    monkeypatch.setattr(rendering.RecordingMonitor, "RegisterResource", spy)
    return seen


def _recorded(stack: rendering.RenderedStack) -> list:
    # Registration order varies from run to run (the SDK registers from threads): by URN.
    return sorted(stack.resources, key=lambda r: r.urn)


def test_renders_skip_the_stack_trace_and_record_the_same_without_it(traces):
    assert not compat.source_positions_enabled(), "importing tools.render turns it off"
    without = rendering.render("production")
    assert traces and not any(traces)
    traces.clear()
    compat.set_source_positions(True)
    try:
        with_trace = rendering.render("production")
    finally:
        compat.set_source_positions(False)
    assert traces and all(traces), "the switch is what removed the frames"
    assert _recorded(with_trace) == _recorded(without)
    assert with_trace.outputs == without.outputs
    assert with_trace.stand_ins == without.stand_ins
