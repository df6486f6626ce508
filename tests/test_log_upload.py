"""The hourly log upload, run for real: the shipped script, Debian's rclone, moto's S3 server on
loopback, and a containers directory that rotates like Docker's json-file driver.

Each test ends by reading back every object in the bucket and comparing its lines with the
lines the containers wrote: none missing, none twice, no empty or truncated object."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import os
import subprocess
import threading
import time
from collections import Counter

import pytest

from tests.logarchive_helpers import (BUCKET, HOST, STACK, Archive, Container, ResetProxy, S3Server,
                                adapted_original, free_port, lines_of, write_rclone_config)

pytestmark = pytest.mark.skipif(not shutil.which("rclone"), reason="needs rclone (apt install rclone)")


@pytest.fixture(scope="module")
def s3():
    with S3Server() as server:
        yield server


@pytest.fixture
def archive(tmp_path, s3) -> Archive:
    s3.reset_bucket()
    # "down": an S3 endpoint where nothing listens, as when R2 or the route to it is out.
    config = write_rclone_config(tmp_path / "rclone.conf", {"s3": s3.port, "down": free_port()})
    return Archive(tmp_path, config)


def assert_archived(s3: S3Server, *containers: Container, expected: list[str] | None = None) -> None:
    """The bucket holds exactly the lines written, each once, in well-named whole objects."""
    objects = s3.objects()  # raises on a truncated gzip
    names = {c.id[:12]: c.name for c in containers}
    for key, body in objects.items():
        assert body, f"empty object {key}"
        assert body.endswith(b"\n"), f"object {key} ends mid-line"
        match = re.fullmatch(
            rf"{STACK}/{HOST}/(?P<name>[^/]+)/\d{{4}}-\d\d-\d\d/"
            r"(?P<id>[0-9a-f]{12})-\d+-(?P<start>\d+)-(?P<end>\d+)-[0-9a-f]{8}\.log\.gz", key)
        assert match, f"unexpected object name {key}"
        assert names.get(match["id"]) == match["name"], f"{key}: wrong container name"
        assert int(match["end"]) - int(match["start"]) == len(body), f"{key}: size differs from name"
    assert_lines(objects, expected if expected is not None else
                 [line for c in containers for line in c.written])


def assert_lines(objects: dict[str, bytes], expected: list[str]) -> None:
    want = Counter(expected)
    got = Counter(lines_of(objects))
    missing = want - got
    extra = got - want
    assert not missing and not extra, (
        f"{sum(missing.values())} line(s) lost, {sum(extra.values())} extra "
        f"(twice or never written); e.g. lost {list(missing)[:2]}, extra {list(extra)[:2]}")


def test_hourly_runs_ship_new_lines_once_and_nothing_when_idle(archive, s3):
    echo = archive.container("jamjam-echo")
    signaling = archive.container("jamjam-signaling")
    for hour in range(4):
        echo.write(20 + hour)
        signaling.write(5)
        result = archive.run()
        assert result.returncode == 0, result.stderr
        assert_archived(s3, echo, signaling)
        assert not archive.spooled()

    before = sorted(s3.keys())
    result = archive.run()
    assert result.returncode == 0, result.stderr
    assert sorted(s3.keys()) == before, "a run with no new lines must not upload anything"


def test_lines_docker_rotated_between_runs_are_shipped(archive, s3):
    # ~90-byte lines, rotation every ~1 KB: each hour rotates the active file past .1 and .2.
    echo = archive.container("jamjam-echo", max_size=1000)
    rotations_seen = 0
    for hour in range(5):
        echo.write(30, payload_bytes=20)
        rotations_seen += echo.rotated(2).exists()
        # Nothing may have been deleted before a run could ship it (Docker keeps 5 files).
        assert len(echo.on_disk()) >= 30
        result = archive.run()
        assert result.returncode == 0, result.stderr
        assert_archived(s3, echo)
    assert rotations_seen == 5


def test_only_whole_lines_ship(archive, s3):
    echo = archive.container("jamjam-echo")
    echo.write(3)
    line = echo.line()
    echo.write_partial(line[:25])
    assert archive.run().returncode == 0
    assert_archived(s3, echo)

    echo.write_partial(line[25:])
    echo.written.append(line)
    assert archive.run().returncode == 0
    assert_archived(s3, echo)


def test_server_down_for_several_runs_then_back(archive, s3):
    echo = archive.container("jamjam-echo", max_size=2000)
    signaling = archive.container("jamjam-signaling")
    for _ in range(3):
        echo.write(15, payload_bytes=30)
        signaling.write(5)
        result = archive.run(JAMJAM_R2_DEST=f"down:{BUCKET}")
        assert result.returncode != 0, "a run that leaves chunks behind must say so"
        assert "left in" in result.stderr
        assert archive.spooled()
    assert s3.keys() == []

    result = archive.run()
    assert result.returncode == 0, result.stderr
    assert not archive.spooled()
    assert_archived(s3, echo, signaling)


def test_full_spool_stops_reading_and_loses_nothing(archive, s3):
    echo = archive.container("jamjam-echo")
    echo.write(200, payload_bytes=200)
    cap = 4000
    result = archive.run(JAMJAM_R2_DEST=f"down:{BUCKET}", JAMJAM_SPOOL_MAX_BYTES=str(cap),
                         JAMJAM_CHUNK_MAX_BYTES="8000")
    assert result.returncode != 0
    assert "spool full" in result.stderr
    spooled = sum(p.stat().st_size for p in archive.spooled())
    assert 0 < spooled <= cap

    for _ in range(10):
        result = archive.run(JAMJAM_SPOOL_MAX_BYTES=str(cap), JAMJAM_CHUNK_MAX_BYTES="8000")
        if result.returncode == 0:
            break
    assert result.returncode == 0, result.stderr
    assert_archived(s3, echo)


def test_connection_resets_mid_upload(archive, s3):
    with ResetProxy(s3.port, resets=4) as proxy:
        write_rclone_config(archive.rclone_config, {"flaky": proxy.port})
        containers = [archive.container(f"jamjam-{n}") for n in ("echo", "signaling", "tunnel")]
        for c in containers:
            c.write(60, payload_bytes=200)  # ~10 KB compressed: cut well inside the body
        result = archive.run(JAMJAM_R2_DEST=f"flaky:{BUCKET}")
        assert proxy.resets_done == 4, "the proxy never cut an upload: the test proves nothing"
    # rclone's retries absorb the resets within the run: each chunk is a file it can send again.
    assert result.returncode == 0, result.stderr
    assert not archive.spooled()
    assert_archived(s3, *containers)


def test_two_runs_at_once(archive, s3):
    # Docker keeps writing (and rotating) meanwhile; 5 x 50 KB on disk outlasts any run here.
    echo = archive.container("jamjam-echo", max_size=50_000)
    stop = threading.Event()

    def docker_writing() -> None:
        while not stop.is_set():
            echo.write(1)
            time.sleep(0.002)

    writer = threading.Thread(target=docker_writing)
    writer.start()
    overlapped = 0
    try:
        for _ in range(3):
            first, second = archive.start(), archive.start()
            outs = [p.communicate(timeout=60) for p in (first, second)]
            assert first.returncode == 0 and second.returncode == 0, outs
            overlapped += any("another run holds" in err for _, err in outs)
    finally:
        stop.set()
        writer.join()
    assert overlapped, "the two runs never overlapped: the test proves nothing"
    assert archive.run().returncode == 0
    assert_archived(s3, echo)


def test_runs_killed_midway_then_rerun(archive, s3):
    rng = random.Random(3)
    # Sized so Docker's retention (max_file=5) never deletes a line in these ten rounds: on a
    # loaded machine most runs die before reading a container, and a line rotated off the disk
    # before any run read it is lost whatever the script does (see
    # test_lines_docker_deleted_before_any_run_read_them_are_the_only_loss). ~47 KB of echo
    # lines at max_size=6000 lost up to three whole files that way. Rotation still happens
    # between (and under) the killed runs.
    echo = archive.container("jamjam-echo", max_size=12_000)
    signaling = archive.container("jamjam-signaling", max_size=6000)
    for _ in range(10):
        echo.write(25, payload_bytes=100)
        signaling.write(10, payload_bytes=100)
        run = archive.start()
        time.sleep(rng.uniform(0.0, 0.35))
        try:
            os.killpg(run.pid, signal.SIGKILL)  # the whole run at once, as a reboot does it
        except ProcessLookupError:
            pass
        run.communicate(timeout=10)
        s3.objects()  # every object there so far must be whole
    for c in (echo, signaling):
        assert c.rotated(3).exists(), f"{c.name} rotated less than the test means to cover"
        assert c.on_disk() == c.written, f"Docker's retention deleted {c.name} lines: resize"
    result = archive.run()
    assert result.returncode == 0, result.stderr
    assert_archived(s3, echo, signaling)


def test_killed_between_spooling_a_chunk_and_saving_its_offset(archive, s3):
    """The narrowest crash window, made certain: the chunk is in the spool, the state file
    still holds the offset from before it."""
    echo = archive.container("jamjam-echo")
    echo.write(10)
    state = archive.tmp / "state/containers" / echo.id
    assert archive.run().returncode == 0
    before = state.read_bytes()

    echo.write(10)
    assert archive.run(JAMJAM_R2_DEST=f"down:{BUCKET}").returncode != 0
    assert archive.spooled()
    state.write_bytes(before)

    echo.write(10)
    result = archive.run()
    assert result.returncode == 0, result.stderr
    assert "spooled by an interrupted run" in result.stderr
    assert_archived(s3, echo)


def test_lines_docker_deleted_before_any_run_read_them_are_the_only_loss(archive, s3):
    """Runs that die before reading a container (a loaded or rebooting host) while Docker keeps
    rotating: the files it deletes meanwhile are gone, including the rest of the file the last
    good run stopped in the middle of (its inode number may come back as a new file). What is
    still on disk ships once; nothing is shipped twice."""
    echo = archive.container("jamjam-echo", max_size=1000)  # ~10 lines of ~110 bytes a file
    echo.write(5, payload_bytes=20)
    assert archive.run().returncode == 0
    shipped = list(echo.written)
    state = archive.tmp / "state/containers" / echo.id
    assert state.read_text().split()[1] != "0", "the first run must leave an offset mid-file"

    echo.write(80, payload_bytes=20)  # ~8 rotations: the first ~3 files are deleted
    kept = echo.on_disk()
    assert shipped[0] not in kept and len(kept) < len(echo.written) - len(shipped), (
        "Docker deleted nothing unshipped: the test proves nothing")
    result = archive.run()
    assert result.returncode == 0, result.stderr
    assert_archived(s3, echo, expected=shipped + kept)


def test_removed_container_still_uploads_what_was_spooled(archive, s3):
    gone = archive.container("jamjam-old-echo")
    stays = archive.container("jamjam-echo")
    gone.write(10)
    stays.write(10)
    assert archive.run(JAMJAM_R2_DEST=f"down:{BUCKET}").returncode != 0

    shutil.rmtree(gone.dir)  # docker rm: its logs go with it
    stays.write(5)
    result = archive.run()
    assert result.returncode == 0, result.stderr
    assert f"container {gone.id} is gone" in result.stderr
    assert not (archive.tmp / "state/containers" / gone.id).exists()
    assert_archived(s3, gone, stays)


def test_one_broken_container_does_not_stop_the_others(archive, s3):
    broken = archive.container("jamjam-broken")
    broken.log.unlink()
    broken.log.mkdir()  # reading it fails
    echo = archive.container("jamjam-echo")
    echo.write(10)
    result = archive.run()
    assert result.returncode != 0
    assert f"container {broken.id}: failed" in result.stderr
    assert_archived(s3, broken, echo)


def test_the_checks_catch_the_seed_scripts_faults(archive, s3):
    """The same scenario run with the original script fails the same assertion."""
    original = adapted_original(archive.tmp, archive.containers, f"s3:{BUCKET}")
    echo = archive.container("jamjam-echo", max_size=1500)
    for lines in (20, 3):
        echo.write(lines, payload_bytes=20)
        assert archive.run(original).returncode == 0
        time.sleep(1)  # its object names have one-second resolution
    # Lines rotated away between runs are lost; the active file is shipped again every hour.
    with pytest.raises(AssertionError, match=r"[1-9]\d* line\(s\) lost, [1-9]\d* extra"):
        assert_lines(s3.objects(), echo.written)


def test_readme_restore_recipe_gives_back_the_log(archive, s3):
    """docs/log-archive.md's "Reading and restoring": `rclone cat <container dir> | zcat` over several runs'
    objects (rotations included) holds every line once; sorting by `.time` restores the order."""
    echo = archive.container("jamjam-echo", max_size=1500)
    for _ in range(3):
        echo.write(25, payload_bytes=20)
        assert archive.run().returncode == 0
    listing = subprocess.run(
        ["rclone", "ls", f"s3:{BUCKET}/{STACK}/", "--include", "*/jamjam-echo/**"],
        env=archive.env(), capture_output=True, text=True, timeout=30, check=True).stdout
    assert len(listing.splitlines()) > 3, listing
    cat = subprocess.run(
        f"rclone cat s3:{BUCKET}/{STACK}/{HOST}/jamjam-echo/ | zcat",
        shell=True, env=archive.env(), capture_output=True, text=True, timeout=30, check=True)
    got = cat.stdout.splitlines(keepends=True)
    assert Counter(got) == Counter(echo.written)
    assert sorted(got, key=lambda line: json.loads(line)["time"]) == echo.written
