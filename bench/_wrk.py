"""wrk, as every HTTP benchmark runs it: the shared scripts (``shared/bench``) through a thin
wrapper (``bench/wrk/tail.lua``) that adds p99.9 and p99.99 to wrk's figures, bounded in time."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from _servers import SHARED

WRAPPERS = Path(__file__).resolve().parent / "wrk"


def _env(keyspace: int | None) -> dict[str, str]:
    env = {**os.environ, "RAFTKV_SHARED_BENCH": str(SHARED)}
    if keyspace is not None:
        env["KV_KEYSPACE"] = str(keyspace)
    return env


def _parse(out: str) -> dict[str, float]:
    result: dict[str, float] = {}
    for line in out.splitlines():
        if line.startswith(("RESULT ", "TAIL ")):
            for item in line.split()[1:]:
                key, value = item.split("=")
                result[key] = float(value)
    return result


def _command(url: str, op: str, api: str, conns: int, duration: str) -> list[str]:
    threads = min(conns, 2)
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}", "--timeout", "5s", "--latency"]
    return [*cmd, "-s", str(WRAPPERS / "tail.lua"), url, "--", api]


def _result(cmd: list[str], out: str) -> dict[str, float]:
    result = _parse(out)
    if "rps" not in result:
        raise RuntimeError(f"wrk failed: {' '.join(cmd)}\n{out}")
    result["errors"] = sum(
        result.get(k, 0) for k in ("err_connect", "err_read", "err_write", "err_timeout")
    )
    return result


def wrk(
    url: str, op: str, api: str, conns: int, duration: str, *, keyspace: int | None = None
) -> dict[str, float]:
    """One wrk run of ``op`` (put, get) against ``url``: requests, rps, p50/p90/p99/p999/p9999
    in ms, errors. Two threads at most (two cores here)."""
    cmd = _command(url, op, api, conns, duration)
    env = {**_env(keyspace), "RAFTKV_WRK_SCRIPT": op}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False, env=env)
    return _result(cmd, out.stdout)


def wrk_until(
    url: str,
    op: str,
    api: str,
    conns: int,
    until: Callable[[], bool],
    *,
    limit: float,
    keyspace: int | None = None,
) -> tuple[float, dict[str, float]]:
    """wrk's load while something else happens: run ``op`` until ``until()`` holds (polled
    every 0.2 s; at most ``limit`` seconds), then stop wrk by its PID (SIGINT: it reports).
    (seconds until it held, wrk's figures for the whole run)."""
    cmd = _command(url, op, api, conns, f"{int(limit) + 5}s")
    env = {**_env(keyspace), "RAFTKV_WRK_SCRIPT": op}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    began = time.monotonic()
    try:
        while not until():
            if time.monotonic() - began > limit:
                raise TimeoutError(f"still waiting after {limit:.0f} s")
            time.sleep(0.2)
        took = time.monotonic() - began
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            out, _ = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
    return took, _result(cmd, out.decode())


def keyspace_size(keyspace: int | None = None) -> int:
    """The keyspace the shared scripts use (``KV_KEYSPACE``, 100 000 by default)."""
    return keyspace if keyspace is not None else int(os.environ.get("KV_KEYSPACE", "100000"))


def last_key_written(url: str, api: str, keyspace: int | None = None) -> Callable[[], bool]:
    """A check that the keyspace's last key is there (for ``preload``: the script writes keys
    in order, so once the last one is there the few still in flight are all but done)."""
    key = f"key-{keyspace_size(keyspace) - 1:012d}"

    def check() -> bool:
        with contextlib.suppress(httpx.HTTPError):
            if api == "v3":
                body = {"key": base64.b64encode(key.encode()).decode()}
                r = httpx.post(f"{url}/v3/kv/range", json=body, timeout=2)
                return r.status_code == 200 and bool(r.json().get("kvs"))
            path = f"/v2/keys/{key}" if api == "v2" else f"/{key}"
            return httpx.get(url + path, timeout=2).status_code == 200
        return False

    return check


def preload(
    url: str,
    api: str,
    seconds: int,
    keyspace: int | None = None,
    *,
    conns: int = 32,
    done: Callable[[], bool] | None = None,
) -> float:
    """Write every key of the keyspace once (shared/bench/preload.lua), within ``seconds``;
    the seconds it took. wrk itself always sleeps its whole ``-d`` bound, so it is stopped, by
    its PID, as soon as ``done`` holds (by default: the last key is there; then a second more
    for the requests still in flight)."""
    if done is None:
        done = last_key_written(url, api, keyspace)
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--timeout", "5s", "-s", "preload.lua"]
    cmd += [url, "--", api]
    started = time.monotonic()
    proc = subprocess.Popen(
        cmd, cwd=SHARED, env=_env(keyspace), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while proc.poll() is None and time.monotonic() - started < seconds + 60:
            if done():
                time.sleep(1)
                break
            time.sleep(1)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)  # wrk prints its report and exits
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    return time.monotonic() - started
