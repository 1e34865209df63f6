"""``raftkv``: the command-line client (get, put, del, ls, watch, txn, compact, lease, lock,
elect, members, status).

Exit status: 0 done; 1 not found, precondition failed, change refused, revision compacted, or a
lease (a lock, leadership) lost; 2 bad usage (including a request the server calls bad,
400/413); 3 cluster unavailable, outcome unknown or other failure; 130 interrupted (Ctrl-C, the
way ``raftkv watch`` and ``raftkv elect`` end). ``raftkv lock`` exits with its command's status.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import raftkv
from raftkv.client import (
    BadRequest,
    Client,
    ClientError,
    Compacted,
    Conflict,
    KeyValue,
    LeaseLost,
    Member,
    NotFound,
    OutcomeUnknown,
    PreconditionFailed,
    TxnDeleteResult,
    TxnPutResult,
    TxnRangeResult,
    TxnResponse,
    WatchBatch,
)
from raftkv.kv import TxnFormatError, bytes_field, key_value_to_json, txn_from_json

from .routes.watch import batch_json

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "ClientFactory",
    "main",
]

PROG = "raftkv"
EXIT_OK = 0
EXIT_FAILED = 1  # not found, precondition failed, membership change refused, compacted
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it
DEFAULT_ENDPOINTS = "http://127.0.0.1:12380"
_PAGE = 1000  # keys per request when ls walks a whole prefix

# (endpoints, timeout in seconds) -> a client; tests pass one on a mock transport.
ClientFactory = Callable[[str, float], Client]

_EPILOG = """\
examples:
  raftkv put my-key hello
  raftkv get my-key
  echo -n 2 | raftkv put counter --if-revision 7      # compare-and-swap
  raftkv ls app/ --values
  raftkv get my-key --rev 3                          # as of revision 3
  raftkv watch --prefix app/ --rev 1                 # every change since revision 1
  raftkv txn txn.json                                # a transaction (JSON, as POST /v1/txn)
  raftkv del --prefix app/
  raftkv compact 100
  raftkv lease grant 10                              # prints the lease id
  raftkv put svc/me up --lease 7587862072312423137
  raftkv lock jobs/nightly -- ./nightly.sh           # $RAFTKV_LOCK_TOKEN: the fencing token
  raftkv elect svc/primary 10.0.0.7                  # campaigns, then holds until Ctrl-C
  raftkv elect --listen svc/primary                  # prints each leader
  raftkv members add 4 http://127.0.0.1:42379
  raftkv --endpoints http://127.0.0.1:12380,http://127.0.0.1:22380 status

environment:
  RAFTKV_ENDPOINTS   default for --endpoints (comma-separated client URLs)

