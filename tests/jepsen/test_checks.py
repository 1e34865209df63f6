"""The fault suite's own checkers catch what they are for (synthetic histories, no processes),
and the power-loss journal undoes exactly the unsynced writes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from jepsen import _checks, _faults, _netns, _powerloss
from jepsen._history import FAIL, OK, UNKNOWN, Call, History, Operation

SITE = Path(__file__).with_name("_site")


def _op(
    h: History,
    f: str,
    key: str,
    value: str | None,
    *,
    node: int,
    span: tuple[float, float],
    outcome: str = OK,
    process: str = "c0",
    status: str = "204",
    extra: list[str] | None = None,
) -> None:
    h.ops.append(
        Operation(
            len(h.ops), process, f, key, value, node, span[0], span[1], outcome, status, None, extra
        )
    )


def test_a_stale_read_is_not_linearizable() -> None:
    h = History()
    _op(h, "write", "r0", "a", node=1, span=(0, 1))
    _op(h, "write", "r0", "b", node=1, span=(2, 3))
    _op(h, "read", "r0", "a", node=2, span=(4, 5))
    problems = _checks.linearizable(h)
    assert problems and "not linearizable" in problems[0]


def test_an_unknown_write_may_show_up_later() -> None:
    h = History()
    _op(h, "write", "r0", "a", node=1, span=(0, 1), outcome=UNKNOWN, status="504")
    _op(h, "read", "r0", "a", node=2, span=(9, 10))
    assert _checks.linearizable(h) == []
    assert _checks.failed_writes_unseen(h) == []


def test_a_refused_write_must_never_be_read() -> None:
    h = History()
    _op(h, "write", "r0", "a", node=1, span=(0, 1), outcome=FAIL, status="503")
    _op(h, "read", "r0", "a", node=2, span=(2, 3))
    assert _checks.failed_writes_unseen(h)


def test_an_acknowledged_write_lost_at_the_end_is_found() -> None:
    h = History()
    _op(h, "write", "r0", "a", node=1, span=(0, 1))
    _op(h, "write", "r0", "b", node=1, span=(2, 3))
    _op(h, "read", "r0", "a", node=1, span=(10, 11), process="final")
    problems = _checks.acked_writes_survive(h, ["r0"])
    assert problems and "is lost" in problems[0]
    h2 = History()
    _op(h2, "write", "r0", "a", node=1, span=(0, 1))
    _op(h2, "read", "r0", None, node=1, span=(10, 11), process="final", status="404")
    assert _checks.acked_writes_survive(h2, ["r0"])


def test_an_unknown_write_applied_after_a_later_acknowledged_one_is_not_a_loss() -> None:
    """Found by the campaign (seed 500): a write through an isolated follower answered 504 at
    29.7 s applied at the heal (30.9 s), after an acknowledged write invoked at 30.0 s. Legal:
    an unknown outcome may take effect at any time after its invocation. The linearizability
    check agrees; the survival check must too — and still catch a loss behind an ok write."""
    h = History()
    _op(h, "write", "r2", "c1-196", node=6, span=(27.6, 29.7), outcome=UNKNOWN, status="504")
    _op(h, "write", "r2", "c1-203", node=4, span=(30.0, 30.06))
    _op(h, "read", "r2", "c1-196", node=1, span=(32.3, 32.4), process="final")
    assert _checks.acked_writes_survive(h, ["r2"]) == []
    assert _checks.linearizable(h) == []
    h.ops[0] = Operation(0, "c0", "write", "r2", "c1-196", 6, 27.6, 29.7, OK, "204", None, None)
    assert "is lost" in _checks.acked_writes_survive(h, ["r2"])[0]


def test_a_set_missing_an_acknowledged_add_or_holding_a_ghost_is_found() -> None:
    h = History()
    _op(h, "add", "set/a", "1", node=1, span=(0, 1))
    _op(h, "add", "set/b", "1", node=1, span=(0, 1), outcome=UNKNOWN)
    _op(h, "list", "set/", None, node=1, span=(5, 6), extra=["set/b", "set/zz"], process="final")
    problems = _checks.set_complete(h)
    assert any("missing" in p for p in problems)
    assert any("never added" in p for p in problems)


def test_replicas_that_differ_are_found() -> None:
    h = History()
    assert _checks.converged({1: {"r0": "a"}, 2: {"r0": "a"}}, h) == []
    assert _checks.converged({1: {"r0": "a"}, 2: {"r0": "b"}}, h)


def test_a_minority_that_acknowledges_or_stops_answering_reads_is_found() -> None:
    h = History()
    w = h.open_window("partition", "isolate-leader", "leader 1", nodes=[1], minority=[1])
    w.start, w.end = 0.0, 10.0
    _op(h, "write", "r0", "x", node=1, span=(1, 2))  # acknowledged on the cut-off side
    _op(
        h,
        "sread",
        "r0",
        "x",
        node=1,
        span=(3, 4),
        outcome=UNKNOWN,
        process="nemesis",
        status="timeout",
    )
    problems = _checks.minority(h)
    assert any("acknowledged" in p for p in problems)
    assert any("serializable" in p for p in problems)
    h2 = History()
    w2 = h2.open_window("partition", "split", "[1] | [2, 3]", nodes=[1], minority=[1])
    w2.start, w2.end = 0.0, 10.0
    _op(h2, "write", "r0", "y", node=1, span=(1, 3), outcome=FAIL, status="503")
    _op(h2, "sread", "r0", None, node=1, span=(3, 4), process="nemesis", status="404")
    assert _checks.minority(h2) == []


def test_recovery_beyond_the_bound_is_found() -> None:
    h = History()
    w = h.open_window("kill", "kill-all", "all")
    w.end, w.recovered_after = 1.0, 6.0
    assert _checks.recovery(h, 5.0)
    w.recovered_after = 0.5
    assert _checks.recovery(h, 5.0) == []


def test_the_history_call_records_its_invocation_time() -> None:
    h = History()
    call = h.begin("c0", "write", "r0", "v", 1)
    assert isinstance(call, Call)
    op = h.record(call, OK, "204", 7)
    assert op.invoke == call.invoke <= op.complete and op.index == 7


def test_fault_selection_names_families_and_single_faults() -> None:
    assert set(_faults.select(["kill:power-loss", "bridge"])) == {"kill", "bridge"}
    assert [f.__name__ for f in _faults.select(["kill:power-loss"])["kill"]] == ["power_loss"]
    with pytest.raises(ValueError, match="no fault"):
        _faults.select(["kill:nope"])
    with pytest.raises(ValueError, match="unknown nemesis family"):
        _faults.select(["flood"])


def test_a_subnet_is_refused_when_everything_overlaps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_netns, "_networks_in_use", lambda: [_netns.SUPERNET])
    with pytest.raises(_netns.NetnsError, match="overlaps"):
        _netns.pick_subnet(1)


def test_power_loss_undoes_exactly_the_unsynced_writes(tmp_path: Path) -> None:
    data, journal = tmp_path / "data", tmp_path / "sync.journal"
    data.mkdir()
    script = f"""
