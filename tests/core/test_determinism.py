"""Same seed and same schedule give the same transcript, byte for byte."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys

from raftkv.testing import Cluster, RandomSchedule, replay

PROGRAM = """
import hashlib, random
from raftkv.testing import Cluster, RandomSchedule
c = Cluster(5, seed=11, election_ticks=6, max_size_per_msg=16)
RandomSchedule(c, random.Random(11)).run(400)
c.check_liveness()
print(hashlib.sha256(c.transcript().encode()).hexdigest())
"""


def transcript(seed: int, steps: int = 400) -> str:
    cluster = Cluster(5, seed=seed, election_ticks=6, max_size_per_msg=16)
    RandomSchedule(cluster, random.Random(seed)).run(steps)
    cluster.check_liveness()
    return cluster.transcript()


def test_same_seed_and_schedule_give_the_same_transcript() -> None:
    first = transcript(11)
    assert first == transcript(11)
    assert len(first) > 10_000  # a real run, with elections, appends, snapshots, ...
    assert first != transcript(12)


def test_replaying_the_script_reproduces_the_transcript_byte_for_byte() -> None:
    cluster = Cluster(3, seed=5, election_ticks=6)
    RandomSchedule(cluster, random.Random(5)).run(300)
    cluster.check_liveness()
    cluster.check_history()
    replayed = replay(cluster.script_text())
    assert replayed.transcript() == cluster.transcript()


def test_transcript_does_not_depend_on_the_hash_seed() -> None:
    """No set or dict iteration order leaks into the output (PYTHONHASHSEED varies)."""
    digests = set()
    for hash_seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    assert digests == {hashlib.sha256(transcript(11).encode()).hexdigest()}
