"""An in-memory ``FileSystem`` that can show what a power cut might leave on disk.

Every change (write, resize, sync, create, rename, unlink, directory sync) is appended to
``trace``. ``crash(rng, mode, upto=k)`` replays the first ``k`` operations and returns a new
``SimFileSystem`` holding one state the disk may be in after a power cut at that point:

- kept for sure: a file's data and size as of its last ``fdatasync``, a directory's names as of
  its last ``fsync_dir`` (POSIX promises nothing more; syncing a file does not sync its name);
- the rest is chosen by ``mode``: ``"lost"`` none of it; ``"kept"`` all of it (the process died,
  the kernel did not); ``"torn"`` an in-order prefix, the next write cut at a random byte;
  ``"reordered"`` a random subset in random order, each write whole, cut at a random byte,
  reduced to random 512-byte sectors, or reduced to its size change (zeros).

Directories themselves always exist once made. Tests use ``mark(label)`` to put their own
milestones ("save 7 returned") into the trace.
"""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["CrashMode", "SimFileSystem"]

CrashMode = Literal["lost", "kept", "torn", "reordered"]
_SECTOR = 512


@dataclass(frozen=True, slots=True)
class Write:
    ino: int
    offset: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Resize:
    ino: int
    size: int
    grow_only: bool  # preallocation never shrinks a file


@dataclass(frozen=True, slots=True)
class Sync:
    ino: int


@dataclass(frozen=True, slots=True)
class Link:
    dir: str
    name: str
    ino: int


@dataclass(frozen=True, slots=True)
class Rename:
    dir: str
    src: str
    dst: str


@dataclass(frozen=True, slots=True)
class Unlink:
    dir: str
    name: str


@dataclass(frozen=True, slots=True)
class SyncDir:
    dir: str


@dataclass(frozen=True, slots=True)
class Mark:
    label: object


Op = Write | Resize | Sync | Link | Rename | Unlink | SyncDir | Mark
_DataOp = Write | Resize
_NameOp = Link | Rename | Unlink


def _not_found(path: str) -> FileNotFoundError:
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)


def _split(path: str) -> tuple[str, str]:
    head, tail = os.path.split(os.path.normpath(path))
    return head, tail


def _apply_data(buf: bytearray, op: _DataOp) -> None:
    if isinstance(op, Resize):
        if op.size > len(buf):
            buf.extend(bytes(op.size - len(buf)))
        elif not op.grow_only:
            del buf[op.size :]
        return
    if op.offset > len(buf):
        buf.extend(bytes(op.offset - len(buf)))
    buf[op.offset : op.offset + len(op.data)] = op.data


def _apply_name(names: dict[str, dict[str, int]], op: _NameOp) -> None:
    entries = names.setdefault(op.dir, {})
    if isinstance(op, Link):
        entries[op.name] = op.ino
    elif isinstance(op, Rename):
        if op.src in entries:  # the create may not have reached the disk
            entries[op.dst] = entries.pop(op.src)
    else:
        entries.pop(op.name, None)


