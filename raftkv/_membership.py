"""``Membership``: who the members are and where they serve, owned in one place.

The core's configuration (``RawNode.conf_state``) says which ids are voters and learners; this
table holds what the runtime needs beside it: each member's peer URL (from the membership changes
in the log) and client URL (each member publishes its own through the log, so any member can
point clients and forwarded requests at the leader). It alone feeds the transport's peer table.
Both tables travel in snapshots, so a node restored from one knows where its peers are.
"""

from __future__ import annotations

import contextlib
import logging

from ._envelope import ATTRIBUTES_SEQ, MemberTables, encode_attributes, encode_proposal
from ._errors import ProposalDropped
from ._node_config import MemberStatus
from .core import ConfChange, ConfChangeType, ProgressState, RawNode, Role, Status
from .transport import Transport

__all__ = ["Membership"]

log = logging.getLogger("raftkv.node")


class Membership:
    def __init__(self, node_id: int, transport: Transport) -> None:
        self.node_id = node_id
        self._transport = transport
        self._peer_urls: dict[int, str] = {}
        self._client_urls: dict[int, str] = {}
        self._removed: set[int] = set()  # ids removed from the cluster: never reused
        self._publish_due = 0  # tick count at which to (re)publish our client URL

    def tables(self) -> MemberTables:
        """Copies of the tables, for a snapshot."""
        return MemberTables(
            dict(self._peer_urls), dict(self._client_urls), frozenset(self._removed)
        )

    def peer_urls(self) -> dict[int, str]:
        return dict(self._peer_urls)

    def was_removed(self, node: int) -> bool:
        return node in self._removed

    def peer_url(self, node: int) -> str:
        return self._peer_urls.get(node, "")

    def restore(self, tables: MemberTables) -> None:
        """Replace the tables (from a snapshot)."""
        peer_urls = tables.peer_urls
        for node in set(self._peer_urls) - set(peer_urls):
            if node != self.node_id:
                self._transport.remove_peer(node)
        for node, url in peer_urls.items():
            if node != self.node_id:
                self._transport.add_peer(node, url)
        self._peer_urls = dict(peer_urls)
        self._client_urls = dict(tables.client_urls)
        self._removed = set(tables.removed)

    def apply_change(self, change: ConfChange) -> None:
        """A membership change the core applied."""
        node = change.node_id
        if change.type is ConfChangeType.REMOVE_NODE:
            self._removed.add(node)
            self._peer_urls.pop(node, None)
            self._client_urls.pop(node, None)
            if node != self.node_id:
                self._transport.remove_peer(node)
            return
        url = change.context.decode("utf-8", "replace")
        if url:
            self._peer_urls[node] = url
            if node != self.node_id:
                self._transport.add_peer(node, url)

    def apply_client_url(self, origin: int, url: str) -> None:
        """A member published where it serves clients (ignored for non-members, everywhere)."""
        if origin in self._peer_urls:
            self._client_urls[origin] = url

    def leader_changed(self) -> None:
        self._publish_due = 0  # tell the (new) leader's log our client URL soon

    def maybe_publish(self, raw: RawNode, client_url: str, ticks: int, retry_ticks: int) -> None:
        """Replicate our client URL until the table shows it (retried every ``retry_ticks``)."""
        if not client_url or self._client_urls.get(self.node_id) == client_url:
            return
        if raw.leader is None or ticks < self._publish_due:
            return
        if self.node_id not in raw.conf_state.members:
            return
        self._publish_due = ticks + retry_ticks
        # No leader right now: the next attempt comes after retry_ticks.
        with contextlib.suppress(ProposalDropped):
            raw.propose(
                encode_proposal(self.node_id, ATTRIBUTES_SEQ, encode_attributes(client_url))
            )

    def promote_caught_up_learner(self, raw: RawNode, promote_lag: int) -> None:
        """Leader: propose promoting a learner whose log is within ``promote_lag`` entries of
        ours (one at a time: a single-server change)."""
        if raw.role is not Role.LEADER or not raw.conf_state.learners:
            return
        status = raw.status()
        for node in raw.conf_state.learners:
            pr = status.progress.get(node)
            if (
                pr is not None
                and pr.state is ProgressState.REPLICATE
                and pr.match + promote_lag >= status.last_index
            ):
                change = ConfChange(ConfChangeType.ADD_VOTER, node, self.peer_url(node).encode())
                try:
                    raw.propose_conf_change(change)
                except ProposalDropped:
                    return  # another change is pending; try again on a later tick
                log.info("node %d promotes learner %d", self.node_id, node)
                return

    def statuses(self, s: Status) -> tuple[MemberStatus, ...]:
        conf = s.conf_state
        return tuple(
            MemberStatus(
                id=node,
                peer_url=self._peer_urls.get(node, ""),
                voter=node in conf.voters,
                client_url=self._client_urls.get(node, ""),
                match=s.progress[node].match if node in s.progress else None,
                state=s.progress[node].state.value if node in s.progress else None,
            )
            for node in conf.members
        )
