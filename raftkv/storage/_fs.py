"""The file-system facade: every byte ``FileStorage`` reads or writes goes through it.

One small interface, three implementations:

- ``OsFileSystem``: the real thing (``os.pwrite``, ``os.fdatasync``, ...).
- ``FaultyFileSystem``: wraps another one and makes a chosen call fail with ``OSError`` (EIO by
  default), e.g. the third ``fdatasync``: how tests prove that a failed sync stops the storage.
- ``SimFileSystem`` (``_simfs``): in memory; records every write and sync so tests can build the
  on-disk states a power cut may leave.

Handles are ints (real descriptors for ``OsFileSystem``); paths are ``str``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
from typing import Protocol

__all__ = ["FaultyFileSystem", "FileSystem", "OsFileSystem", "remove_if_exists"]


class FileSystem(Protocol):
    def makedirs(self, path: str) -> None:
        """Create ``path`` (and parents) if missing, durably."""
        ...

    def listdir(self, path: str) -> list[str]: ...

    def read_file(self, path: str) -> bytes: ...

    def create(self, path: str) -> int:
        """A new empty file opened read-write; ``FileExistsError`` if ``path`` exists."""
        ...

    def open(self, path: str) -> int:
        """An existing file opened read-write."""
        ...

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        """Write all of ``data`` at ``offset`` (short writes are continued)."""
        ...

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
        ...

    def fdatasync(self, fd: int) -> None: ...

    def ftruncate(self, fd: int, size: int) -> None: ...

    def preallocate(self, fd: int, size: int) -> None:
        """Reserve space up to ``size`` bytes (zeros); a no-op where unsupported."""
        ...

    def size(self, fd: int) -> int: ...

    def links(self, fd: int) -> int:
        """How many names the open file has: 0 once it was deleted (its directory removed)."""
        ...

    def close(self, fd: int) -> None: ...

    def rename(self, src: str, dst: str) -> None: ...

    def unlink(self, path: str) -> None: ...

    def fsync_dir(self, path: str) -> None: ...

    def lock(self, path: str) -> int:
        """Take an exclusive lock on directory ``path``; ``BlockingIOError`` if held."""
        ...

    def unlock(self, handle: int) -> None: ...


if sys.platform == "darwin":

    def _datasync(fd: int) -> None:
        # macOS fsync leaves data in the drive's cache; F_FULLFSYNC is its durable sync.
        fcntl.fcntl(fd, fcntl.F_FULLFSYNC)

else:

    def _datasync(fd: int) -> None:
        os.fdatasync(fd)  # looked up at each call, so tests can watch the system call


def remove_if_exists(fs: FileSystem, path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        fs.unlink(path)


class OsFileSystem:
    """The operating system's file system."""

    def makedirs(self, path: str) -> None:
        missing = []
        path = os.path.abspath(path)
        while not os.path.isdir(path):
            missing.append(path)
            path = os.path.dirname(path)
        for new in reversed(missing):
            os.mkdir(new)
            # A new directory's own entry must survive a crash too.
            self.fsync_dir(os.path.dirname(new))

    def listdir(self, path: str) -> list[str]:
        return os.listdir(path)

    def read_file(self, path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    def create(self, path: str) -> int:
        return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    def open(self, path: str) -> int:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        n = os.pwrite(fd, data, offset)
        if n == len(data):
            return
        view = memoryview(data)
        while n < len(view):
            n += os.pwrite(fd, view[n:], offset + n)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        data = os.pread(fd, size, offset)
        if len(data) == size or not data:
            return data
        parts = [data]  # a short read before the end of the file: read on
        got = len(data)
        while got < size:
            more = os.pread(fd, size - got, offset + got)
            if not more:
                break
            parts.append(more)
            got += len(more)
        return b"".join(parts)

    def fdatasync(self, fd: int) -> None:
        _datasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        os.ftruncate(fd, size)

    def preallocate(self, fd: int, size: int) -> None:
        fallocate = getattr(os, "posix_fallocate", None)  # not on macOS
        if fallocate is None:
            return
        try:
            fallocate(fd, 0, size)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise

    def size(self, fd: int) -> int:
        return os.fstat(fd).st_size

    def links(self, fd: int) -> int:
        return os.fstat(fd).st_nlink

    def close(self, fd: int) -> None:
        os.close(fd)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def unlink(self, path: str) -> None:
        os.unlink(path)

    def fsync_dir(self, path: str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def lock(self, path: str) -> int:
        fd = os.open(os.path.join(path, "LOCK"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise
        return fd

    def unlock(self, handle: int) -> None:
        os.close(handle)  # closing the descriptor releases the flock


_OPERATIONS = frozenset(
    name for name in FileSystem.__dict__ if not name.startswith("_") and name != "mro"
)


class FaultyFileSystem:
    """Another ``FileSystem`` whose chosen calls fail, for tests.

    ``fs.fail("fdatasync", after=2)`` lets two ``fdatasync`` calls through and makes every later
    one raise ``OSError(EIO)`` (a disk that went bad stays bad).
    """

    def __init__(self, inner: FileSystem) -> None:
        self.inner = inner
        self._faults: dict[str, tuple[int, OSError]] = {}
        self.calls: dict[str, int] = {}

    def fail(self, op: str, *, after: int = 0, error: OSError | None = None) -> None:
        if op not in _OPERATIONS:
            raise ValueError(f"no file-system operation {op!r}")
        self._faults[op] = (after, error or OSError(errno.EIO, os.strerror(errno.EIO)))

    def _call(self, op: str) -> None:
        n = self.calls.get(op, 0)
        self.calls[op] = n + 1
        fault = self._faults.get(op)
        if fault is not None and n >= fault[0]:
            raise fault[1]

    def makedirs(self, path: str) -> None:
        self._call("makedirs")
        self.inner.makedirs(path)

    def listdir(self, path: str) -> list[str]:
        self._call("listdir")
        return self.inner.listdir(path)

    def read_file(self, path: str) -> bytes:
        self._call("read_file")
        return self.inner.read_file(path)

    def create(self, path: str) -> int:
        self._call("create")
        return self.inner.create(path)

    def open(self, path: str) -> int:
        self._call("open")
        return self.inner.open(path)

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        self._call("pwrite")
        self.inner.pwrite(fd, data, offset)

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        self._call("pread")
        return self.inner.pread(fd, size, offset)

    def fdatasync(self, fd: int) -> None:
        self._call("fdatasync")
        self.inner.fdatasync(fd)

    def ftruncate(self, fd: int, size: int) -> None:
        self._call("ftruncate")
        self.inner.ftruncate(fd, size)

    def preallocate(self, fd: int, size: int) -> None:
        self._call("preallocate")
        self.inner.preallocate(fd, size)

    def size(self, fd: int) -> int:
        self._call("size")
        return self.inner.size(fd)

    def links(self, fd: int) -> int:
        self._call("links")
        return self.inner.links(fd)

    def close(self, fd: int) -> None:
        self._call("close")
        self.inner.close(fd)

    def rename(self, src: str, dst: str) -> None:
        self._call("rename")
        self.inner.rename(src, dst)

    def unlink(self, path: str) -> None:
        self._call("unlink")
        self.inner.unlink(path)

    def fsync_dir(self, path: str) -> None:
        self._call("fsync_dir")
        self.inner.fsync_dir(path)

    def lock(self, path: str) -> int:
        self._call("lock")
        return self.inner.lock(path)

    def unlock(self, handle: int) -> None:
        self._call("unlock")
        self.inner.unlock(handle)
