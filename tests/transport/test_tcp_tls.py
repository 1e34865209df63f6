"""Mutual TLS between peers (certificates from ``trustme``)."""

from __future__ import annotations

import pytest
import trio
import trustme
from transport_helpers import Harness, Node, hb, tls_contexts

from raftkv.transport import Refusal, Unreachable


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tcp(nursery: trio.Nursery) -> Harness:
    return Harness("tcp", nursery)


async def start_tls(
    tcp: Harness, node_id: int, ca: trustme.CA, cert: trustme.LeafCert | None
) -> Node:
    server, client = tls_contexts(ca, cert)
    return await tcp.start(node_id, ssl_server_context=server, ssl_client_context=client)


async def test_mutual_tls_delivers(tcp: Harness, ca: trustme.CA) -> None:
    cert = ca.issue_cert("127.0.0.1")
    for i in (1, 2, 3):
        await start_tls(tcp, i, ca, cert)
    tcp.connect_all()
    n1, n2, n3 = (tcp.nodes[i] for i in (1, 2, 3))
    n1.send([hb(1, 2, n=1), hb(1, 3, n=1)])
    n2.send([hb(2, 1, n=2)])
    assert await n2.recorder.wait_messages(1) == [hb(1, 2, n=1)]
    assert await n3.recorder.wait_messages(1) == [hb(1, 3, n=1)]
    assert await n1.recorder.wait_messages(1) == [hb(2, 1, n=2)]
    assert n1.transport.statistics().refused_total == 0


async def test_client_without_certificate_is_refused(tcp: Harness, ca: trustme.CA) -> None:
    n1 = await start_tls(tcp, 1, ca, ca.issue_cert("127.0.0.1"))
    # Trusts the CA (so it would accept node 1) but has no certificate of its own.
    server, client = tls_contexts(ca, None)
    n2 = await tcp.start(2, ssl_server_context=server, ssl_client_context=client)
    tcp.connect_all()
    n2.send([hb(2, 1)])
    await n2.recorder.wait_event(Unreachable(1))
    assert n1.transport.statistics().refused == {Refusal.TLS: 1}
    assert n1.recorder.messages() == []


async def test_certificate_from_another_ca_is_refused(tcp: Harness, ca: trustme.CA) -> None:
    n1 = await start_tls(tcp, 1, ca, ca.issue_cert("127.0.0.1"))
    rogue = trustme.CA()
    server, client = tls_contexts(rogue, rogue.issue_cert("127.0.0.1"))
    ca.configure_trust(client)  # it even trusts node 1: only its own certificate is wrong
    n2 = await tcp.start(2, ssl_server_context=server, ssl_client_context=client)
    tcp.connect_all()
    n2.send([hb(2, 1)])
    await n2.recorder.wait_event(Unreachable(1))
    assert n1.transport.statistics().refused == {Refusal.TLS: 1}
    assert n1.recorder.messages() == []


async def test_plaintext_peer_is_refused(tcp: Harness, ca: trustme.CA) -> None:
    n1 = await start_tls(tcp, 1, ca, ca.issue_cert("127.0.0.1"))
    n2 = await tcp.start(2)
    tcp.connect_all()
    n2.send([hb(2, 1)])
    await n2.recorder.wait_event(Unreachable(1))
    assert n1.transport.statistics().refused == {Refusal.TLS: 1}


async def test_server_with_wrong_name_is_not_trusted(tcp: Harness, ca: trustme.CA) -> None:
    n1 = await start_tls(tcp, 1, ca, ca.issue_cert("not-this-host.example"))
    n2 = await start_tls(tcp, 2, ca, ca.issue_cert("127.0.0.1"))
    tcp.connect_all()
    n2.send([hb(2, 1)])
    await n2.recorder.wait_event(Unreachable(1))
    assert n1.recorder.messages() == []
