"""Snapshots whose data stays in a file: ``StoredSnapshot``, and reading any snapshot's data a
chunk at a time.

The core treats ``Snapshot.data`` as opaque bytes and only passes the object along (the log
store keeps it, ``InstallSnapshot`` carries it, ``Ready`` hands it back). A large state's
snapshot is hundreds of megabytes, so holding it as one ``bytes`` object (or several, as it
travels) would double a node's memory. A ``StoredSnapshot`` is a ``Snapshot`` whose data is
read from an open file when asked for: the storage makes one for every snapshot file it writes
or loads, the transport streams one chunk by chunk and spools what it receives into one, and
the state machine restores from a stream over it. ``data`` still returns every byte, for code
that needs them whole (it reads the file each time: fine for small states and tests).

The file stays readable while the object lives, even once its name is gone (a newer snapshot
replaces it): the object holds the open descriptor, closed when it is garbage.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

from .core import Snapshot, SnapshotMetadata

__all__ = [
    "SnapshotFile",
    "StoredSnapshot",
    "open_snapshot_data",
    "read_snapshot_data",
    "snapshot_data_size",
]


class SnapshotFile:
    """An open file whose bytes ``[offset, offset + size)`` are a snapshot's data.

    ``pread(size, offset)`` reads the open file; ``close()`` releases it, once, when this
    object is garbage (or at ``close``). ``origin`` says which storage wrote it, so that it
    can take the file over instead of copying it (``FileStorage``: its directory and the
    file's name)."""

    __slots__ = ("_close", "_closed", "_pread", "offset", "origin", "size")

    def __init__(
        self,
        pread: Callable[[int, int], bytes],
        close: Callable[[], None],
        *,
        offset: int,
        size: int,
        origin: object = None,
    ) -> None:
        self._pread = pread
        self._close = close
        self._closed = False
        self.offset = offset
        self.size = size
        self.origin = origin

    def read(self, start: int, size: int) -> bytes:
        """Up to ``size`` bytes of the data from ``start`` (fewer only at its end)."""
        size = max(0, min(size, self.size - start))
        if size == 0:
            return b""
        data = self._pread(size, self.offset + start)
        if len(data) != size:
            raise OSError(f"snapshot file ended {size - len(data)} bytes early")
        return data

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __del__(self) -> None:
        self.close()


class StoredSnapshot(Snapshot):
    """A ``Snapshot`` whose data is in a ``SnapshotFile`` (see the module docstring)."""

    __slots__ = ("file",)
    file: SnapshotFile

    def __init__(self, metadata: SnapshotMetadata, file: SnapshotFile) -> None:
        object.__setattr__(self, "metadata", metadata)
        object.__setattr__(self, "file", file)

    @property
    def data(self) -> bytes:
        return self.file.read(0, self.file.size)

    @property
    def size(self) -> int:
        return self.file.size

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Snapshot):
            return NotImplemented
        if self.metadata != other.metadata:
            return False
        if isinstance(other, StoredSnapshot) and other.file is self.file:
            return True
        return snapshot_data_size(other) == self.size and other.data == self.data

    __hash__ = None  # type: ignore[assignment]  # equality reads the file; never a dict key

    def __repr__(self) -> str:
        return f"StoredSnapshot({self.metadata!r}, {self.size} bytes)"


def snapshot_data_size(snapshot: Snapshot) -> int:
    """How many bytes the snapshot's data has, without reading them."""
    if isinstance(snapshot, StoredSnapshot):
        return snapshot.size
    return len(snapshot.data)


def read_snapshot_data(snapshot: Snapshot, start: int, size: int) -> bytes:
    """Up to ``size`` bytes of the snapshot's data from ``start``: a copy of that part only."""
    if isinstance(snapshot, StoredSnapshot):
        return snapshot.file.read(start, size)
    return snapshot.data[start : start + size]


def open_snapshot_data(snapshot: Snapshot, buffer_size: int = 1 << 20) -> io.BufferedReader:
    """A buffered binary stream over the snapshot's data (read from its file a buffer at a
    time for a ``StoredSnapshot``)."""
    if isinstance(snapshot, StoredSnapshot):
        return io.BufferedReader(_FileReader(snapshot.file), buffer_size)
    return io.BufferedReader(io.BytesIO(snapshot.data))


class _FileReader(io.RawIOBase):
    """The data of a ``SnapshotFile`` as a raw stream. Seekable: a CBOR decoder reads a
    seekable stream ahead and seeks back to the end of the item it decoded, where it would
    read an unseekable one a few bytes at a time (restoring a snapshot: twice as slow)."""

    def __init__(self, file: SnapshotFile) -> None:
        self._file = file
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._file.size}[whence]
        if base + offset < 0:
            raise OSError(f"seek to {base + offset}, before the start of the snapshot data")
        self._pos = base + offset
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(self._pos, len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
