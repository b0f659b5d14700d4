"""`waypost queue …`: list, show, hold, release, retry, delete, bounce and reroute queued
messages."""

from __future__ import annotations

import argparse
import math
import sqlite3
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from waypost import events
from waypost.cli.common import (
    EXIT_FAILED,
    EXIT_OK,
    CommandError,
    add_config_option,
    format_interval,
    format_time,
    load,
)
from waypost.clock import SystemClock
from waypost.config import Config
from waypost.message import ContentType, Envelope, EnvelopeError, ObjectKind, decode_envelope
from waypost.nexthop import NextHop, parse_next_hop
from waypost.service import build_intake, database_path
from waypost.store import admin
from waypost.store.base import StoreError
from waypost.store.database import Database, translate
from waypost.store.validate import is_number
from waypost.x400.ipm import summarize_ipm
from waypost.x400.p1_report import decode_report_content

IPM_CONTENT_TYPES = frozenset({ContentType.P2, ContentType.P22, ContentType.P772})
# qshape's age buckets, in minutes.
SHAPE_BUCKETS = (5, 10, 20, 40, 80, 160, 320, 640, 1280)


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "queue", help="inspect and manage the queue", description="Inspect and manage the queue."
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        help="list queued recipients",
        description="One line per recipient: message id, age, size, state, attempts, next "
        "hop, recipient and the last error. --shape groups by next hop and age like qshape.",
    )
    listing.add_argument("--state", action="append", default=[], help="only this state")
    listing.add_argument("--next-hop", help="only this next hop")
    listing.add_argument("--limit", type=int, default=None, help="at most this many lines")
    listing.add_argument(
        "--shape", action="store_true", help="counts by next hop and age (minutes), like qshape"
    )
    listing.set_defaults(run=run_list)

    show = actions.add_parser("show", help="show one message in full")
    show.add_argument("message_id", type=int, metavar="ID")
    show.set_defaults(run=run_show)

    quarantine = actions.add_parser("quarantine", help="list the quarantined objects")
    quarantine.set_defaults(run=run_quarantine)

    for action, text in (
        (admin.Action.HOLD, "hold: no delivery until released"),
        (admin.Action.RELEASE, "release held recipients"),
        (admin.Action.RETRY, "try deferred recipients now"),
        (admin.Action.DELETE, "delete messages without a report"),
        (admin.Action.BOUNCE, "fail the recipients and owe a non-delivery report"),
    ):
        sub = actions.add_parser(action.value, help=text, description=text)
        _add_targets(sub)
        sub.set_defaults(run=run_admin, admin_action=action)

    reroute = actions.add_parser(
        "reroute",
        help="route queued recipients again (after a routing change)",
        description="Route every recipient not yet delivered again through the routing "
        "table of the configuration as it is now (Postfix's postsuper -r); queued and "
        "deferred recipients are tried at once, held ones stay held. Loops and "
        "unsupported critical extensions stay non-delivered; a recipient left without "
        "a route fails with a report.",
    )
    _add_targets(reroute)
    reroute.set_defaults(run=run_reroute)

    for sub in actions.choices.values():
        add_config_option(sub)


def _add_targets(sub: argparse.ArgumentParser) -> None:
    """The messages an action applies to: IDs, or --all."""
    target = sub.add_mutually_exclusive_group(required=True)
    target.add_argument("message_ids", nargs="*", type=int, default=[], metavar="ID")
    target.add_argument("--all", action="store_true", help="every message in the queue")


def _targets(args: argparse.Namespace) -> tuple[list[int] | None, str]:
    """The message ids asked for (None: the whole queue), and how an event names them."""
    if args.all:
        return None, "the whole queue"
    ids = list(args.message_ids)
    return ids, "messages " + ", ".join(map(str, ids))


def _open(args: argparse.Namespace, config: Config | None = None) -> Database:
    path = database_path(config if config is not None else load(args))
    if not Path(path).exists():
        raise CommandError(f"no MTA database at {path} (nothing was ever queued)")
    try:
        return Database.open(path, create_schema=False)
    except StoreError as exc:
        raise CommandError(f"cannot open {path}: {exc}") from None


