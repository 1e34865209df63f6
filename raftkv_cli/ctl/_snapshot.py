"""Backups: snapshot save|status|restore (as etcdctl snapshot save and etcdutl snapshot
status|restore; the file format is ``raftkv_cli._backup``'s)."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from .._backup import BackupInfo, read_backup, restore_backup
from .._settings import DEFAULT_CLUSTER_TOKEN, parse_cluster, parse_token
from ._common import Commands, Context, add_command, checked, positive

__all__ = ["register"]

_INFO_HEADERS = ("HASH", "REVISION", "INDEX", "TOTAL KEYS", "LEASES", "TOTAL SIZE")


def register(commands: Commands) -> None:
    snapshot = commands.add_parser(
        "snapshot", help="save a backup from a live member, check one, or restore a cluster"
    )
    actions = snapshot.add_subparsers(
        title="actions", dest="action", metavar="ACTION", required=True
    )
    save = add_command(
        actions,
        "save",
        _save,
        help="stream a consistent backup from a member into FILE (checked before it is kept)",
    )
    save.add_argument("file", type=Path, metavar="FILE")
    status = add_command(
        actions, "status", _status, help="check a backup file; print its revision, keys, hash"
    )
    status.add_argument("file", type=Path, metavar="FILE")
    restore = add_command(
        actions,
        "restore",
        _restore,
        help="make the data directory of one member of a new cluster from a backup",
        description="Run it once per member of the new cluster, from the same file and with "
        "the same --cluster; then start each member with raftkvd --data-dir DIR (the data "
        "directory wins over the other flags).",
    )
    restore.add_argument("file", type=Path, metavar="FILE")
    restore.add_argument(
        "--data-dir", type=Path, required=True, metavar="DIR", help="a new (empty) directory"
    )
    restore.add_argument(
        "--id", type=positive, required=True, metavar="N", help="this member's id in --cluster"
    )
    restore.add_argument(
        "--cluster",
        type=checked(parse_cluster),
        required=True,
        metavar="URLS",
        help="comma-separated peer URLs of the new cluster's members, in id order",
    )
    restore.add_argument(
        "--cluster-token",
        type=checked(parse_token),
        default=DEFAULT_CLUSTER_TOKEN,
        metavar="TOKEN",
        help=f"the new cluster's name, as raftkvd --cluster-token (default: "
        f"{DEFAULT_CLUSTER_TOKEN})",
    )


def _show(ctx: Context, info: BackupInfo, extra: dict[str, object], simple: str) -> None:
    document = {
        "sha256": info.sha256,
        "revision": info.revision,
        "compact_revision": info.compact_revision,
        "index": info.index,
        "keys": info.keys,
        "leases": info.leases,
        "size": info.size,
        **extra,
    }
    row = (info.sha256[:16], info.revision, info.index, info.keys, info.leases, info.size)
    ctx.out.show(document, _INFO_HEADERS, [row], lambda: ctx.out.line(simple))


def _save(ctx: Context) -> None:
    """Into ``FILE.part`` first, then checked whole (framing, checksum, every record) and
    renamed: a ``FILE`` that exists is a whole, intact backup."""
    target: Path = ctx.args.file
    part = target.with_name(target.name + ".part")
    try:
        with part.open("wb") as file:
            saved = ctx.client.save_snapshot(file)
            file.flush()
            os.fsync(file.fileno())
        info, _ = read_backup(part)
        part.replace(target)
    except OSError as exc:
        raise ValueError(f"cannot write {part}: {exc.strerror or exc}") from None
    finally:
        part.unlink(missing_ok=True)
    simple = f"Snapshot saved at {target} (revision {info.revision}, {info.keys} keys, from "
    _show(
        ctx, info, {"file": str(target), "endpoint": saved.endpoint}, simple + f"{saved.endpoint})"
    )


def _status(ctx: Context) -> None:
    info = _read(ctx.args.file)
    simple = f"{info.sha256[:16]}, {info.revision}, {info.keys}, {info.size}"
    _show(ctx, info, {"file": str(ctx.args.file)}, simple)


def _read(path: Path) -> BackupInfo:
    try:
        return read_backup(path)[0]
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None


def _restore(ctx: Context) -> None:
    args = ctx.args
    urls = args.cluster
    if args.id > len(urls):
        raise ValueError(f"--id {args.id} is out of range: --cluster lists {len(urls)} peer URL(s)")
    peers = {i: url for i, url in enumerate(urls, 1)}
    try:
        info = trio.run(
            lambda: restore_backup(
                args.file,
                args.data_dir,
                node_id=args.id,
                cluster_id=args.cluster_token,
                peers=peers,
            )
        )
    except OSError as exc:
        raise ValueError(f"cannot restore into {args.data_dir}: {exc.strerror or exc}") from None
    simple = (
        f"restored revision {info.revision} ({info.keys} keys) into {args.data_dir} as member "
        f"{args.id} of a new cluster of {len(peers)}"
    )
    _show(ctx, info, {"data_dir": str(args.data_dir), "id": args.id, "members": len(peers)}, simple)
