"""A data directory on a small tmpfs that fills up, and frees again.

Each node's data directory lives on its own tmpfs (mounted under the run's work directory) when
the disk family is on. ``fill_and_free`` fills one node's or every node's tmpfs with a ballast
file, keeps it full for a while under load, removes the ballast, and notes any node that exited
meanwhile (it is started again: what was acknowledged must still be there).
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from jepsen._netns import PREFIX, _our_pid, pid_alive, run

if TYPE_CHECKING:
    from jepsen._cluster import Node
    from jepsen._history import Window
    from jepsen._nemesis import Nemesis

TMPFS_MB = 96  # the WAL preallocates a 64 MiB segment
SNAPSHOT_COUNT = 300  # --snapshot-count of runs with the disk family
_CHUNK = 1 << 20


def mount_tmpfs(path: Path, megabytes: int = TMPFS_MB) -> None:
    path.mkdir(parents=True, exist_ok=True)
    run("mount", "-t", "tmpfs", "-o", f"size={megabytes}m,mode=0700", "tmpfs", str(path))


def unmount(path: Path) -> None:
    run("umount", "-l", str(path), check=False)


def remove_stale_mounts(own_pid: int | None = None) -> list[str]:
    """Unmount tmpfs data dirs a crashed run (pid gone) left mounted, or run ``own_pid``'s."""
    removed = []
    with open("/proc/mounts") as f:
        mounts = [line.split()[1] for line in f]
    for mount in mounts:
        for part in Path(mount).parts:
            pid = _our_pid(part.split("_")[0]) if part.startswith(PREFIX) else None
            if pid is not None and (pid == own_pid if own_pid else not pid_alive(pid)):
                unmount(Path(mount))
                removed.append(mount)
                break
    return removed


def fill(root: Path) -> int:
    """Fill the file system holding ``root`` to the last byte; return the bytes taken."""
    taken = 0
    fd = os.open(root / "ballast", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for chunk in (_CHUNK, 4096, 512):
            for _ in range(1 << 20):
                try:
                    os.posix_fallocate(fd, taken, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
                taken += chunk
    finally:
        os.close(fd)
    return taken


async def _hold_until_snapshots(nem: Nemesis, targets: list) -> None:  # type: ignore[type-arg]
    """Keep the disks full until the cluster applied two snapshot intervals (bounded): a full
    disk shows when a write needs new space, a new snapshot file or WAL segment."""
    start = await _applied(nem)
    with trio.move_on_after(15 * nem.et):
        while await _applied(nem) < start + 2 * SNAPSHOT_COUNT:
            if not all(n.alive() for n in targets):
                await trio.sleep(nem.et)  # show the cluster without it for a moment
                return
            await trio.sleep(0.1)


async def _applied(nem: Nemesis) -> int:
    best = 0
    for n in nem.ctx.cluster.members:
        s = await nem.status(n) if n.alive() else None
        best = max(best, s["applied_index"] if s else 0)
    return best


async def _restart_the_stopped(nem: Nemesis, w: Window, targets: list[Node]) -> int:
    """Start again every target that stopped on the full disk, as an operator would once space
    returns. A node may stop a while after the ballast is gone (it met ENOSPC while full; on a
    loaded machine it exits seconds later): the targets are watched until each one answers or
    has been started again (bounded), not looked at once."""
    pending = {n.id: n for n in targets if not n.removed}
    restarted = 0
    with trio.move_on_after(20 * nem.et):
        while pending:
            for n in list(pending.values()):
                if not n.alive():
                    _note_exit(nem, w, n)
                    n.start()
                    restarted += 1
                    del pending[n.id]
                elif await nem.status(n) is not None:
                    del pending[n.id]
            await trio.sleep(0.1)
    if pending:
        w.notes.append(f"nodes {sorted(pending)} neither answered nor stopped in time")
    return restarted


def _note_exit(nem: Nemesis, w: Window, n: Node) -> None:
    """A node whose disk is full stops, as one whose fsync failed must (what it wrote last is
    in doubt): exit 1 with one line naming the full disk. Anything else is a problem; so is
    losing what it acknowledged, which the checks after the heal look for."""
    code = n.proc.returncode if n.proc is not None else None
    tail = n.log_tail(400).strip().splitlines()[-1:] or [""]
    w.notes.append(f"node {n.id} exited ({code}) on a full disk: {tail[0]}")
    clear = tail[0].startswith("raftkvd: error: storage:") and "No space left" in tail[0]
    if code != 1 or not clear:
        nem.ctx.problems.append(
            f"disk-full: node {n.id} exited with code {code}, not a clear error: {tail[0]}"
        )


def free(root: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (root / "ballast").unlink()


async def fill_and_free(nem: Nemesis, rng: random.Random) -> None:
    cluster = nem.ctx.cluster
    if not cluster.data_roots:
        nem.history.skipped["disk: data dirs are not on tmpfs in this run"] += 1
        return
    leader = await nem.leader()
    live = [n for n in cluster.members if n.alive()]
    targets = live if rng.random() < 0.5 else [cluster.nodes.get(leader) or rng.choice(live)]
    taken = {n.id: fill(cluster.data_roots[n.id]) for n in targets}
    ids = sorted(taken)
    w = nem.history.open_window(
        "disk",
        "disk-full",
        f"tmpfs of {ids} full",
        nodes=ids,
        mechanism=f"{TMPFS_MB} MiB tmpfs + ballast file",
    )
    w.notes.append(f"ballast bytes {taken}")
    await _hold_until_snapshots(nem, targets)
    for n in targets:
        free(cluster.data_roots[n.id])
    nem.close(w)
    restarted = await _restart_the_stopped(nem, w, targets)
    if restarted:  # started all at once: wait_started waits for a majority of them
        await nem.wait_started(w, nem.history.now())
    await nem.recover(w)