def run_list(args: argparse.Namespace) -> int:
    db = _open(args)
    now = time.time()
    try:
        rows = db.queue_rows(states=args.state, next_hop=args.next_hop, limit=args.limit)
        if args.shape:
            _print_shape(rows, now)
            return EXIT_OK
        print(
            f"{'ID':>8} {'AGE':>5} {'SIZE':>8} {'STATE':<11} {'TRIES':>5} {'NEXT':>5}  "
            f"{'NEXT HOP':<24} RECIPIENT"
        )
        count = 0
        for row in rows:
            count += 1
            due = "-" if row.due_at is None else format_interval(row.due_at, now)
            age = format_interval(now, row.received_at)
            print(
                f"{row.message_id!s:>8} {age:>5} {row.size!s:>8} {row.state!s:<11} "
                f"{row.attempts!s:>5} {due:>5}  {row.next_hop!s:<24} {row.address}"
            )
            if row.last_error:
                print(f"{'':>15}({row.last_error})")
        print(f"-- {count} recipients")
    except sqlite3.Error as exc:
        raise CommandError(f"reading the queue failed: {translate(exc)}") from None
    finally:
        db.close()
    return EXIT_OK


def _print_shape(rows: Any, now: float) -> None:
    table: dict[str, Counter[int]] = defaultdict(Counter)
    for row in rows:
        # A damaged arrival time counts as the oldest: it is the one to look at.
        minutes = (now - row.received_at) / 60 if is_number(row.received_at) else math.inf
        bucket = next((i for i, limit in enumerate(SHAPE_BUCKETS) if minutes < limit), 9)
        table[str(row.next_hop)][bucket] += 1
    headers = [f"{b}" for b in SHAPE_BUCKETS] + [f"{SHAPE_BUCKETS[-1]}+"]
    width = max([len("TOTAL"), *(len(h) for h in table)])
    print(f"{'':<{width}} {'T':>6} " + " ".join(f"{h:>6}" for h in headers))
    totals: Counter[int] = Counter()
    for hop in sorted(table, key=lambda h: -sum(table[h].values())):
        counts = table[hop]
        totals.update(counts)
        print(
            f"{hop:<{width}} {sum(counts.values()):>6} "
            + " ".join(f"{counts[i]:>6}" for i in range(10))
        )
    print(
        f"{'TOTAL':<{width}} {sum(totals.values()):>6} "
        + " ".join(f"{totals[i]:>6}" for i in range(10))
    )


def run_show(args: argparse.Namespace) -> int:
    db = _open(args)
    try:
        row = db.conn.execute(
            "SELECT id, mts_id, originator, envelope, size, received_at, expires_at, state "
            "FROM messages WHERE id = ?",
            (args.message_id,),
        ).fetchone()
        if row is None:
            raise CommandError(f"no message {args.message_id} in the queue")
        _id, mts_id, originator, blob, size, received_at, expires_at, state = row
        print(f"Message {args.message_id}  ({state})")
        print(f"  MTS identifier: {mts_id}")
        print(f"  Originator:     {originator or '<>'}")
        print(f"  Size:           {size!r} bytes")
        print(f"  Arrived:        {format_time(received_at)}")
        print(f"  Expires:        {format_time(expires_at)}")
        content_type = None
        kind = ObjectKind.MESSAGE
        try:
            if not isinstance(blob, bytes):
                raise EnvelopeError(f"envelope is {type(blob).__name__}, not a blob")
            envelope = decode_envelope(blob)
        except EnvelopeError as exc:
            print(f"  Envelope:       DOES NOT DECODE: {exc}")
        else:
            content_type, kind = envelope.content_type, envelope.object_kind
            if kind is not ObjectKind.MESSAGE:
                print(f"  X.400 object:   {kind.value}")
            if envelope.content_length is not None:
                print(f"  Content length: {envelope.content_length} bytes")
            print(f"  Content type:   {envelope.content_type}")
            print(f"  Priority:       {envelope.priority.name.lower()}")
            if envelope.envid or envelope.ret:
                print(f"  DSN:            ENVID={envelope.envid} RET={envelope.ret}")
            for hop in envelope.trace:
                print(f"  Trace:          {hop.domain} {format_time(hop.arrival)} {hop.action}")
        print("  Recipients:")
        for r in db.queue_rows(message_id=args.message_id):
            print(
                f"    {r.recipient_id:>6} {r.state!s:<11} tries {r.attempts}  {r.next_hop}  "
                f"{r.address}"
            )
            if r.last_error:
                print(f"           ({r.last_error})")
            if r.report:
                print(f"           {r.report} report owed")
        if kind is ObjectKind.REPORT:
            _print_report(db, args.message_id)
        elif kind is ObjectKind.PROBE:
            print("  Content:        none (a probe asks whether it could be delivered)")
        elif content_type in IPM_CONTENT_TYPES:
            _print_ipm(db, args.message_id)
        else:
            _print_headers(db, args.message_id)
    finally:
        db.close()
    return EXIT_OK


