"""Running a test's own Pulumi program under the offline mocks, through the SDK's documented
test entry point (``pulumi.runtime.test``), the way tools.render runs a project."""

from __future__ import annotations

from typing import Callable

import pulumi

from tools import _pulumi_compat as compat
from tools.render import OfflineMocks, RecordingMonitor


def run_program(program: Callable[[], None], *, project: str, stack: str,
                mocks: OfflineMocks | None = None, monitor: RecordingMonitor | None = None,
                preview: bool = False) -> RecordingMonitor:
    """Run ``program`` with no stack config; the monitor that recorded its registrations."""
    mocks = mocks or OfflineMocks(stack, preview=preview)
    monitor = monitor or RecordingMonitor(mocks)
    compat.reset_root_resource()
    pulumi.runtime.set_all_config({}, [])
    pulumi.runtime.set_mocks(mocks, project=project, stack=stack, preview=preview,
                             monitor=monitor)
    pulumi.runtime.test(program)()
    return monitor
