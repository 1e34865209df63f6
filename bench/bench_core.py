"""Core benchmark: a 3-node simulated cluster (``raftkv.testing.Cluster``), 100-byte entries.

Measures, in-process and with invariant checks, transcripts and the client history off:

* committed entries per second with proposals batched 64 at a time (each batch: propose 64,
  then handle Readys and deliver messages until the leader committed them; the next batch's
  appends carry the commit index to the followers, and the run ends with everything applied on
  all three nodes);
* the same, one proposal at a time;
* ReadIndex reads per second, 64 at a time on the leader (a batch shares one heartbeat round).

Run: ``python bench/run.py core`` (or ``nox -s bench -- core``). Options: ``--quick`` (fewer
iterations), ``--seconds=N`` (time per measurement, default 3). Figures are printed, never
asserted: the machines are noisy; compare runs made side by side.
"""

from __future__ import annotations

import time

from raftkv.testing import Cluster

ENTRY = b"x" * 100
BATCH = 64


def _cluster() -> tuple[Cluster, int]:
    cluster = Cluster(3, seed=1, check_invariants=False, record=False, history=False, script=False)
    cluster.elect(1)
    return cluster, 1


def _measure(seconds: float, step: object) -> tuple[int, float]:
    """Run ``step()`` (returning units done) until ``seconds`` have passed."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        done += step()  # type: ignore[operator]
        now = time.perf_counter()
        if now >= deadline:
            return done, now - start


def bench_proposals(batch: int, seconds: float) -> float:
    """Entries committed on the leader per second, proposing ``batch`` entries at a time and the
    next batch as soon as the previous one committed (the commit index reaches the followers on
    the next append, as in a real pipeline; everything is applied everywhere at the end)."""
    cluster, lead = _cluster()
    raw = cluster.raw(lead)
    data = [ENTRY] * batch

    def step() -> int:
        before = raw.commit
        cluster.propose_batch(lead, data)
        target = raw.last_index
        while raw.commit < target:
            cluster.process_ready()
            cluster.deliver()
        return raw.commit - before

    step()  # warm up
    done, elapsed = _measure(seconds, step)
    start = time.perf_counter()
    cluster.stabilize()
    elapsed += time.perf_counter() - start
    assert all(cluster.raw(i).applied == raw.commit for i in cluster.ids)
    return done / elapsed


def bench_reads(batch: int, seconds: float) -> float:
    cluster, lead = _cluster()
    raw = cluster.raw(lead)
    counter = [0]

    def step() -> int:
        before = cluster.read_states_seen
        for _ in range(batch):
            counter[0] += 1
            raw.read_index(b"r%d" % counter[0])
        cluster.stabilize()
        served = cluster.read_states_seen - before
        assert served == batch, (served, batch)
        return served

    step()
    done, elapsed = _measure(seconds, step)
    return done / elapsed


def main(argv: list[str]) -> int:
    seconds = 1.0 if "--quick" in argv else 3.0
    for arg in argv:
        if arg.startswith("--seconds="):
            seconds = float(arg.split("=", 1)[1])
    rows = [
        ("committed entries/s, batches of 64", bench_proposals(BATCH, seconds), 100_000),
        ("committed entries/s, one at a time", bench_proposals(1, seconds), 10_000),
        ("ReadIndex reads/s, batches of 64", bench_reads(BATCH, seconds), 50_000),
    ]
    print("3-node simulated cluster, 100-byte entries, invariants off")
    for name, rate, target in rows:
        print(f"  {name:40s} {rate:12,.0f}   (target {target:,})")
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
