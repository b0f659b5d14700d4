"""`waypost track`: find messages in the tracking journal by any of their identifiers and
print the life of each — received, routed, every attempt, delivered or reported — with
the identifiers the next MTA knows it by."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from waypost.cli.common import EXIT_FAILED, EXIT_OK, CommandError, add_config_option, load
from waypost.cli.queue_select import age
from waypost.service import ATS_RECORD_FILE
from waypost.tracking.ats_record import find_ats
from waypost.tracking.journal import Record
from waypost.tracking.query import Life, TrackQuery, search


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "track",
        help="follow messages through this MTA (the tracking journal)",
        description="Find messages by queue id, Message-ID, MTS identifier, the id the "
        "previous hop was given (`queued as …`), sender, recipient or time, and print the "
        "life of each. Conditions combine. Exit code 1 when nothing matches.",
    )
    add_config_option(parser)
    parser.add_argument("id", nargs="?", type=int, metavar="QUEUE_ID", help="this MTA's id")
    parser.add_argument("--message-id", dest="msgid", metavar="MSGID", help="RFC 5322 Message-ID")
    parser.add_argument("--mts-id", metavar="ID", help="X.400 MTS identifier (or SMTP queue id)")
    parser.add_argument("--remote-id", metavar="ID", help="the id the next hop gave it")
    parser.add_argument("--sender", metavar="PATTERN", help="address pattern (* ? @domain)")
    parser.add_argument("--recipient", metavar="PATTERN", help="address pattern (* ? @domain)")
    parser.add_argument("--since", type=when, metavar="TIME", help="ISO time, or an age: 2h")
    parser.add_argument("--until", type=when, metavar="TIME", help="ISO time, or an age: 10m")
    parser.add_argument("--limit", type=int, default=100, help="messages at most (100)")
    parser.add_argument("--json", action="store_true", help="one JSON record per line")
    ats = parser.add_argument_group(
        "the ATS record ([amhs]: every ATS message transferred, kept whole)",
        "With --ats, the ATS messages that match are printed whole instead: by --aftn "
        "address, --transmission-id, --mts-id, --since and --until.",
    )
    ats.add_argument("--ats", action="store_true", help="search the ATS record")
    ats.add_argument("--aftn", metavar="ADDRESS", help="originator or addressee (8 letters)")
    ats.add_argument("--transmission-id", metavar="ID", help="as on AFTN, e.g. ABC123")
    parser.set_defaults(run=run)


def when(text: str) -> float:
    """An ISO 8601 time (UTC unless it says otherwise) or an age before now (an argparse
    type)."""
    try:
        return time.time() - age(text)
    except argparse.ArgumentTypeError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: ISO 8601 (2026-12-04T10:00) or an age (2h)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def run(args: argparse.Namespace) -> int:
    config = load(args)
    if args.ats:
        return _run_ats(args, Path(config.server.data_dir) / ATS_RECORD_FILE)
    query = TrackQuery(
        message_id=args.id,
        msgid=args.msgid,
        mts_id=args.mts_id,
        remote_id=args.remote_id,
        sender=args.sender,
        recipient=args.recipient,
        since=args.since,
        until=args.until,
    )
    if query == TrackQuery():
        raise CommandError("say what to find: a queue id, --message-id, --mts-id, … or --since")
    path = Path(config.tracking.path)
    if not path.exists():
        raise CommandError(f"no tracking journal at {path} (tracking.enabled, nothing tracked yet)")
    try:
        lives = search(path, query, limit=max(1, args.limit))
    except sqlite3.Error as exc:
        raise CommandError(f"cannot read the tracking journal {path}: {exc}") from None
    for life in lives:
        if args.json:
            for record in life.records:
                print(json.dumps(as_json(record), ensure_ascii=False))
        else:
            print(describe(life))
    return EXIT_OK if lives else EXIT_FAILED


def _run_ats(args: argparse.Namespace, path: Path) -> int:
    """Print the ATS messages of the ATS record that match, each whole."""
    if not path.exists():
        raise CommandError(f"no ATS record at {path} ([amhs] enabled, nothing transferred yet)")
    try:
        found = find_ats(
            path,
            address=args.aftn.upper() if args.aftn else None,
            mts_id=args.mts_id,
            transmission_id=args.transmission_id,
            since=args.since,
            until=args.until,
            limit=max(1, args.limit),
        )
    except sqlite3.Error as exc:
        raise CommandError(f"cannot read the ATS record {path}: {exc}") from None
    for record in found:
        if args.json:
            doc = {"time": stamp(record.at), **dataclasses.asdict(record)}
            del doc["at"]
            print(json.dumps(doc, ensure_ascii=False))
            continue
        ids = [f"message {record.message_id}" if record.message_id is not None else ""]
        ids += [record.transmission_id or "", record.mts_id or ""]
        named = "  ".join(i for i in ids if i)
        print(f"{stamp(record.at)}  {record.direction:<3} {record.channel}  {named}")
        print(f"  {record.priority} {' '.join(record.addressees)}")
        print(
            f"  {record.filing_time} {record.originator}" + (f" {record.ohi}" if record.ohi else "")
        )
        for line in record.text.splitlines():
            print(f"  {line}")
        print()
    return EXIT_OK if found else EXIT_FAILED


def as_json(record: Record) -> dict[str, object]:
    doc: dict[str, object] = {"time": stamp(record.at), "kind": record.kind}
    for key in ("message_id", "mts_id", "msgid", "sender", "recipient", "next_hop"):
        value = getattr(record, key)
        if value is not None:
            doc[key] = value
    for key in ("remote_id", "linked_id"):
        value = getattr(record, key)
        if value is not None:
            doc[key] = value
    if record.detail:
        doc["detail"] = record.detail
    if record.fields:
        doc["fields"] = record.fields
    return doc


def stamp(at: float) -> str:
    moment = datetime.datetime.fromtimestamp(at, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def describe(life: Life) -> str:
    """A message's life as an operator reads it: a heading, then one line a step."""
    name = f"message {life.message_id}" if life.message_id is not None else "not stored"
    heading = [name]
    if life.mts_id:
        heading.append(f"mts-id {life.mts_id}")
    if life.msgid:
        heading.append(f"message-id {life.msgid}")
    if life.made_from is not None:
        heading.append(f"made from message {life.made_from}")
    lines = ["  ".join(heading)]
    for record in life.records:
        lines.append(f"  {stamp(record.at)}  {record.kind:<11} {step(record)}")
    return "\n".join(lines) + "\n"


def step(record: Record) -> str:
    """What one record says, in words."""
    parts: list[str] = []
    if record.kind == "received":
        parts.append(record.detail)
        if record.sender:
            parts.append(f"sender {record.sender}")
        extra = record.fields
        for key in ("size", "recipients", "tls", "auth"):
            if key in extra:
                parts.append(f"{key} {extra[key]}")
        return ", ".join(parts)
    if record.recipient:
        parts.append(f"to {record.recipient}")
    if record.next_hop:
        parts.append(f"via {record.next_hop}")
    text = " ".join(parts)
    if record.detail:
        text = f"{text}: {record.detail}" if text else record.detail
    if record.remote_id:
        text += f" [next hop's id {record.remote_id}]"
    if record.linked_id is not None and record.kind in ("report", "converted"):
        text += f" [message {record.linked_id}]"
    return text
