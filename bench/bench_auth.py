"""What auth costs: PUT and linearizable GET throughput of a three-node raftkvd cluster with
auth off, on (a user with readwrite on the benchmark's key prefix, a bearer token on every
request), and off again; prints the medians and the ratio on/off. First, the edge's own cost in
process (``--guard-only`` for that alone): microseconds per request the ``Guard`` spends with
auth off and with a token, which no load on the machine blurs as much.

Needs wrk and the shared bench scripts (as ``bench_http``). Every server runs on loopback and is
stopped by its PID when the run ends.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import trio
from _servers import SHARED, RaftkvCluster
from _wrk import _result, preload

from raftkv.kv import (
    AuthAdmin,
    AuthEnable,
    KeyRange,
    KVStateMachine,
    Limits,
    Perm,
    Permission,
    RoleAdd,
    RoleGrant,
    TokenClaims,
    UserAdd,
    UserGrant,
    encode_command,
    issue_token,
)
from raftkv_cli._guard import Guard

_WRAPPER = str(Path(__file__).resolve().parent / "with_headers")  # every phase runs it
_USERS = {"root": "bench-root-pw", "bench": "bench-user-pw"}


def _ok(r: httpx.Response) -> httpx.Response:
    if r.status_code >= 300:
        raise RuntimeError(f"{r.request.method} {r.request.url}: {r.status_code} {r.text}")
    return r


def _token(url: str, user: str) -> str:
    r = _ok(httpx.post(url + "/v1/auth/token", json={"user": user, "password": _USERS[user]}))
    token: str = r.json()["token"]
    return token


def enable_auth(url: str) -> None:
    """root, and a user ``bench`` with readwrite on the keys the wrk scripts use; auth on."""
    for user, password in _USERS.items():
        _ok(httpx.post(url + "/v1/auth/users", json={"name": user, "password": password}))
    for role in ("root", "bench"):
        _ok(httpx.post(url + "/v1/auth/roles", json={"name": role}))
        _ok(httpx.put(f"{url}/v1/auth/users/{role}/roles/{role}"))
    grant = {"perm": "readwrite", "key": "key-", "prefix": True}
    _ok(httpx.post(url + "/v1/auth/roles/bench/grant", json=grant))
    _ok(httpx.post(url + "/v1/auth/enable", timeout=10))


def disable_auth(url: str) -> None:
    headers = {"authorization": f"Bearer {_token(url, 'root')}"}
    _ok(httpx.post(url + "/v1/auth/disable", headers=headers, timeout=10))


def _wrk(
    url: str, script: str, api: str, conns: int, duration: str, *, headers: tuple[str, ...] = ()
) -> dict[str, float]:
    """One wrk run of the shared ``script`` with ``headers`` on every request."""
    threads = min(conns, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}", "--timeout", "5s", "--latency"]
    for header in headers:
        cmd += ["-H", header]
    cmd += ["-s", f"{script}.lua", url, "--", api]
    out = subprocess.run(cmd, cwd=SHARED, capture_output=True, text=True, timeout=600, check=False)
    return _result(cmd, out.stdout)


def measure(
    url: str, conns: list[int], duration: str, reps: int, headers: tuple[str, ...]
) -> dict[tuple[str, int], float]:
    """Median requests/s per (op, connections); refuses a run with 401/403 answers (a bench
    of refusals measures nothing)."""
    out: dict[tuple[str, int], float] = {}
    for op in ("put", "get"):
        for c in conns:
            os.environ["RAFTKV_WRK_SCRIPT"] = op
            runs = [_wrk(url, _WRAPPER, "raw", c, duration, headers=headers) for _ in range(reps)]
            if op == "put" and any(r["non2xx"] for r in runs):
                raise RuntimeError(f"PUTs were refused: {runs}")
            out[(op, c)] = statistics.median(r["rps"] for r in runs)
    return out


def guard_cost(requests: int = 20_000) -> dict[str, float]:
    """Microseconds per ``Guard.admit`` of a GET of one key: auth off, and on with a token of a
    user holding readwrite on the key's prefix."""
    kv = KVStateMachine()
    perm = Permission(Perm.READWRITE, KeyRange(b"key-", prefix=True))
    commands = [UserAdd("root", None), RoleAdd("root"), UserGrant("root", "root")]
    commands += [UserAdd("bench", None), RoleAdd("bench"), RoleGrant("bench", perm)]
    commands += [UserGrant("bench", "bench")]
    for i, cmd in enumerate(commands, 1):
        kv.apply(i, encode_command(cmd))
    service: Any = SimpleNamespace(store=kv, limits=Limits())
    service.auth = AuthAdmin(service)
    guard = Guard(service)

    async def admit_all(headers: list[tuple[bytes, bytes]]) -> float:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        start = time.perf_counter()
        for _ in range(requests):
            scope = {"type": "http", "method": "GET", "path": "/key-000000000001"}
            scope |= {"raw_path": b"/key-000000000001", "query_string": b"", "headers": headers}
            await guard.admit(scope | {"client": None, "server": None}, receive)
        return (time.perf_counter() - start) / requests * 1e6

    off = trio.run(admit_all, [])
    kv.apply(len(commands) + 1, encode_command(AuthEnable(b"s" * 32)))
    claims = TokenClaims("bench", kv.auth.users["bench"].revision, int(time.time()) + 3600)
    bearer = [(b"authorization", f"Bearer {issue_token(b's' * 32, claims)}".encode())]
    return {"off": off, "on": trio.run(admit_all, bearer)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench auth")
    parser.add_argument("--quick", action="store_true", help="1 rep of 2 s")
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--conns", default="8,64")
    parser.add_argument("--guard-only", action="store_true", help="only the in-process cost")
    args = parser.parse_args(argv)
    cost = guard_cost(2_000 if args.quick else 20_000)
    print(f"guard: {cost['off']:.1f} us/request with auth off, {cost['on']:.1f} us with a token")
    if args.guard_only:
        return 0
    duration, reps = ("2s", 1) if args.quick else (args.duration, args.reps)
    conns = [int(c) for c in args.conns.split(",")]
    with tempfile.TemporaryDirectory(prefix="raftkv-bench-auth-") as tmp:
        cluster = RaftkvCluster(Path(tmp))
        cluster.start_all()
        try:
            url = cluster.leader_url()
            preload(url, "raw", 30 if args.quick else 120)
            off = measure(url, conns, duration, reps, ())
            enable_auth(url)
            bearer = (f"Authorization: Bearer {_token(url, 'bench')}",)
            on = measure(url, conns, duration, reps, bearer)
            disable_auth(url)
            off_again = measure(url, conns, duration, reps, ())
        finally:
            cluster.stop_all()
    print("| op | conns | auth off (req/s) | auth on (req/s) | off again (req/s) | on/off |")
    print("|---|---:|---:|---:|---:|---:|")
    for key in off:
        base = (off[key] + off_again[key]) / 2
        print(
            f"| {key[0].upper()} | {key[1]} | {off[key]:.0f} | {on[key]:.0f} | "
            f"{off_again[key]:.0f} | {on[key] / base:.2f} |"
        )
    return 0
