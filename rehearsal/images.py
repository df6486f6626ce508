"""Stand-in images that run the real software for the example projects' images: one Debian
rootfs with PostgreSQL, Redis, Python, Node.js, Ruby, curl and procps, imported into an engine
once, and one small image per rendered reference derived from it, carrying that image's own
entrypoint, command, working directory, user, environment and files (``docker cp`` into a
created container, then ``docker commit --change``).

Why one rootfs for every kind: the rootfs is the expensive part (a cold build downloads and
unpacks a few hundred MB), and each engine imports it once; a derived image adds a few KB.
Why our own files are not in the rootfs: they change far more often than the package list, and
a change must not rebuild the rootfs.

Debian 12 ships PostgreSQL 15, Redis 7.0, Python 3.11, Node.js 18 and Ruby 3.1, so every
postgres:* tag runs PostgreSQL 15 here (dumps move between equal versions, which is what the
backup and restore drill need). PostGIS is not installed: its Debian package pulls in GDAL and
about 160 MB more, which every engine would import; postgis/postgis:* runs plain PostgreSQL.
"""

from __future__ import annotations

import glob
import hashlib
import inspect
import io
import json
import os
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from rehearsal.engine import (CACHE, STANDINS, RehearsalError, require_tools, standin_rootfs,
                              suffix)
from rehearsal.vps import debootstrap_tar, mirror_sources

SUITE = "bookworm"
PG_MAJOR = "15"
# What the example images' commands, healthchecks and jobs call (pg_isready, pg_dump, redis-cli,
# node -e fetch, python -c urllib, curl, ruby -e, pgrep -f) and what our stand-ins use
# (psycopg2 and redis-py for the app's connections, setpriv to drop root like gosu does).
PACKAGES = (f"postgresql-{PG_MAJOR}", f"postgresql-client-{PG_MAJOR}", "redis-server",
            "redis-tools", "python3", "python-is-python3", "python3-psycopg2", "python3-redis",
            "nodejs", "ruby", "curl", "procps", "util-linux", "bash")
BASE_REPOSITORY = "jamjam-rehearsal/examples-base"
PG_BIN = f"/usr/lib/postgresql/{PG_MAJOR}/bin"
APP_PY = "/usr/local/lib/jamjam-standin/app.py"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# One build and one import at a time: two threads deriving images for the same engine must
# not both send the large base.
_lock = threading.Lock()


@dataclass(frozen=True)
class ImageSpec:
    """The image config a real image of this kind carries, and the files of ours it gets."""

    kind: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    workdir: str = "/"
    user: str = ""
    env: dict[str, str] = field(default_factory=dict)
    volumes: tuple[str, ...] = ()
    expose: tuple[str, ...] = ()
    stop_signal: str = ""
    files: tuple[tuple[str, str, int], ...] = ()
    """(path in the image, file under rehearsal/standins/, mode)."""


_APP_FILES = (("usr/local/lib/jamjam-standin/app.py", "app.py", 0o755),
              ("usr/local/bin/jamjam-standin-app", "app.py", 0o755))

# By repository (registry host dropped): the images the four examples pin.
_APP_REPOSITORIES = {
    "rstream/server": "node-app",
    "thinkring/frontend": "node-app",
    "thinkring/backend": "django",
    "shiojiri/rainbow-seeker-api": "rails",
    "workspace/work-tracker": "tracker",
    "workspace/twitch-bot": "twitch-bot",
}


def _repository(reference: str) -> str:
    name = reference.split("@")[0]
    path, _, last = name.rpartition("/")
    repo = f"{path}/{last.split(':')[0]}" if path else last.split(":")[0]
    first, _, rest = repo.partition("/")
    # docker.io/library/postgres, ghcr.io/x/y: the registry host is not part of the name.
    if rest and ("." in first or ":" in first or first == "localhost"):
        repo = rest
    return repo.removeprefix("library/")