def _damage(op: _DataOp, rng: random.Random) -> list[_DataOp]:
    """One way an unsynced write may have reached the disk, as the ops that did."""
    if isinstance(op, Resize):
        return [op]
    end = op.offset + len(op.data)
    how = rng.randrange(4)
    if how == 0:
        return [op]
    if how == 1:
        return [Write(op.ino, op.offset, op.data[: rng.randrange(len(op.data) + 1)])]
    if how == 2:
        parts: list[_DataOp] = []
        start = op.offset
        while start < end:
            stop = min(end, (start // _SECTOR + 1) * _SECTOR)
            if rng.random() < 0.5:
                chunk = op.data[start - op.offset : stop - op.offset]
                parts.append(Write(op.ino, start, chunk))
            start = stop
        return parts
    return [Resize(op.ino, end, grow_only=True)]  # the size reached the disk, the data did not


def _choose(ops: list[_DataOp], mode: CrashMode, rng: random.Random) -> list[_DataOp]:
    if mode == "lost":
        return []
    if mode == "kept":
        return ops
    if mode == "torn":
        k = rng.randint(0, len(ops))
        chosen = ops[:k]
        if k < len(ops) and isinstance(ops[k], Write):
            w = ops[k]
            assert isinstance(w, Write)
            chosen.append(Write(w.ino, w.offset, w.data[: rng.randrange(len(w.data) + 1)]))
        return chosen
    subset = [op for op in ops if rng.random() < 0.5]
    rng.shuffle(subset)
    return [part for op in subset for part in _damage(op, rng)]


def _choose_names(ops: list[_NameOp], mode: CrashMode, rng: random.Random) -> list[_NameOp]:
    if mode == "lost":
        return []
    if mode == "kept":
        return ops
    if mode == "torn":
        return ops[: rng.randint(0, len(ops))]
    return [op for op in ops if rng.random() < 0.5]


class SimFileSystem:
    """A traced in-memory file system; the initial ``files`` (path -> bytes) count as durable."""

    def __init__(self, files: Mapping[str, bytes] = {}, dirs: Iterable[str] = ()) -> None:
        self._base_names: dict[str, dict[str, int]] = {os.path.normpath(d): {} for d in dirs}
        self._base_data: dict[int, bytes] = {}
        for ino, (path, data) in enumerate(sorted(files.items()), start=1):
            head, tail = _split(path)
            self._base_names.setdefault(head, {})[tail] = ino
            self._base_data[ino] = data
        self._names = {d: dict(m) for d, m in self._base_names.items()}
        self._data = {ino: bytearray(b) for ino, b in self._base_data.items()}
        self._next_ino = len(self._base_data) + 1
        self._fds: dict[int, int] = {}
        self._next_fd = 3
        self.trace: list[Op] = []

    # -- inspection ---------------------------------------------------------------------------

    def image(self) -> dict[str, bytes]:
        """Every file as the running system sees it (not only what is durable)."""
        return {
            os.path.join(d, name): bytes(self._data[ino])
            for d, names in self._names.items()
            for name, ino in names.items()
        }

    def dirs(self) -> list[str]:
        return list(self._names)

    def mark(self, label: object) -> None:
        self.trace.append(Mark(label))

    def crash(self, rng: random.Random, mode: CrashMode, upto: int | None = None) -> SimFileSystem:
        """The disk after a power cut following ``trace[:upto]`` (see the module docstring)."""
        names = {d: dict(m) for d, m in self._base_names.items()}
        data = {ino: bytearray(b) for ino, b in self._base_data.items()}
        unsynced: dict[int, list[_DataOp]] = {}
        unsynced_names: dict[str, list[_NameOp]] = {}
        for op in self.trace[:upto]:
            if isinstance(op, Write | Resize):
                unsynced.setdefault(op.ino, []).append(op)
            elif isinstance(op, Sync):
                buf = data.setdefault(op.ino, bytearray())
                for pending in unsynced.pop(op.ino, []):
                    _apply_data(buf, pending)
            elif isinstance(op, Link | Rename | Unlink):
                if isinstance(op, Link):
                    data.setdefault(op.ino, bytearray())
                unsynced_names.setdefault(op.dir, []).append(op)
            elif isinstance(op, SyncDir):
                for pending_name in unsynced_names.pop(op.dir, []):
                    _apply_name(names, pending_name)
        for ino, ops in unsynced.items():
            buf = data.setdefault(ino, bytearray())
            for chosen in _choose(ops, mode, rng):
                _apply_data(buf, chosen)
        for ops_n in unsynced_names.values():
            for chosen_n in _choose_names(ops_n, mode, rng):
                _apply_name(names, chosen_n)
        files = {
            os.path.join(d, name): bytes(data[ino])
            for d, entries in names.items()
            for name, ino in entries.items()
        }
        return SimFileSystem(files, dirs=names)

    # -- FileSystem ---------------------------------------------------------------------------

    def _ino(self, path: str) -> tuple[str, str, int]:
        head, tail = _split(path)
        ino = self._names.get(head, {}).get(tail)
        if ino is None:
            raise _not_found(path)
        return head, tail, ino

    def _fd(self, ino: int) -> int:
        fd = self._next_fd
        self._next_fd += 1
        self._fds[fd] = ino
        return fd

    def makedirs(self, path: str) -> None:
        self._names.setdefault(os.path.normpath(path), {})

    def listdir(self, path: str) -> list[str]:
        try:
            return list(self._names[os.path.normpath(path)])
        except KeyError:
            raise _not_found(path) from None

    def read_file(self, path: str) -> bytes:
        return bytes(self._data[self._ino(path)[2]])

    def create(self, path: str) -> int:
        head, tail = _split(path)
        if head not in self._names:
            raise _not_found(head)
        if tail in self._names[head]:
            raise FileExistsError(path)
        ino = self._next_ino
        self._next_ino += 1
        self._data[ino] = bytearray()
        self._names[head][tail] = ino
        self.trace.append(Link(head, tail, ino))
        return self._fd(ino)

    def open(self, path: str) -> int:
        return self._fd(self._ino(path)[2])

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        op = Write(self._fds[fd], offset, bytes(data))
        _apply_data(self._data[op.ino], op)
        self.trace.append(op)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        return bytes(self._data[self._fds[fd]][offset : offset + size])

    def fdatasync(self, fd: int) -> None:
        self.trace.append(Sync(self._fds[fd]))

    def ftruncate(self, fd: int, size: int) -> None:
        op = Resize(self._fds[fd], size, grow_only=False)
        _apply_data(self._data[op.ino], op)
        self.trace.append(op)

    def preallocate(self, fd: int, size: int) -> None:
        op = Resize(self._fds[fd], size, grow_only=True)
        _apply_data(self._data[op.ino], op)
        self.trace.append(op)

    def size(self, fd: int) -> int:
        return len(self._data[self._fds[fd]])

    def links(self, fd: int) -> int:
        ino = self._fds[fd]
        return sum(i == ino for names in self._names.values() for i in names.values())

    def close(self, fd: int) -> None:
        del self._fds[fd]

    def rename(self, src: str, dst: str) -> None:
        head, tail, ino = self._ino(src)
        dst_head, dst_tail = _split(dst)
        if dst_head != head:
            raise OSError(f"SimFileSystem renames within one directory only: {src} -> {dst}")
        del self._names[head][tail]
        self._names[head][dst_tail] = ino
        self.trace.append(Rename(head, tail, dst_tail))

    def unlink(self, path: str) -> None:
        head, tail, _ = self._ino(path)
        del self._names[head][tail]
        self.trace.append(Unlink(head, tail))

    def fsync_dir(self, path: str) -> None:
        path = os.path.normpath(path)
        if path not in self._names:
            raise _not_found(path)
        self.trace.append(SyncDir(path))

    def lock(self, path: str) -> int:
        return 0

    def unlock(self, handle: int) -> None:
        return None
