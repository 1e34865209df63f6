"""Keys and their history: get, put, del, ls, watch, txn, compact."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from raftkv.client import (
    KeyValue,
    TxnDeleteResult,
    TxnPutResult,
    TxnRangeResult,
    TxnResponse,
    WatchBatch,
)
from raftkv.kv import TxnFormatError, bytes_field, key_value_to_json, txn_from_json

from ..routes.watch import batch_json
from ._common import Commands, Context, add_command, arg_bytes, positive, revision

__all__ = ["register"]

_PAGE = 1000  # keys per request when ls walks a whole prefix
_KV_HEADERS = ("KEY", "VALUE", "MOD REVISION")


def register(commands: Commands) -> None:
    get = add_command(commands, "get", _get, help="print a key's value")
    get.add_argument("key")
    get.add_argument("--rev", type=positive, metavar="N", help="as of revision N")
    _serializable(get)
    _json_alias(get, 'as -w json: {"key", "value" (or "value_b64"), "mod_revision"}')

    put = add_command(commands, "put", _put, help="set a key; prints its new revision")
    put.add_argument("key")
    put.add_argument("value", nargs="?", help="the value (default: read from standard input)")
    condition = put.add_mutually_exclusive_group()
    condition.add_argument(
        "--if-revision",
        type=revision,
        metavar="REV",
        help="only if the key's mod revision is REV (compare-and-swap; 0: only if absent)",
    )
    condition.add_argument(
        "--create-only", action="store_true", help="only if the key does not exist"
    )
    put.add_argument(
        "--lease", type=positive, metavar="ID", help="attach the key to lease ID (it goes with it)"
    )

    delete = add_command(
        commands, "del", _delete, help="delete a key, or every key under a prefix (prints how many)"
    )
    key_or_prefix(delete)
    delete.add_argument(
        "--if-revision", type=revision, metavar="REV", help="only if the key's mod revision is REV"
    )

    ls = add_command(commands, "ls", _list, help="list keys by prefix, in key order")
    ls.add_argument("prefix", nargs="?", default="")
    ls.add_argument("--limit", type=positive, metavar="N", help="at most N keys (default: all)")
    ls.add_argument("--values", action="store_true", help="print key<TAB>value lines")
    _json_alias(ls, "as -w json: the keys as JSON objects, one a line")
    _serializable(ls)
    ls.add_argument("--rev", type=positive, metavar="N", help="as of revision N")

    watch = add_command(
        commands,
        "watch",
        _watch,
        help="print changes as they happen (resumes across failures; Ctrl-C ends it)",
        description="simple: type, key, value lines (as etcdctl); json: a line per revision; "
        "table: a row per event",
    )
    key_or_prefix(watch)
    watch.add_argument(
        "--rev", type=positive, metavar="N", help="from revision N (default: from now on)"
    )
    watch.add_argument("--prev-kv", action="store_true", help="print the value replaced too")

    txn = add_command(
        commands,
        "txn",
        _txn,
        help="run a transaction read as JSON (the body of POST /v1/txn)",
        description="simple: SUCCESS or FAILURE, then each response (as etcdctl); json: the "
        "answer of POST /v1/txn; table: a row per response",
    )
    txn.add_argument("file", nargs="?", default="-", help="the JSON (default: standard input)")

    compact = add_command(
        commands, "compact", _compact, help="forget the history before a revision"
    )
    compact.add_argument("revision", type=positive, metavar="REV")


def key_or_prefix(parser: argparse.ArgumentParser) -> None:
    """KEY, or --prefix P: exactly one of them."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("key", nargs="?")
    target.add_argument("--prefix", metavar="P", help="every key under P ('' : every key)")


def _serializable(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--serializable",
        action="store_true",
        help="read what the answering node has applied, without a barrier (faster, may be stale)",
    )


def _json_alias(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--json",
        dest="write_out",
        action="store_const",
        const="json",
        default=argparse.SUPPRESS,
        help=help_text,
    )