def spec_for(reference: str) -> ImageSpec | None:
    """The example stand-in for ``reference``, or None when it is not one of the examples'."""
    repo = _repository(reference)
    if repo in ("postgres", "postgis/postgis"):
        # The official image's contract (docker-entrypoint.sh, PGDATA, the postgres user).
        return ImageSpec(
            "postgres", entrypoint=("docker-entrypoint.sh",), cmd=("postgres",),
            env={"PATH": f"{PG_BIN}:{DEFAULT_PATH}", "PGDATA": "/var/lib/postgresql/data",
                 "PG_MAJOR": PG_MAJOR, "LANG": "C.UTF-8"},
            volumes=("/var/lib/postgresql/data",), expose=("5432/tcp",),
            # Fast shutdown: a smart one would wait for the app's connections to close until
            # Docker's stop timeout kills the server.
            stop_signal="SIGINT",
            files=(("usr/local/bin/docker-entrypoint.sh", "postgres-entrypoint.sh", 0o755),))
    if repo == "redis":
        return ImageSpec(
            "redis", entrypoint=("docker-entrypoint.sh",), cmd=("redis-server",), workdir="/data",
            env={"PATH": DEFAULT_PATH}, volumes=("/data",), expose=("6379/tcp",),
            files=(("usr/local/bin/docker-entrypoint.sh", "redis-entrypoint.sh", 0o755),))
    kind = _APP_REPOSITORIES.get(repo)
    if kind is None:
        return None
    env = {"PATH": DEFAULT_PATH, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
    if kind == "rails":
        # Rails' generated Dockerfile: the app under WORKDIR, `./bin/rails server` by default.
        return ImageSpec(kind, cmd=("./bin/rails", "server"), workdir="/app", env=env,
                         files=(*_APP_FILES, ("app/bin/rails", "rails", 0o755),
                                ("app/bin/jobs", "jobs", 0o755)))
    if kind == "django":
        return ImageSpec(kind, cmd=("python", "manage.py", "runserver", "0.0.0.0:8000"),
                         workdir="/app", env=env,
                         files=(*_APP_FILES, ("app/manage.py", "manage.py", 0o755)))
    if kind == "twitch-bot":
        return ImageSpec(kind, cmd=("twitch-bot",), workdir="/app", env=env,
                         files=(*_APP_FILES, ("usr/local/bin/twitch-bot", "twitch-bot", 0o755)))
    default_port = "8000" if kind == "tracker" else "3000"
    return ImageSpec(kind, cmd=("jamjam-standin-app", "serve", "--default-port", default_port),
                     workdir="/app", env=env, files=_APP_FILES)


def rootfs(log=print) -> Path:
    """The Debian rootfs as a tar, cached in CACHE keyed by suite, package list and mirror, and
    written atomically (other runs share the directory)."""
    # The images come from the mirror the VPS uses.
    mirror = mirror_sources()[0]
    # _trim's own source is part of the key: a change to what it removes is a new rootfs.
    key = hashlib.sha256(f"{SUITE} minbase {' '.join(PACKAGES)} {mirror} "
                         f"{inspect.getsource(_trim)}".encode()).hexdigest()[:16]
    tar = CACHE / f"examples-{SUITE}-{key}.tar"
    if tar.exists():
        return tar
    require_tools({"debootstrap": "debootstrap", "unshare": "util-linux", "tar": "tar"})
    log(f"building the example images' Debian {SUITE} rootfs (cold cache)")
    started = time.monotonic()
    debootstrap_tar(tar, SUITE, PACKAGES, "examples", prepare=_trim, timeout=900)
    log(f"example rootfs built in {time.monotonic() - started:.0f} s, "
        f"{tar.stat().st_size // 2**20} MB")
    return tar


def _ids(root: Path, name: str) -> tuple[int, int]:
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == name:
            return int(fields[2]), int(fields[3])
    raise RehearsalError(f"the example rootfs has no {name} user; its package did not install")


def _trim(root: Path) -> None:
    """What no stand-in needs, and the directories the official images prepare. Removed:
    documentation, translations, locale sources (C.UTF-8 is built in), apt's state, the
    cluster Debian's postgresql package creates, and PostgreSQL's JIT with the LLVM and Z3
    libraries only it loads (about 155 MB of the 535; without its provider PostgreSQL simply
    runs without JIT, as the official alpine images do)."""
    for path in ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
                 "usr/share/i18n", "var/lib/apt/lists", "var/cache/apt",
                 f"var/lib/postgresql/{PG_MAJOR}", f"etc/postgresql/{PG_MAJOR}",
                 f"usr/lib/postgresql/{PG_MAJOR}/lib/bitcode"):
        shutil.rmtree(root / path, ignore_errors=True)
    for pattern in (f"usr/lib/postgresql/{PG_MAJOR}/lib/llvmjit*", "usr/lib/*/libLLVM-*",
                    "usr/lib/*/libz3.so*"):
        for path in glob.glob(str(root / pattern)):
            os.unlink(path)
    (root / "var/lib/apt/lists").mkdir(parents=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)
    pg_uid, pg_gid = _ids(root, "postgres")
    redis_uid, redis_gid = _ids(root, "redis")
    # As in the official postgres image: PGDATA writable by whichever user runs it, the socket
    # directory too (the entrypoint tightens PGDATA to 0700 once it owns it).
    for path, mode, uid, gid in (("var/lib/postgresql/data", 0o1777, pg_uid, pg_gid),
                                 ("var/run/postgresql", 0o3777, pg_uid, pg_gid),
                                 ("data", 0o755, redis_uid, redis_gid),
                                 ("app", 0o755, 0, 0)):
        (root / path).mkdir(parents=True, exist_ok=True)
        os.chown(root / path, uid, gid)
        os.chmod(root / path, mode)


# The rehearsal's own probes that its checks run inside every container (the fork bomb of
# the pids-limit proof), taken from the jamjam stand-ins' build (static binaries).
REHEARSAL_TOOLS = ("usr/local/bin/forkbomb",)


