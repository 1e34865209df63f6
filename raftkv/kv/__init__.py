"""raftkv.kv: the key-value store that raftkvd serves, as a library.

* ``KVStateMachine``: the replicated map (a ``raftkv.StateMachine``): revisions as in etcd,
  compare-and-swap, snapshots streamed as a CBOR sequence. Pure and deterministic.
* Commands and results: ``encode_put``/``encode_delete`` (checked against ``Limits``) produce
  what is proposed; ``apply`` answers ``PutResult``, ``DeleteResult``, ``CompareFailed`` or
  ``InvalidCommand``.
* ``KVService``: the store on a running node: writes answered once applied, linearizable reads.
* The wire formats shared by the daemon and the client: key-values as JSON, revisions as ETags,
  keys in URL paths.

    async with raftkv.open_node(config, storage=..., transport=..., peers=...,
                                state_machine=(store := KVStateMachine())) as node:
        kv = KVService(node, store)
        await kv.put(b"greeting", b"hello")
        assert (await kv.get(b"greeting")).value == b"hello"
"""

from .._errors import Compacted, FutureRevision, InvalidKey, ValueTooLarge
from ._commands import (
    COMMAND_VERSION,
    Command,
    CompactCommand,
    Compare,
    CompareOp,
    CompareTarget,
    DeleteCommand,
    DeletePrefixCommand,
    InvalidTxn,
    PutCommand,
    RangeOp,
    TxnCommand,
    TxnOp,
    check_txn,
    decode_command,
    encode_command,
    encode_delete,
    encode_put,
)
from ._compactor import DEFAULT_KEEP_REVISIONS, AutoCompaction, Retention, parse_retention
from ._limits import (
    DEFAULT_MAX_KEY_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    Limits,
    check_key,
    check_value_size,
)
from ._results import (
    ApplyResult,
    CompactRefused,
    CompactResult,
    CompareFailed,
    DeletePrefixResult,
    DeleteResult,
    InvalidCommand,
    KeyValue,
    PutResult,
    RangeResult,
    TxnResponse,
    TxnResult,
    WatchBatch,
    WatchEvent,
)
from ._service import KVService
from ._store import KVStateMachine
from ._watch import Watcher, WatchHub, WatchLost, WatchStatistics
from ._wire import (
    WireFormatError,
    bytes_field,
    bytes_from_json,
    encode_etag,
    encode_key_path,
    encode_query_bytes,
    key_value_from_json,
    key_value_to_json,
    parse_etag,
    parse_revision_tag,
    range_from_json,
)

__all__ = [
    "COMMAND_VERSION",
    "DEFAULT_KEEP_REVISIONS",
    "DEFAULT_MAX_KEY_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "ApplyResult",
    "AutoCompaction",
    "Command",
    "CompactCommand",
    "CompactRefused",
    "CompactResult",
    "Compacted",
    "Compare",
    "CompareFailed",
    "CompareOp",
    "CompareTarget",
    "DeleteCommand",
    "DeletePrefixCommand",
    "DeletePrefixResult",
    "DeleteResult",
    "FutureRevision",
    "InvalidCommand",
    "InvalidKey",
    "InvalidTxn",
    "KVService",
    "KVStateMachine",
    "KeyValue",
    "Limits",
    "PutCommand",
    "PutResult",
    "RangeOp",
    "RangeResult",
    "Retention",
    "TxnCommand",
    "TxnOp",
    "TxnResponse",
    "TxnResult",
    "ValueTooLarge",
    "WatchBatch",
    "WatchEvent",
    "WatchHub",
    "WatchLost",
    "WatchStatistics",
    "Watcher",
    "WireFormatError",
    "bytes_field",
    "bytes_from_json",
    "check_key",
    "check_txn",
    "check_value_size",
    "decode_command",
    "encode_command",
    "encode_delete",
    "encode_etag",
    "encode_key_path",
    "encode_put",
    "encode_query_bytes",
    "key_value_from_json",
    "key_value_to_json",
    "parse_etag",
    "parse_retention",
    "parse_revision_tag",
    "range_from_json",
]
