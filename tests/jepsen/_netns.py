"""A private network for one test run: a namespace per node, a bridge in a namespace of its own.

```
 test (root namespace)          rkvj<pid>-<run>-br                rkvj<pid>-<run>-n<i>
 rkvj<pid>-<run> 10.77.X.254 ─veth─ client ─┐
                                            br0 ── n<i> ──veth── eth0 10.77.X.<i>/24
```

Addresses exist only inside these namespaces (and on the test's end of the client veth); the
subnet is chosen at run time among ``10.77.0.0/16``'s /24s so that it overlaps no address or route
the machine already has, and the run refuses to start otherwise. Names carry the pid, so two runs
never collide, and ``remove_stale`` deletes what a crashed run (a pid no longer alive) left.

Faults are made on each node's egress (``eth0`` inside its namespace), with what iproute2 and tc
offer on the running kernel (``probe_capabilities``):

* ``drop(src, dst)``: src's packets to dst vanish (an htb class whose queue is a zero-length
  pfifo, selected by a u32 match on the destination). Both directions make a partition; one
  direction makes one-way loss. Without htb/u32, a ``blackhole`` route in src's namespace.
* ``chaos(node, ...)``: random loss (a classic-BPF classifier that reads the kernel's random
  number), delay by shaping (a rate-limited htb class, which queues and so adds delay with
  jitter), reordering (a random share of the packets through the slow class), or, where the
  kernel has ``sch_netem``, netem's delay/jitter/loss/duplication/reordering.

Every command goes through ``run``; each namespace is deleted by ``close`` (in a ``finally``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

PREFIX = "rkvj"
SUPERNET = ipaddress.ip_network("10.77.0.0/16")
CLIENT_HOST = 254
_HANDLE_FAST, _HANDLE_DROP, _HANDLE_SLOW, _HANDLE_NETEM = 1, 2, 3, 4
_PRIO_PARTITION, _PRIO_LOSS, _PRIO_SLOW = 10, 20, 30
_SKF_AD_RANDOM = 0xFFFFF038  # classic BPF: load the kernel's per-packet random number


class NetnsError(RuntimeError):
    """A command that builds or changes the private network failed."""


def run(*args: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise NetnsError(f"{' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def sh(line: str, *extra: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """``run`` of a command written as one line (words split on spaces), plus extra words."""
    return run(*line.split(), *extra, check=check)


def works(line: str, *extra: str) -> bool:
    return sh(line, *extra, check=False).returncode == 0


def why_unusable() -> str | None:
    """Why this machine cannot build the network (None: it can)."""
    if os.geteuid() != 0:
        return "network namespaces need root (run the fault suite as root, as CI does)"
    for tool in ("ip", "tc"):
        if run("which", tool, check=False).returncode != 0:
            return f"the fault suite needs iproute2's `{tool}`"
    return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _our_pid(name: str) -> int | None:
    m = re.fullmatch(rf"{PREFIX}(\d+)(-.*)?", name)
    return int(m.group(1)) if m else None


def remove_stale(own_pid: int | None = None) -> list[str]:
    """Delete namespaces and links whose run is gone (or, given ``own_pid``, that run's own).

    Returns the names removed.
    """

    def ours(name: str) -> bool:
        pid = _our_pid(name)
        return pid is not None and (pid == own_pid if own_pid is not None else not pid_alive(pid))

    removed = []
    for ns in run("ip", "netns", "list").stdout.split():
        if not ours(ns):
            continue
        # Its raftkvd processes outlived the crashed run; they are ours by their namespace.
        for line in run("ip", "netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line), signal.SIGKILL)
        run("ip", "netns", "delete", ns, check=False)
        removed.append(ns)
    for link in json.loads(run("ip", "-j", "link", "show").stdout or "[]"):
        name = link.get("ifname", "")
        if ours(name):
            run("ip", "link", "delete", name, check=False)
            removed.append(name)
    return removed


def _networks_in_use() -> list[ipaddress.IPv4Network]:
    used = []
    for link in json.loads(run("ip", "-j", "-4", "addr", "show").stdout or "[]"):
        for a in link.get("addr_info", []):
            used.append(ipaddress.ip_network(f"{a['local']}/{a['prefixlen']}", strict=False))
    for route in json.loads(run("ip", "-j", "-4", "route", "show", "table", "all").stdout or "[]"):
        dst = route.get("dst", "")
        if dst == "default":
            continue
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(dst if "/" in dst else f"{dst}/32", strict=False))
    return used


def pick_subnet(seed: int) -> ipaddress.IPv4Network:
    """A /24 of SUPERNET that overlaps nothing on this machine; raises if there is none."""
    used = _networks_in_use()
    candidates = list(SUPERNET.subnets(new_prefix=24))
    start = seed % len(candidates)
    for net in candidates[start:] + candidates[:start]:
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsError(f"every /24 of {SUPERNET} overlaps an address or route of this machine")


@dataclass(frozen=True)
class Capabilities:
    """What the kernel lets us inject; ``missing`` says why the rest cannot be."""

    htb_u32: bool
    bpf_random: bool
    netem: bool
    missing: tuple[str, ...] = ()

    def describe(self) -> str:
        have = [
            n
            for n, ok in (
                ("htb+u32", self.htb_u32),
                ("bpf-random", self.bpf_random),
                ("netem", self.netem),
            )
            if ok
        ]
        return f"tc: {', '.join(have) or 'nothing'}; routes: blackhole" + (
            f"; unavailable: {'; '.join(self.missing)}" if self.missing else ""
        )


def _loss_program(percent: float, client: ipaddress.IPv4Address) -> str:
    """Classic BPF: match IPv4 frames not addressed to the client, with probability percent."""
    threshold = int(percent / 100 * 0xFFFFFFFF)
    insns = [
        (0x28, 0, 0, 12),  # ldh [12]: ethertype
        (0x15, 0, 5, 0x0800),  # not IPv4: no match
        (0x20, 0, 0, 30),  # ld [30]: destination address
        (0x15, 3, 0, int(client)),  # to the client: no match (chaos is between peers)
        (0x20, 0, 0, _SKF_AD_RANDOM),
        (0x25, 1, 0, threshold),  # random above the threshold: no match
        (0x06, 0, 0, 0xFFFFFFFF),  # match: the filter's class
        (0x06, 0, 0, 0),
    ]
    return f"{len(insns)}," + ",".join(" ".join(map(str, i)) for i in insns)


@dataclass
class Lab:
    """The namespaces, bridge and links of one run. Use ``open_lab()``."""

    name: str  # the prefix of every namespace and link of this run
    subnet: ipaddress.IPv4Network
    caps: Capabilities = field(default_factory=lambda: Capabilities(False, False, False))
    nodes: dict[int, str] = field(default_factory=dict)  # node id -> namespace
    blocked: set[tuple[int, int]] = field(default_factory=set)  # (src, dst) dropped
    chaotic: set[int] = field(default_factory=set)

    @property
    def bridge_ns(self) -> str:
        return f"{self.name}-br"

    @property
    def client_address(self) -> ipaddress.IPv4Address:
        return self.subnet[CLIENT_HOST]

    def address(self, node: int) -> str:
        if not 1 <= node < CLIENT_HOST:
            raise ValueError(f"node id {node} has no address in {self.subnet}")
        return str(self.subnet[node])

    # -- building --------------------------------------------------------------------------------

    def build(self) -> None:
        br = self.bridge_ns
        sh(f"ip netns add {br}")
        sh(f"ip -n {br} link set lo up")
        sh(f"ip -n {br} link add br0 type bridge")
        sh(f"ip -n {br} link set br0 up")
        sh(f"ip link add {self.name} type veth peer name client netns {br}")
        sh(f"ip -n {br} link set client master br0 up")
        sh(f"ip addr add {self.client_address}/{self.subnet.prefixlen} dev {self.name}")
        sh(f"ip link set {self.name} up")
        self.caps = self._probe()

    def add_node(self, node: int) -> str:
        """The namespace of a new node, on the bridge, with its address and fault classes."""
        ns, br, address = f"{self.name}-n{node}", self.bridge_ns, self.address(node)
        sh(f"ip netns add {ns}")
        self.nodes[node] = ns
        sh(f"ip -n {ns} link set lo up")
        sh(f"ip -n {br} link add n{node} type veth peer name eth0 netns {ns}")
        sh(f"ip -n {br} link set n{node} master br0 up")
        sh(f"ip -n {ns} addr add {address}/{self.subnet.prefixlen} dev eth0")
        sh(f"ip -n {ns} link set eth0 up")
        if self.caps.htb_u32:
            self._fault_classes(ns)
        return ns

    def _fault_classes(self, ns: str) -> None:
        """htb root: 1:1 everything (default), 1:2 drop (zero-length queue), 1:3 slow."""
        tc = f"tc -n {ns}"
        sh(f"{tc} qdisc add dev eth0 root handle 1: htb default {_HANDLE_FAST} r2q 100000")
        for handle, rate in (
            (_HANDLE_FAST, "10gbit"),
            (_HANDLE_DROP, "10gbit"),
            (_HANDLE_SLOW, "400kbit"),
        ):
            sh(f"{tc} class add dev eth0 parent 1: classid 1:{handle} htb rate {rate} ceil {rate}")
        sh(f"{tc} qdisc add dev eth0 parent 1:{_HANDLE_DROP} handle {_HANDLE_DROP}: pfifo limit 0")
        sh(
            f"{tc} qdisc add dev eth0 parent 1:{_HANDLE_SLOW} handle {_HANDLE_SLOW}: "
            "bfifo limit 200000"
        )
        if self.caps.netem:
            sh(f"{tc} class add dev eth0 parent 1: classid 1:{_HANDLE_NETEM} htb rate 10gbit")
            sh(
                f"{tc} qdisc add dev eth0 parent 1:{_HANDLE_NETEM} handle {_HANDLE_NETEM}: netem "
                "delay 30ms 20ms loss 5% duplicate 5% reorder 10%"
            )

    def _probe(self) -> Capabilities:
        """Try each mechanism on a scratch veth in the bridge namespace."""
        br, missing = self.bridge_ns, []
        sh(f"ip -n {br} link add probe0 type veth peer name probe1")
        tc = f"tc -n {br}"
        try:
            htb = works(f"{tc} qdisc add dev probe0 root handle 1: htb") and works(
                f"{tc} class add dev probe0 parent 1: classid 1:2 htb rate 1gbit"
            )
            u32 = htb and works(
                f"{tc} filter add dev probe0 parent 1: protocol ip prio 1 u32 "
                "match ip dst 10.77.0.1/32 flowid 1:2"
            )
            bpf = htb and works(
                f"{tc} filter add dev probe0 parent 1: protocol all prio 2 bpf bytecode",
                _loss_program(10, self.client_address),
                "flowid",
                "1:2",
            )
            netem = htb and works(f"{tc} qdisc add dev probe0 parent 1:2 netem delay 1ms")
        finally:
            sh(f"ip -n {br} link delete probe0", check=False)
        if not (htb and u32):
            missing.append("htb/u32 (partitions fall back to blackhole routes)")
        if not bpf:
            missing.append("cls_bpf (no random loss)")
        if not netem:
            missing.append("sch_netem (no fixed delay, no duplication; delay by shaping)")
        return Capabilities(htb and u32, bpf and htb and u32, netem and htb and u32, tuple(missing))

    # -- faults ----------------------------------------------------------------------------------

    @property
    def partition_mechanism(self) -> str:
        return "tc u32 drop" if self.caps.htb_u32 else "blackhole route"

    def drop(self, src: int, dst: int) -> None:
        """From now on src's packets to dst are lost (src's egress)."""
        if (src, dst) in self.blocked:
            return
        addr = self.address(dst)
        if self.caps.htb_u32:
            match = ["u32", "match", "ip", "dst", f"{addr}/32"]
            self._filter(src, _PRIO_PARTITION, match, _HANDLE_DROP)
        else:
            run("ip", "-n", self.nodes[src], "route", "add", "blackhole", f"{addr}/32")
        self.blocked.add((src, dst))

    def drop_between(self, side_a: Iterable[int], side_b: Iterable[int]) -> None:
        """Cut every link between the two sides, both ways."""
        b = list(side_b)
        for x in side_a:
            for y in b:
                self.drop(x, y)
                self.drop(y, x)

    def heal_links(self) -> None:
        for src in sorted({s for s, _ in self.blocked}):
            ns = self.nodes.get(src)
            if ns is None:
                continue
            if self.caps.htb_u32:
                sh(f"tc -n {ns} filter del dev eth0 parent 1: prio {_PRIO_PARTITION}", check=False)
            else:
                for s, d in self.blocked:
                    if s == src:
                        sh(f"ip -n {ns} route del blackhole {self.address(d)}/32", check=False)
        self.blocked.clear()

    def _filter(self, node: int, prio: int, match: list[str], handle: int) -> None:
        """``tc filter add``: packets ``match`` selects go to class 1:``handle``."""
        protocol = "all" if match[0] == "bpf" else "ip"
        sh(
            f"tc -n {self.nodes[node]} filter add dev eth0 parent 1: protocol {protocol} "
            f"prio {prio}",
            *match,
            "flowid",
            f"1:{handle}",
        )

    def chaos(self, node: int, kind: str, percent: float = 0) -> str:
        """Start one kind of packet chaos on node's egress to its peers; say what was done."""
        peers = ["u32", "match", "ip", "dst", str(self.subnet)]
        random_share = ["bpf", "bytecode", _loss_program(percent, self.client_address)]
        if kind == "netem" and self.caps.netem:
            self._filter(node, _PRIO_SLOW, peers, _HANDLE_NETEM)
            done = "netem delay 30ms±20ms loss 5% duplicate 5% reorder 10%"
        elif kind == "loss" and self.caps.bpf_random:
            self._filter(node, _PRIO_LOSS, random_share, _HANDLE_DROP)
            done = f"loss {percent:.0f}% (bpf random -> zero-length queue)"
        elif kind == "reorder" and self.caps.bpf_random:
            self._filter(node, _PRIO_SLOW, random_share, _HANDLE_SLOW)
            done = f"reorder {percent:.0f}% (bpf random -> 400kbit class)"
        elif kind == "delay" and self.caps.htb_u32:
            # Everything to peers through the slow class (the client's replies past it).
            client = ["u32", "match", "ip", "dst", f"{self.client_address}/32"]
            self._filter(node, _PRIO_SLOW - 1, client, _HANDLE_FAST)
            self._filter(node, _PRIO_SLOW, peers, _HANDLE_SLOW)
            done = "delay by shaping (400kbit, 200 kB queue)"
        else:
            return ""
        self.chaotic.add(node)
        return done

    def calm(self) -> None:
        for node in sorted(self.chaotic):
            ns = self.nodes.get(node)
            for prio in (_PRIO_LOSS, _PRIO_SLOW - 1, _PRIO_SLOW):
                if ns is not None:
                    sh(f"tc -n {ns} filter del dev eth0 parent 1: prio {prio}", check=False)
        self.chaotic.clear()

    def heal(self) -> None:
        self.heal_links()
        self.calm()

    # -- running inside ---------------------------------------------------------------------------

    def exec_prefix(self, node: int) -> list[str]:
        return ["ip", "netns", "exec", self.nodes[node]]

    def pids(self) -> list[int]:
        out = []
        for ns in [*self.nodes.values(), self.bridge_ns]:
            out += [int(p) for p in run("ip", "netns", "pids", ns, check=False).stdout.split()]
        return out

    def close(self) -> None:
        """Delete every namespace and link of this run (idempotent)."""
        for ns in [*self.nodes.values(), self.bridge_ns]:
            run("ip", "netns", "delete", ns, check=False)
        run("ip", "link", "delete", self.name, check=False)
        self.nodes.clear()


@contextlib.contextmanager
def open_lab(tag: int) -> Iterator[Lab]:
    """Build run ``tag``'s bridge and client link; all is removed on exit, whatever happens."""
    reason = why_unusable()
    if reason:
        raise NetnsError(reason)
    pid = os.getpid()
    lab = Lab(f"{PREFIX}{pid}-{tag}", pick_subnet(pid + tag))
    try:
        lab.build()
        yield lab
    finally:
        lab.close()