exit status:
  0 done, 1 not found / precondition failed / change refused / revision compacted,
  2 bad usage, 3 cluster unavailable or outcome unknown, 130 interrupted (Ctrl-C)"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _revision(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a revision (an integer >= 0), got {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 86400:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="The raftkv command-line client.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {raftkv.__version__}")
    parser.add_argument(
        "--endpoints",
        default=environ.get("RAFTKV_ENDPOINTS") or DEFAULT_ENDPOINTS,
        metavar="URLS",
        help="comma-separated client URLs of cluster nodes, tried in turn "
        f"(default: $RAFTKV_ENDPOINTS or {DEFAULT_ENDPOINTS})",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long one request may take (default: 10)",
    )
    commands = parser.add_subparsers(
        title="commands", dest="command", metavar="COMMAND", required=True
    )

    get = commands.add_parser("get", help="print a key's value")
    get.add_argument("key")
    get.add_argument("--rev", type=_positive, metavar="N", help="as of revision N")
    get.add_argument(
        "--serializable",
        action="store_true",
        help="read what the answering node has applied, without a barrier (faster, may be stale)",
    )
    get.add_argument(
        "--json",
        action="store_true",
        help='print {"key", "value" (or "value_b64"), "mod_revision"} instead of the raw value',
    )

    put = commands.add_parser("put", help="set a key; prints its new revision")
    put.add_argument("key")
    put.add_argument("value", nargs="?", help="the value (default: read from standard input)")
    condition = put.add_mutually_exclusive_group()
    condition.add_argument(
        "--if-revision",
        type=_revision,
        metavar="REV",
        help="only if the key's mod revision is REV (compare-and-swap; 0: only if absent)",
    )
    condition.add_argument(
        "--create-only", action="store_true", help="only if the key does not exist"
    )
    put.add_argument(
        "--lease", type=_positive, metavar="ID", help="attach the key to lease ID (it goes with it)"
    )

    delete = commands.add_parser(
        "del", help="delete a key, or every key under a prefix (prints how many)"
    )
    _key_or_prefix(delete)
    delete.add_argument(
        "--if-revision", type=_revision, metavar="REV", help="only if the key's mod revision is REV"
    )

    ls = commands.add_parser("ls", help="list keys by prefix, in key order")
    ls.add_argument("prefix", nargs="?", default="")
    ls.add_argument("--limit", type=_positive, metavar="N", help="at most N keys (default: all)")
    ls.add_argument("--values", action="store_true", help="print key<TAB>value lines")
    ls.add_argument(
        "--json", action="store_true", help="print the keys as JSON objects, one a line"
    )
    ls.add_argument("--serializable", action="store_true", help="as for get")
    ls.add_argument("--rev", type=_positive, metavar="N", help="as of revision N")

    watch = commands.add_parser(
        "watch", help="print changes as they happen (resumes across failures; Ctrl-C ends it)"
    )
    _key_or_prefix(watch)
    watch.add_argument(
        "--rev", type=_positive, metavar="N", help="from revision N (default: from now on)"
    )
    watch.add_argument("--prev-kv", action="store_true", help="print the value replaced too")
    _write_out(watch, "simple: type, key, value lines (as etcdctl); json: a line per revision")

    txn = commands.add_parser(
        "txn", help="run a transaction read as JSON (the body of POST /v1/txn)"
    )
    txn.add_argument("file", nargs="?", default="-", help="the JSON (default: standard input)")
    _write_out(txn, "simple: SUCCESS or FAILURE, then each response (as etcdctl); json")

    compact = commands.add_parser("compact", help="forget the history before a revision")
    compact.add_argument("revision", type=_positive, metavar="REV")

    _lease_commands(commands)

    members = commands.add_parser("members", help="list, add or remove cluster members")
    actions = members.add_subparsers(title="actions", dest="action", metavar="ACTION")
    actions.add_parser("list", help="list the members (the default)")
    add = actions.add_parser("add", help="add a member (it joins as a learner)")
    add.add_argument("id", type=_positive)
    add.add_argument("peer_url")
    remove = actions.add_parser("remove", help="remove a member (it then exits by itself)")
    remove.add_argument("id", type=_positive)

    commands.add_parser("status", help="print the answering node's status as JSON")
    return parser


