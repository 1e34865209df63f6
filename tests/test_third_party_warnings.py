"""Known third-party warnings the suite tolerates (see ``filterwarnings`` in pyproject.toml).

The Jepsen test kills and pauses nodes under load, so some of its requests are cut off while
httpx is still sending the body; httpx's body iterator is an async generator that trio then
reports as garbage collected unexhausted (encode/httpx#3686). That once failed the whole run.
"""

from __future__ import annotations

import gc

import httpx
import pytest
import trio


async def _never_reads(stream: trio.SocketStream) -> None:
    await trio.sleep(10)


async def test_a_request_cut_off_mid_send_does_not_fail_the_suite() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            lambda task_status: trio.serve_tcp(
                _never_reads, 0, host="127.0.0.1", task_status=task_status
            )
        )
        port = listeners[0].socket.getsockname()[1]
        async with httpx.AsyncClient(timeout=0.2) as client:
            with pytest.raises(httpx.TimeoutException):
                # Far more than the socket buffers take: the send blocks until the timeout.
                await client.put(f"http://127.0.0.1:{port}/k", content=b"x" * (64 << 20))
        gc.collect()
        nursery.cancel_scope.cancel()
