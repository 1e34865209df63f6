"""``Network``: the simulator's messages in flight and the links between its nodes.

Every message a node sends goes into one list, ``in_flight``; nothing moves unless the test says
so, in any order: that is how the tests reorder, drop, duplicate and delay messages. Links can
be cut one way or both (``partition``); a message in flight across a new cut is lost, and so is
one sent across a cut.

As a transport would: a lost ``InstallSnapshot`` is reported to its sender as failed, a delivered
one as delivered (``RawNode.report_snapshot``), between Readys, never inside one; and a node
that applied the removal of the sender refuses its messages and says so, which ends the removed
node's lingering (``RawNode.report_removed``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from raftkv.core import InstallSnapshot, Message, describe

from ._simnode import SimNode
from ._transcript import Transcript

__all__ = ["Network", "filter_args"]


def filter_args(to: Sequence[int], src: int | None, kind: str | None, count: int | None) -> str:
    """The scenario arguments of a message filter (``deliver 2 from=1 type=Heartbeat``)."""
    args = [str(i) for i in to]
    if src is not None:
        args.append(f"from={src}")
    if kind is not None:
        args.append(f"type={kind}")
    if count is not None:
        args.append(f"count={count}")
    return (" " + " ".join(args)) if args else ""


class Network:
    """The in-flight messages and the cuts between the nodes of ``nodes``."""

    def __init__(self, nodes: dict[int, SimNode], transcript: Transcript) -> None:
        self._nodes = nodes
        self.transcript = self._tx = transcript
        self.in_flight: list[Message] = []
        self.cuts: set[tuple[int, int]] = set()
        self._snapshot_reports: list[tuple[int, int, bool]] = []

    # -- sending and losing ------------------------------------------------------------------------

    def send(self, messages: Sequence[Message]) -> None:
        cuts = self.cuts
        if not cuts:
            self.in_flight.extend(messages)
            return
        for m in messages:
            if (m.src, m.dst) in cuts:
                self._lost(m)
            else:
                self.in_flight.append(m)

    def _lost(self, m: Message) -> None:
        """A message vanished; a lost snapshot is reported to its sender."""
        if isinstance(m, InstallSnapshot):
            self._snapshot_reports.append((m.src, m.dst, False))

    def flush_snapshot_reports(self) -> None:
        """Tell senders how their snapshots fared, as a transport does once a snapshot stream
        ends. Done between Readys, never inside one."""
        while self._snapshot_reports:
            src, dst, ok = self._snapshot_reports.pop(0)
            node = self._nodes.get(src)
            if node is not None and node.raw is not None:
                node.raw.report_snapshot(dst, ok)
                self._tx.emit(f"  {src} told: snapshot to {dst} {'delivered' if ok else 'failed'}")

    # -- choosing messages -------------------------------------------------------------------------

    def select(
        self,
        to: Sequence[int] = (),
        src: int | None = None,
        kind: str | None = None,
        count: int | None = None,
    ) -> list[int]:
        """Positions of the in-flight messages that match, oldest first."""
        out = []
        for pos, m in enumerate(self.in_flight):
            if to and m.dst not in to:
                continue
            if src is not None and m.src != src:
                continue
            if kind is not None and type(m).__name__ != kind:
                continue
            out.append(pos)
            if count is not None and len(out) >= count:
                break
        return out

    def take(self, positions: Iterable[int]) -> list[Message]:
        """Remove the messages at ``positions`` from flight; return them, oldest first."""
        chosen = set(positions)
        taken = [m for pos, m in enumerate(self.in_flight) if pos in chosen]
        self.in_flight = [m for pos, m in enumerate(self.in_flight) if pos not in chosen]
        return taken

    def take_all(self) -> list[Message]:
        taken, self.in_flight = self.in_flight, []
        return taken

    # -- delivering, dropping, duplicating ---------------------------------------------------------

    def deliver(self, messages: Sequence[Message]) -> int:
        """Step each message into its destination, in order. Returns how many arrived."""
        arrived = 0
        out = self._tx.out
        last_dst = -1
        for m in messages:
            dst = m.dst
            if out is not None and dst != last_dst:
                out.append(f"> {dst} receiving messages")
                last_dst = dst
            refusal = self._refusal(m)
            if refusal:
                if out is not None:
                    out.append(f"  {describe(m)} ({refusal})")
                self._lost(m)
                continue
            if out is not None:
                out.append(f"  {describe(m)}")
            raw = self._nodes[dst].raw
            assert raw is not None
            raw.step(m)
            if isinstance(m, InstallSnapshot):
                self._snapshot_reports.append((m.src, dst, True))
            arrived += 1
        return arrived

    def _refusal(self, m: Message) -> str:
        """Why ``m`` cannot arrive ('' if it can)."""
        node = self._nodes.get(m.dst)
        if node is None or node.raw is None:
            return f"dropped: {m.dst} is down"
        if self.cuts and (m.src, m.dst) in self.cuts:
            return "dropped: link cut"
        sender = self._nodes.get(m.src)
        leaving = sender.raw if sender is not None else None
        if (
            leaving is not None
            and leaving.removed_at
            and node.raw.applied >= leaving.removed_at
            and m.src not in node.raw.conf_state.members
        ):
            # A peer that applied the sender's removal refuses it and says so.
            leaving.report_removed(m.dst)
            return f"refused: {m.src} was removed"
        return ""

    def drop(self, messages: Sequence[Message]) -> int:
        for m in messages:
            self._tx.emit(f"dropped {describe(m)}")
            self._lost(m)
        return len(messages)

    def duplicate(self, positions: Sequence[int]) -> int:
        """Append a copy of each message at ``positions`` to the end of the list."""
        copies = [self.in_flight[p] for p in positions]
        for m in copies:
            self._tx.emit(f"duplicated {describe(m)}")
        self.in_flight.extend(copies)
        return len(copies)

    def show(self) -> list[Message]:
        for pos, m in enumerate(self.in_flight):
            self._tx.emit(f"{pos}: {describe(m)}")
        return list(self.in_flight)

    # -- cuts --------------------------------------------------------------------------------------

    def partition(self, groups: Sequence[Sequence[int]], ids: Sequence[int]) -> None:
        """Replace the cuts: nodes in different groups cannot talk (both directions). Nodes of
        ``ids`` named in no group form one more group together."""
        named = {i for g in groups for i in g}
        rest = [i for i in ids if i not in named]
        all_groups = [set(g) for g in groups] + ([set(rest)] if rest else [])
        where = {i: k for k, g in enumerate(all_groups) for i in g}
        self.cuts = {(a, b) for a in where for b in where if a != b and where[a] != where[b]}
        self._cut_in_flight()

    def cut(self, *links: tuple[int, int]) -> None:
        """Cut each ``(src, dst)`` link one way (keeping the other cuts)."""
        self.cuts.update(links)
        self._cut_in_flight()

    def heal(self) -> None:
        self.cuts = set()

    def _cut_in_flight(self) -> None:
        kept = []
        dropped = 0
        for m in self.in_flight:
            if (m.src, m.dst) in self.cuts:
                self._lost(m)
                dropped += 1
            else:
                kept.append(m)
        self.in_flight = kept
        if dropped:
            self._tx.emit(f"dropped {dropped} message(s) in flight across the cut")
