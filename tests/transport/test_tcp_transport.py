"""The TCP transport: URLs, handshake refusals, hostile input, reconnects, overflow, batching."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import suppress
from functools import partial

import pytest
import trio
from transport_helpers import CLUSTER, Harness, Node, commits, hb

from raftkv._codec import CODEC_VERSION, encode_message
from raftkv.core import AppendEntries, Entry
from raftkv.transport import (
    Refusal,
    Removed,
    TcpOptions,
    Unreachable,
    open_tcp_transport,
    parse_peer_url,
)
from raftkv.transport._framing import FrameReader, encode_frame, frame
from raftkv.transport._handshake import PROTOCOL_VERSION, Hello, check_reply, encode_hello


@pytest.fixture
def tcp(nursery: trio.Nursery) -> Harness:
    return Harness("tcp", nursery)


# -- URLs and arguments --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:12379", ("127.0.0.1", 12379)),
        ("http://127.0.0.1:12379/", ("127.0.0.1", 12379)),
        ("https://node-1.example:443", ("node-1.example", 443)),
        ("http://[::1]:2380", ("::1", 2380)),
    ],
)
def test_parse_peer_url(url: str, expected: tuple[str, int]) -> None:
    assert parse_peer_url(url) == expected


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "non-empty"),
        ("127.0.0.1:12379", "http://"),
        ("tcp://127.0.0.1:12379", "http://"),
        ("http://127.0.0.1", "port"),
        ("http://127.0.0.1:0", "port"),
        ("http://127.0.0.1:99999", "malformed"),
        ("http://127.0.0.1:port", "malformed"),
        ("http://:12379", "no host"),
        ("http://u:p@127.0.0.1:12379", "credentials"),
        ("http://127.0.0.1:12379/raft", "just scheme"),
        ("http://127.0.0.1:12379?x=1", "just scheme"),
        (" http://127.0.0.1:12379", "whitespace"),
    ],
)
def test_bad_peer_urls_are_explained(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_peer_url(url)


async def test_open_validates_arguments() -> None:
    async def opening(**kw: object) -> None:
        args: dict[str, object] = {"listen_host": "127.0.0.1", "listen_port": 0}
        args.update(kw)
        peers = args.pop("peers", {})
        cluster = args.pop("cluster_id", CLUSTER)
        async with open_tcp_transport(1, cluster, peers, **args):  # type: ignore[arg-type]
            pass  # pragma: no cover

    with pytest.raises(ValueError, match="peer URL"):
        await opening(peers={2: "127.0.0.1:5"})
    with pytest.raises(ValueError, match="cluster id"):
        await opening(cluster_id="")
    with pytest.raises(ValueError, match="both"):
        await opening(ssl_server_context=object())
    with pytest.raises(ValueError, match="snapshot_chunk_size"):
        TcpOptions(max_frame_size=1024, snapshot_chunk_size=1024)


async def test_add_peer_validates_urls(tcp: Harness) -> None:
    n1 = await tcp.start(1)
    with pytest.raises(ValueError, match="port"):
        n1.transport.add_peer(2, "http://127.0.0.1")
    assert n1.transport.url == f"http://127.0.0.1:{n1.transport.listen_port}"


async def test_peers_given_at_open_include_self(tcp: Harness) -> None:
    n2 = await tcp.start(2)
    n1 = await tcp.start(1, peers={1: "http://127.0.0.1:1", 2: n2.url})
    n2.transport.add_peer(1, n1.url)
    assert n1.transport.peers == {1: "http://127.0.0.1:1", 2: n2.url}
    n1.send([hb(1, 2)])
    await n2.recorder.wait_messages(1)


async def test_outgoing_connections_come_from_our_host(tcp: Harness, nursery: trio.Nursery) -> None:
    seen: list[str] = []
    got = trio.Event()

    async def handler(stream: trio.SocketStream) -> None:
        seen.append(stream.socket.getpeername()[0])
        got.set()

    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    n1 = await tcp.start(1, peers={2: f"http://127.0.0.1:{port}"})
    assert n1.transport._link_context.local_address == "127.0.0.1"
    n1.send([hb(1, 2)])
    with trio.fail_after(5):
        await got.wait()
    assert seen == ["127.0.0.1"]


# -- handshake refusals by real transports ---------------------------------------------------


async def test_wrong_cluster_is_refused(tcp: Harness) -> None:
    n1 = await tcp.start(1)
    n2 = await tcp.start(2, cluster_id="another-cluster", peers={1: n1.url})
    n1.transport.add_peer(2, n2.url)
    n2.send([hb(2, 1)])
    await n2.recorder.wait_event(Unreachable(1))
    assert n1.transport.statistics().refused == {Refusal.WRONG_CLUSTER: 1}
    assert n1.recorder.messages() == []


async def test_wrong_receiver_is_refused(tcp: Harness) -> None:
    n1 = await tcp.start(1)
    n3 = await tcp.start(3, peers={2: n1.url})  # node 3 thinks node 2 lives at node 1's address
    n1.transport.add_peer(3, n3.url)
    n3.send([hb(3, 2)])
    await n3.recorder.wait_event(Unreachable(2))
    assert n1.transport.statistics().refused == {Refusal.WRONG_RECEIVER: 1}


async def test_removed_member_is_refused_at_the_handshake(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    n1.transport.remove_peer(2)  # before 2 ever connected
    n2.send([hb(2, 1)])
    await n2.recorder.wait_event(Removed(by=1))
    assert n1.transport.statistics().refused == {Refusal.REMOVED: 1}
    assert n1.recorder.messages() == []
    n1.send([hb(1, 2)])  # and 1 no longer sends to it
    await n1.recorder.wait_event(Unreachable(2))


# -- hostile input on the peer port ----------------------------------------------------------


async def raw_connect(node: Node) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", node.transport.listen_port)


async def raw_handshake(node: Node, src: int, *, cluster: str = CLUSTER) -> trio.SocketStream:
    stream = await raw_connect(node)
    await stream.send_all(encode_hello(Hello(cluster, src, node.id)))
    reply = await FrameReader(stream, 1024).read()
    assert reply is not None
    check_reply(reply)
    return stream


async def wait_closed(stream: trio.SocketStream) -> None:
    """Until the listener closed the connection (by then it has counted the refusal)."""
    with trio.fail_after(5):
        try:
            while await stream.receive_some():
                pass
        except trio.BrokenResourceError:
            pass  # a reset: closed with our bytes unread
    await stream.aclose()


async def send_and_hang_up(stream: trio.SocketStream, data: bytes) -> None:
    with suppress(trio.BrokenResourceError):  # the listener may have hung up already
        await stream.send_all(data)
        await stream.send_eof()
    await wait_closed(stream)


async def still_serving(n1: Node, n2: Node) -> None:
    """A real peer still gets through, and nothing hostile reached the events channel."""
    n2.send([hb(2, 1, n=99)])
    await n1.recorder.wait_messages(1)
    assert n1.recorder.messages() == [hb(2, 1, n=99)]


def hostile_inputs() -> Iterator[tuple[str, bytes | None, bytes, Refusal]]:
    """(name, hello or None, what follows, expected refusal)."""
    ok = encode_hello(Hello(CLUSTER, 2, 1))
    msg = encode_message(hb(2, 1, n=5))
    yield "oversized hello", None, b"\xff\xff\xff\xff" + b"x" * 100, Refusal.OVERSIZED_FRAME
    yield "http request", None, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", Refusal.OVERSIZED_FRAME
    yield "not a hello", None, encode_frame(["hello?"]), Refusal.BAD_HANDSHAKE
    yield "undecodable hello", None, frame(b"\xff\x00"), Refusal.BAD_HANDSHAKE
    yield "truncated hello", None, ok[:7], Refusal.BAD_HANDSHAKE
    bad_codec = encode_frame(["raftkv-peer", PROTOCOL_VERSION, CLUSTER, CODEC_VERSION + 1, 2, 1])
    yield "codec version", None, bad_codec, Refusal.INCOMPATIBLE
    yield "oversized frame", ok, (1 << 30).to_bytes(4, "big"), Refusal.OVERSIZED_FRAME
    yield "undecodable frame", ok, frame(b"\x9f\x01"), Refusal.BAD_FRAME
    yield "unknown record", ok, encode_frame([7, msg]), Refusal.BAD_FRAME
    yield "malformed message", ok, encode_frame([0, [3, 1, 2]]), Refusal.BAD_FRAME
    yield "forged sender", ok, encode_frame([0, encode_message(hb(3, 1))]), Refusal.FORGED
    yield "forged receiver", ok, encode_frame([0, encode_message(hb(2, 4))]), Refusal.FORGED
    yield "stray chunk", ok, encode_frame([2, b"data"]), Refusal.BAD_FRAME
    huge = [1, 1, 2, 1, [5, 1, [[1, 2], []]], 1 << 40]
    yield "huge snapshot", ok, encode_frame(huge), Refusal.OVERSIZED_FRAME
    inline = encode_message(
        AppendEntries(1, 2, 1, 0, 0, (Entry(1, 1, data=b"x"),), 0)
    )  # a valid message after a forged one must not slip through either
    yield (
        "forged then valid",
        ok,
        encode_frame([0, encode_message(hb(3, 1))]) + encode_frame([0, inline]),
        Refusal.FORGED,
    )


@pytest.mark.parametrize(
    ("hello", "payload", "reason"),
    [pytest.param(h, p, r, id=name) for name, h, p, r in hostile_inputs()],
)
async def test_hostile_connection_is_refused(
    tcp: Harness, hello: bytes | None, payload: bytes, reason: Refusal
) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    stream = await raw_connect(n1)
    if hello is not None:
        await stream.send_all(hello)
        reply = await FrameReader(stream, 1024).read()
        assert reply is not None
        check_reply(reply)
    await send_and_hang_up(stream, payload)
    assert n1.transport.statistics().refused == {reason: 1}
    await still_serving(n1, n2)


async def test_random_bytes_never_reach_the_node(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    rng = random.Random(5)
    for _ in range(20):
        stream = await raw_connect(n1)
        await send_and_hang_up(stream, rng.randbytes(rng.randrange(1, 3000)))
    # ... nor do random frames after a valid handshake.
    for _ in range(20):
        stream = await raw_handshake(n1, 2)
        await send_and_hang_up(stream, frame(rng.randbytes(rng.randrange(1, 300))))
    assert n1.transport.statistics().refused_total >= 35
    await still_serving(n1, n2)


async def test_silent_connection_times_out(tcp: Harness) -> None:
    opts = TcpOptions(handshake_timeout=0.2)
    n1 = await tcp.start(1, options=opts)
    stream = await raw_connect(n1)
    await wait_closed(stream)
    assert n1.transport.statistics().refused == {Refusal.HANDSHAKE_TIMEOUT: 1}


async def test_raw_peer_with_valid_frames_is_delivered(tcp: Harness) -> None:
    """The control for the hostile tests: the same raw client, well-behaved, gets through."""
    n1, _ = await tcp.cluster(1, 2)
    stream = await raw_handshake(n1, 2)
    await stream.send_all(
        b"".join(encode_frame([0, encode_message(hb(2, 1, n=i))]) for i in range(3))
    )
    got = await n1.recorder.wait_messages(3)
    assert commits(got) == [0, 1, 2]
    await stream.aclose()


# -- connections, overflow, batching ---------------------------------------------------------


async def test_reconnects_after_the_peer_restarts(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    n1.send([hb(1, 2, n=0)])
    await n2.recorder.wait_messages(1)
    port = n2.transport.listen_port
    await n2.stop()
    n1.send([hb(1, 2, n=1)])  # lost with the connection: reported
    await n1.recorder.wait_event(Unreachable(2))
    n2 = await tcp.start(2, port=port)
    n2.transport.add_peer(1, n1.url)
    with trio.fail_after(5):
        for i in range(2, 1000):
            n1.send([hb(1, 2, n=i)])
            with trio.move_on_after(0.05):
                await n2.recorder.wait_messages(1)
                break
    assert n1.transport.is_connected(2)


async def test_overflow_drops_and_reports_without_blocking(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    n1.transport.add_peer(2, n2.url)
    opts = TcpOptions(queue_size=8, backoff_initial=0.01, backoff_max=0.1)
    n3 = await tcp.start(3, options=opts, peers={2: n2.url})
    n2.transport.add_peer(3, n3.url)
    n3.send([hb(3, 2, n=i) for i in range(1000)])  # one synchronous call: nothing drains
    await n3.recorder.wait_event(Unreachable(2))
    assert n3.transport.statistics().messages_dropped == 992
    got = await n2.recorder.wait_messages(8)
    assert commits(got) == list(range(8))


async def test_slow_receiver_backs_up_into_unreachable(tcp: Harness, nursery: trio.Nursery) -> None:
    n1 = await tcp.start(1, options=TcpOptions(queue_size=16))
    # Node 2's events are never read, so its socket, then node 1's queue, fill up.
    async with open_tcp_transport(
        2,
        CLUSTER,
        {1: n1.url},
        listen_host="127.0.0.1",
        listen_port=0,
        options=TcpOptions(events_buffer=1),
    ) as t2:
        n1.transport.add_peer(2, t2.url)
        big = b"v" * 65536
        entries = (Entry(1, 1, data=big),)
        with trio.fail_after(10):
            for i in range(2000):
                n1.send([AppendEntries(1, 1, 2, i, 1, entries, 0)] * 16)
                with trio.move_on_after(0.01):
                    await n1.recorder.wait_event(Unreachable(2), timeout=1)
                    break
            else:
                pytest.fail("never reported unreachable")
        assert n1.transport.statistics().messages_dropped > 0
        assert t2.statistics().messages_received <= 2


async def test_messages_are_batched_per_write(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    n1.send([hb(1, 2, n=i) for i in range(500)])
    await n2.recorder.wait_messages(500)
    stats = n1.transport.statistics()
    assert stats.messages_sent == 500
    assert stats.writes <= 5


async def test_an_idle_connection_is_written_without_a_task_switch(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    n1.send([hb(1, 2, n=0)])
    await n2.recorder.wait_messages(1)
    writes = n1.transport.statistics().writes
    n1.send([hb(1, 2, n=1)])
    # Written inside send(): counted before this task yields.
    assert n1.transport.statistics().writes == writes + 1
    assert commits(await n2.recorder.wait_messages(2)) == [0, 1]


async def test_a_direct_write_the_socket_takes_in_part_keeps_the_order(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    n1.send([hb(1, 2, n=0)])
    await n2.recorder.wait_messages(1)
    # Far more than a loopback socket buffer takes at once: the rest is the link task's.
    big = AppendEntries(1, 1, 2, 0, 0, (Entry(1, 1, data=b"x" * (12 << 20)),), 7)
    n1.send([big])
    n1.send([hb(1, 2, n=1)])
    n1.send([hb(1, 2, n=2)])
    got = await n2.recorder.wait_messages(4)
    assert got[1] == big  # whole
    assert [m.commit for m in got] == [0, 7, 1, 2]  # type: ignore[union-attr]
    assert n1.transport.statistics().messages_sent == 4


async def test_oversized_outgoing_message_is_dropped(tcp: Harness) -> None:
    opts = TcpOptions(max_frame_size=4096, snapshot_chunk_size=1024)
    n2 = await tcp.start(2)
    n1 = await tcp.start(1, options=opts, peers={2: n2.url})
    n2.transport.add_peer(1, n1.url)
    big = AppendEntries(1, 1, 2, 0, 0, (Entry(1, 1, data=b"x" * 5000),), 0)
    n1.send([big, hb(1, 2, n=1)])
    await n1.recorder.wait_event(Unreachable(2))
    assert await n2.recorder.wait_messages(1) == [hb(1, 2, n=1)]


async def test_oversized_message_to_an_idle_connection_is_dropped(tcp: Harness) -> None:
    opts = TcpOptions(max_frame_size=4096, snapshot_chunk_size=1024)
    n2 = await tcp.start(2)
    n1 = await tcp.start(1, options=opts, peers={2: n2.url})
    n2.transport.add_peer(1, n1.url)
    n1.send([hb(1, 2, n=0)])
    await n2.recorder.wait_messages(1)  # connected and idle: the next send writes directly
    n1.send([AppendEntries(1, 1, 2, 0, 0, (Entry(1, 1, data=b"x" * 5000),), 0)])
    n1.send([hb(1, 2, n=1)])
    await n1.recorder.wait_event(Unreachable(2))
    assert commits(await n2.recorder.wait_messages(2)) == [0, 1]
    assert n1.transport.statistics().messages_dropped == 1


async def test_changed_url_redials(tcp: Harness) -> None:
    n1, n2 = await tcp.cluster(1, 2)
    n3 = await tcp.start(3)  # takes over as "node 2"'s address for this test
    n3.transport.add_peer(1, n1.url)
    n1.send([hb(1, 2, n=1)])
    await n2.recorder.wait_messages(1)
    n1.transport.add_peer(2, n3.url)
    n1.send([hb(1, 2, n=2)])
    await n1.recorder.wait_event(Unreachable(2))  # node 3 refuses: it is not node 2
    assert n3.transport.statistics().refused == {Refusal.WRONG_RECEIVER: 1}