def _lease_commands(commands: Any) -> None:
    lease = commands.add_parser("lease", help="grant, keep alive, look up, revoke, list leases")
    actions = lease.add_subparsers(title="actions", dest="action", metavar="ACTION", required=True)
    grant = actions.add_parser("grant", help="grant a lease of TTL seconds; prints its id")
    grant.add_argument("ttl", type=_positive, metavar="TTL")
    keep = actions.add_parser(
        "keepalive", help="renew a lease every third of its TTL until Ctrl-C (prints each TTL)"
    )
    keep.add_argument("id", type=_positive)
    keep.add_argument("--once", action="store_true", help="renew it once")
    revoke = actions.add_parser("revoke", help="revoke a lease; prints how many keys it took")
    revoke.add_argument("id", type=_positive)
    ttl = actions.add_parser("ttl", help="print a lease's TTL left and granted TTL as JSON")
    ttl.add_argument("id", type=_positive)
    ttl.add_argument("--keys", action="store_true", help="with the keys attached to it")
    actions.add_parser("list", help="print every lease id")

    lock = commands.add_parser(
        "lock",
        help="run a command while holding a lock (exits with its status; its fencing token is "
        "in $RAFTKV_LOCK_TOKEN)",
    )
    lock.add_argument("name")
    lock.add_argument("--ttl", type=_positive, default=10, help="the lock's lease TTL (10 s)")
    lock.add_argument("cmd", nargs="*", metavar="-- COMMAND", help="the command, after --")

    elect = commands.add_parser(
        "elect", help="campaign and hold leadership until Ctrl-C, or --listen to the leaders"
    )
    elect.add_argument("name")
    elect.add_argument("value", nargs="?", help="what to lead with (not with --listen)")
    elect.add_argument("--listen", action="store_true", help="print each leader as it changes")
    elect.add_argument("--ttl", type=_positive, default=10, help="the campaign's lease TTL")


def _key_or_prefix(parser: argparse.ArgumentParser) -> None:
    """KEY, or --prefix P: exactly one of them."""
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("key", nargs="?")
    target.add_argument("--prefix", metavar="P", help="every key under P ('' : every key)")


def _write_out(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "-w", "--write-out", choices=("simple", "json"), default="simple", help=help_text
    )


def _arg_bytes(text: str) -> bytes:
    return os.fsencode(text)  # the bytes the shell passed, even if they are not UTF-8


