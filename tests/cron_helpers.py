"""Reading the /etc/cron.d files a rendered plan installs (jamjam_infra.scheduled_job writes
them): environment lines, then exactly one entry."""

from __future__ import annotations

import re

_ASSIGNMENT = re.compile(r"^[A-Z][A-Z0-9_]*=")


def cron_env(content: str) -> dict[str, str]:
    """The file's environment lines, name -> value."""
    return dict(line.split("=", 1) for line in content.splitlines() if _ASSIGNMENT.match(line))


def cron_entry_fields(content: str) -> list[str]:
    """The file's one entry, split into schedule fields, user and command words."""
    lines = [line for line in content.splitlines()
             if line and not line.startswith("#") and not _ASSIGNMENT.match(line)]
    assert len(lines) == 1, content
    return lines[0].split()
