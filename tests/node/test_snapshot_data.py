"""Reading a snapshot's data from its file (``open_snapshot_data``): a buffered stream that can
seek, so that a CBOR decoder reads it ahead and still leaves it right after what it decoded."""

from __future__ import annotations

import io

import cbor2
import pytest

from raftkv._snapdata import SnapshotFile, StoredSnapshot, open_snapshot_data
from raftkv.core import SnapshotMetadata

PREFIX = b"file header "


def stored(data: bytes) -> StoredSnapshot:
    """A snapshot whose data sits after a header in a (memory) file, as in a snapshot file."""
    whole = PREFIX + data

    def pread(size: int, offset: int) -> bytes:
        return whole[offset : offset + size]

    file = SnapshotFile(pread, lambda: None, offset=len(PREFIX), size=len(data))
    return StoredSnapshot(SnapshotMetadata(index=5, term=1), file)


def test_items_decoded_one_by_one_by_separate_decoders() -> None:
    items = [["head", 1], *([b"key-%06d" % i, b"v" * 100, i] for i in range(2000)), "end"]
    with open_snapshot_data(stored(b"".join(map(cbor2.dumps, items)))) as stream:
        assert stream.seekable()
        assert cbor2.CBORDecoder(stream).decode() == items[0]
        assert stream.tell() == len(cbor2.dumps(items[0]))  # read ahead, sought back
        decoder = cbor2.CBORDecoder(stream)
        assert [decoder.decode() for _ in items[1:]] == items[1:]
        assert stream.read() == b""


def test_seeking_within_the_data() -> None:
    data = bytes(range(256)) * 64
    with open_snapshot_data(stored(data), buffer_size=4096) as stream:
        assert stream.seek(10_000) == 10_000 and stream.read(3) == data[10_000:10_003]
        assert stream.seek(-3, io.SEEK_CUR) == 10_000 and stream.read(1) == data[10_000:10_001]
        assert stream.seek(-1, io.SEEK_END) == len(data) - 1 and stream.read() == data[-1:]
        assert stream.seek(len(data) + 5) == len(data) + 5 and stream.read() == b""
        with pytest.raises(OSError, match="before the start"):
            stream.seek(-1, io.SEEK_SET)
