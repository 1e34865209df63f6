"""The data directory's identity: which node of which cluster its data belongs to.

A small JSON file, ``meta``, records the node id and cluster id the first time a node uses the
directory. Starting a node on another node's (or another cluster's) directory would feed it a
foreign log, so ``check_data_dir`` refuses that with a one-line ``SettingsError``.

Usage, before storage is opened::

    state = check_data_dir(settings)     # SettingsError: exit 2 (usage_error)
    init_data_dir(state)                 # creates the directory and meta if missing
    # state.existing: data from an earlier run; it wins over --cluster / --join

The storage's own verdict (``PersistedState.is_empty``) is what decides to bootstrap; ``existing``
tells the operator-facing side (logs, warnings about ignored flags).
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import raftkv

from ._settings import Settings, SettingsError

__all__ = [
    "META_NAME",
    "DataDirState",
    "Meta",
    "check_data_dir",
    "init_data_dir",
    "read_meta",
    "write_meta",
]

# Failures of the disk itself while a data directory is set up (a full, read-only or failing
# disk): storage errors, not a bad --data-dir.
_DISK_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})

META_NAME = "meta"
META_FORMAT = 1
# Present in a fresh directory without being data: a filesystem's root, our temporary meta file.
_NOT_DATA = frozenset({META_NAME, META_NAME + ".tmp", "lost+found"})


@dataclass(frozen=True, slots=True)
class Meta:
    node_id: int
    cluster_id: str


@dataclass(frozen=True, slots=True)
class DataDirState:
    path: Path
    existing: bool  # holds data from an earlier run
    node_id: int
    cluster_id: str


def read_meta(path: Path) -> Meta | None:
    """The identity recorded in data directory ``path``; None if it has none."""
    file = path / META_NAME
    try:
        raw: Any = json.loads(file.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {file}: {exc}") from None
    node_id = raw.get("node_id") if isinstance(raw, dict) else None
    cluster_id = raw.get("cluster_id") if isinstance(raw, dict) else None
    if (
        not isinstance(raw, dict)
        or raw.get("format") != META_FORMAT
        or type(node_id) is not int
        or node_id < 1
        or not isinstance(cluster_id, str)
    ):
        raise SettingsError(f"{file} is not a raftkv meta file (format {META_FORMAT})")
    return Meta(node_id, cluster_id)


def write_meta(path: Path, meta: Meta) -> None:
    """Record ``meta`` in ``path`` atomically: a crash leaves the old file or the new one."""
    data = json.dumps(
        {"format": META_FORMAT, "node_id": meta.node_id, "cluster_id": meta.cluster_id}
    ).encode()
    tmp = path / (META_NAME + ".tmp")
    with tmp.open("wb") as f:
        f.write(data + b"\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path / META_NAME)
    _fsync_dir(path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_data_dir(settings: Settings) -> DataDirState:
    """Whether ``settings.data_dir`` can be this node's, and whether it holds data already.

    Raises ``SettingsError`` if the directory belongs to another node, to another cluster (another
    ``--cluster-token``), or is not a raftkv data directory. ``--cluster`` and ``--join`` are not
    checked: an existing data directory wins over bootstrap flags.
    """
    path = settings.data_dir
    try:
        names = {p.name for p in path.iterdir()}
    except FileNotFoundError:
        return DataDirState(path, False, settings.node_id, settings.cluster_id)
    except NotADirectoryError:
        raise SettingsError(f"data directory {path} is not a directory") from None
    except OSError as exc:
        raise SettingsError(f"cannot read data directory {path}: {exc.strerror}") from None
    meta = read_meta(path)
    existing = bool(names - _NOT_DATA)
    if meta is None:
        if existing:
            raise SettingsError(
                f"data directory {path} is not empty and has no {META_NAME} file: "
                "not a raftkv data directory"
            )
        return DataDirState(path, False, settings.node_id, settings.cluster_id)
    if meta.node_id != settings.node_id:
        raise SettingsError(
            f"data directory {path} belongs to node {meta.node_id}, not node {settings.node_id}"
        )
    if meta.cluster_id != settings.cluster_id:
        raise SettingsError(
            f"data directory {path} belongs to cluster {meta.cluster_id!r}, "
            f"not {settings.cluster_id!r} (see --cluster-token)"
        )
    return DataDirState(path, existing, meta.node_id, meta.cluster_id)


def init_data_dir(state: DataDirState) -> None:
    """Create the data directory if needed and record its identity if not recorded yet."""
    try:
        state.path.mkdir(parents=True, exist_ok=True)
        meta = read_meta(state.path)
        if meta is None:
            write_meta(state.path, Meta(state.node_id, state.cluster_id))
    except OSError as exc:
        message = f"cannot initialise data directory {state.path}: {exc.strerror or exc}"
        if exc.errno in _DISK_ERRORS:  # the disk, not the flag: as any storage failure (exit 1)
            raise raftkv.StorageError(
                f"{message}; free space or fix the disk, then restart"
            ) from None
        raise SettingsError(message) from None
