"""Power loss, simulated: undo every file change a killed node made after the file's last sync.

The node ran with the sync journal (``_site/sitecustomize.py``): before each write it recorded
the bytes it would overwrite and the file's size, and after each fsync/fdatasync a sync mark.
Rolling back, per file (by inode), the records after its last sync mark are undone newest first:
old bytes written back, the size restored. What this shows and what it cannot: a node that
acknowledges before it syncs, or never syncs, loses those writes here as it would on a real power
cut; lost directory entries (a rename or create whose directory was not synced) and reordered
writes inside the disk are not simulated.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path


def _inodes(root: Path) -> dict[int, Path]:
    found = {}
    for dirpath, _, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            found[path.stat().st_ino] = path
    return found


def roll_back(data_dir: Path, journal: Path) -> str:
    """Undo the unsynced changes the journal records; say what was undone. Starts a new journal."""
    if not journal.exists():
        return "no journal"
    pending: dict[int, list[dict]] = defaultdict(list)
    with journal.open() as f:
        for line in f:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # the record being written when the process died
            if rec["op"] == "s":
                pending.pop(rec["ino"], None)
            else:
                pending[rec["ino"]].append(rec)
    paths = _inodes(data_dir)
    undone_bytes, files = 0, 0
    for ino, records in pending.items():
        path = paths.get(ino)
        if path is None:
            continue  # deleted since (a compacted segment, a renamed-over temp file)
        files += 1
        fd = os.open(path, os.O_RDWR)
        try:
            for rec in reversed(records):
                old = bytes.fromhex(rec["old"])
                if old:
                    os.pwrite(fd, old, rec["off"])
                    undone_bytes += len(old)
                if os.fstat(fd).st_size > rec["size"]:
                    os.ftruncate(fd, rec["size"])
        finally:
            os.close(fd)
    journal.unlink()
    writes = sum(len(rs) for rs in pending.values())
    return f"rolled back {writes} unsynced writes ({undone_bytes} bytes) in {files} files"
