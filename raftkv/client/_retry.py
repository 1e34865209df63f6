"""Endpoint failover and retries, shared by ``Client`` and ``AsyncClient`` (no I/O here).

A request is retried on another endpoint only when that cannot apply it twice:

- the connection could not be opened (the request was never sent): any request;
- 503, a certain refusal (no leader, no quorum): any request, after ``Retry-After`` once every
  endpoint has refused;
- a broken connection, a timeout or a 504 after the request was sent: reads only. For a write
  these raise ``OutcomeUnknown`` at once: it may have been applied.

Endpoints are tried in turn, starting with the one that answered last; after each full round the
client pauses (``RetryPolicy``), and after ``rounds`` rounds it raises ``Unavailable``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from ._errors import ClientError, OutcomeUnknown, Unavailable
from ._wire import parse_error_body, parse_retry_after

__all__ = ["Attempt", "Endpoints", "RetryPolicy", "error_message"]

# The request certainly did not reach a server.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    rounds: int = 4  # passes over the endpoint list before giving up
    backoff: float = 0.1  # pause after the first full round, doubled after each one
    max_backoff: float = 2.0  # longest pause, a server's Retry-After included
    jitter: bool = True  # pause a random 50-100% of that, so that clients spread out

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("RetryPolicy needs rounds >= 1 and backoffs >= 0")

    def pause(self, completed_rounds: int, retry_after: float | None) -> float:
        """Seconds to wait after ``completed_rounds`` full rounds (>= 1) all failed."""
        delay = self.backoff * (1 << min(completed_rounds - 1, 30))
        if retry_after is not None:
            delay = max(delay, retry_after)
        delay = min(delay, self.max_backoff)
        return delay * random.uniform(0.5, 1.0) if self.jitter else delay


class Endpoints:
    """The client URLs of the cluster's nodes; remembers which one answered last."""

    def __init__(self, urls: str | Sequence[str]) -> None:
        items = urls.split(",") if isinstance(urls, str) else list(urls)
        self.urls = tuple(_endpoint(u) for u in items)
        if not self.urls:
            raise ValueError("no endpoints given")
        self.preferred = 0

    def __repr__(self) -> str:
        return f"Endpoints({','.join(self.urls)})"


def _endpoint(text: str) -> str:
    url = text.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a bad port)
    except ValueError as exc:
        raise ValueError(f"bad endpoint {text!r}: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ValueError(f"bad endpoint {text!r}: expected http://host:port")
    return url


def error_message(response: httpx.Response, endpoint: str) -> tuple[str, str | None, str | None]:
    """``(message, error, detail)`` for an error response."""
    error, detail = parse_error_body(response.content)
    message = (
        f"{error or response.reason_phrase or 'error'} ({response.status_code} from {endpoint})"
    )
    return (f"{message}: {detail}" if detail else message), error, detail


class Attempt:
    """One request's way through the endpoints. The drivers loop::

    attempt = Attempt(endpoints, policy, idempotent)
    while True:
        try:
            response = send(attempt.endpoint)
        except httpx.TransportError as exc:
            pause = attempt.transport_failed(exc)      # raises when it must stop
        else:
            pause = attempt.answered(response)         # None: this is the answer
            if pause is None:
                return response
        sleep(pause)                                   # when > 0
    """

    def __init__(
        self,
        endpoints: Endpoints,
        policy: RetryPolicy,
        idempotent: bool,
        *,
        start: int | None = None,
    ) -> None:
        self._endpoints = endpoints
        self._policy = policy
        self._idempotent = idempotent
        # The endpoint tried first: the one that answered last, unless told otherwise.
        self._index = endpoints.preferred if start is None else start % len(endpoints.urls)
        self._tries = 0
        self._retry_after: float | None = None  # the longest asked for in this round

    @property
    def endpoint(self) -> str:
        return self._endpoints.urls[self._index]

    @property
    def index(self) -> int:
        return self._index

    def failed(self, error: ClientError) -> float:
        """Another failure (``error``) that a try elsewhere may cure: the pause before trying
        the next endpoint; ``error`` itself once the tries ran out."""
        return self._retry(error)

    def transport_failed(self, exc: httpx.TransportError) -> float:
        endpoint = self.endpoint
        if not isinstance(exc, _NOT_SENT) and not self._idempotent:
            raise OutcomeUnknown(
                f"outcome unknown: the connection to {endpoint} failed after the request was "
                f"sent ({type(exc).__name__}: {exc}); it may or may not have been applied",
                endpoint=endpoint,
            ) from exc
        error = Unavailable(
            f"{endpoint} unreachable ({type(exc).__name__}: {exc})", endpoint=endpoint
        )
        error.__cause__ = exc
        return self._retry(error)

    def answered(self, response: httpx.Response) -> float | None:
        status = response.status_code
        if status == 503 or (status == 504 and self._idempotent):
            message, error_code, detail = error_message(response, self.endpoint)
            error = Unavailable(
                message, status=status, error=error_code, detail=detail, endpoint=self.endpoint
            )
            error.retry_after = parse_retry_after(response.headers.get("retry-after"))
            if error.retry_after is not None:
                self._retry_after = max(self._retry_after or 0.0, error.retry_after)
            return self._retry(error)
        self._endpoints.preferred = self._index
        return None

    def _retry(self, error: ClientError) -> float:
        self._tries += 1
        count = len(self._endpoints.urls)
        if self._tries >= self._policy.rounds * count:
            if count > 1 or self._tries > 1:
                error.args = (f"{error.args[0]}; gave up after {self._tries} tries",)
            raise error
        self._index = (self._index + 1) % count
        if self._tries % count:
            return 0.0  # an endpoint not tried in this round yet: no reason to wait
        pause = self._policy.pause(self._tries // count, self._retry_after)
        self._retry_after = None
        return pause
