"""`waypost submit`: enqueue a message from a file or stdin, as `sendmail` does."""

from __future__ import annotations

import argparse
import email.utils
import os
import sys
import time
from pathlib import Path
from typing import Any

from waypost.address import (
    AddressError,
    ORAddress,
    canonical_address,
    format_slash,
    is_oraddress_text,
    parse_mailbox,
    parse_oraddress,
)
from waypost.amhs.ats import ATSHeader, ATSHeaderError, ATSMessage
from waypost.amhs.convert import filing_time
from waypost.amhs.priority import PriorityIndicator, parse_indicator
from waypost.arrival import Arrival, Source, UnroutableError
from waypost.cli import audit, queue_select
from waypost.cli.common import CommandError, add_config_option, load
from waypost.clock import SystemClock
from waypost.config import Config
from waypost.intake import record_queued
from waypost.message import ContentType, Envelope, Message, Priority, Recipient, new_mts_id
from waypost.mixer.address_map import AddressMapper
from waypost.service import ServiceError, prepare_data_dir
from waypost.setup.intake import build_intake, database_location
from waypost.setup.mixer import build_mapper
from waypost.setup.reload import lifetimes
from waypost.store.base import StoreError
from waypost.x400.ipm import build_ipm
from waypost.x400.ipm_bodies import FileTransfer
from waypost.x400.ipm_codec import encode_ipm

MAX_SUBMIT_BYTES = 64 * 1024 * 1024


def add_parser(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "submit",
        help="enqueue a message",
        description="Enqueue a message from FILE or standard input: RFC 5322 text for mail "
        "addresses; for an X.400 originator (an O/R address), a text that becomes the body "
        "of a P22 interpersonal message. It is durable in the MTA database when this "
        "command returns 0; a running Waypost delivers it. The database must exist (a "
        "Waypost has used this configuration) unless --create is given.",
    )
    add_config_option(parser)
    parser.add_argument(
        "--from",
        dest="originator",
        required=True,
        metavar="ADDR",
        help="the originator (envelope sender); '' for the null reverse path",
    )
    # One address per --to, never a list: a list would swallow the message file that
    # follows it (`--to bob msg.txt`), and a comma may be part of a quoted local part or of
    # an O/R address's value, so it cannot separate addresses either.
    parser.add_argument(
        "--to",
        dest="recipients",
        required=True,
        action="append",
        metavar="ADDR",
        help="a recipient: a mailbox or an X.400 O/R address; repeat --to for each recipient",
    )
    parser.add_argument(
        "--create",
        action="store_true",
        help="create the data directory and the MTA database when they do not exist yet "
        "(without it, a configuration whose database does not exist is refused: no Waypost "
        "would deliver what is queued there)",
    )
    parser.add_argument(
        "--subject",
        default="",
        help="with an X.400 originator: the subject of the P22 message the text is wrapped in",
    )
    parser.add_argument(
        "--priority",
        type=queue_select.priority,
        default=Priority.NORMAL,
        help="the message's X.411 priority: urgent, normal (the default) or non-urgent; the "
        "queue serves urgent messages first and each priority has its own lifetime",
    )
    ats = parser.add_argument_group(
        "ATS messages (ICAO Doc 9880 Part II)",
        "With an X.400 originator, --ats makes the text an ATS message: the ATS message "
        "header begins its text body part, and the envelope priority is the indicator's "
        "(SS urgent; DD, FF normal; GG, KK non-urgent).",
    )
    ats.add_argument(
        "--ats",
        metavar="PRIORITY",
        type=_indicator,
        help="the priority indicator: SS, DD, FF, GG or KK",
    )
    ats.add_argument(
        "--filing-time",
        metavar="DDHHMM",
        help="the filing time, UTC (default: now)",
    )
    ats.add_argument("--ohi", default="", help="the optional heading information")
    ats.add_argument(
        "--extended",
        action="store_true",
        help="the Extended ATS Message Service: the priority, filing time and OHI in IPM "
        "heading fields (precedence, authorization time, originator's reference) instead "
        "of a header in the text",
    )
    ats.add_argument(
        "--attach",
        action="append",
        default=[],
        metavar="FILE",
        help="carry FILE beside the text in a file-transfer body part (the Extended ATS "
        "Message Service: binary data such as IWXXM or BUFR); repeatable",
    )
    parser.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE|-",
        help="the message (default, or -: standard input)",
    )
    parser.set_defaults(run=run)


