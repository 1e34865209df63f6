"""TLS on the client port, on a real Hypercorn (certificates from ``trustme``): clients with a
certificate from the cluster's CA get in, and their certificate's common name is their user once
auth is enabled; no certificate, another CA's, an expired one, or plain HTTP are refused."""

from __future__ import annotations

import datetime
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trio
import trustme
from _nodes import Api, open_api, serve

import raftkv
from raftkv_cli._serve import ClientTLS


@dataclass
class Pki:
    dir: Path
    ca: trustme.CA

    def files(self, leaf: trustme.LeafCert, name: str) -> tuple[str, str]:
        cert, key = self.dir / f"{name}.pem", self.dir / f"{name}.key"
        for blob in leaf.cert_chain_pems:
            with cert.open("ab") as f:
                f.write(blob.bytes())
        leaf.private_key_pem.write_to_path(str(key))
        return str(cert), str(key)

    @property
    def ca_file(self) -> str:
        path = self.dir / "ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return str(path)

    def client(self, name: str, ca: trustme.CA | None = None, **kw: object) -> tuple[str, str]:
        leaf = (ca or self.ca).issue_cert(f"{name}.client", common_name=name, **kw)
        return self.files(leaf, f"client-{name}")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path, trustme.CA())


@dataclass
class TLSServer:
    api: Api
    url: str
    pki: Pki

    def context(self, cert: tuple[str, str] | None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.pki.ca_file)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        return ctx


@pytest.fixture
async def server(pki: Pki) -> AsyncIterator[TLSServer]:
    cert, key = pki.files(pki.ca.issue_cert("127.0.0.1", "localhost"), "server")
    async with open_api() as api, serve(api, ClientTLS(cert, key, pki.ca_file)) as url:
        yield TLSServer(api, url.replace("http://", "https://"), pki)


async def _get(url: str, verify: ssl.SSLContext, path: str = "/-/health") -> httpx.Response:
    async with httpx.AsyncClient(verify=verify) as c:
        return await c.get(url + path)


async def test_a_client_with_a_certificate_from_the_ca_gets_in(server: TLSServer) -> None:
    r = await _get(server.url, server.context(server.pki.client("alice")))
    assert r.status_code == 200


@pytest.mark.parametrize("case", ["no certificate", "another CA", "expired"])
async def test_a_client_without_a_good_certificate_is_refused(server: TLSServer, case: str) -> None:
    pki = server.pki
    if case == "no certificate":
        cert = None
    elif case == "another CA":
        cert = pki.client("eve", trustme.CA())
    else:
        past = datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        cert = pki.client("old", not_before=past, not_after=past + datetime.timedelta(days=1))
    with pytest.raises(httpx.TransportError):
        await _get(server.url, server.context(cert))


async def test_plain_http_to_the_tls_port_is_refused(server: TLSServer) -> None:
    with pytest.raises(httpx.TransportError):
        async with httpx.AsyncClient() as c:
            await c.get(server.url.replace("https://", "http://") + "/-/health")


async def test_both_python_clients_work_over_tls_with_a_client_certificate(
    server: TLSServer,
) -> None:
    cert, key = server.pki.client("alice")
    ca = server.pki.ca_file
    async with raftkv.AsyncClient(server.url, ca=ca, cert=cert, key=key) as kv:
        await kv.put("k", "async")
        assert (await kv.get("k")).value == b"async"

    def blocking() -> bytes:
        ctx = server.context((cert, key))
        with raftkv.Client(server.url, ssl_context=ctx) as kv:
            kv.put("k", "sync")
            return kv.get("k").value

    assert await trio.to_thread.run_sync(blocking) == b"sync"


async def test_the_certificate_common_name_is_the_user(server: TLSServer) -> None:
    async with raftkv.AsyncClient(
        server.url, verify=server.context(server.pki.client("root"))
    ) as kv:
        await kv.put("a/k", "v")
        await kv.put("b/k", "v")
        for name in ("root", "alice"):
            await kv.user_add(name)  # no password: certificate only
        await kv.role_add("root")
        await kv.user_grant_role("root", "root")
        await kv.role_add("a-reader")
        await kv.role_grant("a-reader", "read", "a/", prefix=True)
        await kv.user_grant_role("alice", "a-reader")
        await kv.auth_enable()
        assert (await kv.get("b/k")).value == b"v"  # root: everything
    async with raftkv.AsyncClient(
        server.url, verify=server.context(server.pki.client("alice"))
    ) as kv:
        assert (await kv.get("a/k")).value == b"v"
        with pytest.raises(raftkv.client.PermissionDenied):
            await kv.get("b/k")
        with pytest.raises(raftkv.client.PermissionDenied):
            await kv.put("a/k", "w")
    stranger = server.context(server.pki.client("mallory"))
    assert (await _get(server.url, stranger, "/v1/kv/a/k")).status_code == 401
