"""Three real raftkvd processes with TLS on the client and the peer ports (client certificates
required, one trustme CA): clients and the CLI over TLS, writes and leader-only requests through
a follower (the follower forwards to the leader over TLS, presenting its own certificate), then
auth enabled: tokens and certificate names through a follower."""

from __future__ import annotations

import io
import ssl
from pathlib import Path

import httpx
import pytest
import trustme

import raftkv
from raftkv.client import PermissionDenied
from raftkv_cli import ctl

from ._procs import FAST, RAFTKVD, Daemon, free_ports, wait_for


def _write_leaf(leaf: trustme.LeafCert, path: Path) -> tuple[str, str]:
    cert, key = path.with_suffix(".pem"), path.with_suffix(".key")
    cert.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(key))
    return str(cert), str(key)


class TLSCluster:
    def __init__(self, workdir: Path, n: int = 3) -> None:
        self.ca = trustme.CA()
        self.ca_file = str(workdir / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_file)
        ports = free_ports(2 * n)
        peers = ",".join(f"https://127.0.0.1:{ports[2 * i]}" for i in range(n))
        self.daemons: dict[int, Daemon] = {}
        for i in range(1, n + 1):
            leaf = self.ca.issue_cert("127.0.0.1", "localhost", common_name=f"node-{i}")
            cert, key = _write_leaf(leaf, workdir / f"node-{i}")
            d = Daemon(i, ports[2 * i - 2], ports[2 * i - 1], workdir)
            d.args = [
                *("--id", str(i), "--cluster", peers, "--port", str(d.client_port), *FAST),
                *("--peer-cert-file", cert, "--peer-key-file", key),
                *("--peer-trusted-ca-file", self.ca_file),
                *("--client-cert", cert, "--client-key", key, "--client-ca", self.ca_file),
            ]
            self.daemons[i] = d

    def url(self, i: int) -> str:
        return f"https://127.0.0.1:{self.daemons[i].client_port}"

    def client_cert(self, name: str, workdir: Path) -> tuple[str, str]:
        leaf = self.ca.issue_cert(f"{name}.client", common_name=name)
        return _write_leaf(leaf, workdir / f"client-{name}")

    def context(self, cert: tuple[str, str]) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        ctx.load_cert_chain(*cert)
        return ctx

    def status(self, i: int, ctx: ssl.SSLContext) -> dict | None:
        try:
            r = httpx.get(self.url(i) + "/-/status", verify=ctx, timeout=2)
        except httpx.HTTPError:
            return None
        return r.json() if r.status_code == 200 else None

    def teardown(self) -> None:
        for d in self.daemons.values():
            if d.alive():
                assert d.proc is not None
                d.proc.kill()
                d.proc.wait(10)


@pytest.fixture
def tls_cluster(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not Path(RAFTKVD).exists():
        pytest.fail(f"the raftkvd console script is not installed: {RAFTKVD}")
    cluster = TLSCluster(tmp_path)
    try:
        for d in cluster.daemons.values():
            d.start()
        yield cluster
    finally:
        cluster.teardown()


def _ctl(cluster: TLSCluster, url: str, cert: tuple[str, str], *argv: str) -> str:
    """The raftkv CLI over TLS with a client certificate; its output (-w json)."""
    out = io.BytesIO()
    tls = ["--cacert", cluster.ca_file, "--cert", cert[0], "--key", cert[1], "-w", "json"]
    code = ctl.main(["--endpoints", url, *tls, *argv], environ={}, stdout=out)
    assert code == 0, (argv, code)
    return out.getvalue().decode()


def test_tls_cluster_with_auth_through_a_follower(tls_cluster: TLSCluster, tmp_path: Path) -> None:
    c = tls_cluster
    root_cert = c.client_cert("root", tmp_path)
    root_ctx = c.context(root_cert)
    leader: list[int] = []

    def agreed() -> bool:
        statuses = [c.status(i, root_ctx) for i in c.daemons]
        leaders = {s["leader"] for s in statuses if s}
        if all(statuses) and len(leaders) == 1 and None not in leaders:
            leader.append(leaders.pop())
            return all(all(m["client_url"] for m in s["members"]) for s in statuses if s)
        return False

    wait_for(agreed, 30, "a leader over TLS")
    follower = next(i for i in c.daemons if i != leader[-1])
    status = c.status(follower, root_ctx)
    assert status is not None
    assert all(m["client_url"].startswith("https://") for m in status["members"])

    # Writes through a follower, and a leader-only request it forwards over TLS.
    with raftkv.Client(c.url(follower), ca=c.ca_file, cert=root_cert[0], key=root_cert[1]) as kv:
        kv.put("a/k", "v1")
        assert kv.get("a/k").value == b"v1"
        lease = kv.grant_lease(30).id
        assert kv.keepalive(lease) > 0  # answered by the leader, via the follower

    # Users and roles with the CLI, over TLS, through the follower; then auth on.
    url = c.url(follower)
    _ctl(c, url, root_cert, "user", "add", "root")
    _ctl(c, url, root_cert, "role", "add", "root")
    _ctl(c, url, root_cert, "user", "grant-role", "root", "root")
    _ctl(c, url, root_cert, "user", "add", "alice:alice-pw")
    _ctl(c, url, root_cert, "role", "add", "a-rw")
    _ctl(c, url, root_cert, "role", "grant", "a-rw", "readwrite", "a/", "--prefix")
    _ctl(c, url, root_cert, "user", "grant-role", "alice", "a-rw")
    assert '"enabled": true' in _ctl(c, url, root_cert, "auth", "enable")
    _ctl(c, url, root_cert, "put", "a/cli", "over-tls")  # a key command, as root, over TLS
    assert '"enabled": true' in _ctl(c, c.url(leader[-1]), root_cert, "auth", "status")

    # A certificate that names no user is refused now; alice logs in with her password.
    app_cert = c.client_cert("app", tmp_path)
    r = httpx.get(url + "/v1/kv/a/k", verify=c.context(app_cert), timeout=10)
    assert r.status_code == 401
    with raftkv.Client(
        url, ca=c.ca_file, cert=app_cert[0], key=app_cert[1], user="alice", password="alice-pw"
    ) as kv:
        kv.put("a/k", "v2")
        assert kv.get("a/k").value == b"v2"
        lease = kv.grant_lease(30).id
        # Forwarded to the leader with a token the follower signed for alice.
        assert kv.keepalive(lease) > 0
        with pytest.raises(PermissionDenied):
            kv.put("b/k", "no")

    # The auth state survives a restart (it is in the log and the snapshots): the restarted
    # member refuses what the others refuse.
    restarted = c.daemons[follower]
    assert restarted.stop() == 0
    restarted.start()
    wait_for(lambda: c.status(follower, root_ctx) is not None, 30, "the restarted member")
    r = httpx.get(url + "/v1/kv/a/k", verify=c.context(app_cert), timeout=10)
    assert r.status_code == 401
    with raftkv.Client(url, ca=c.ca_file, cert=root_cert[0], key=root_cert[1]) as kv:
        assert kv.auth_status()["enabled"] is True
        assert kv.get("a/k").value == b"v2"
    for d in c.daemons.values():
        log = d.log_text()
        assert "alice-pw" not in log and "Traceback" not in log
