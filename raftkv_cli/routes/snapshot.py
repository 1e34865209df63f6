"""``GET /v1/snapshot``: a consistent backup of the store, streamed (``raftkv snapshot save``).

The snapshot is taken after a ReadIndex barrier, so it holds every write acknowledged before the
request; it is serialized a chunk at a time while the node goes on serving (the store hands over
a view that later writes leave alone). The body is the backup file ``raftkv_cli._backup``
describes, with its checksum last; the headers say the revision and index it was taken at.
"""

from __future__ import annotations

from typing import Final

import trio

from raftkv.kv import KVService

from .._backup import backup_chunks
from .._request import Receive, Scope, Send

__all__ = ["SNAPSHOT_PATH", "SnapshotRoute"]

SNAPSHOT_PATH: Final = "/v1/snapshot"


class SnapshotRoute:
    def __init__(self, service: KVService) -> None:
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.service.node.read_barrier()
        store = self.service.store
        revision, index = store.revision, store.applied_index
        chunks = store.snapshot_chunks()  # a view of now, serialized as it is consumed
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-disposition", f'attachment; filename="raftkv-{revision}.snap"'.encode()),
            (b"x-raftkv-revision", str(revision).encode()),
            (b"x-raftkv-index", str(index).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for part in backup_chunks(chunks):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await trio.lowlevel.checkpoint()  # the node goes on between chunks
        await send({"type": "http.response.body", "body": b"", "more_body": False})
