"""`waypost mailbox list [MAILBOX]` and `waypost mailbox show ID`: what local delivery
put in the Maildirs and the X.400 store, decoded (P1 envelope, IPM heading and text,
report outcomes) so that nobody needs `openssl asn1parse` to read a .p1 file."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from waypost import content_summary
from waypost.cli import content_view, queue_json
from waypost.cli.common import EXIT_OK, CommandError, add_config_option, load
from waypost.delivery.mailbox_reader import MAILDIR, Mailbox, StoredFile, Stores
from waypost.message import Envelope
from waypost.x400.ipm import summarize_ipm
from waypost.x400.p1_objects import decode_object
from waypost.x400.p1_report import decode_report_content


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "mailbox",
        help="read what was delivered locally",
        description="Read the local Maildirs and the X.400 store (read-only).",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        help="the mailboxes, or the messages of one",
        description="Without MAILBOX: every mailbox with its count of new and read messages. "
        "With MAILBOX (a local part, an O/R address or a directory name): one line per "
        "message — id, delivery time, size, originator, subject.",
    )
    listing.add_argument("mailbox", nargs="?", metavar="MAILBOX")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    listing.set_defaults(run=run_list)
    show = actions.add_parser(
        "show",
        help="one delivered message, decoded",
        description="A delivered message by the id `mailbox list` shows (or a file's path): "
        "an Internet message as it is; an X.400 message or report decoded — the P1 "
        "envelope, the IPM heading and the text of its body parts, or the report's "
        "outcome for each recipient.",
    )
    show.add_argument("ident", metavar="ID", help="the id from mailbox list, or a path")
    show.add_argument("--json", action="store_true", help="one JSON object")
    show.set_defaults(run=run_show)
    for sub in actions.choices.values():
        add_config_option(sub)


def _stores(args: argparse.Namespace) -> Stores:
    config = load(args)
    # The same places the MTA delivers to (service.py).
    maildir = Path(config.server.data_dir) / config.local.maildir
    return Stores(maildir, Path(config.local.x400_store))


def run_list(args: argparse.Namespace) -> int:
    stores = _stores(args)
    if args.mailbox is None:
        _list_mailboxes(stores.mailboxes(), args.json)
        return EXIT_OK
    box = stores.mailbox(args.mailbox)
    if box is None:
        raise CommandError(f"no mailbox {args.mailbox!r} (`waypost mailbox list` shows them)")
    files = box.files()
    if not args.json:
        print(f"{'ID':<44} {'DELIVERED':<19} {'SIZE':>8}  FROM / SUBJECT")
    for stored in files:
        originator, subject = _headline(stored)
        if args.json:
            queue_json.print_line({**_file_fields(stored), "from": originator, "subject": subject})
        else:
            print(f"{stored.id:<44} {_when(stored.mtime):<19} {stored.size:>8}  {originator}")
            print(f"{'':<75}{subject}")
    if not args.json:
        print(f"-- {len(files)} messages in {box.kind} mailbox {box.name}")
    return EXIT_OK


def _list_mailboxes(boxes: list[Mailbox], as_json: bool) -> None:
    if not as_json:
        print(f"{'KIND':<8} {'NEW':>6} {'READ':>6}  MAILBOX")
    for box in boxes:
        files = box.files()
        new = sum(1 for f in files if f.folder == "new")
        if as_json:
            queue_json.print_line(
                {"kind": box.kind, "mailbox": box.name, "new": new, "read": len(files) - new}
            )
        else:
            print(f"{box.kind:<8} {new:>6} {len(files) - new:>6}  {box.name}")
    if not as_json:
        print(f"-- {len(boxes)} mailboxes")


def run_show(args: argparse.Namespace) -> int:
    stored = _locate(args)
    try:
        data = stored.path.read_bytes()
    except OSError as exc:
        raise CommandError(f"cannot read {stored.path}: {exc.strerror or exc}") from None
    if stored.mailbox.kind == MAILDIR:
        if args.json:
            document = {**_file_fields(stored), "headers": content_summary.headers(data)}
            document["message"] = data.decode("utf-8", "replace")
            queue_json.print_line(document)
        else:
            content_view.print_body("internet", data)
        return EXIT_OK
    try:
        envelope, content = decode_object(data)
    except ValueError as exc:  # BERError, AddressError
        raise CommandError(f"{stored.path} is not a readable P1 object: {exc}") from None
    kind = content_summary.kind_of(envelope)
    if args.json:
        document = {**_file_fields(stored), **_envelope_document(envelope)}
        document.update(content_summary.document(kind, content))
        queue_json.print_line(document)
        return EXIT_OK
    _print_envelope(stored, envelope)
    print()
    if kind in ("ipm", "report"):
        content_view.print_body(kind, content)
    else:
        print(f"(content type {envelope.content_type}: {len(content)} octets, not decoded)")
    return EXIT_OK


def _locate(args: argparse.Namespace) -> StoredFile:
    stores = _stores(args)
    if "/" in args.ident:  # a path, given by the operator
        path = Path(args.ident)
        if not path.is_file():
            raise CommandError(f"no file {path}")
        kind = "x400" if path.suffix == ".p1" or ".p1:" in path.name else MAILDIR
        box = Mailbox(kind, path.parent.parent.name, path.parent.parent)
        stat = path.stat()
        return StoredFile(box, path.parent.name, path, stat.st_size, stat.st_mtime)
    stored = stores.find(args.ident)
    if stored is None:
        raise CommandError(f"no delivered message {args.ident!r} in any local mailbox")
    return stored


def _headline(stored: StoredFile) -> tuple[str, str]:
    """The originator and subject of a delivered file, for one line of a listing."""
    try:
        if stored.mailbox.kind == MAILDIR:
            with stored.path.open("rb") as file:
                head = file.read(16384)
            found = {"from": "", "subject": ""}
            for line in content_summary.headers(head):
                name, _, value = line.partition(":")
                if name.lower() in found and not found[name.lower()]:
                    found[name.lower()] = value.strip()
            return found["from"], found["subject"]
        envelope, content = decode_object(stored.path.read_bytes())
    except (OSError, ValueError) as exc:
        return "(unreadable)", str(exc)
    kind = content_summary.kind_of(envelope)
    try:
        if kind == "report":
            return envelope.originator or "(a report)", (
                f"report on {decode_report_content(content).subject_id}"
            )
        if kind == "ipm":
            ipm = summarize_ipm(content)
            return envelope.originator, ipm.subject or f"({ipm.kind}, no subject)"
    except ValueError as exc:
        return envelope.originator, f"(content not readable: {exc})"
    return envelope.originator, f"(content type {envelope.content_type})"


def _print_envelope(stored: StoredFile, envelope: Envelope) -> None:
    print(f"File:           {stored.path}")
    print(f"Mailbox:        {stored.mailbox.name} ({stored.folder})")
    print(f"Delivered:      {_when(stored.mtime)}")
    print(f"X.400 object:   {envelope.object_kind.value}")
    print(f"MTS identifier: {envelope.mts_id}")
    print(f"Originator:     {envelope.originator or '<>'}")
    for recipient in envelope.recipients:
        print(f"Recipient:      {recipient.address}")
    print(f"Content type:   {envelope.content_type}")
    print(f"Priority:       {envelope.priority.label}")
    for hop in envelope.trace:
        print(f"Trace:          {hop.domain} {_when(hop.arrival)} {hop.action}")


def _envelope_document(envelope: Envelope) -> dict[str, Any]:
    return {
        "mts_id": envelope.mts_id,
        "originator": envelope.originator,
        "recipients": [r.address for r in envelope.recipients],
        **queue_json.envelope_fields(envelope),
    }


def _file_fields(stored: StoredFile) -> dict[str, Any]:
    return {
        "id": stored.id,
        "kind": stored.mailbox.kind,
        "mailbox": stored.mailbox.name,
        "folder": stored.folder,
        "path": str(stored.path),
        "size": stored.size,
        "delivered": stored.mtime,
    }


def _when(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
