"""One HTTP request to a node, turned into an outcome the history can keep.

What a client can know: a 2xx says it happened; a 503 or a 4xx is a certain refusal (nothing of a
refused request reaches the log, docs/api.md); a connection that was never made carried nothing.
Everything else (504, a timeout, a connection cut after the request left) may have happened.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import trio

from jepsen._history import FAIL, OK, UNKNOWN


@dataclass(frozen=True)
class Answer:
    outcome: str  # for a write: OK / FAIL / UNKNOWN
    status: str
    response: httpx.Response | None

    @property
    def index(self) -> int | None:
        raw = self.response.headers.get("X-Raft-Index") if self.response is not None else None
        return int(raw) if raw and raw.isdigit() else None


def open_http(timeout: float) -> httpx.AsyncClient:
    """A client that never asks a proxy (trust_env=False): traffic stays in our namespaces."""
    return httpx.AsyncClient(
        trust_env=False, timeout=timeout, limits=httpx.Limits(max_connections=4)
    )


async def send(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    content: str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    try:
        r = await http.request(method, url, content=content, headers=headers)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        return Answer(FAIL, type(exc).__name__, None)
    except httpx.HTTPError as exc:
        return Answer(UNKNOWN, type(exc).__name__, None)
    if 200 <= r.status_code < 300:
        outcome = OK
    elif r.status_code == 503 or 400 <= r.status_code < 500:
        outcome = FAIL
    else:
        outcome = UNKNOWN
    return Answer(outcome, str(r.status_code), r)


async def pace(answer: Answer) -> None:
    """A refused connection answers at once; do not spin on a node that is down."""
    if answer.response is None and answer.outcome == FAIL:
        await trio.sleep(0.05)
