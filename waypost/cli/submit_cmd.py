"""`waypost submit`: enqueue a message from a file or stdin, as `sendmail` does."""

from __future__ import annotations

import argparse
import email.utils
import os
import sys
import time
from typing import Any

from waypost.address import AddressError, canonical_address
from waypost.cli.common import CommandError, add_config_option, load
from waypost.config import Config, build_routing_table
from waypost.message import Envelope, Message, Recipient, new_mts_id
from waypost.queue.submit import UnroutableError, route_message
from waypost.service import database_path, prepare_data_dir
from waypost.store.base import StoreError
from waypost.store.database import Database

MAX_SUBMIT_BYTES = 64 * 1024 * 1024


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "submit",
        help="enqueue a message",
        description="Enqueue a message (RFC 5322 text) from FILE or standard input. "
        "It is durable in the MTA database when this command returns 0; a running "
        "Waypost delivers it.",
    )
    add_config_option(parser)
    parser.add_argument(
        "--from",
        dest="originator",
        required=True,
        metavar="ADDR",
        help="the originator (envelope sender); '' for the null reverse path",
    )
    parser.add_argument(
        "--to",
        dest="recipients",
        required=True,
        nargs="+",
        action="extend",
        metavar="ADDR",
        help="recipients: mailboxes or X.400 O/R addresses",
    )
    parser.add_argument("file", nargs="?", default="-", metavar="FILE|-")
    parser.set_defaults(run=run)


def _read(source: str) -> bytes:
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_SUBMIT_BYTES + 1)
        else:
            with open(source, "rb") as f:
                data = f.read(MAX_SUBMIT_BYTES + 1)
    except OSError as exc:
        raise CommandError(f"cannot read {source}: {exc.strerror or exc}") from None
    if len(data) > MAX_SUBMIT_BYTES:
        raise CommandError(f"message is larger than {MAX_SUBMIT_BYTES} bytes")
    return data


def _canonical(address: str, role: str) -> str:
    try:
        return canonical_address(address)
    except AddressError as exc:
        raise CommandError(f"{role} {address!r}: {exc}") from None


def _with_trace_headers(content: bytes, config: Config, mts_id: str) -> bytes:
    """A Received: line, and Date:/Message-ID: when missing, as Postfix's pickup adds them."""
    head_end = content.find(b"\n\n")
    crlf_end = content.find(b"\r\n\r\n")
    header_block = content[: min(x for x in (head_end, crlf_end, len(content)) if x >= 0)].lower()
    newline = b"\r\n" if b"\r\n" in content[:1000] or not content else b"\n"
    now = email.utils.formatdate(time.time(), localtime=True)
    added = [
        f"Received: by {config.server.hostname} (Waypost submit, uid {os.getuid()}) "
        f"id {mts_id}; {now}".encode()
    ]
    if not header_block.startswith(b"date:") and b"\ndate:" not in header_block:
        added.append(f"Date: {now}".encode())
    if not header_block.startswith(b"message-id:") and b"\nmessage-id:" not in header_block:
        added.append(f"Message-ID: <{mts_id}>".encode())
    return newline.join(added) + newline + content


def run(args: argparse.Namespace) -> int:
    config = load(args)
    originator = _canonical(args.originator, "originator") if args.originator else ""
    recipients = [_canonical(r, "recipient") for r in args.recipients]
    content = _read(args.file)
    mts_id = new_mts_id(config.server.hostname)
    envelope = Envelope(
        mts_id=mts_id,
        originator=originator,
        recipients=[
            Recipient(address=r, originally_specified_number=i + 1)
            for i, r in enumerate(recipients)
        ],
        arrival=time.time(),
    )
    message = Message(envelope=envelope, content=_with_trace_headers(content, config, mts_id))
    try:
        new = route_message(message, build_routing_table(config))
    except UnroutableError as exc:
        raise CommandError(f"not queued: no route for {exc}") from None
    prepare_data_dir(config.server.data_dir)
    try:
        db = Database.open(database_path(config))
        try:
            with db.transaction():
                message_id = db.enqueue(new, time.time(), config.queue.max_lifetime)
        finally:
            db.close()
    except StoreError as exc:
        raise CommandError(f"not queued: the MTA database refused it: {exc}") from None
    print(f"queued as {message_id} ({mts_id})")
    return 0
