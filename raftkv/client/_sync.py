"""``Client``: the blocking client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from ..kv import TxnCommand, WatchBatch
from . import _calls as calls
from ._calls import Call, Key
from ._models import (
    CompactResponse,
    DeleteResponse,
    LeaseGrant,
    LeaseRevoked,
    LeaseStatus,
    Member,
    PutResponse,
    RangeResponse,
    TxnResponse,
    Value,
)
from ._retry import Attempt, Endpoints, RetryPolicy
from ._txn import Txn

if TYPE_CHECKING:
    from ._blocking import Election, HeldLock, Lease, Portal
from ._watch import DEFAULT_IDLE_TIMEOUT, StreamEnded, WatchSession, stream_timeout

__all__ = ["DEFAULT_TIMEOUT", "Client", "Watch"]

T = TypeVar("T")

# Connecting fails fast so that another endpoint gets its turn; a request may wait longer
# (a linearizable read or a write waits for a quorum; the server answers 504 after its own
# --request-timeout, 5 s by default).
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=2.0)


class Client:
    """A raftkv cluster, through the HTTP API of any of its nodes.

    >>> with Client("http://127.0.0.1:12380,http://127.0.0.1:22380") as kv:  # doctest: +SKIP
    ...     kv.put("greeting", "hello")
    ...     kv.get("greeting").value
    b'hello'

    ``endpoints`` is a list of client URLs or one comma-separated string. Requests go to the
    endpoint that answered last and fail over as ``raftkv.client._retry`` describes. Keys and
    values are bytes, or str encoded as UTF-8.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: Any = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.endpoints = Endpoints(endpoints)
        self.retry = retry or RetryPolicy()
        self._http = httpx.Client(timeout=timeout, verify=verify, transport=transport)
        self._async_options: dict[str, Any] = {"timeout": timeout, "retry": self.retry}
        self._async_options["verify"] = verify
        if isinstance(transport, httpx.AsyncBaseTransport):  # a mock serving both kinds
            self._async_options["transport"] = transport
        self._portal: Portal | None = None

    def close(self) -> None:
        portal, self._portal = self._portal, None
        if portal is not None:
            portal.close()
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, call: Call[T]) -> T:
        attempt = Attempt(self.endpoints, self.retry, call.idempotent)
        while True:
            endpoint = attempt.endpoint
            pause: float | None
            try:
                response = self._http.request(
                    call.method, endpoint + call.target, content=call.content, headers=call.headers
                )
            except httpx.TransportError as exc:
                pause = attempt.transport_failed(exc)
            else:
                if response.status_code in call.answers:
                    return call.finish(response, endpoint)
                pause = attempt.answered(response)
                if pause is None:
                    return call.finish(response, endpoint)
            if pause:
                time.sleep(pause)

    # -- keys --

    def get(self, key: Key, *, serializable: bool = False, revision: int | None = None) -> Value:
        """The key's value and mod revision; ``KeyNotFound`` if it does not exist.

        Linearizable unless ``serializable`` (then: whatever the answering node has applied).
        ``revision``: as of that revision (``Compacted`` below the compaction point,
        ``FutureRevision`` past the current one).
        """
        return self._send(calls.get(key, serializable=serializable, revision=revision))

    def put(
        self, key: Key, value: Key, *, if_revision: int | None = None, lease: int | None = None
    ) -> PutResponse:
        """Store ``value``; returns once committed. ``if_revision``: compare-and-swap on the key's
        mod revision (0: create only); ``PreconditionFailed`` when it does not match. ``lease``:
        attach the key to that lease (``LeaseNotFound`` if it is gone); without it, a put
        detaches the key from any lease."""
        return self._send(calls.put(key, value, if_revision=if_revision, lease=lease))

    def delete(
        self, key: Key | None = None, *, prefix: Key | None = None, if_revision: int | None = None
    ) -> DeleteResponse:
        """Delete the key (``KeyNotFound`` if it does not exist), or every key under ``prefix``
        at one revision (``deleted`` says how many; b"": every key)."""
        return self._send(calls.delete(key, prefix=prefix, if_revision=if_revision))

    def get_prefix(
        self,
        prefix: Key = b"",
        *,
        limit: int | None = None,
        after: Key | None = None,
        serializable: bool = False,
        revision: int | None = None,
    ) -> RangeResponse:
        """Keys starting with ``prefix`` in key order, at most ``limit`` of them (the server's
        default when None); ``after`` continues from the last key of a previous page;
        ``revision``: as of that revision (pages of one revision are one consistent view)."""
        return self._send(
            calls.get_prefix(
                prefix, limit=limit, after=after, serializable=serializable, revision=revision
            )
        )

    def txn(self) -> Txn[TxnResponse]:
        """A transaction to build, then ``commit()`` (see ``raftkv.client._txn``)::

        kv.txn().compare(value("k") == "v").then(put("k", "w")).otherwise(get("k")).commit()
        """
        return Txn(self._commit)

    def _commit(self, command: TxnCommand) -> TxnResponse:
        return self._send(calls.txn(command))

    def compact(self, revision: int) -> CompactResponse:
        """Forget the history before ``revision`` on every member (it stays readable);
        ``Compacted`` if it is compacted already, ``FutureRevision`` past the current one."""
        return self._send(calls.compact(revision))

    def watch(
        self,
        key: Key | None = None,
        *,
        prefix: Key | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> Watch:
        """Every revision that changes ``key``, or a key under ``prefix`` (neither: any key),
        from ``start_revision`` (None: the next one), as ``WatchBatch``es, each exactly once and
        in order, across failures of the nodes. ``prev_kv``: events carry the value replaced.
        ``Compacted`` if the history needed is gone; ``Unavailable`` once no endpoint served
        the watch for the retry policy's rounds. ``idle_timeout``: a stream silent this long
        is given up for another.

            with kv.watch(prefix="config/") as watch:
                for batch in watch:
                    ...
        """
        session = WatchSession(
            self.endpoints,
            self.retry,
            key=key,
            prefix=prefix,
            start_revision=start_revision,
            prev_kv=prev_kv,
        )
        return Watch(self._http, session, idle_timeout)

    # -- leases and what builds on them --

    def grant_lease(self, ttl: int, *, id: int | None = None) -> LeaseGrant:
        """A lease of ``ttl`` whole seconds (at least the cluster's minimum, above its election
        timeout); ``id`` chooses its id (``Conflict`` if taken). Nothing keeps it alive: see
        ``lease()`` for that."""
        return self._send(calls.grant_lease(ttl, lease=id))

    def keepalive(self, lease: int) -> int:
        """Renew ``lease`` for its whole TTL, which it returns; ``LeaseNotFound`` if gone."""
        return self._send(calls.keepalive(lease))

    def lease_status(self, lease: int, *, keys: bool = True) -> LeaseStatus:
        """The lease's TTL left by the leader's clock, its granted TTL and attached keys."""
        return self._send(calls.lease_status(lease, keys=keys))

    def revoke_lease(self, lease: int) -> LeaseRevoked:
        """Revoke ``lease``: every key attached to it is deleted, at one revision."""
        return self._send(calls.revoke_lease(lease))

    def leases(self) -> tuple[int, ...]:
        """The ids of every lease, in order."""
        return self._send(calls.leases())

    def _background(self) -> Portal:
        # (imported here: the background thread runs an AsyncClient, which imports this module)
        from ._async import AsyncClient  # noqa: PLC0415
        from ._blocking import Portal  # noqa: PLC0415

        if self._portal is None:
            urls, options = self.endpoints.urls, self._async_options
            self._portal = Portal(lambda: AsyncClient(urls, **options))
        return self._portal

    @contextmanager
    def lease(self, ttl: int = 10, *, id: int | None = None) -> Iterator[Lease]:
        """A lease kept alive (by a background thread) while the block runs, revoked after it::

        with kv.lease(ttl=10) as lease:
            kv.put("svc/me", "up", lease=lease.id)
            ...
            lease.check()          # LeaseLost once it may be gone
        """
        from ._blocking import Lease  # noqa: PLC0415

        portal = self._background()
        with portal.context(portal.client.lease(ttl, id=id)) as lease:
            yield Lease(portal, lease)

    @contextmanager
    def lock(self, name: Key, *, ttl: int = 10) -> Iterator[HeldLock]:
        """The lock ``name``, held while the block runs; ``held.token`` is its fencing token
        (it grows from holder to holder: the resource it protects must check it)::

        with kv.lock("jobs/nightly", ttl=10) as held:
            ...
        """
        from ._blocking import HeldLock  # noqa: PLC0415

        portal = self._background()
        with portal.context(portal.client.lock(name, ttl=ttl)) as held:
            yield HeldLock(portal, held)

    @contextmanager
    def election(self, name: Key, *, ttl: int = 10) -> Iterator[Election]:
        """The election ``name``: ``campaign``, ``proclaim``, ``resign``, ``leader``,
        ``observe`` (see ``AsyncClient.election``)."""
        from ._blocking import Election  # noqa: PLC0415

        portal = self._background()
        with portal.context(portal.client.election(name, ttl=ttl)) as election:
            yield Election(portal, election)

    # -- cluster --

    def members(self) -> tuple[Member, ...]:
        return self._send(calls.members())

    def add_member(self, member_id: int, peer_url: str) -> tuple[Member, ...]:
        """Add a node (as a learner, promoted once caught up); returns the new member list."""
        return self._send(calls.add_member(member_id, peer_url))

    def remove_member(self, member_id: int) -> tuple[Member, ...]:
        """Remove a node (it then exits by itself); returns the new member list."""
        return self._send(calls.remove_member(member_id))

    def transfer_leadership(self, member_id: int) -> None:
        self._send(calls.transfer_leadership(member_id))

    def status(self) -> dict[str, Any]:
        """The answering node's ``/-/status``: id, role, term, leader, indexes, members."""
        return self._send(calls.status())

    def health(self) -> dict[str, Any]:
        """The answering node's ``/-/health``: ``{"health": "ok"}``, or why not."""
        return self._send(calls.health())

    def promote_member(self, member_id: int) -> tuple[Member, ...]:
        """Make a learner a voter now (refused unless it has caught up); the new member list."""
        return self._send(calls.promote_member(member_id))


class Watch:
    """``Client.watch``: the revision batches of a watch, as they happen. Iterate it; close it
    (or use ``with``) to stop. Reconnects by itself (``raftkv.client._watch``)."""

    def __init__(self, http: httpx.Client, session: WatchSession, idle_timeout: float) -> None:
        self._http = http
        self._session = session
        self._timeout = stream_timeout(http.timeout, idle_timeout)
        self._response: httpx.Response | None = None
        self._lines: Iterator[str] | None = None
        self._closed = False

    @property
    def next_revision(self) -> int | None:
        """The revision the watch needs next (everything before it was delivered)."""
        return self._session.next_revision

    def __iter__(self) -> Watch:
        return self

    def __next__(self) -> WatchBatch:
        if self._closed:
            raise StopIteration
        try:
            while True:
                lines = self._lines or self._open()
                try:
                    batch = self._session.feed(next(lines))
                except StopIteration:
                    pause = self._end("the server closed the stream")
                except httpx.TransportError as exc:
                    pause = self._end(f"{type(exc).__name__}: {exc}")
                except StreamEnded as ended:
                    pause = self._end(str(ended))
                else:
                    if batch is not None:
                        return batch
                    continue
                if pause:
                    time.sleep(pause)
        except BaseException:
            self.close()
            raise

    def _open(self) -> Iterator[str]:
        session = self._session
        while True:
            request = self._http.build_request(
                "GET", session.endpoint + session.target, timeout=self._timeout
            )
            pause: float | None
            try:
                response = self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                pause = session.connect_failed(exc)
            else:
                try:
                    if response.status_code != 200:
                        response.read()
                    pause = session.opened(response, time.monotonic())
                except BaseException:
                    response.close()
                    raise
                if pause is None:
                    self._response, self._lines = response, response.iter_lines()
                    return self._lines
                response.close()
            if pause:
                time.sleep(pause)

    def _end(self, reason: str) -> float:
        self._drop()
        return self._session.ended(reason, time.monotonic())

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = self._lines = None

    def close(self) -> None:
        self._closed = True
        self._drop()

    def __enter__(self) -> Watch:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
