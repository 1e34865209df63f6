"""The data directory's identity: a node never starts on another node's or cluster's data."""

import errno
import json
import os
from pathlib import Path

import pytest

import raftkv
from raftkv_cli._datadir import (
    DataDirState,
    Meta,
    check_data_dir,
    init_data_dir,
    read_meta,
    write_meta,
)
from raftkv_cli._settings import Settings, SettingsError, parse_settings

CLUSTER3 = "http://127.0.0.1:12379,http://127.0.0.1:22379,http://127.0.0.1:32379"


def settings(data_dir: Path, *argv: str) -> Settings:
    return parse_settings(["--data-dir", str(data_dir), *argv], {})


def started(data_dir: Path, *argv: str) -> DataDirState:
    """What the daemon does on start: check, then initialise."""
    state = check_data_dir(settings(data_dir, *argv))
    init_data_dir(state)
    return state


def add_data(path: Path) -> None:
    (path / "wal").mkdir()
    (path / "wal" / "0000.wal").write_bytes(b"entries")


def test_fresh_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "raftkv-1"
    s = settings(path, "--cluster", CLUSTER3)
    state = check_data_dir(s)
    assert state == DataDirState(path, existing=False, node_id=1, cluster_id=s.cluster_id)
    assert not path.exists()  # checking writes nothing
    init_data_dir(state)
    assert read_meta(path) == Meta(1, s.cluster_id)
    assert json.loads((path / "meta").read_text()) == {
        "format": 1,
        "node_id": 1,
        "cluster_id": s.cluster_id,
    }
    assert sorted(p.name for p in path.iterdir()) == ["meta"]


def test_restart_finds_existing_data(tmp_path: Path) -> None:
    first = started(tmp_path, "--cluster", CLUSTER3, "--id", "2")
    assert not first.existing
    add_data(tmp_path)
    again = started(tmp_path, "--cluster", CLUSTER3, "--id", "2")
    assert again == DataDirState(tmp_path, True, 2, first.cluster_id)


def test_meta_only_is_not_data(tmp_path: Path) -> None:
    started(tmp_path)
    assert not started(tmp_path).existing  # a node that stopped before storing anything


def test_another_nodes_directory_is_refused(tmp_path: Path) -> None:
    started(tmp_path, "--cluster", CLUSTER3, "--id", "1")
    with pytest.raises(SettingsError) as info:
        check_data_dir(settings(tmp_path, "--cluster", CLUSTER3, "--id", "2"))
    assert str(info.value) == f"data directory {tmp_path} belongs to node 1, not node 2"


def test_another_clusters_directory_is_refused(tmp_path: Path) -> None:
    started(tmp_path, "--cluster-token", "blue")
    add_data(tmp_path)
    with pytest.raises(SettingsError, match="belongs to cluster 'blue', not 'green'"):
        check_data_dir(settings(tmp_path, "--cluster-token", "green"))
    assert check_data_dir(settings(tmp_path, "--cluster-token", "blue")).existing


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SettingsError, match="is not empty and has no meta file"):
        check_data_dir(settings(tmp_path))


def test_lost_and_found_does_not_count(tmp_path: Path) -> None:
    (tmp_path / "lost+found").mkdir()
    assert not started(tmp_path).existing


def test_a_file_is_not_a_data_directory(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="is not a directory"):
        check_data_dir(settings(tmp_path / "file"))


def test_init_failure_is_a_settings_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    state = DataDirState(tmp_path / "file" / "sub", False, 1, None)
    with pytest.raises(SettingsError, match="cannot initialise data directory"):
        init_data_dir(state)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        b"[]",
        b'{"format": 2, "node_id": 1, "cluster_id": null}',
        b'{"format": 1, "node_id": 0, "cluster_id": null}',
        b'{"format": 1, "node_id": true, "cluster_id": null}',
        b'{"format": 1, "cluster_id": "x"}',
        b'{"format": 1, "node_id": 1, "cluster_id": 5}',
    ],
)
def test_damaged_meta_is_refused(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "meta").write_bytes(content)
    with pytest.raises(SettingsError, match="meta"):
        check_data_dir(settings(tmp_path))


def test_write_meta_replaces_atomically(tmp_path: Path) -> None:
    write_meta(tmp_path, Meta(1, None))
    write_meta(tmp_path, Meta(1, "c"))
    assert read_meta(tmp_path) == Meta(1, "c")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta"]  # no temporary file left


def test_a_leftover_temporary_meta_file_is_harmless(tmp_path: Path) -> None:
    (tmp_path / "meta.tmp").write_text("half written")
    state = started(tmp_path)
    assert not state.existing
    assert read_meta(tmp_path) == Meta(1, state.cluster_id)


def test_existing_data_wins_over_a_longer_cluster_list(tmp_path: Path) -> None:
    """A founder restarted with a longer --cluster (after node 4 joined) keeps its directory."""
    first = started(tmp_path, "--cluster", CLUSTER3)
    add_data(tmp_path)
    later = started(tmp_path, "--cluster", CLUSTER3 + ",http://127.0.0.1:42379")
    assert later.cluster_id == first.cluster_id and later.existing


def test_a_joining_node_names_the_same_cluster(tmp_path: Path) -> None:
    argv = ("--cluster", CLUSTER3 + ",http://127.0.0.1:42379", "--id", "4", "--join")
    state = started(tmp_path, *argv)
    assert read_meta(tmp_path) == Meta(4, state.cluster_id)
    add_data(tmp_path)
    with pytest.raises(SettingsError, match="belongs to cluster"):
        check_data_dir(settings(tmp_path, *argv, "--cluster-token", "other"))


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO, errno.EROFS])
def test_a_failing_disk_at_init_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    """A full or failing disk is not a bad flag: raftkvd exits 1 naming the storage (as for
    any storage failure), not 2."""

    def fail(*_: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr("raftkv_cli._datadir.write_meta", fail)
    state = DataDirState(tmp_path / "d", False, 1, None)
    with pytest.raises(raftkv.StorageError, match=os.strerror(code)):
        init_data_dir(state)
