"""`waypost queue show ID`: one message in full — envelope, recipients and a summary of
its content; `--json` as one JSON object, `--body` the content itself (`postcat -q -b`)."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from waypost import content_summary
from waypost.cli import content_view, queue_json, queue_select
from waypost.cli.common import EXIT_OK, CommandError, format_time
from waypost.message import Envelope, ObjectKind
from waypost.store.base import StoreError
from waypost.store.database import Database
from waypost.x400.ipm import summarize_ipm


def add_parser(actions: Any) -> None:
    show: argparse.ArgumentParser = actions.add_parser(
        "show",
        help="show one message in full",
        description="One message: envelope, recipients and their states, and a summary of "
        "the content (Internet headers, an IPM's heading, what a report says). --body "
        "prints the content instead: an Internet message as stored, an IPM's heading and "
        "text body parts, a report's outcome.",
    )
    show.add_argument("message_id", type=int, metavar="ID")
    form = show.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="one JSON object")
    form.add_argument("--body", action="store_true", help="the content, like postcat -q -b")
    show.set_defaults(run=run_show)


def run_show(args: argparse.Namespace) -> int:
    db = queue_select.open_queue(args)
    try:
        row = db.conn.execute(
            "SELECT id, mts_id, originator, envelope, size, received_at, expires_at, state "
            "FROM messages WHERE id = ?",
            (args.message_id,),
        ).fetchone()
        if row is None:
            raise CommandError(f"no message {args.message_id} in the queue")
        envelope, problem = content_summary.decoded_envelope(row[3])
        kind = content_summary.kind_of(envelope)
        content = _content(db, args.message_id)
        if args.body:
            if content is None:
                raise CommandError(f"message {args.message_id} has no content in the queue")
            content_view.print_body(kind, content)
        elif args.json:
            _print_json(db, row, envelope, problem, kind, content)
        else:
            _print_text(db, row, envelope, problem, kind, content)
    finally:
        db.close()
    return EXIT_OK


def _content(db: Database, message_id: int) -> bytes | None:
    try:
        return db.read_content(message_id)
    except StoreError:
        return None


def _print_text(
    db: Database,
    row: tuple[Any, ...],
    envelope: Envelope | None,
    problem: str | None,
    kind: str,
    content: bytes | None,
) -> None:
    message_id, mts_id, originator, _blob, size, received_at, expires_at, state = row
    print(f"Message {message_id}  ({state})")
    print(f"  MTS identifier: {mts_id}")
    print(f"  Originator:     {originator or '<>'}")
    print(f"  Size:           {size!r} bytes")
    print(f"  Arrived:        {format_time(received_at)}")
    print(f"  Expires:        {format_time(expires_at)}")
    if envelope is None:
        print(f"  Envelope:       DOES NOT DECODE: {problem}")
    else:
        if envelope.object_kind is not ObjectKind.MESSAGE:
            print(f"  X.400 object:   {envelope.object_kind.value}")
        if envelope.content_length is not None:
            print(f"  Content length: {envelope.content_length} bytes")
        print(f"  Content type:   {envelope.content_type}")
        print(f"  Priority:       {envelope.priority.label}")
        if envelope.envid or envelope.ret:
            print(f"  DSN:            ENVID={envelope.envid} RET={envelope.ret}")
        for hop in envelope.trace:
            print(f"  Trace:          {hop.domain} {format_time(hop.arrival)} {hop.action}")
    print("  Recipients:")
    for r in db.queue_rows(message_id=message_id):
        print(
            f"    {r.recipient_id:>6} {r.state!s:<11} tries {r.attempts}  {r.next_hop}  {r.address}"
        )
        if r.last_error:
            print(f"           ({r.last_error})")
        if r.report:
            print(f"           {r.report} report owed")
    content_view.print_summary(kind, content)


def _print_json(
    db: Database,
    row: tuple[Any, ...],
    envelope: Envelope | None,
    problem: str | None,
    kind: str,
    content: bytes | None,
) -> None:
    message_id, mts_id, originator, _blob, size, received_at, expires_at, state = row
    document: dict[str, Any] = {
        "id": message_id,
        "mts_id": mts_id,
        "sender": originator,
        "size": size,
        "arrival_time": received_at,
        "expires_at": expires_at,
        "state": state,
    }
    if envelope is None:
        document["envelope_error"] = problem
    else:
        document.update(queue_json.envelope_fields(envelope))
    document["recipients"] = [queue_json.recipient(r) for r in db.queue_rows(message_id=message_id)]
    document.update(content_summary.document(kind, content))
    header = None
    if kind == "ipm" and content is not None:
        with contextlib.suppress(ValueError):
            header = content_view.ats_header(summarize_ipm(content).text)
    if header is not None:
        document["ats"] = {
            "priority": header.priority.value,
            "filing_time": header.filing_time,
            "ohi": header.ohi,
        }
    if content is None and kind != "probe":
        document["content_error"] = "missing"
    queue_json.print_line(document)