def _kv_row(kv: KeyValue) -> tuple[bytes, bytes, int]:
    return kv.key, kv.value, kv.mod_revision


def _get(ctx: Context) -> None:
    args, out = ctx.args, ctx.out
    value = ctx.client.get(arg_bytes(args.key), serializable=args.serializable, revision=args.rev)

    def simple() -> None:
        out.write(value.value)
        if out.stream.isatty() and not value.value.endswith(b"\n"):
            out.write(b"\n")

    document = {
        **bytes_field("key", value.key),
        **bytes_field("value", value.value),
        "mod_revision": value.mod_revision,
    }
    out.show(document, _KV_HEADERS, [(value.key, value.value, value.mod_revision)], simple)


def _put(ctx: Context) -> None:
    args, out = ctx.args, ctx.out
    data = ctx.stdin.read() if args.value is None else arg_bytes(args.value)
    if_revision = 0 if args.create_only else args.if_revision
    result = ctx.client.put(arg_bytes(args.key), data, if_revision=if_revision, lease=args.lease)
    shown = result.revision if result.revision is not None else "OK"
    out.show({"revision": result.revision}, ("REVISION",), [(shown,)], lambda: out.line(str(shown)))


def _delete(ctx: Context) -> None:
    """A prefix delete prints how many keys went; a key's, nothing (as rm)."""
    args, out = ctx.args, ctx.out
    if args.prefix is not None:
        if args.if_revision is not None:
            raise ValueError("a prefix delete takes no --if-revision: use a transaction")
        result = ctx.client.delete(prefix=arg_bytes(args.prefix))
    else:
        result = ctx.client.delete(arg_bytes(args.key), if_revision=args.if_revision)

    def simple() -> None:
        if args.prefix is not None:
            out.line(str(result.deleted))

    document = {"deleted": result.deleted, "revision": result.revision}
    out.show(document, ("DELETED", "REVISION"), [(result.deleted, result.revision)], simple)


def _compact(ctx: Context) -> None:
    out = ctx.out
    done = ctx.client.compact(ctx.args.revision)
    out.show(
        {"revision": done.revision, "compact_revision": done.compact_revision},
        ("REVISION", "COMPACT REVISION"),
        [(done.revision, done.compact_revision)],
        lambda: out.line(f"compacted revision {done.compact_revision}"),
    )


def _list(ctx: Context) -> None:
    """Page through the prefix; lines (and JSON lines) go out page by page, a table at the
    end (its columns fit every row)."""
    args, out = ctx.args, ctx.out
    rows: list[tuple[bytes, bytes, int]] = []
    remaining: int | None = args.limit
    after: bytes | None = None
    while remaining is None or remaining > 0:
        page_size = _PAGE if remaining is None else min(remaining, _PAGE)
        page = ctx.client.get_prefix(
            arg_bytes(args.prefix),
            limit=page_size,
            after=after,
            serializable=args.serializable,
            revision=args.rev,
        )
        for kv in page.kvs:
            if out.format == "json":
                out.json(key_value_to_json(kv))
            elif out.format == "table":
                rows.append(_kv_row(kv))
            elif args.values:
                out.write(kv.key + b"\t" + kv.value + b"\n")
            else:
                out.write(kv.key + b"\n")
        if remaining is not None:
            remaining -= len(page.kvs)
        if not page.more or not page.kvs:
            break
        after = page.kvs[-1].key
    if out.format == "table":
        out.table(_KV_HEADERS, rows)


def _watch(ctx: Context) -> None:
    args, out = ctx.args, ctx.out
    key = None if args.key is None else arg_bytes(args.key)
    prefix = None if args.prefix is None else arg_bytes(args.prefix)
    with ctx.client.watch(key, prefix=prefix, start_revision=args.rev, prev_kv=args.prev_kv) as w:
        for batch in w:
            _write_batch(ctx, batch)
            out.flush()  # as it happens, also into a pipe


