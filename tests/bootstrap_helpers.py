"""bootstrap.sh as the plan ships it: the repo's copy keeps placeholders for the stack's Debian
release and refuses to run unfilled, so the tests run the filled text, written here once per
release and test run."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from jamjam_infra.host import Debian, bootstrap_script

_DIR = Path(tempfile.mkdtemp(prefix="jamjam-bootstrap-"))
atexit.register(shutil.rmtree, _DIR, True)


def filled_bootstrap(version: int) -> Path:
    """The bootstrap for a host on Debian ``version``, as a file a test can run."""
    path = _DIR / f"bootstrap-{version}.sh"
    if not path.exists():
        path.write_text(bootstrap_script(Debian(version)))
    return path
