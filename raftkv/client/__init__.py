"""Clients for raftkv's HTTP API: ``Client`` (blocking) and ``AsyncClient`` (Trio), on httpx.

>>> from raftkv.client import Client
>>> with Client("http://127.0.0.1:12380,http://127.0.0.1:22380") as kv:  # doctest: +SKIP
...     rev = kv.put("config/a", "1").revision
...     kv.put("config/a", "2", if_revision=rev)          # compare-and-swap
...     [kv.key for kv in kv.get_prefix("config/").kvs]
[b'config/a']

Transactions (``raftkv.client._txn``)::

    kv.txn().compare(value("k") == "v").then(put("k", "w")).otherwise(get("k")).commit()

Watches (``raftkv.client._watch``): every revision once, in order, across node failures::

    with kv.watch(prefix="config/", start_revision=rev + 1) as watch:
        for batch in watch:                  # raftkv.kv.WatchBatch
            for event in batch.events:       # WatchEvent: type, kv, prev_kv
                ...

Leases, locks and elections (``raftkv.client._lease``, ``_lock``, ``_election``;
docs/coordination.md)::

    with kv.lease(ttl=10) as lease:             # kept alive in the background, revoked after
        kv.put("svc/me", "up", lease=lease.id)
    with kv.lock("jobs/nightly") as held:       # fair, under a lease; held.token fences
        ...
    with kv.election("svc/primary") as e:
        e.campaign("10.0.0.7")                  # blocks until elected

Failures raise the ``ClientError`` tree drawn in ``raftkv.client._errors``. Reads and certain
refusals (503) are retried on the other endpoints; a write whose outcome is unknown (504, or a
connection broken after sending) raises ``OutcomeUnknown`` and is never retried blindly. The
wire formats are described in ``raftkv.kv`` and ``raftkv.client._wire``.
"""

from ..kv import KeyValue, WatchBatch, WatchEvent
from ._async import AsyncClient, AsyncWatch
from ._blocking import Election, HeldLock, Lease
from ._election import AsyncElection, ElectionObserver
from ._errors import (
    BadRequest,
    ClientError,
    Compacted,
    Conflict,
    FutureRevision,
    KeyNotFound,
    LeaseLost,
    LeaseNotFound,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    Unavailable,
)
from ._lease import AsyncLease
from ._lock import AsyncHeldLock
from ._models import (
    CompactResponse,
    DeleteResponse,
    Leader,
    LeaseGrant,
    LeaseRevoked,
    LeaseStatus,
    Member,
    Position,
    PutResponse,
    RangeResponse,
    TxnDeleteResult,
    TxnGetResult,
    TxnOpResult,
    TxnPutResult,
    TxnRangeResult,
    TxnResponse,
    Value,
)
from ._retry import RetryPolicy
from ._sync import DEFAULT_TIMEOUT, Client, Watch
from ._txn import (
    Target,
    Txn,
    create_revision,
    delete,
    delete_prefix,
    get,
    get_prefix,
    mod_revision,
    put,
    value,
    version,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "AsyncElection",
    "AsyncHeldLock",
    "AsyncLease",
    "AsyncWatch",
    "BadRequest",
    "Client",
    "ClientError",
    "CompactResponse",
    "Compacted",
    "Conflict",
    "DeleteResponse",
    "Election",
    "ElectionObserver",
    "FutureRevision",
    "HeldLock",
    "KeyNotFound",
    "KeyValue",
    "Leader",
    "Lease",
    "LeaseGrant",
    "LeaseLost",
    "LeaseNotFound",
    "LeaseRevoked",
    "LeaseStatus",
    "Member",
    "NotFound",
    "OutcomeUnknown",
    "PayloadTooLarge",
    "Position",
    "PreconditionFailed",
    "PutResponse",
    "RangeResponse",
    "RetryPolicy",
    "ServerError",
    "Target",
    "Txn",
    "TxnDeleteResult",
    "TxnGetResult",
    "TxnOpResult",
    "TxnPutResult",
    "TxnRangeResult",
    "TxnResponse",
    "Unavailable",
    "Value",
    "Watch",
    "WatchBatch",
    "WatchEvent",
    "create_revision",
    "delete",
    "delete_prefix",
    "get",
    "get_prefix",
    "mod_revision",
    "put",
    "value",
    "version",
]