def _write_batch(ctx: Context, batch: WatchBatch) -> None:
    out = ctx.out
    if out.format == "json":
        out.json(batch_json(batch))
        return
    if out.format == "table":
        rows = [
            (batch.revision, e.type.upper(), e.kv.key, e.kv.value, _prev(e.prev_kv))
            for e in batch.events
        ]
        out.table(("REVISION", "TYPE", "KEY", "VALUE", "PREVIOUS VALUE"), rows, stream=True)
        return
    for event in batch.events:
        out.write(event.type.upper().encode() + b"\n")
        if event.prev_kv is not None:
            _write_kv(ctx, event.prev_kv)
        _write_kv(ctx, event.kv)


def _prev(kv: KeyValue | None) -> bytes | None:
    return None if kv is None else kv.value


def _write_kv(ctx: Context, kv: KeyValue) -> None:
    ctx.out.write(kv.key + b"\n" + kv.value + b"\n")


def _txn(ctx: Context) -> None:
    args, out = ctx.args, ctx.out
    source = "standard input" if args.file == "-" else args.file
    try:
        data = ctx.stdin.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        command = txn_from_json(json.loads(data))
    except (ValueError, RecursionError) as exc:  # TxnFormatError and JSONDecodeError too
        what = "bad transaction" if isinstance(exc, TxnFormatError) else "not JSON"
        raise ValueError(f"{what} in {source}: {exc}") from None
    result = (
        ctx.client.txn()
        .compare(*command.compares)
        .then(*command.success)
        .otherwise(*command.failure)
        .commit()
    )
    rows = [(i, *_txn_row(r)) for i, r in enumerate(result.responses, 1)]
    headers = ("#", "OPERATION", "RESULT")
    if out.format == "table":
        out.line(f"{'SUCCESS' if result.succeeded else 'FAILURE'} at revision {result.revision}")
    out.show(_txn_json(result), headers, rows, lambda: _txn_simple(ctx, result))


def _txn_simple(ctx: Context, result: TxnResponse) -> None:
    out = ctx.out
    out.write(b"SUCCESS\n" if result.succeeded else b"FAILURE\n")
    for response in result.responses:
        out.write(b"\n")
        match response:
            case TxnPutResult():
                out.write(b"OK\n")
            case TxnDeleteResult(deleted):
                out.write(b"%d\n" % deleted)
            case _:
                for kv in response.kvs:
                    _write_kv(ctx, kv)


def _txn_row(response: object) -> tuple[str, str]:
    match response:
        case TxnPutResult(revision):
            return "put", f"revision {revision}"
        case TxnDeleteResult(deleted):
            return "delete", f"{deleted} deleted"
        case TxnRangeResult(kvs, more):
            return "range", f"{len(kvs)} keys{' (more)' if more else ''}"
        case _:
            kvs = getattr(response, "kvs", ())
            shown = ", ".join(f"{k.key.decode('utf-8', 'backslashreplace')}" for k in kvs)
            return "get", shown or "(absent)"


def _txn_json(result: TxnResponse) -> dict[str, object]:
    """The answer as ``POST /v1/txn`` gives it."""
    responses: list[dict[str, object]] = []
    for r in result.responses:
        match r:
            case TxnPutResult(revision, prev):
                put: dict[str, object] = {"revision": revision}
                if prev is not None:
                    put["prev_kv"] = key_value_to_json(prev)
                responses.append({"put": put})
            case TxnDeleteResult(deleted):
                responses.append({"delete": {"deleted": deleted}})
            case TxnRangeResult(kvs, more):
                responses.append({"range": {"kvs": [*map(key_value_to_json, kvs)], "more": more}})
            case _:
                responses.append({"get": {"kvs": [*map(key_value_to_json, r.kvs)]}})
    return {"succeeded": result.succeeded, "revision": result.revision, "responses": responses}