def _indicator(text: str) -> PriorityIndicator:
    """A priority indicator (an argparse type)."""
    try:
        return parse_indicator(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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


def _x400_message(
    args: argparse.Namespace,
    originator: str,
    recipients: list[str],
    text: bytes,
    mapper: AddressMapper | None,
) -> tuple[str, str, bytes]:
    """An X.400 originator: the text becomes the ia5-text body of a P22 IPM. Mail
    recipients are named in its heading by their O/R addresses under the MIXER gateway's
    mapping (RFC 2156 §4), and the gateway converts the message for them."""
    heading_recipients = recipients
    if not all(is_oraddress_text(r) for r in recipients):
        if mapper is None:
            raise CommandError(
                "an X.400 originator needs X.400 recipients, or the MIXER gateway "
                "([mixer] enabled = true) to reach mail recipients"
            )
        try:
            heading_recipients = [
                r
                if is_oraddress_text(r)
                else format_slash(mapper.to_x400(parse_mailbox(r)).oraddress)
                for r in recipients
            ]
        except AddressError as exc:
            raise CommandError(f"cannot map a mail recipient to an O/R address: {exc}") from None
    domain = parse_oraddress(originator)
    gdi = ORAddress(country=domain.country, admd=domain.admd, prmd=domain.prmd)
    local = new_mts_id("x").partition("@")[0]
    try:
        body = text.decode("utf-8")
    except UnicodeDecodeError:
        raise CommandError("the text of an X.400 message must be UTF-8 (sent as IA5)") from None
    if args.ats is not None:
        content = _ats_ipm(args, originator, heading_recipients, body, local)
        return f"{gdi};{local}", ContentType.P22, content
    if args.filing_time or args.ohi or args.attach or args.extended:
        raise CommandError(
            "--filing-time, --ohi, --attach and --extended make an ATS message: give --ats"
        )
    try:
        ipm = build_ipm(
            originator=originator,
            recipients=heading_recipients,
            subject=args.subject or "",
            text=body,
            ipm_id=local,
        )
    except (AddressError, ValueError) as exc:
        raise CommandError(f"cannot build the P22 message: {exc}") from None
    return f"{gdi};{local}", ContentType.P22, ipm


def _ats_ipm(
    args: argparse.Namespace, originator: str, recipients: list[str], text: str, local: str
) -> bytes:
    """The P22 IPM of an ATS message: its header, the text, and the files attached."""
    try:
        header = ATSHeader(args.ats, args.filing_time or filing_time(time.time()), args.ohi)
    except ATSHeaderError as exc:
        raise CommandError(f"ATS message header: {exc}") from None
    files = []
    for path in args.attach:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {path}: {exc.strerror or exc}") from None
        files.append(FileTransfer(data=data, filename=Path(path).name))
    message = ATSMessage(
        header=header,
        originator=originator,
        recipients=tuple(recipients),
        text=text,
        subject=args.subject or "",
        files=tuple(files),
        extended=args.extended,
    )
    try:
        return encode_ipm(message.ipm(local))
    except ValueError as exc:
        raise CommandError(f"cannot build the ATS message: {exc}") from None


def _refuse_without_database(config: Config) -> None:
    """A database that does not exist is one no Waypost reads: mail queued there would be
    stranded (a wrong -c, a relative path, a typo), so it is created only on request."""
    where = database_location(config)
    if not where.is_sqlite:
        return  # a shared database: DatabaseLocation.open refuses one that has no schema
    db_path = where.target
    if not os.path.exists(db_path):
        raise CommandError(
            f"no MTA database at {db_path}: no Waypost has used the data directory "
            f"{config.server.data_dir} of {config.source}; check -c and $WAYPOST_CONFIG, "
            "or give --create to create it"
        )


def run(args: argparse.Namespace) -> int:
    config = load(args)
    originator = _canonical(args.originator, "originator") if args.originator else ""
    recipients = [_canonical(r, "recipient") for r in args.recipients]
    if not args.create:
        _refuse_without_database(config)
    content = _read(args.file)
    if is_oraddress_text(originator):
        mapper = build_mapper(config) if config.mixer.enabled else None
        mts_id, content_type, content = _x400_message(args, originator, recipients, content, mapper)
    else:
        mts_id, content_type = new_mts_id(config.server.hostname), ContentType.INTERNET
        content = _with_trace_headers(content, config, mts_id)
    envelope = Envelope(
        mts_id=mts_id,
        originator=originator,
        recipients=[
            Recipient(address=r, originally_specified_number=i + 1)
            for i, r in enumerate(recipients)
        ],
        content_type=content_type,
        priority=args.ats.envelope_priority if args.ats is not None else args.priority,
        arrival=time.time(),
    )
    message = Message(envelope=envelope, content=content)
    try:
        uid, user = audit.operator()
        arrival = Arrival(source=Source.SUBMIT, peer=f"{user} (uid {uid})")
        new = build_intake(config, SystemClock()).admit(message, arrival)
    except UnroutableError as exc:
        raise CommandError(f"not queued: no route for {exc}") from None
    if args.create:
        try:
            prepare_data_dir(config.server.data_dir)
        except ServiceError as exc:
            raise CommandError(f"not queued: {exc}") from None
    try:
        db = database_location(config).open(create_schema=args.create)
        try:
            with db.transaction():
                # (admit returns None only for P1 arrivals: a submission always has recipients)
                assert new is not None
                message_id = db.enqueue(new, time.time(), lifetimes(config))
        finally:
            db.close()
    except StoreError as exc:
        raise CommandError(f"not queued: the MTA database refused it: {exc}") from None
    audit.track(config)
    record_queued(message_id, new, arrival)
    print(f"queued as {message_id} ({mts_id})")
    return 0
