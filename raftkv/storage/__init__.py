"""Durable storage for the runtime: the ``Storage`` protocol and its implementations.

``MemoryStorage`` keeps the contract in memory (tests, the simulator); ``FileStorage`` keeps it in
a directory of WAL segments and snapshot files (``open_file_storage``). Both do their I/O through
hooks tests can use: ``MemoryStorage.inject_failure``, and for ``FileStorage`` any
``FileSystem`` (``FaultyFileSystem`` fails chosen calls, ``SimFileSystem`` shows what a power cut
may leave).
"""

from .._snapdata import StoredSnapshot
from ._base import PersistedState, SnapshotSink, Storage
from ._file import FileStorage, FileStorageStatistics, ThreadIO, open_file_storage
from ._fs import FaultyFileSystem, FileSystem, OsFileSystem
from ._memory import MemoryStorage
from ._simfs import CrashMode, SimFileSystem
from ._snapsink import FileSnapshotSink

__all__ = [
    "CrashMode",
    "FaultyFileSystem",
    "FileSnapshotSink",
    "FileStorage",
    "FileStorageStatistics",
    "FileSystem",
    "MemoryStorage",
    "OsFileSystem",
    "PersistedState",
    "SimFileSystem",
    "SnapshotSink",
    "Storage",
    "StoredSnapshot",
    "ThreadIO",
    "open_file_storage",
]