def _files_tar(spec: ImageSpec) -> bytes:
    files = [(path, (STANDINS / source).read_bytes(), mode) for path, source, mode in spec.files]
    with tarfile.open(standin_rootfs()) as tools:
        for path in REHEARSAL_TOOLS:
            member = tools.extractfile(path)
            if member is None:
                raise RehearsalError(f"the stand-in build has no {path}")
            files.append((path, member.read(), 0o755))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for path, data, mode in files:
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), mode, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def base_image(docker, log=print) -> str:
    """The rootfs as an image in the engine ``docker`` talks to, imported once per engine and
    tagged by the rootfs's key; returns its tag."""
    with _lock:
        # Under the lock too: parallel image resources must not each build a cold rootfs.
        tar = rootfs(log)
        tag = f"{BASE_REPOSITORY}:{tar.stem.rsplit('-', 1)[-1]}"
        # Asked every time rather than remembered: a run may prune the engine's images.
        if docker("image", "inspect", tag, check=False).returncode != 0:
            with open(tar, "rb") as f:
                # docker create needs a command; each derived image sets its own.
                docker("import", "--change", 'CMD ["/bin/true"]', "--change",
                       "LABEL jamjam.rehearsal.standin=examples-base", "-", tag,
                       input=f.read(), timeout=600)
    return tag


def derive(docker, reference: str, spec: ImageSpec, log=print) -> str:
    """The image for ``reference`` (tagged with exactly it): the base plus ``spec``'s files
    and config. Returns the image id."""
    base = base_image(docker, log)
    tag = reference.split("@")[0]
    name = f"jamjam-derive-{suffix()}"
    # `docker commit --change` cannot set STOPSIGNAL; the image keeps the container's own.
    signal = ["--stop-signal", spec.stop_signal] if spec.stop_signal else []
    docker("create", "--name", name, *signal, base)
    try:
        docker("cp", "-", f"{name}:/", input=_files_tar(spec))
        changes = [f"ENTRYPOINT {json.dumps(list(spec.entrypoint))}",
                   f"CMD {json.dumps(list(spec.cmd))}", f"WORKDIR {spec.workdir}",
                   f"LABEL jamjam.rehearsal.standin={spec.kind}"]
        changes += [f"ENV {k}={v}" for k, v in spec.env.items()]
        changes += [f"VOLUME {json.dumps([v])}" for v in spec.volumes]
        changes += [f"EXPOSE {port}" for port in spec.expose]
        if spec.user:
            changes.append(f"USER {spec.user}")
        argv = ["commit"]
        for change in changes:
            argv += ["--change", change]
        out = docker(*argv, name, tag)
    finally:
        docker("rm", "-f", name, check=False)
    return out.stdout.decode().strip()


# ---- which stand-in plays an image of the plan ----------------------------------------------

@dataclass(frozen=True)
class StandIn:
    """What plays an image of the plan: its kind (as the stand-in reports it), entrypoint and user."""

    kind: str
    entrypoint: list[str]
    user: str = ""


def standin_for(reference: str) -> StandIn:
    """The stand-in that plays the image ``reference``, by its repository name: jamjam's own
    images and cloudflared have one each; the example projects' PostgreSQL, Redis and app
    images run real software (rehearsal/images.py); anything else gets the generic listener."""
    spec = spec_for(reference)
    if spec is not None:
        return StandIn(spec.kind, list(spec.entrypoint or spec.cmd), user=spec.user)
    path, _, last = reference.split("@")[0].rpartition("/")
    last = last.split(":")[0]
    repo = f"{path}/{last}" if path else last
    if repo.endswith("cloudflare/cloudflared") or last == "cloudflared":
        # The official image: ENTRYPOINT ["cloudflared", "--no-autoupdate"], USER nonroot.
        return StandIn("cloudflared", ["cloudflared", "--no-autoupdate"], user="nonroot")
    if "signaling" in last:
        return StandIn("signaling", ["signaling-server"])
    if "echo" in last:
        return StandIn("echo", ["echo-server"])
    return StandIn("generic", ["standin"])


def import_standin(docker, reference: str) -> str:
    """``docker import`` the stand-in for ``reference``, tagged with exactly that reference
    (the rendered one); returns the image id. ``docker`` runs the docker CLI (argv tail)."""
    spec = spec_for(reference)
    if spec is not None:
        return derive(docker, reference, spec)
    standin = standin_for(reference)
    tag = reference.split("@")[0]
    changes = ["--change", "ENTRYPOINT " + json.dumps(standin.entrypoint),
               "--change", "ENV PATH=/usr/local/bin:/bin",
               "--change", f"LABEL jamjam.rehearsal.standin={standin.kind}"]
    if standin.user:
        changes += ["--change", f"USER {standin.user}"]
    data = standin_rootfs().read_bytes()
    out = docker("import", *changes, "-", tag, input=data, timeout=120)
    return out.stdout.decode().strip()

