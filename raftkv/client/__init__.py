"""Clients for raftkv's HTTP API: ``Client`` (blocking) and ``AsyncClient`` (Trio), on httpx.

>>> from raftkv.client import Client
>>> with Client("http://127.0.0.1:12380,http://127.0.0.1:22380") as kv:  # doctest: +SKIP
...     rev = kv.put("config/a", "1").revision
...     kv.put("config/a", "2", if_revision=rev)          # compare-and-swap
...     [kv.key for kv in kv.get_prefix("config/").kvs]
[b'config/a']

Failures raise the ``ClientError`` tree drawn in ``raftkv.client._errors``. Reads and certain
refusals (503) are retried on the other endpoints; a write whose outcome is unknown (504, or a
connection broken after sending) raises ``OutcomeUnknown`` and is never retried blindly. The
wire formats are described in ``raftkv.kv`` and ``raftkv.client._wire``.
"""

from ..kv import KeyValue
from ._async import AsyncClient
from ._errors import (
    BadRequest,
    ClientError,
    Conflict,
    KeyNotFound,
    NotFound,
    OutcomeUnknown,
    PayloadTooLarge,
    PreconditionFailed,
    ServerError,
    Unavailable,
)
from ._models import DeleteResponse, Member, Position, PutResponse, RangeResponse, Value
from ._retry import RetryPolicy
from ._sync import DEFAULT_TIMEOUT, Client

__all__ = [
    "DEFAULT_TIMEOUT",
    "AsyncClient",
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "DeleteResponse",
    "KeyNotFound",
    "KeyValue",
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
    "Unavailable",
    "Value",
]
