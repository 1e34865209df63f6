"""Bulk loading and counting keys in raftkvd and etcd, the same way for both: transactions of
``batch`` puts (raftkv ``POST /v1/txn``, etcd's v3 gateway ``POST /v3/kv/txn``; both take 128
operations a transaction by default), from a few threads at once. Keys are the shared scripts'
(``key-`` and 12 digits: 16 bytes), values 100 bytes.

A transaction is one revision holding ``batch`` keys on both systems, so loading a million keys
takes minutes, not the hours one request a key would on this machine.
"""

from __future__ import annotations

import base64
import contextlib
import threading
import time
from collections.abc import Callable

import httpx

__all__ = ["bulk_load", "count_keys", "wait_for_count"]

VALUE = b"v" * 100


def _key(n: int) -> bytes:
    return b"key-%012d" % n


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _raftkv_txn(keys: range) -> tuple[str, dict[str, object]]:
    value = VALUE.decode()
    ops = [{"put": {"key": _key(n).decode(), "value": value}} for n in keys]
    return "/v1/txn", {"success": ops}


def _etcd_txn(keys: range) -> tuple[str, dict[str, object]]:
    value = _b64(VALUE)
    ops = [{"requestPut": {"key": _b64(_key(n)), "value": value}} for n in keys]
    return "/v3/kv/txn", {"success": ops}


def bulk_load(url: str, system: str, count: int, *, batch: int = 128, threads: int = 4) -> float:
    """Put keys 0 .. ``count`` - 1 through ``url``; the seconds it took. A failed transaction
    is retried (a few times) so that every key is there at the end."""
    make = _raftkv_txn if system == "raftkv" else _etcd_txn
    starts = iter(range(0, count, batch))
    lock = threading.Lock()
    failures: list[str] = []

    def worker() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while True:
                with lock:
                    start = next(starts, None)
                if start is None or failures:
                    return
                path, body = make(range(start, min(start + batch, count)))
                for _ in range(5):
                    with contextlib.suppress(httpx.HTTPError):
                        if client.post(path, json=body).status_code == 200:
                            break
                    time.sleep(0.5)
                else:
                    failures.append(f"the transaction of keys from {start} failed 5 times")

    began = time.monotonic()
    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if failures:
        raise RuntimeError(failures[0])
    return time.monotonic() - began


def count_keys(url: str, system: str) -> int | None:
    """How many keys the member at ``url`` holds now (its own, unreplicated view); None if it
    does not answer."""
    with contextlib.suppress(httpx.HTTPError, KeyError, ValueError, TypeError):
        if system == "raftkv":
            return int(httpx.get(url + "/-/status", timeout=5).json()["keys"])
        body = {
            "key": _b64(b"key-"),
            "range_end": _b64(b"key."),
            "count_only": True,
            "serializable": True,
        }
        return int(httpx.post(url + "/v3/kv/range", json=body, timeout=30).json().get("count", 0))
    return None


def wait_for_count(
    count: Callable[[], int | None], want: int, timeout: float, poll: float = 0.2
) -> float:
    """Seconds until ``count()`` reaches ``want``; ``TimeoutError`` after ``timeout``."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        n = count()
        if n is not None and n >= want:
            return time.monotonic() - began
        time.sleep(poll)
    raise TimeoutError(f"still short of {want} keys after {timeout:.0f} s")