import os
fd = os.open({str(data / "wal")!r}, os.O_RDWR | os.O_CREAT, 0o644)
os.posix_fallocate(fd, 0, 64)
os.pwrite(fd, b"synced", 0)
os.fdatasync(fd)
os.pwrite(fd, b"LOST", 2)
os.pwrite(fd, b"tail", 64)
"""
    env = {**os.environ, "PYTHONPATH": str(SITE), "RAFTKV_TEST_SYNC_JOURNAL": str(journal)}
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=30)
    assert (data / "wal").read_bytes()[:6] == b"syLOST"
    said = _powerloss.roll_back(data, journal)
    content = (data / "wal").read_bytes()
    assert content == b"synced" + bytes(58), said
    assert not journal.exists()


def test_a_history_reads_back_and_plots(tmp_path: Path) -> None:
    from jepsen._plot import latency_plot

    h = History()
    _op(h, "write", "r0", "a", node=1, span=(0.1, 0.2))
    _op(h, "read", "r0", None, node=2, span=(0.3, 0.5), outcome=UNKNOWN, status="ReadTimeout")
    w = h.open_window("partition", "split", "[1] | [2, 3]", nodes=[1], minority=[1])
    w.end, w.recovered_after = 0.4, 0.05
    h.dump(tmp_path)
    again = History.load(tmp_path)
    assert again.ops == h.ops and again.windows == h.windows
    latency_plot(again, tmp_path / "latency.png", "a title")
    assert (tmp_path / "latency.png").read_bytes()[:4] == b"\x89PNG"
