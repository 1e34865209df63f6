"""Sync journal for the fault suite's power-loss fault (loaded into raftkvd via PYTHONPATH).

With ``RAFTKV_TEST_SYNC_JOURNAL=<file>`` set, every ``os.pwrite``/``os.ftruncate``/
``os.posix_fallocate`` on a regular file first appends to that file what it is about to
overwrite (inode, offset, old bytes, old size), and every ``os.fsync``/``os.fdatasync`` of a file
appends a sync mark. After the process is killed, ``jepsen._powerloss.roll_back`` undoes every
change made after a file's last sync: the page cache a power cut would have lost. Names
(create, rename, unlink) are taken as durable; only file contents are rolled back.
"""

import json
import os
import stat

_JOURNAL = os.environ.get("RAFTKV_TEST_SYNC_JOURNAL")


def _install(journal_path: str) -> None:
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    real_pwrite, real_ftruncate = os.pwrite, os.ftruncate
    real_fallocate = getattr(os, "posix_fallocate", None)
    real_fsync, real_fdatasync = os.fsync, os.fdatasync

    def note(record: dict) -> None:
        os.write(journal, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def regular(fd: int) -> os.stat_result | None:
        st = os.fstat(fd)
        return st if stat.S_ISREG(st.st_mode) else None

    def pwrite(fd, data, offset):  # type: ignore[no-untyped-def]
        st = regular(fd)
        if st is not None:
            old = os.pread(fd, len(data), offset)
            note({"op": "w", "ino": st.st_ino, "off": offset, "size": st.st_size, "old": old.hex()})
        return real_pwrite(fd, data, offset)

    def ftruncate(fd, length):  # type: ignore[no-untyped-def]
        st = regular(fd)
        if st is not None:
            old = os.pread(fd, max(0, st.st_size - length), length) if length < st.st_size else b""
            note({"op": "w", "ino": st.st_ino, "off": length, "size": st.st_size, "old": old.hex()})
        return real_ftruncate(fd, length)

    def posix_fallocate(fd, offset, length):  # type: ignore[no-untyped-def]
        st = regular(fd)
        if st is not None:
            note({"op": "w", "ino": st.st_ino, "off": st.st_size, "size": st.st_size, "old": ""})
        return real_fallocate(fd, offset, length)  # type: ignore[misc]

    def synced(real):  # type: ignore[no-untyped-def]
        def sync(fd):  # type: ignore[no-untyped-def]
            result = real(fd)
            st = regular(fd)
            if st is not None:
                note({"op": "s", "ino": st.st_ino})
            return result

        return sync

    os.pwrite, os.ftruncate = pwrite, ftruncate
    if real_fallocate is not None:
        os.posix_fallocate = posix_fallocate
    os.fsync, os.fdatasync = synced(real_fsync), synced(real_fdatasync)


if _JOURNAL:
    _install(_JOURNAL)
