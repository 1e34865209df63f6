"""``AsyncClient``: the async client, for Trio."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import AbstractAsyncContextManager
from types import TracebackType
from typing import IO, Any, TypeVar

import httpx
import trio

from ..kv import TxnCommand, WatchBatch
from . import _auth_calls as auth
from . import _calls as calls
from ._calls import Call, Key
from ._election import AsyncElection, open_election
from ._lease import AsyncLease, open_lease
from ._lock import AsyncHeldLock, open_lock
from ._models import (
    CompactResponse,
    DeleteResponse,
    LeaseGrant,
    LeaseRevoked,
    LeaseStatus,
    Member,
    PutResponse,
    RangeResponse,
    SnapshotSaved,
    TxnResponse,
    Value,
)
from ._retry import Attempt, Endpoints, RetryPolicy
from ._security import Credentials, login_request, tls_verify, token_from
from ._sync import DEFAULT_TIMEOUT
from ._txn import Txn
from ._watch import DEFAULT_IDLE_TIMEOUT, StreamEnded, WatchSession, stream_timeout

__all__ = ["AsyncClient", "AsyncWatch"]

T = TypeVar("T")


class AsyncClient:
    """``Client``, for Trio tasks: the same methods, awaited.

    >>> import trio
    >>> async def main() -> bytes:
    ...     async with AsyncClient("http://127.0.0.1:12380") as kv:
    ...         await kv.put("greeting", "hello")
    ...         return (await kv.get("greeting")).value
    >>> trio.run(main)
    b'hello'

    Pauses between retry rounds use ``trio.sleep``. One client may serve many tasks at once.
    """

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        verify: Any = True,
        transport: httpx.AsyncBaseTransport | None = None,
        ca: str | None = None,
        cert: str | None = None,
        key: str | None = None,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.endpoints = Endpoints(endpoints)
        self.retry = retry or RetryPolicy()
        verify = tls_verify(verify, ca=ca, cert=cert, key=key, ssl_context=ssl_context)
        self._credentials = Credentials(token, user, password)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            verify=verify,
            transport=transport,
            headers=self._credentials.first_headers(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _log_in(self, endpoint: str) -> None:
        target, body, headers = login_request(self._credentials)
        response = await self._http.post(endpoint + target, content=body, headers=headers)
        self._http.headers["authorization"] = f"Bearer {token_from(response, endpoint)}"

    async def _send(self, call: Call[T]) -> T:
        attempt = Attempt(self.endpoints, self.retry, call.idempotent)
        logged_in = False
        while True:
            endpoint = attempt.endpoint
            pause: float | None
            try:
                response = await self._http.request(
                    call.method, endpoint + call.target, content=call.content, headers=call.headers
                )
            except httpx.TransportError as exc:
                pause = attempt.transport_failed(exc)
            else:
                if response.status_code == 401 and self._credentials.can_log_in and not logged_in:
                    await self._log_in(endpoint)  # the first request, or the token expired
                    logged_in = True
                    continue
                if response.status_code in call.answers:
                    return call.finish(response, endpoint)
                pause = attempt.answered(response)
                if pause is None:
                    return call.finish(response, endpoint)
            if pause:
                await trio.sleep(pause)

    # -- auth (docs/security.md) --

    async def auth_status(self) -> dict[str, Any]:
        """Whether auth is enabled, and the auth revision."""
        return await self._send(auth.auth_read("status"))

    async def auth_enable(self) -> dict[str, Any]:
        """Enable auth (needs a ``root`` user holding the ``root`` role)."""
        return await self._send(auth.auth_change("POST", "enable"))

    async def auth_disable(self) -> dict[str, Any]:
        """Disable auth (root only)."""
        return await self._send(auth.auth_change("POST", "disable"))

    async def user_add(self, name: str, password: str | None = None) -> dict[str, Any]:
        """Add a user (no password: it logs in by client certificate only)."""
        return await self._send(
            auth.auth_change("POST", "users", body={"name": name, "password": password})
        )

    async def user_delete(self, name: str) -> dict[str, Any]:
        """Delete a user: its tokens stop working."""
        return await self._send(auth.auth_change("DELETE", "users", name))

    async def user_list(self) -> dict[str, Any]:
        """``{"users": [name, ...]}``."""
        return await self._send(auth.auth_read("users"))

    async def user_get(self, name: str) -> dict[str, Any]:
        """``{"name", "roles"}``."""
        return await self._send(auth.auth_read("users", name))

    async def user_passwd(self, name: str, password: str) -> dict[str, Any]:
        """Change a user's password: its tokens stop working."""
        return await self._send(
            auth.auth_change("PUT", "users", name, "password", body={"password": password})
        )

    async def user_grant_role(self, name: str, role: str) -> dict[str, Any]:
        """Give a user a role."""
        return await self._send(auth.auth_change("PUT", "users", name, "roles", role))

    async def user_revoke_role(self, name: str, role: str) -> dict[str, Any]:
        """Take a role from a user."""
        return await self._send(auth.auth_change("DELETE", "users", name, "roles", role))

    async def role_add(self, name: str) -> dict[str, Any]:
        """Add a role (no permissions yet)."""
        return await self._send(auth.auth_change("POST", "roles", body={"name": name}))

    async def role_delete(self, name: str) -> dict[str, Any]:
        """Delete a role (and take it from every user)."""
        return await self._send(auth.auth_change("DELETE", "roles", name))

    async def role_list(self) -> dict[str, Any]:
        """``{"roles": [name, ...]}``."""
        return await self._send(auth.auth_read("roles"))

    async def role_get(self, name: str) -> dict[str, Any]:
        """``{"name", "permissions": [{"perm", "key", "prefix"}]}``."""
        return await self._send(auth.auth_read("roles", name))

    async def role_grant(
        self, name: str, perm: str, key: Key, *, prefix: bool = False
    ) -> dict[str, Any]:
        """Grant ``perm`` (read, write, readwrite) on ``key``, or every key under it."""
        return await self._send(
            auth.auth_change(
                "POST",
                "roles",
                name,
                "grant",
                body=auth.permission_body(key, prefix=prefix, perm=perm),
            )
        )

    async def role_revoke(self, name: str, key: Key, *, prefix: bool = False) -> dict[str, Any]:
        """Revoke the role's permission on exactly that key or prefix."""
        return await self._send(
            auth.auth_change(
                "POST", "roles", name, "revoke", body=auth.permission_body(key, prefix=prefix)
            )
        )

    # -- keys --

    async def get(
        self, key: Key, *, serializable: bool = False, revision: int | None = None
    ) -> Value:
        """The key's value and mod revision; ``KeyNotFound`` if it does not exist.

        Linearizable unless ``serializable`` (then: whatever the answering node has applied).
        ``revision``: as of that revision (``Compacted`` below the compaction point,
        ``FutureRevision`` past the current one).
        """
        return await self._send(calls.get(key, serializable=serializable, revision=revision))

    async def put(
        self, key: Key, value: Key, *, if_revision: int | None = None, lease: int | None = None
    ) -> PutResponse:
        """Store ``value``; returns once committed. ``if_revision``: compare-and-swap on the key's
        mod revision (0: create only); ``PreconditionFailed`` when it does not match. ``lease``:
        attach the key to that lease (``LeaseNotFound`` if it is gone); without it, a put
        detaches the key from any lease."""
        return await self._send(calls.put(key, value, if_revision=if_revision, lease=lease))

    async def delete(
        self, key: Key | None = None, *, prefix: Key | None = None, if_revision: int | None = None
    ) -> DeleteResponse:
        """Delete the key (``KeyNotFound`` if it does not exist), or every key under ``prefix``
        at one revision (``deleted`` says how many; b"": every key)."""
        return await self._send(calls.delete(key, prefix=prefix, if_revision=if_revision))

    async def get_prefix(
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
        return await self._send(
            calls.get_prefix(
                prefix, limit=limit, after=after, serializable=serializable, revision=revision
            )
        )

    def txn(self) -> Txn[Awaitable[TxnResponse]]:
        """A transaction to build, then ``await ....commit()`` (see ``Client.txn``)."""
        return Txn(self._commit)

    async def _commit(self, command: TxnCommand) -> TxnResponse:
        return await self._send(calls.txn(command))

    async def compact(self, revision: int) -> CompactResponse:
        """Forget the history before ``revision`` on every member (it stays readable);
        ``Compacted`` if it is compacted already, ``FutureRevision`` past the current one."""
        return await self._send(calls.compact(revision))

    def watch(
        self,
        key: Key | None = None,
        *,
        prefix: Key | None = None,
        start_revision: int | None = None,
        prev_kv: bool = False,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> AsyncWatch:
        """``Client.watch``, for Trio::

        async with kv.watch(prefix="config/") as watch:
            async for batch in watch:
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
        return AsyncWatch(self._http, session, idle_timeout)

    # -- leases and what builds on them --

    async def grant_lease(self, ttl: int, *, id: int | None = None) -> LeaseGrant:
        """A lease of ``ttl`` whole seconds (at least the cluster's minimum, above its election
        timeout); ``id`` chooses its id (``Conflict`` if taken). Nothing keeps it alive: see
        ``lease()`` for that."""
        return await self._send(calls.grant_lease(ttl, lease=id))

    async def keepalive(self, lease: int) -> int:
        """Renew ``lease`` for its whole TTL, which it returns; ``LeaseNotFound`` if gone."""
        return await self._send(calls.keepalive(lease))

    async def lease_status(self, lease: int, *, keys: bool = True) -> LeaseStatus:
        """The lease's TTL left by the leader's clock, its granted TTL and attached keys."""
        return await self._send(calls.lease_status(lease, keys=keys))

    async def revoke_lease(self, lease: int) -> LeaseRevoked:
        """Revoke ``lease``: every key attached to it is deleted, at one revision."""
        return await self._send(calls.revoke_lease(lease))

    async def leases(self) -> tuple[int, ...]:
        """The ids of every lease, in order."""
        return await self._send(calls.leases())

    def lease(
        self, ttl: int = 10, *, id: int | None = None
    ) -> AbstractAsyncContextManager[AsyncLease]:
        """A lease kept alive while the block runs, revoked after it (``_lease``)::

        async with kv.lease(ttl=10) as lease:
            await kv.put("svc/me", "up", lease=lease.id)
        """
        return open_lease(self, ttl, id=id)

    def lock(self, name: Key, *, ttl: int = 10) -> AbstractAsyncContextManager[AsyncHeldLock]:
        """The lock ``name``, held while the block runs (``_lock``); ``held.token`` fences::

        async with kv.lock("jobs/nightly") as held:
            ...
        """
        return open_lock(self, name, ttl=ttl)

    def election(self, name: Key, *, ttl: int = 10) -> AbstractAsyncContextManager[AsyncElection]:
        """The election ``name``: campaign, proclaim, resign, leader, observe (``_election``)."""
        return open_election(self, name, ttl=ttl)

    # -- cluster --

    async def members(self) -> tuple[Member, ...]:
        return await self._send(calls.members())

    async def add_member(self, member_id: int, peer_url: str) -> tuple[Member, ...]:
        """Add a node (as a learner, promoted once caught up); returns the new member list."""
        return await self._send(calls.add_member(member_id, peer_url))

    async def remove_member(self, member_id: int) -> tuple[Member, ...]:
        """Remove a node (it then exits by itself); returns the new member list."""
        return await self._send(calls.remove_member(member_id))

    async def transfer_leadership(self, member_id: int) -> None:
        await self._send(calls.transfer_leadership(member_id))

    async def status(self) -> dict[str, Any]:
        """The answering node's ``/-/status``: id, role, term, leader, indexes, members."""
        return await self._send(calls.status())

    async def health(self) -> dict[str, Any]:
        """The answering node's ``/-/health``: ``{"health": "ok"}``, or why not."""
        return await self._send(calls.health())

    async def promote_member(self, member_id: int) -> tuple[Member, ...]:
        """Make a learner a voter now (refused unless it has caught up); the new member list."""
        return await self._send(calls.promote_member(member_id))

    async def save_snapshot(self, file: IO[bytes]) -> SnapshotSaved:
        """``Client.save_snapshot``: a consistent backup of the store streamed into ``file``."""
        attempt = Attempt(self.endpoints, self.retry, idempotent=True)
        while True:
            endpoint = attempt.endpoint
            pause: float | None
            try:
                async with self._http.stream("GET", endpoint + calls.SNAPSHOT_TARGET) as response:
                    if response.status_code == 200:
                        size = await _rewrite(file, response.aiter_bytes())
                        return calls.snapshot_saved(response, endpoint, size)
                    await response.aread()
                    pause = attempt.answered(response)
                    if pause is None:
                        raise calls.snapshot_refused(response, endpoint)
            except httpx.TransportError as exc:
                pause = attempt.transport_failed(exc)
            if pause:
                await trio.sleep(pause)


_WRITE_BATCH = 1 << 20  # bytes handed to the worker thread per file write


async def _rewrite(file: IO[bytes], chunks: AsyncIterator[bytes]) -> int:
    """Rewrite ``file`` from its start with ``chunks``; the bytes written. The file is written
    in a worker thread, about a megabyte at a time: the event loop never waits on the disk."""

    def rewind() -> None:
        file.seek(0)
        file.truncate()

    await trio.to_thread.run_sync(rewind)
    size = 0
    batch: list[bytes] = []
    pending = 0
    async for chunk in chunks:
        batch.append(chunk)
        pending += len(chunk)
        if pending >= _WRITE_BATCH:
            size += await trio.to_thread.run_sync(file.write, b"".join(batch))
            batch.clear()
            pending = 0
    if batch:
        size += await trio.to_thread.run_sync(file.write, b"".join(batch))
    return size


class AsyncWatch:
    """``AsyncClient.watch``: the revision batches of a watch, as they happen. ``async for``
    over it; close it (``aclose()``, or ``async with``) to stop. Reconnects by itself
    (``raftkv.client._watch``)."""

    def __init__(self, http: httpx.AsyncClient, session: WatchSession, idle_timeout: float) -> None:
        self._http = http
        self._session = session
        self._timeout = stream_timeout(http.timeout, idle_timeout)
        self._response: httpx.Response | None = None
        self._lines: AsyncIterator[str] | None = None
        self._closed = False

    @property
    def next_revision(self) -> int | None:
        """The revision the watch needs next (everything before it was delivered)."""
        return self._session.next_revision

    def __aiter__(self) -> AsyncWatch:
        return self

    async def __anext__(self) -> WatchBatch:
        if self._closed:
            raise StopAsyncIteration
        try:
            while True:
                lines = self._lines or await self._open()
                try:
                    batch = self._session.feed(await anext(lines))
                except StopAsyncIteration:
                    pause = await self._end("the server closed the stream")
                except httpx.TransportError as exc:
                    pause = await self._end(f"{type(exc).__name__}: {exc}")
                except StreamEnded as ended:
                    pause = await self._end(str(ended))
                else:
                    if batch is not None:
                        return batch
                    continue
                if pause:
                    await trio.sleep(pause)
        except BaseException:
            await self.aclose()
            raise

    async def _open(self) -> AsyncIterator[str]:
        session = self._session
        while True:
            request = self._http.build_request(
                "GET", session.endpoint + session.target, timeout=self._timeout
            )
            pause: float | None
            try:
                response = await self._http.send(request, stream=True)
            except httpx.TransportError as exc:
                pause = session.connect_failed(exc)
            else:
                try:
                    if response.status_code != 200:
                        await response.aread()
                    pause = session.opened(response, trio.current_time())
                except BaseException:
                    await _close(response)
                    raise
                if pause is None:
                    self._response, self._lines = response, response.aiter_lines()
                    return self._lines
                await _close(response)
            if pause:
                await trio.sleep(pause)

    async def _end(self, reason: str) -> float:
        await self._drop()
        return self._session.ended(reason, trio.current_time())

    async def _drop(self) -> None:
        lines, response = self._lines, self._response
        self._response = self._lines = None
        if lines is not None:
            # Stop reading by cancelling a read: that unwinds httpx's (and httpcore's) async
            # generators, where closing the outer one would leave the inner ones to the garbage
            # collector (and Trio's warning).
            with trio.CancelScope() as scope:
                scope.cancel()
                with contextlib.suppress(httpx.HTTPError):
                    async for _ in lines:
                        pass
        if response is not None:
            await _close(response)

    async def aclose(self) -> None:
        self._closed = True
        await self._drop()

    async def __aenter__(self) -> AsyncWatch:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def _close(response: httpx.Response) -> None:
    with trio.CancelScope(shield=True), trio.move_on_after(1):
        await response.aclose()
