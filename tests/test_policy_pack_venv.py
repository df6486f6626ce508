"""The policy pack starts from a venv built from policies/requirements.txt alone.

Why this test exists: the Pulumi CLI builds policies/venv from policies/requirements.txt only and
starts the pack there, while tools.policy_check and the other policy tests run the rules in the
program's venv. A rule importing something only the program's venv has would pass all of those
and stop every real `pulumi preview --policy-pack policies`.
"""

from __future__ import annotations

import hashlib
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"
REQUIREMENTS = POLICIES / "requirements.txt"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "jamjam-infra"
START_TIMEOUT = 60.0


def _clean_env() -> dict[str, str]:
    """The environment without anything pointing at the program's venv or source tree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _pack_venv() -> Path:
    """policies/requirements.txt installed into a fresh venv, cached by the file's sha256.

    Built in a temp dir next to the cache entry and renamed into place, so an interrupted build
    never leaves a half-installed venv that a later run would trust. (A venv is relocatable
    enough for this: `python -m` goes through bin/python, a symlink, and pyvenv.cfg holds no path
    of the venv itself; the console scripts' shebangs are not used.)
    """
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()[:16]
    target = CACHE / f"policy-venv-{digest}"
    if (target / "bin" / "python").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=CACHE))
    try:
        env = _clean_env()
        subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", str(build)],
                       check=True, env=env)
        subprocess.run([str(build / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "-r", str(REQUIREMENTS)], check=True, env=env, cwd=build)
        try:
            build.rename(target)
        except OSError:  # another run finished first: use its venv
            if not (target / "bin" / "python").exists():
                raise
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return target


def test_the_pack_starts_from_its_own_requirements_and_prints_its_port():
    venv = _pack_venv()
    # As pulumi's python policy analyzer plugin starts it: `python -u -m pulumi.policy <engine>
    # <pack dir>` with cwd = the pack. pulumi.policy only runs the program; PolicyPack serves
    # and prints its port without dialling the engine, so any address will do.
    process = subprocess.Popen(
        [str(venv / "bin" / "python"), "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."],
        cwd=POLICIES, env=_clean_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        line = b""
        deadline = time.monotonic() + START_TIMEOUT
        while not line.endswith(b"\n") and process.poll() is None:
            left = deadline - time.monotonic()
            assert left > 0, f"the pack printed no port within {START_TIMEOUT:.0f} s"
            ready, _, _ = select.select([process.stdout], [], [], left)
            if ready:
                chunk = os.read(process.stdout.fileno(), 64)
                if not chunk:
                    break
                line += chunk
        if not line.endswith(b"\n"):
            process.wait(timeout=10)
            raise AssertionError(
                f"the pack exited ({process.returncode}) before printing its port; stdout "
                f"{line!r}; stderr:\n{process.stderr.read().decode(errors='replace')}")
        port = line.decode().strip()
        assert port.isdigit() and 0 < int(port) < 65536, f"not a port: {line!r}"
        assert process.poll() is None, "the pack printed a port and then exited"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()