def _print_headers(db: Database, message_id: int) -> None:
    content = db.conn.execute(
        "SELECT substr(data, 1, 4096) FROM content WHERE message_id = ?", (message_id,)
    ).fetchone()
    if content is None or not isinstance(content[0], bytes):
        print("  Content:        MISSING")
        return
    head = content[0].split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
    wanted = (b"from:", b"to:", b"subject:", b"date:", b"message-id:")
    lines = [ln for ln in head.splitlines() if ln.lower().startswith(wanted)]
    if lines:
        print("  Headers:")
        for line in lines:
            print(f"    {line.decode('utf-8', 'replace')}")


def _print_ipm(db: Database, message_id: int) -> None:
    """The heading of a P2/P22/P772 interpersonal message."""
    try:
        content = db.read_content(message_id)
        ipm = summarize_ipm(content)
    except (StoreError, ValueError) as exc:  # BERError is a ValueError
        print(f"  Content:        not a readable IPM: {exc}")
        return
    if ipm.kind != "ipm":
        print(f"  Content:        an interpersonal notification ({ipm.kind})")
        return
    print("  IPM heading:")
    for label, value in (
        ("This IPM", ipm.this_ipm),
        ("Originator", ipm.originator),
        ("Subject", ipm.subject),
    ):
        if value is not None:
            print(f"    {label + ':':<16}{value}")
    for label, names in (("To", ipm.primary), ("Cc", ipm.copy), ("Bcc", ipm.blind)):
        for name in names:
            print(f"    {label + ':':<16}{name}")
    for label, value in ipm.military:
        print(f"    {label + ':':<16}{value}")
    print(f"    {'Body parts:':<16}{', '.join(ipm.body_parts) or '(none)'}")


def _print_report(db: Database, message_id: int) -> None:
    """What an X.400 report says: about which message, and each recipient's fate."""
    try:
        report = decode_report_content(db.read_content(message_id))
    except (StoreError, ValueError) as exc:  # BERError is a ValueError
        print(f"  Content:        not a readable report: {exc}")
        return
    print("  Report:")
    print(f"    {'Subject:':<16}{report.subject_id}")
    for fate in report.recipients:
        print(f"    {fate.actual_recipient}: {fate.describe()}")
        if fate.supplementary:
            print(f"      ({fate.supplementary})")


def run_quarantine(args: argparse.Namespace) -> int:
    db = _open(args)
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
    targets, target = _targets(args)
    db = _open(args)
    try:
        with db.transaction():
            changed = admin.apply(db, action, targets, time.time())
    except sqlite3.Error as exc:
        raise CommandError(f"{action} failed: {translate(exc)}") from None
    finally:
        db.close()
    events.emit(events.QUEUE_ADMIN, action=action.value, count=changed, target=target)
    print(f"{action.value}: {changed} recipients changed")
    return EXIT_OK if changed or targets is None else EXIT_FAILED


def run_reroute(args: argparse.Namespace) -> int:
    config = load(args)
    intake = build_intake(config, SystemClock())
    targets, target = _targets(args)

    def choose(envelope: Envelope, index: int, old: str) -> str:
        try:
            current: NextHop | None = parse_next_hop(old)
        except ValueError:
            current = None  # a damaged hop is simply routed again
        return str(intake.reroute(envelope, index, current))

    db = _open(args, config)
    try:
        with db.transaction():
            result = admin.reroute(db, targets, choose, time.time())
    except sqlite3.Error as exc:
        raise CommandError(f"reroute failed: {translate(exc)}") from None
    finally:
        db.close()
    for moved in result.rerouted:
        events.emit(
            events.RECIPIENT_REROUTED,
            message_id=moved.message_id,
            recipient=moved.address,
            old=moved.old,
            new=moved.new,
        )
        print(f"{moved.message_id}: {moved.address}: {moved.old} -> {moved.new}")
    events.emit(events.QUEUE_ADMIN, action="reroute", count=result.routed, target=target)
    print(f"reroute: {result.routed} recipients routed again, {len(result.rerouted)} changed")
    if result.in_delivery:
        print(f"({result.in_delivery} being delivered now were left alone: run it again later)")
    return EXIT_OK if result.routed or targets is None else EXIT_FAILED
