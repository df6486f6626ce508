"""sync-dir-to-r2.sh, run for real: Debian's rclone against moto's S3 on loopback, alerts
through the real jamjam-alert.sh to a recording logger."""

from __future__ import annotations

import datetime
import os

import pytest

from tests.backup_helpers import BUCKET, Engine, Host, Store, rclone_missing, write_rclone_config
from tests.logarchive_helpers import free_port

pytestmark = pytest.mark.skipif(rclone_missing() is not None, reason=rclone_missing() or "")


@pytest.fixture(scope="module")
def store():
    with Store() as server:
        yield server


@pytest.fixture
def host(tmp_path, store):
    store.empty()
    engine = Engine()  # unused by the sync, but Host wants its PATH; no container is started
    yield Host(tmp_path, engine, store.port)
    engine.close()


@pytest.fixture
def recordings(tmp_path):
    folder = tmp_path / "srv/recordings"
    (folder / "2026/11").mkdir(parents=True)
    (folder / "2026/11/show-1.mp4").write_bytes(b"\x00\x01" * 5000)
    (folder / "2026/11/show-2.mp4").write_bytes(b"\x02\x03" * 5000)
    return folder


def sync(host, source, mode="sync", **env):
    settings = {"JAMJAM_SYNC_NAME": "recordings", "JAMJAM_SYNC_SOURCE": str(source),
                "JAMJAM_R2_DEST": f"r2:{BUCKET}/recordings", "JAMJAM_SYNC_MODE": mode,
                "JAMJAM_SYNC_DELETED_DEST": f"r2:{BUCKET}/deleted/recordings"}
    return host.run("sync-dir-to-r2.sh", **{**settings, **env})


def test_sync_mirrors_the_directory_under_its_prefix(host, store, recordings):
    result = sync(host, recordings)
    assert result.returncode == 0, result.stderr
    assert store.keys_in() == ["recordings/2026/11/show-1.mp4", "recordings/2026/11/show-2.mp4"]
    assert store.body("recordings/2026/11/show-2.mp4") == b"\x02\x03" * 5000
    assert host.alerts() == []


def test_a_file_deleted_on_the_host_moves_to_the_deleted_prefix_in_sync_mode(host, store,
                                                                              recordings):
    assert sync(host, recordings).returncode == 0
    (recordings / "2026/11/show-1.mp4").unlink()
    (recordings / "2026/11/show-3.mp4").write_bytes(b"new")
    assert sync(host, recordings).returncode == 0
    today = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    assert store.keys_in() == [f"deleted/recordings/{today}/2026/11/show-1.mp4",
                               "recordings/2026/11/show-2.mp4", "recordings/2026/11/show-3.mp4"]


def test_copy_mode_never_deletes(host, store, recordings):
    assert sync(host, recordings, mode="copy").returncode == 0
    (recordings / "2026/11/show-1.mp4").unlink()
    assert sync(host, recordings, mode="copy").returncode == 0
    assert "recordings/2026/11/show-1.mp4" in store.keys_in()
    assert not any(k.startswith("deleted/") for k in store.keys_in())


def test_an_empty_or_missing_source_is_refused_and_alerts(host, store, recordings, tmp_path):
    assert sync(host, recordings).returncode == 0
    empty = tmp_path / "unmounted"
    empty.mkdir()
    result = sync(host, empty)
    assert result.returncode == 1
    assert "is empty; not mirroring an empty directory" in host.alerts()[0]
    assert len(store.keys_in()) == 2, "nothing deleted in R2"
    result = sync(host, tmp_path / "nope")
    assert result.returncode == 1 and "is not a directory" in host.alerts()[1]


def test_r2_down_alerts_and_the_next_good_run_resolves(host, store, recordings):
    down = write_rclone_config(host.root / "down.conf", free_port())
    result = sync(host, recordings, RCLONE_CONFIG=str(down))
    assert result.returncode == 1
    assert host.alerts()[0].startswith("[production/vps1] ALERT sync/recordings: off-site copy of")
    assert sync(host, recordings).returncode == 0
    assert "RESOLVED sync/recordings" in host.alerts()[-1]
    assert len(store.keys_in()) == 2


def test_max_age_leaves_old_files_on_the_host_only(host, store, recordings):
    old = recordings / "2026/11/show-1.mp4"
    stamp = old.stat().st_mtime - 100 * 86400
    os.utime(old, (stamp, stamp))
    assert sync(host, recordings, mode="copy", JAMJAM_SYNC_MAX_AGE_DAYS="90").returncode == 0
    assert store.keys_in() == ["recordings/2026/11/show-2.mp4"]


@pytest.mark.parametrize("variable, value, message", [
    ("JAMJAM_SYNC_MODE", "move", "must be copy or sync"),
    ("JAMJAM_SYNC_SOURCE", "relative/dir", "must be an absolute path"),
    ("JAMJAM_R2_DEST", "", "must be an rclone path"),
    ("JAMJAM_SYNC_NAME", "", "must be a lowercase name"),
    ("JAMJAM_SYNC_MAX_AGE_DAYS", "3d", "is not a positive whole number"),
])
def test_bad_settings_exit_2_naming_the_variable(host, recordings, variable, value, message):
    result = sync(host, recordings, **{variable: value})
    assert result.returncode == 2
    assert variable in result.stderr and message in result.stderr
    assert host.alerts() == []
