"""The fault suite's own checkers catch what they are for (synthetic histories, no processes),
and the power-loss journal undoes exactly the unsynced writes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jepsen import _checks, _coordchecks, _faults, _netns, _powerloss
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


def test_a_minority_that_acknowledges_a_watched_write_is_found() -> None:
    h = History()
    w = h.open_window("partition", "isolate-follower", "follower 2", nodes=[2], minority=[2])
    w.start, w.end = 0.0, 10.0
    _op(h, "wput", "watch/a0", "w0-1", node=2, span=(1, 2), status="200")
    _op(h, "sread", "r0", None, node=2, span=(3, 4), process="nemesis", status="404")
    assert any("acknowledged #0 wput" in p for p in _checks.minority(h))


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


# -- the watch workload ---------------------------------------------------------------------------

WATCH_HISTORY = [
    (1, [["put", "watch/a0", "v1", 1]]),
    (2, [["put", "watch/b0", "v2", 2]]),
    (3, [["delete", "watch/a0", "", 0]]),
    (4, [["put", "watch/a1", "v4", 4], ["put", "watch/b0", "v4b", 2]]),
]


def _line(revision: int, events: list[list]) -> str:
    return json.dumps([revision, events])


def _committed(h: History, prefix: str, revisions: list, *, node: int) -> None:
    lines = [_line(r, e) for r, e in revisions]
    _op(h, "whist", prefix, None, node=node, span=(50, 51), process="final", extra=lines)
    h.ops[-1].index = revisions[-1][0]


def _watch_run(revisions: list = WATCH_HISTORY) -> History:
    """The writes of WATCH_HISTORY, acknowledged, and its committed history on two members."""
    h = History()
    for revision, events in WATCH_HISTORY:
        for kind, key, value, _ in events:
            f = "wput" if kind == "put" else "wdel"
            _op(h, f, key, value if kind == "put" else None, node=1, span=(revision, revision))
            h.ops[-1].index = revision
    _committed(h, "watch/", revisions, node=1)
    _committed(h, "watch/", WATCH_HISTORY, node=2)
    return h


def _watcher(
    h: History, prefix: str, start: int | None, events: list, *, progress: int | None = None
) -> None:
    """A watcher session: a stream opened at ``start``, ``events`` as (revision, events)."""
    _op(h, "wopen", prefix, None, node=1, span=(10, 10), process="wa0.0", status="200")
    h.ops[-1].index = start
    if progress is not None:
        _op(h, "wprogress", prefix, None, node=1, span=(10, 10), process="wa0.0")
        h.ops[-1].index = progress
    for revision, changes in events:
        lines = [json.dumps(e) for e in changes]
        _op(h, "event", prefix, None, node=2, span=(11, 11), process="wa0.0", extra=lines)
        h.ops[-1].index = revision


def _streams(h: History) -> list[str]:
    return _coordchecks.watch_history(h, "watch/") + _coordchecks.watch_streams(h, "watch/")


def test_a_watcher_that_sees_the_committed_history_passes() -> None:
    h = _watch_run()
    _watcher(h, "watch/", 1, WATCH_HISTORY)
    assert _streams(h) == []
    h2 = _watch_run()  # a prefix of its own, from "now" (the opening progress at 2)
    _watcher(h2, "watch/a", None, [(3, WATCH_HISTORY[2][1]), (4, [["put", "watch/a1", "v4", 4]])])
    h2.ops.insert(-2, h2.ops.pop(-3))  # the progress event comes right after the opening
    h2.ops[-3].index = 2
    assert _streams(h2) == []


def test_a_watcher_that_misses_repeats_or_alters_a_revision_is_found() -> None:
    gap = _watch_run()
    _watcher(gap, "watch/", 1, [WATCH_HISTORY[0], WATCH_HISTORY[1], WATCH_HISTORY[3]])
    assert any("missed revisions [3]" in p for p in _streams(gap))
    silent_gap = _watch_run()  # a progress event that claims what it did not deliver
    _watcher(silent_gap, "watch/", 1, WATCH_HISTORY[:1], progress=2)
    assert any("missed revisions [2]" in p for p in _streams(silent_gap))
    repeat = _watch_run()
    _watcher(repeat, "watch/", 1, [*WATCH_HISTORY[:2], WATCH_HISTORY[1], *WATCH_HISTORY[2:]])
    assert any("came after 2" in p for p in _streams(repeat))
    altered = _watch_run()
    _watcher(altered, "watch/", 1, [*WATCH_HISTORY[:1], (2, [["put", "watch/b0", "x", 2]])])
    assert any("revision 2 came as" in p for p in _streams(altered))
    foreign = _watch_run()  # watch/a must not see a change of watch/b0 alone
    _watcher(foreign, "watch/a", 1, WATCH_HISTORY[:2])
    assert any("not changes of its prefix" in p for p in _streams(foreign))


def test_a_committed_history_that_differs_between_members_or_from_the_writes_is_found() -> None:
    differ = _watch_run(WATCH_HISTORY[:2] + WATCH_HISTORY[3:])
    problems = _streams(differ)
    assert any("members differ" in p for p in problems)
    assert any("is not in the committed history" in p for p in problems)  # the delete at 3
    h = _watch_run([*WATCH_HISTORY, (5, [["put", "watch/a0", "ghost", 5]])])
    assert any("which was never written" in p for p in _streams(h))
    stale = _watch_run()
    _op(stale, "wlist", "watch/", None, node=1, span=(52, 53), process="final", extra=[])
    stale.ops[-1].index = 2
    _op(stale, "wlist", "watch/", None, node=1, span=(52, 53), process="final")
    stale.ops[-1].index, stale.ops[-1].extra = (
        4,
        [json.dumps(kv) for kv in (["watch/a1", "v4", 4], ["watch/b0", "v4b", 2])],
    )
    problems = _streams(stale)
    assert len(problems) == 1 and "the store at revision 2" in problems[0]


# -- the lock workload ----------------------------------------------------------------------------

LOCK_HISTORY = [
    (1, [["put", "lock/L/a", "", 1]]),
    (2, [["put", "lock/reg", "1:l0-0-0", 2]]),
    (3, [["put", "lock/L/b", "", 3]]),
    (4, [["delete", "lock/L/a", "", 0]]),
    (5, [["put", "lock/reg", "3:l1-0-0", 2]]),
    (6, [["delete", "lock/L/b", "", 0]]),
]


def _lock_run(revisions: list = LOCK_HISTORY, *, writes: bool = True) -> History:
    """l0 holds token 1 over [1, 4], l1 (asking at 0.5) token 3 from 5; their writes acked."""
    h = History()
    _op(h, "acquire", "lock/L", None, node=0, span=(0, 1), process="l0")
    h.ops[-1].index = 1
    _op(h, "acquire", "lock/L", None, node=0, span=(0.5, 5), process="l1")
    h.ops[-1].index = 3
    if writes:
        for process, value, span, revision in (
            ("l0", "1:l0-0-0", (2, 3), 2),
            ("l1", "3:l1-0-0", (6, 7), 5),
        ):
            _op(h, "lwrite", "lock/reg", value, node=0, span=span, process=process)
            h.ops[-1].index = revision
    _committed(h, "lock/", revisions, node=1)
    return h


def _fencing(h: History) -> list[str]:
    return _coordchecks.lock_fencing(h, "lock/", "lock/L/", "lock/reg")


def test_tenures_one_after_another_pass() -> None:
    assert _fencing(_lock_run()) == []


def test_a_write_by_a_holder_whose_tenure_is_over_is_found() -> None:
    # token 1 writes again at revision 5, after its key was deleted and token 3 holds the lock
    late = [*LOCK_HISTORY[:4], (5, [["put", "lock/reg", "1:l0-0-1", 2]]), *LOCK_HISTORY[4:]]
    problems = _fencing(_lock_run([(r, e) for r, (_, e) in enumerate(late, 1)], writes=False))
    assert any("while the holder was 3: two tenures overlap" in p for p in problems)
    early = [*LOCK_HISTORY[:3], (4, [["put", "lock/reg", "3:l1-0-9", 2]]), *LOCK_HISTORY[3:]]
    problems = _fencing(_lock_run([(r, e) for r, (_, e) in enumerate(early, 1)], writes=False))
    assert any("token 3 while the holder was 1" in p for p in problems)
    assert any("nobody wrote" in p for p in problems)


def test_tokens_that_go_back_or_repeat_are_found() -> None:
    back = [*LOCK_HISTORY, (7, [["put", "lock/reg", "1:l0-0-0", 2]])]
    assert any("token went back" in p for p in _fencing(_lock_run(back)))
    h = _lock_run()
    _op(h, "acquire", "lock/L", None, node=0, span=(8, 9), process="l2")
    h.ops[-1].index = 3
    problems = _fencing(h)
    assert any("token 3 given twice" in p for p in problems)
    assert any("is not above 3" in p for p in problems)


def test_lost_refused_or_late_guarded_writes_are_found() -> None:
    lost = _lock_run(LOCK_HISTORY[:4] + LOCK_HISTORY[5:])
    assert any("acknowledged guarded write" in p for p in _fencing(lost))
    refused = _lock_run()
    refused.ops[2].outcome = FAIL
    assert any("refused guarded write" in p for p in _fencing(refused))
    # l0's write with token 1 after its tenure, let through by the guard at revision 7
    late = _lock_run([*LOCK_HISTORY, (7, [["put", "lock/reg", "1:l0-0-late", 2]])])
    _op(late, "lzombie", "lock/reg", "1:l0-0-late", node=0, span=(8, 9), process="l0")
    late.ops[-1].index = 7
    problems = _fencing(late)
    assert any("at revision 7 with token 1 while the holder was None" in p for p in problems)
    believed = _lock_run()  # l0 checked its lease at 5.5, after l1 had the lock at 5
    _op(believed, "lwrite", "lock/reg", "1:l0-0-1", node=0, span=(5.5, 6), process="l0")
    believed.ops[-1].outcome = FAIL
    assert any("overlap in real time" in p for p in _fencing(believed))


def test_a_waiter_that_does_not_get_the_lock_after_the_heal_is_found() -> None:
    h = History()
    w = h.open_window("pause", "pause-leader", "leader 1")
    w.start, w.end = 1.0, 10.0
    _op(h, "probe", "probe/1", "0", node=2, span=(10.0, 10.5), process="nemesis")
    _op(h, "acquire", "lock/L", None, node=0, span=(9, 12), process="l0")
    _op(h, "acquire", "lock/L", None, node=0, span=(2, 3), process="l1", outcome=FAIL)
    assert _coordchecks.healed_at(h) == 10.5
    assert _coordchecks.lock_waiters(h, 5.0) == []
    _op(h, "acquire", "lock/L", None, node=0, span=(8, 10.6), process="l2", outcome=FAIL)
    _op(h, "acquire", "lock/L", None, node=0, span=(10.7, 40), process="l2")
    _op(h, "acquire", "lock/L", None, node=0, span=(9, 60), process="l3", outcome=UNKNOWN)
    problems = _coordchecks.lock_waiters(h, 5.0)
    assert len(problems) == 2
    assert "l2 was waiting" in problems[0] and "only after 29.50s" in problems[0]
    assert "l3 was waiting" in problems[1] and "never got it" in problems[1]
