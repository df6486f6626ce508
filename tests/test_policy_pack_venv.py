"""The policy pack starts from a venv built from policies/requirements.txt alone.

Why this test exists: the Pulumi CLI builds policies/venv from policies/requirements.txt only and
starts the pack there, while tools.policy_check and the other policy tests run the rules in the
program's venv. A rule importing something only the program's venv has would pass all of those
and stop every real `pulumi preview --policy-pack policies`. The pack takes its rules from the
library (jamjam_infra.rules), installed by that file too: the venv must import them from this
tree, without any provider SDK.
"""

from __future__ import annotations

import hashlib
import json
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
    """policies/requirements.txt installed into a fresh venv, cached by the file's sha256 and
    this tree's path (the library is installed editable: the venv points at one tree).

    Built in a temp dir next to the cache entry and renamed into place, so an interrupted build
    never leaves a half-installed venv that a later run would trust. (A venv is relocatable
    enough for this: `python -m` goes through bin/python, a symlink, and pyvenv.cfg holds no path
    of the venv itself; the console scripts' shebangs are not used.)
    """
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + str(ROOT).encode()).hexdigest()[:16]
    target = CACHE / f"policy-venv-{digest}"
    if (target / "bin" / "python").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=CACHE))
    try:
        env = _clean_env()
        subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", str(build)],
                       check=True, env=env)
        # As the CLI installs it: `pip install -r requirements.txt` from the pack's directory,
        # which is what the file's relative path to the library is resolved against.
        subprocess.run([str(build / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "-r", "requirements.txt"], check=True, env=env, cwd=POLICIES)
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


_IMPORTS = """
import importlib.util, json, sys
import jamjam_policies
from jamjam_policies import secret_env
import jamjam_infra.rules as rules
SDKS = {"pulumi_docker", "pulumi_command", "pulumi_cloudflare", "pulumi_random"}
print(json.dumps({
    "rules": rules.__file__,
    "shared": secret_env.says_secret is rules.says_secret,
    "policies": len(jamjam_policies.ALL_POLICIES),
    "installed": sorted(m for m in SDKS if importlib.util.find_spec(m)),
    "imported": sorted(SDKS & {m.split(".")[0] for m in sys.modules}),
}))
"""


def test_the_pack_takes_its_rules_from_this_library_without_provider_sdks():
    venv = _pack_venv()
    # cwd = the pack, as the analyzer runs it: jamjam_policies comes from there, the rules from
    # the library the venv installed (nothing on PYTHONPATH).
    out = subprocess.run([str(venv / "bin" / "python"), "-c", _IMPORTS], cwd=POLICIES,
                         env=_clean_env(), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout)
    assert Path(found["rules"]).resolve() == ROOT / "components" / "rules.py"
    assert found["shared"], "the pack's secret-env rule is not the library's says_secret"
    assert found["policies"] > 0
    assert found["installed"] == [] and found["imported"] == [], found