def _write_members(out: IO[bytes], members: Sequence[Member]) -> None:
    rows = [("ID", "ROLE", "PEER URL", "CLIENT URL")]
    for m in members:
        role = "leader" if m.leader else ("voter" if m.voter else "learner")
        rows.append((str(m.id), role, m.peer_url, m.client_url or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        out.write(f"{line}  {row[3]}\n".encode())


def _run(args: argparse.Namespace, client: Client, stdin: IO[bytes], out: IO[bytes]) -> int | None:
    """Run the command; the exit status when it is not simply 0 (``raftkv lock``'s command's)."""
    match args.command:
        case "get":
            value = client.get(
                _arg_bytes(args.key), serializable=args.serializable, revision=args.rev
            )
            if args.json:
                obj: dict[str, object] = {
                    **bytes_field("key", value.key),
                    **bytes_field("value", value.value),
                    "mod_revision": value.mod_revision,
                }
                out.write(json.dumps(obj).encode() + b"\n")
            else:
                out.write(value.value)
                if out.isatty() and not value.value.endswith(b"\n"):
                    out.write(b"\n")
        case "put":
            data = stdin.read() if args.value is None else _arg_bytes(args.value)
            if_revision = 0 if args.create_only else args.if_revision
            result = client.put(
                _arg_bytes(args.key), data, if_revision=if_revision, lease=args.lease
            )
            out.write(f"{result.revision if result.revision is not None else 'OK'}\n".encode())
        case "del" if args.prefix is not None:
            if args.if_revision is not None:
                raise ValueError("a prefix delete takes no --if-revision: use a transaction")
            out.write(b"%d\n" % client.delete(prefix=_arg_bytes(args.prefix)).deleted)
        case "del":
            client.delete(_arg_bytes(args.key), if_revision=args.if_revision)
        case "watch":
            _watch(args, client, out)
        case "txn":
            _txn(args, client, stdin, out)
        case "compact":
            done = client.compact(args.revision)
            out.write(f"compacted revision {done.compact_revision}\n".encode())
        case "ls":
            _list(args, client, out)
        case "lease":
            _lease(args, client, out)
        case "lock":
            return _lock(args, client)
        case "elect":
            _elect(args, client, out)
        case "members":
            if args.action == "add":
                members = client.add_member(args.id, args.peer_url)
            elif args.action == "remove":
                members = client.remove_member(args.id)
            else:
                members = client.members()
            _write_members(out, members)
        case "status":
            out.write(json.dumps(client.status(), indent=2, sort_keys=True).encode() + b"\n")
    return None


def _lease(args: argparse.Namespace, client: Client, out: IO[bytes]) -> None:
    match args.action:
        case "grant":
            out.write(b"%d\n" % client.grant_lease(args.ttl).id)
        case "keepalive":
            while True:
                ttl = client.keepalive(args.id)
                out.write(b"%d\n" % ttl)
                out.flush()
                if args.once:
                    return
                time.sleep(ttl / 3)
        case "revoke":
            out.write(b"%d\n" % client.revoke_lease(args.id).deleted)
        case "ttl":
            status = client.lease_status(args.id, keys=args.keys)
            body: dict[str, object] = {
                "id": status.id,
                "ttl": status.ttl,
                "granted_ttl": status.granted_ttl,
            }
            if status.keys is not None:
                body["keys"] = [bytes_field("key", key) for key in status.keys]
            out.write(json.dumps(body).encode() + b"\n")
        case _:
            for lease in client.leases():
                out.write(b"%d\n" % lease)


def _lock(args: argparse.Namespace, client: Client) -> int:
    """Run the command while holding the lock; its exit status. A lock lost meanwhile ends the
    command (it may be another's now): 1."""
    cmd = args.cmd
    if not cmd:
        raise ValueError("raftkv lock NAME -- COMMAND...: no command given")
    with client.lock(_arg_bytes(args.name), ttl=args.ttl) as held:
        env = {**os.environ, "RAFTKV_LOCK_TOKEN": str(held.token)}
        try:
            proc = subprocess.Popen(cmd, env=env)
        except OSError as exc:
            raise ValueError(f"cannot run {cmd[0]!r}: {exc.strerror or exc}") from None
        try:
            while proc.poll() is None and not held.lease.wait_lost(timeout=0.1):
                pass
        finally:
            if proc.poll() is None:  # lost, or Ctrl-C: the command ends before the lock does
                proc.terminate()
                proc.wait()
        if held.lease.is_lost:
            raise LeaseLost(f"the lock was lost ({held.lease.lost_reason}): the command was ended")
        return proc.returncode


def _elect(args: argparse.Namespace, client: Client, out: IO[bytes]) -> None:
    if args.listen == (args.value is not None):
        raise ValueError("raftkv elect NAME VALUE campaigns; raftkv elect --listen NAME listens")
    with client.election(_arg_bytes(args.name), ttl=args.ttl) as election:
        if args.listen:
            with election.observe() as leaders:
                for leader in leaders:
                    out.write(leader.key + b"\n" + leader.value + b"\n")
                    out.flush()
        leader = election.campaign(_arg_bytes(args.value))
        out.write(leader.key + b"\n" + leader.value + b"\n")
        out.flush()
        try:
            election.wait_lost()
        except KeyboardInterrupt:
            election.resign()
            raise
        raise LeaseLost("leadership lost: the campaign's lease expired or its key was deleted")


def _list(args: argparse.Namespace, client: Client, out: IO[bytes]) -> None:
    remaining: int | None = args.limit
    after: bytes | None = None
    while remaining is None or remaining > 0:
        page_size = _PAGE if remaining is None else min(remaining, _PAGE)
        page = client.get_prefix(
            _arg_bytes(args.prefix),
            limit=page_size,
            after=after,
            serializable=args.serializable,
            revision=args.rev,
        )
        for kv in page.kvs:
            if args.json:
                out.write(json.dumps(key_value_to_json(kv)).encode() + b"\n")
            elif args.values:
                out.write(kv.key + b"\t" + kv.value + b"\n")
            else:
                out.write(kv.key + b"\n")
        if remaining is not None:
            remaining -= len(page.kvs)
        if not page.more or not page.kvs:
            break
        after = page.kvs[-1].key


def _watch(args: argparse.Namespace, client: Client, out: IO[bytes]) -> None:
    key = None if args.key is None else _arg_bytes(args.key)
    prefix = None if args.prefix is None else _arg_bytes(args.prefix)
    with client.watch(key, prefix=prefix, start_revision=args.rev, prev_kv=args.prev_kv) as w:
        for batch in w:
            _write_batch(out, batch, json_lines=args.write_out == "json")
            out.flush()  # as it happens, also into a pipe


def _write_batch(out: IO[bytes], batch: WatchBatch, *, json_lines: bool) -> None:
    if json_lines:
        out.write(json.dumps(batch_json(batch)).encode() + b"\n")
        return
    for event in batch.events:
        out.write(event.type.upper().encode() + b"\n")
        if event.prev_kv is not None:
            _write_kv(out, event.prev_kv)
        _write_kv(out, event.kv)


def _write_kv(out: IO[bytes], kv: KeyValue) -> None:
    out.write(kv.key + b"\n" + kv.value + b"\n")


def _txn(args: argparse.Namespace, client: Client, stdin: IO[bytes], out: IO[bytes]) -> None:
    source = "standard input" if args.file == "-" else args.file
    try:
        data = stdin.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        raise ValueError(f"cannot read {source}: {exc.strerror or exc}") from None
    try:
        command = txn_from_json(json.loads(data))
    except (ValueError, RecursionError) as exc:  # TxnFormatError and JSONDecodeError too
        what = "bad transaction" if isinstance(exc, TxnFormatError) else "not JSON"
        raise ValueError(f"{what} in {source}: {exc}") from None
    result = (
        client.txn()
        .compare(*command.compares)
        .then(*command.success)
        .otherwise(*command.failure)
        .commit()
    )
    if args.write_out == "json":
        out.write(json.dumps(_txn_json(result)).encode() + b"\n")
        return
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
                    _write_kv(out, kv)


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


def _exit_code(exc: ClientError) -> int:
    if isinstance(exc, NotFound | PreconditionFailed | Conflict | Compacted | LeaseLost):
        return EXIT_FAILED
    if isinstance(exc, BadRequest):
        return EXIT_USAGE
    return EXIT_UNAVAILABLE


def _parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """``raftkv lock NAME [--ttl S] -- COMMAND...``: what follows ``--`` is the command, options
    and all (argparse alone would take the command's options for ours)."""
    if "--" in argv:
        at = argv.index("--")
        head = parser.parse_known_args(argv[:at])[0]
        if head.command == "lock":
            args = parser.parse_args(argv[:at])
            args.cmd = [*args.cmd, *argv[at + 1 :]]
            return args
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    client_factory: ClientFactory | None = None,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | None = None,
) -> int:
    """Run one command; returns the exit status (the console script exits with it)."""
    parser = build_parser(os.environ if environ is None else environ)
    try:
        args = _parse(parser, sys.argv[1:] if argv is None else list(argv))
    except SystemExit as exc:  # --help, --version, usage errors: argparse has printed them
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    out = sys.stdout.buffer if stdout is None else stdout
    try:
        factory = client_factory or (lambda endpoints, timeout: Client(endpoints, timeout=timeout))
        with factory(args.endpoints, args.timeout) as client:
            code = _run(args, client, sys.stdin.buffer if stdin is None else stdin, out)
    except ClientError as exc:
        return _fail(exc, _exit_code(exc))
    except ValueError as exc:  # a bad endpoint or argument, found before anything was sent
        return _fail(exc, EXIT_USAGE)
    except KeyboardInterrupt:  # Ctrl-C: how a watch ends; no traceback
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (raftkv watch ... | head): we are done
        if stdout is None:
            _discard_stdout()
        return EXIT_OK
    finally:
        with contextlib.suppress(BrokenPipeError):
            out.flush()
    return EXIT_OK if code is None else code


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


def _fail(exc: Exception, code: int) -> int:
    message = str(exc)
    if isinstance(exc, OutcomeUnknown) and "outcome unknown" not in message:
        message = f"outcome unknown: {message}"
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
