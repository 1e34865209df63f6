"""File-system errors an operator can act on: which file, which operation, what to do.

``os.pwrite`` or ``os.fdatasync`` failing says only ``[Errno 28] No space left on device``:
descriptors have no names. ``NamingFileSystem`` wraps the ``FileSystem`` a ``FileStorage``
uses, remembers the path of each descriptor it opened, and re-raises every ``OSError`` with
that path and a note naming the operation (the exception's type is kept: a missing file is
still ``FileNotFoundError``). ``describe_os_error`` turns one into the sentence a
``StorageFailed`` carries, with a hint for the errors an operator can fix: a full disk, a
read-only file system, a data directory removed under a running node.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator

from ._fs import FileSystem

__all__ = ["NamingFileSystem", "describe_os_error"]

_HINTS = {
    errno.ENOSPC: "the disk is full: free space on it or move the data directory to a larger "
    "one (docs/storage.md says how much a node needs), then restart the node",
    errno.EDQUOT: "the disk quota is exhausted: raise it or free space, then restart the node",
    errno.EROFS: "the file system is read-only: remount it read-write (and check the disk: a "
    "file system that found errors may have switched itself to read-only), then restart",
    errno.ENOENT: "a file or the data directory itself was removed while the node was "
    "running; restore it from a backup, or remove this member and add it back empty",
    errno.EIO: "the disk reported an I/O error: check it before restarting the node",
}


def describe_os_error(exc: OSError) -> str:
    """``<file>: <what failed> (<ERRNO>, in <operation>); <what to do>``."""
    reason = exc.strerror or str(exc)
    where = f"{exc.filename}: " if exc.filename else ""
    details = [errno.errorcode.get(exc.errno, "")] if exc.errno is not None else []
    details += getattr(exc, "__notes__", [])
    detail = f" ({', '.join(d for d in details if d)})" if any(details) else ""
    hint = _HINTS.get(exc.errno) if exc.errno is not None else None
    return f"{where}{reason}{detail}" + (f"; {hint}" if hint else "")


def _named(exc: OSError, op: str, path: str | None) -> OSError:
    """A copy of ``exc`` naming ``path`` (if it named no file) and, in a note, ``op``."""
    args: tuple[object, ...] = exc.args
    if exc.errno is not None:
        args = (exc.errno, exc.strerror or str(exc), exc.filename or path)
    named = type(exc)(*args)
    named.add_note(f"in {op}")
    return named


@contextlib.contextmanager
def _naming(op: str, path: str | None) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise _named(exc, op, path) from exc


class NamingFileSystem:
    """Another ``FileSystem`` whose errors name the file and the operation (see above).

    The hot calls (``pwrite``, ``fdatasync``, ``links``) catch inline; the rest use
    ``_naming``.
    """

    def __init__(self, inner: FileSystem) -> None:
        self.inner = inner
        self._paths: dict[int, str] = {}

    def makedirs(self, path: str) -> None:
        with _naming("mkdir", path):
            self.inner.makedirs(path)

    def listdir(self, path: str) -> list[str]:
        with _naming("listdir", path):
            return self.inner.listdir(path)

    def read_file(self, path: str) -> bytes:
        with _naming("read", path):
            return self.inner.read_file(path)

    def create(self, path: str) -> int:
        with _naming("create", path):
            fd = self.inner.create(path)
        self._paths[fd] = path
        return fd

    def open(self, path: str) -> int:
        with _naming("open", path):
            fd = self.inner.open(path)
        self._paths[fd] = path
        return fd

    def pwrite(self, fd: int, data: bytes | memoryview, offset: int) -> None:
        try:
            self.inner.pwrite(fd, data, offset)
        except OSError as exc:
            raise _named(exc, "write", self._paths.get(fd)) from exc

    def pread(self, fd: int, size: int, offset: int) -> bytes:
        try:
            return self.inner.pread(fd, size, offset)
        except OSError as exc:
            raise _named(exc, "read", self._paths.get(fd)) from exc

    def fdatasync(self, fd: int) -> None:
        try:
            self.inner.fdatasync(fd)
        except OSError as exc:
            raise _named(exc, "fdatasync", self._paths.get(fd)) from exc

    def links(self, fd: int) -> int:
        try:
            return self.inner.links(fd)
        except OSError as exc:
            raise _named(exc, "fstat", self._paths.get(fd)) from exc

    def ftruncate(self, fd: int, size: int) -> None:
        with _naming("ftruncate", self._paths.get(fd)):
            self.inner.ftruncate(fd, size)

    def preallocate(self, fd: int, size: int) -> None:
        with _naming(f"preallocating {size} bytes", self._paths.get(fd)):
            self.inner.preallocate(fd, size)

    def size(self, fd: int) -> int:
        with _naming("fstat", self._paths.get(fd)):
            return self.inner.size(fd)

    def close(self, fd: int) -> None:
        with _naming("close", self._paths.pop(fd, None)):
            self.inner.close(fd)

    def rename(self, src: str, dst: str) -> None:
        with _naming(f"rename to {os.path.basename(dst)}", src):
            self.inner.rename(src, dst)
        # A copy: a snapshot file may be named in a worker thread while the WAL opens a segment.
        for fd, path in list(self._paths.items()):
            if path == src:
                self._paths[fd] = dst

    def unlink(self, path: str) -> None:
        with _naming("unlink", path):
            self.inner.unlink(path)

    def fsync_dir(self, path: str) -> None:
        with _naming("fsync of the directory", path):
            self.inner.fsync_dir(path)

    def lock(self, path: str) -> int:
        with _naming("lock", os.path.join(path, "LOCK")):
            return self.inner.lock(path)

    def unlock(self, handle: int) -> None:
        self.inner.unlock(handle)
