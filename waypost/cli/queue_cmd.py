"""`waypost queue …`: list, show, hold, release, retry, delete, bounce and reroute queued
messages."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from collections.abc import Iterable
from typing import Any

from waypost.cli import audit, queue_json, queue_select, queue_show
from waypost.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    add_config_option,
    format_interval,
    format_time,
    load,
)
from waypost.cli.mta_signal import signal_mta
from waypost.clock import SystemClock
from waypost.config import Config
from waypost.message import BY_RANK, Envelope
from waypost.nexthop import NextHop, parse_next_hop
from waypost.setup.intake import build_intake
from waypost.store import admin, qshape
from waypost.store.database import Database, QueueRow
from waypost.store.listing import QueueFilter, count_rows, select_rows


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "queue", help="inspect and manage the queue", description="Inspect and manage the queue."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="list queued recipients",
        description="One line per recipient: message id, age, size, state, attempts, next "
        "hop, recipient and the last error. --shape groups by next hop (or, with --shape "
        "priority, by priority: urgent, normal, non-urgent) and age like qshape; "
        "--json prints one JSON object per message (docs/operations.md lists the fields). "
        "Address patterns: the whole address, @domain, or * and ? wildcards; ages: 90s, "
        "5m, 3h, 2d, 1w.",
    )
    listing.add_argument(
        "--state",
        action="append",
        default=[],
        type=queue_select.state,
        help=f"only this state (repeatable): {', '.join(queue_select.STATES)}",
    )
    listing.add_argument("--next-hop", help="only this next hop")
    listing.add_argument("--sender", metavar="PATTERN", help="only mail from these senders")
    listing.add_argument("--recipient", metavar="PATTERN", help="only these recipients")
    listing.add_argument(
        "--older-than", type=queue_select.age, metavar="AGE", help="only mail queued this long"
    )
    listing.add_argument(
        "--younger-than", type=queue_select.age, metavar="AGE", help="only mail newer than this"
    )
    listing.add_argument(
        "--priority",
        type=queue_select.priority,
        help="only messages of this priority: urgent, normal, non-urgent",
    )
    listing.add_argument(
        "--limit", type=queue_select.count, default=None, help="at most this many recipients"
    )
    form = listing.add_mutually_exclusive_group()
    form.add_argument(
        "--shape",
        nargs="?",
        const="next-hop",
        choices=("next-hop", "priority"),
        help="counts by next hop (or by priority) and age in minutes, like qshape",
    )
    form.add_argument(
        "--json", action="store_true", help="one JSON object per message, like postqueue -j"
    )
    listing.set_defaults(run=run_list)

    queue_show.add_parser(actions)

    quarantine = actions.add_parser("quarantine", help="list the quarantined objects")
    quarantine.set_defaults(run=run_quarantine)

    for action, text in (
        (admin.Action.HOLD, "hold: no delivery until released"),
        (admin.Action.RELEASE, "release held recipients"),
        (admin.Action.RETRY, "try deferred recipients now"),
        (admin.Action.DELETE, "delete messages without a report"),
        (admin.Action.BOUNCE, "fail the recipients and owe a non-delivery report"),
    ):
        sub = actions.add_parser(action.value, help=text, description=text + AUDITED)
        _add_targets(sub)
        sub.set_defaults(run=run_admin, admin_action=action)

    reroute = actions.add_parser(
        "reroute",
        help="route queued recipients again (after a routing change)",
        description="Route every recipient not yet delivered again through the routing "
        "table of the configuration as it is now (Postfix's postsuper -r); queued and "
        "deferred recipients are tried at once, held ones stay held. Loops and "
        "unsupported critical extensions stay non-delivered; a recipient left without "
        "a route fails with a report." + AUDITED,
    )
    _add_targets(reroute)
    reroute.set_defaults(run=run_reroute)

    for sub in actions.choices.values():
        add_config_option(sub)


AUDITED = (
    " Each action is event 1403 (who, what, which ids) in the event log of the "
    "configuration ([log] json_file)."
)


def _add_targets(sub: argparse.ArgumentParser) -> None:
    """The messages an action applies to: IDs (`-`: read from standard input), or --all."""
    target = sub.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "message_ids",
        nargs="*",
        type=queue_select.message_id,
        default=[],
        metavar="ID",
        help="message ids; - reads them from standard input (numbers, or queue list --json)",
    )
    target.add_argument("--all", action="store_true", help="every message in the queue")


def _targets(args: argparse.Namespace) -> list[int] | None:
    """The message ids asked for (None: the whole queue)."""
    if args.all:
        return None
    ids: list[int] = []
    for word in args.message_ids:
        ids.extend(queue_select.read_ids(sys.stdin) if word == "-" else [int(word)])
    return queue_select.unique(ids)


def _nothing_to_do(action: str) -> int:
    """`… | waypost queue delete -` when the first command found nothing: not an error in
    a pipeline (as `postsuper -d -` on empty input), and nothing to log."""
    print(f"{action}: no message ids on standard input; nothing changed")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    db = queue_select.open_queue(args)
    now = time.time()
    where = QueueFilter(
        states=tuple(args.state),
        next_hop=args.next_hop,
        sender=args.sender,
        recipient=args.recipient,
        older_than=args.older_than,
        younger_than=args.younger_than,
        priority=args.priority,
        now=now,
    )
    try:
        if args.shape:
            _print_shape(select_rows(db, where), now, by_priority=args.shape == "priority")
        elif args.json:
            queue_json.print_messages(select_rows(db, where, args.limit))
        else:
            _print_list(db, where, args.limit, now)
    except db.errors as exc:
        raise CommandError(f"reading the queue failed: {db.translate(exc)}") from None
    finally:
        db.close()
    return EXIT_OK


def _print_list(db: Database, where: QueueFilter, limit: int | None, now: float) -> None:
    print(
        f"{'ID':>8} {'AGE':>5} {'SIZE':>8} {'STATE':<11} {'TRIES':>5} {'NEXT':>5}  "
        f"{'NEXT HOP':<24} RECIPIENT"
    )
    shown = 0
    for row in select_rows(db, where, limit):
        shown += 1
        due = "-" if row.due_at is None else format_interval(row.due_at, now)
        age = format_interval(now, row.received_at)
        print(
            f"{row.message_id!s:>8} {age:>5} {row.size!s:>8} {row.state!s:<11} "
            f"{row.attempts!s:>5} {due:>5}  {row.next_hop!s:<24} {row.address}"
        )
        if row.last_error:
            print(f"{'':>15}({row.last_error})")
    total = count_rows(db, where) if limit is not None else shown
    if shown < total:
        print(f"-- {shown} of {total} recipients shown")
    else:
        print(f"-- {total} recipients")


def _print_shape(rows: Iterable[QueueRow], now: float, *, by_priority: bool) -> None:
    """qshape's table: one line per next hop (the busiest first), or per priority (the most
    urgent first), then the total."""
    if by_priority:
        table = qshape.shape(((row.priority.label, row.received_at) for row in rows), now)
        order = [p.label for p in BY_RANK]
        table.rows.sort(key=lambda r: order.index(r.next_hop) if r.next_hop in order else 9)
    else:
        table = qshape.shape(((row.next_hop, row.received_at) for row in rows), now)
    width = max([len("TOTAL"), *(len(r.next_hop) for r in table.rows)])
    print(f"{'':<{width}} {'T':>6} " + " ".join(f"{h:>6}" for h in qshape.HEADINGS))
    for row in (*table.rows, table.total):
        print(f"{row.next_hop:<{width}} {row.total:>6} " + " ".join(f"{n:>6}" for n in row.buckets))


def run_quarantine(args: argparse.Namespace) -> int:
    db = queue_select.open_queue(args)
    try:
        rows = db.conn.execute(
            "SELECT id, kind, object_id, reason, quarantined_at FROM quarantine ORDER BY id"
        ).fetchall()
    finally:
        db.close()
    for qid, kind, object_id, reason, at in rows:
        print(f"{qid:>6} {format_time(at)} {kind} {object_id}: {reason}")
    print(f"-- {len(rows)} quarantined objects")
    return EXIT_OK


def run_admin(args: argparse.Namespace) -> int:
    action: admin.Action = args.admin_action
    targets = _targets(args)
    if targets == []:
        return _nothing_to_do(action.value)
    config = load(args)
    audit.start(config, f"queue {action.value}")
    db = queue_select.open_queue(args, config)
    try:
        with db.transaction():
            changed = admin.apply(db, action, targets, time.time())
    except db.errors as exc:
        raise CommandError(f"{action} failed: {db.translate(exc)}") from None
    finally:
        db.close()
    audit.record(action.value, targets, changed)
    print(f"{action.value}: {changed} recipients changed")
    if action is admin.Action.RETRY and changed:
        _try_now(config)
    return EXIT_OK if changed or targets is None else EXIT_FAILED


def _try_now(config: Config) -> None:
    """The running MTA tries what was made due at once, though its next hop is down or an
    X.400 peer's open interval runs (SIGUSR1, Postfix's `postqueue -f`)."""
    try:
        pid = signal_mta(config, signal.SIGUSR1, required=False)
    except CommandError as exc:
        print(f"waypost: the running MTA was not told to try now: {exc}", file=sys.stderr)
        return
    if pid is not None:
        print(f"the running MTA (pid {pid}) tries them now")


def run_reroute(args: argparse.Namespace) -> int:
    targets = _targets(args)
    if targets == []:
        return _nothing_to_do("reroute")
    config = load(args)
    audit.start(config, "queue reroute")
    intake = build_intake(config, SystemClock())

    def choose(envelope: Envelope, index: int, old: str) -> str:
        try:
            current: NextHop | None = parse_next_hop(old)
        except ValueError:
            current = None  # a damaged hop is simply routed again
        return str(intake.reroute(envelope, index, current))

    db = queue_select.open_queue(args, config)
    try:
        with db.transaction():
            result = admin.reroute(db, targets, choose, time.time())
    except db.errors as exc:
        raise CommandError(f"reroute failed: {db.translate(exc)}") from None
    finally:
        db.close()
    admin.log_rerouted(result)
    for moved in result.rerouted:
        print(f"{moved.message_id}: {moved.address}: {moved.old} -> {moved.new}")
    audit.record("reroute", targets, result.routed)
    print(f"reroute: {result.routed} recipients routed again, {len(result.rerouted)} changed")
    if result.in_delivery:
        print(f"({result.in_delivery} being delivered now were left alone: run it again later)")
    return EXIT_OK if result.routed or targets is None else EXIT_FAILED
