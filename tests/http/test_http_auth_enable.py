"""Enabling auth while anonymous writes are in flight, on a three-node cluster: the writes go
to a follower, the enable to the leader. Every write acknowledged is in the store, and none is
acknowledged after the enable: the state machine judges each write by the rules in force when
it applies, whatever the follower's edge saw."""

from __future__ import annotations

import json

import httpx
import trio
from _nodes import Api, open_cluster

WRITERS = 4
MAX_WRITES = 400  # per writer: bounded in count as well as in time


async def _ok(api: Api, method: str, path: str, body: object = None) -> httpx.Response:
    content = None if body is None else json.dumps(body).encode()
    r = await api.client.request(method, path, content=content)
    assert r.status_code < 300, r.text
    return r


async def test_enable_while_writing_lets_no_anonymous_write_through_after_it() -> None:
    async with open_cluster(3) as apis:
        leader = next(a for a in apis if a.node.status().leader == a.node.id)
        follower = next(a for a in apis if a is not leader)
        await _ok(leader, "POST", "/v1/auth/users", {"name": "root", "password": "pw"})
        await _ok(leader, "POST", "/v1/auth/roles", {"name": "root"})
        await _ok(leader, "PUT", "/v1/auth/users/root/roles/root")

        acked: dict[bytes, int] = {}  # key -> revision acknowledged
        refused: list[bytes] = []
        enabled_at: list[int] = []
        done = trio.Event()

        async def write(writer: int) -> None:
            for i in range(MAX_WRITES):
                key = f"w{writer}/{i}".encode()
                r = await follower.client.put(f"/v1/kv/{key.decode()}", content=b"x")
                if r.status_code == 401:
                    refused.append(key)
                    if len([k for k in refused if k.startswith(key[:3])]) >= 5:
                        return  # this writer has seen auth take hold
                elif r.status_code in (200, 201):
                    acked[key] = r.json()["revision"]
                else:
                    raise AssertionError(f"unexpected {r.status_code}: {r.text}")
                if done.is_set() and i > 20:
                    return

        async def enable() -> None:
            with trio.fail_after(10):
                while len(acked) < 40:  # enable in the middle of the stream of writes
                    await trio.sleep(0.01)
                r = await _ok(leader, "POST", "/v1/auth/enable")
                enabled_at.append(r.json()["revision"])
                done.set()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                for w in range(WRITERS):
                    nursery.start_soon(write, w)
                nursery.start_soon(enable)

        (boundary,) = enabled_at
        assert refused, "no write was refused after auth was enabled"
        late = {k: rev for k, rev in acked.items() if rev > boundary}
        assert not late, f"anonymous writes acknowledged after the enable: {late}"
        # Every member holds every acknowledged write, and no refused one.
        for api in apis:
            await api.node.wait_status(lambda s: s.applied >= leader.node.status().commit)
            store = api.service.store
            for key, rev in acked.items():
                kv = store.get(key)
                assert kv is not None and kv.mod_revision == rev, (api.node.id, key)
            assert all(store.get(k) is None for k in refused)
            assert store.auth.enabled
