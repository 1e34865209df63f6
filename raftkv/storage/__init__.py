"""Durable storage for the runtime: the ``Storage`` protocol and its implementations.

``MemoryStorage`` keeps the contract in memory (tests, the simulator); ``FileStorage`` keeps it in
a directory of WAL segments and snapshot files (``open_file_storage``). Both do their I/O through
hooks tests can use: ``MemoryStorage.inject_failure``, and for ``FileStorage`` any
``FileSystem`` (``FaultyFileSystem`` fails chosen calls, ``SimFileSystem`` shows what a power cut
may leave).
"""

from ._base import PersistedState, Storage
from ._file import FileStorage, FileStorageStatistics, ThreadIO, open_file_storage
from ._fs import FaultyFileSystem, FileSystem, OsFileSystem
from ._memory import MemoryStorage
from ._simfs import CrashMode, SimFileSystem

__all__ = [
    "CrashMode",
    "FaultyFileSystem",
    "FileStorage",
    "FileStorageStatistics",
    "FileSystem",
    "MemoryStorage",
    "OsFileSystem",
    "PersistedState",
    "SimFileSystem",
    "Storage",
    "ThreadIO",
    "open_file_storage",
]
