"""X.411 delivery and non-delivery reports ⇄ RFC 3464 delivery status notifications, as
RFC 2156 §5.3 gateways them: per recipient, reason/diagnostic ⇄ status code, returned content.

Addresses cross through the functions the caller gives (RFC 2156 §4 is the address
mapper's); the returned content crosses through a converter the caller gives too (the
content mapping is RFC 2156 §5 / RFC 2157's), so this module depends on neither.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.utils import format_datetime, parsedate_to_datetime

from waypost.message import Envelope, ReportRequest
from waypost.smtp.xtext import XtextError, decode_xtext
from waypost.x400.p1_report import (
    DIAGNOSTICS,
    REASONS,
    ReportContent,
    ReportedRecipient,
    printable,
)
from waypost.x400.report_maker import nondelivery_codes

AddressMapper = Callable[[str], str]
ContentConverter = Callable[[bytes], bytes]

# X.411 §8.3.1.2.1.x non-delivery diagnostic → the RFC 3463 status code of the same
# meaning (§3.1 addressing, §3.2 mailbox, §3.3 mail system, §3.4 network and routing,
# §3.5 protocol, §3.6 media and content, §3.7 security and policy). Reports are about
# failures, so every code is of class 5 (permanent).
DIAGNOSTIC_STATUS: dict[int, str] = {
    0: "5.1.1",  # unrecognised-OR-name: bad destination mailbox address
    1: "5.1.4",  # ambiguous-OR-name: destination mailbox address ambiguous
    2: "5.4.5",  # mts-congestion: mail system congestion
    3: "5.4.6",  # loop-detected: routing loop detected
    4: "5.2.1",  # recipient-unavailable: mailbox disabled
    5: "5.4.7",  # maximum-time-expired: delivery time expired
    6: "5.6.1",  # encoded-information-types-unsupported: media not supported
    7: "5.3.4",  # content-too-long: message too big for system
    8: "5.6.3",  # conversion-impractical: conversion required but not supported
    9: "5.6.2",  # implicit-conversion-prohibited: conversion required and prohibited
    10: "5.6.3",  # implicit-conversion-not-subscribed
    11: "5.5.4",  # invalid-arguments: invalid command arguments
    12: "5.6.0",  # content-syntax-error: other media error
    13: "5.3.4",  # size-constraint-violation
    14: "5.5.0",  # protocol-violation: other protocol status
    15: "5.6.1",  # content-type-not-supported: media not supported
    16: "5.5.3",  # too-many-recipients
    17: "5.7.0",  # no-bilateral-agreement: other security or policy status
    18: "5.3.3",  # unsupported-critical-function: system not capable of selected features
    19: "5.6.2",  # conversion-with-loss-prohibited
    20: "5.6.2",  # line-too-long (conversion would lose information, loss prohibited)
    21: "5.6.2",  # page-split
    22: "5.6.2",  # pictorial-symbol-loss
    23: "5.6.2",  # punctuation-symbol-loss
    24: "5.6.2",  # alphabetic-character-loss
    25: "5.6.2",  # multiple-information-loss
    26: "5.1.6",  # recipient-reassignment-prohibited: mailbox moved, no forwarding
    27: "5.4.6",  # redirection-loop-detected: routing loop detected
    28: "5.2.4",  # dl-expansion-prohibited: mailing list expansion problem
    29: "5.7.2",  # no-dl-submit-permission: mailing list expansion prohibited
    30: "5.2.4",  # dl-expansion-failure
    31: "5.6.0",  # physical-rendition-attributes-not-supported
    35: "5.1.1",  # undeliverable-mail-recipient-unknown
    38: "5.7.1",  # undeliverable-mail-recipient-refused-to-accept
    40: "5.1.6",  # undeliverable-mail-recipient-changed-address-permanently
    46: "5.7.0",  # secure-messaging-error
    47: "5.6.3",  # unable-to-downgrade
}
# X.411 non-delivery reason, when no diagnostic says more.
REASON_STATUS: dict[int, str] = {
    0: "5.4.0",  # transfer-failure: other network or routing status
    1: "5.4.4",  # unable-to-transfer: unable to route
    2: "5.6.3",  # conversion-not-performed
    3: "5.6.0",  # physical-rendition-not-performed
    4: "5.1.0",  # physical-delivery-not-performed: other address status
    5: "5.7.1",  # restricted-delivery: delivery not authorised
    6: "5.4.3",  # directory-operation-unsuccessful: directory server failure
    7: "5.3.0",  # deferred-delivery-not-performed: other mail system status
    8: "5.7.0",  # transfer-failure-for-security-reason
}
# Diagnostics 32-45 (physical delivery) without an entry above are address problems.
_PHYSICAL_DELIVERY = range(32, 46)

# RFC 3464 §2.1.2 address type and the MTA name and diagnostic types for X.400, as
# RFC 3464 §9.2 and RFC 2156 use them.
X400_TYPE = "x400"
X400_DIAGNOSTIC_TYPE = "X-400"

# What a DSN has no field for travels in X400-* extension fields (RFC 3464 §2.4 allows
# them), named as RFC 2156 names the X.400 report fields: per message the conversion
# date and the subject's submission identifier, content type and encoded information
# types; per recipient the O/R name, its originally-specified number, the last trace
# time, the supplementary information and the intended recipient.
_SUBJECTS = {True: "Undelivered Mail Returned to Sender", False: "Successful Mail Delivery Report"}
_CODE = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_NEWLINES = re.compile(rb"\r\n|\r|\n")


class DSNError(ValueError):
    """A DSN that cannot be read as a report; the message names the field and why."""


def status_for(reason: int | None, diagnostic: int | None) -> str:
    """The RFC 3463 status code for an X.411 non-delivery reason and diagnostic."""
    if diagnostic is not None:
        found = DIAGNOSTIC_STATUS.get(diagnostic)
        if found is not None:
            return found
        if diagnostic in _PHYSICAL_DELIVERY:
            return "5.1.0"
    return REASON_STATUS.get(reason if reason is not None else 0, "5.0.0")


def codes_for(status: str) -> tuple[int, int | None]:
    """(reason, diagnostic) for an RFC 3463 status code: the pairing Waypost's own X.400
    reports use (waypost.x400.report_maker), so a DSN crosses as the report Waypost makes."""
    return nondelivery_codes(status)


# --- X.400 → Internet: a report becomes a DSN -----------------------------------------


def report_to_dsn(
    *,
    envelope: Envelope,
    content: ReportContent,
    or_to_mail: AddressMapper,
    gateway: str,
    to: str | None = None,
    returned_message: bytes | None = None,
    now: float | None = None,
) -> bytes:
    """An RFC 3464 DSN (multipart/report; report-type=delivery-status) for an X.411
    report, from the report's envelope (decode_report_envelope) and content.

    `to` is the mail address the DSN goes to (default: the report's destination, mapped).
    `returned_message` is the subject message's returned content already converted to
    RFC 5322 (when the report returned it), sent as the third part. CRLF line endings.
    """
    now = time.time() if now is None else now
    if not content.recipients:
        raise DSNError("a report without recipients has nothing to say")
    destination = to or or_to_mail(envelope.recipients[0].address)
    failed = any(not r.delivered for r in content.recipients)
    # RFC 3464 §2.2.2-§2.2.3: the foreign MTA that made the report is the Reporting-MTA,
    # the gateway that turned it into a DSN the DSN-Gateway.
    origin = envelope.trace[0].domain if envelope.trace else gateway
    message_fields = [
        ("Reporting-MTA", f"{X400_TYPE}; {_line(origin)}"),
        ("DSN-Gateway", f"dns; {_line(gateway)}"),
    ]
    if content.content_id is not None:
        # The gateway carries ENVID as the content identifier (RFC 2156 §5.1); RFC 3464
        # §2.2.1 gives it back as Original-Envelope-Id.
        message_fields.append(("Original-Envelope-Id", _line(content.content_id)))
    message_fields += [
        ("X400-Conversion-Date", _date(now)),
        ("X400-Subject-Submission-Identifier", _line(content.subject_id)),
    ]
    if content.content_type is not None:
        message_fields.append(("X400-Content-Type", _line(content.content_type)))
    if content.eits:
        message_fields.append(("X400-Original-Encoded-Information-Types", ", ".join(content.eits)))
    blocks = [message_fields] + [_recipient_block(r, or_to_mail) for r in content.recipients]
    # RFC 3464 §2.1: blocks of fields separated by one blank line.
    status = "\r\n".join(
        "".join(f"{name}: {value}\r\n" for name, value in block) for block in blocks
    ).encode("ascii", "replace")
    text = _explanation(content, or_to_mail, gateway, failed)
    parts = [
        ("Content-Type: text/plain; charset=us-ascii", text),
        ("Content-Type: message/delivery-status", status),
    ]
    if returned_message is not None:
        body = _NEWLINES.sub(b"\r\n", returned_message)
        eight_bit = not body.isascii()
        parts.append(
            (
                "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: "
                + ("8bit" if eight_bit else "7bit"),
                body if body.endswith(b"\r\n") else body + b"\r\n",
            )
        )
    boundary = f"=_waypost_report_{os.urandom(12).hex()}"
    head = [
        f"Date: {_date(now)}",
        f'From: "Mail Delivery System" <MAILER-DAEMON@{_line(gateway)}>',
        f"Subject: {_SUBJECTS[failed]}",
        f"To: <{_line(destination)}>",
        f"Message-ID: <{int(now):x}.{os.urandom(8).hex()}@{_line(gateway)}>",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary="{boundary}"',
    ]
    out = bytearray(("\r\n".join(head) + "\r\n\r\n").encode())
    for part_head, body in parts:
        out += f"--{boundary}\r\n{part_head}\r\n\r\n".encode() + body + b"\r\n"
    out += f"--{boundary}--\r\n".encode()
    return bytes(out)


def _recipient_block(
    recipient: ReportedRecipient, or_to_mail: AddressMapper
) -> list[tuple[str, str]]:
    # RFC 3464 §2.3: the actual recipient as the mail address it maps to, the O/R name
    # beside it so that nothing the report said is lost.
    block = [
        ("Final-Recipient", f"rfc822; {_line(or_to_mail(recipient.actual_recipient))}"),
        ("X400-Recipient", _line(recipient.actual_recipient)),
        ("X400-Originally-Specified-Recipient-Number", str(recipient.originally_specified_number)),
    ]
    if recipient.delivered_at is not None:
        block += [
            ("Action", "delivered"),
            ("Status", "2.0.0"),
            ("Last-Attempt-Date", _date(recipient.delivered_at)),
        ]
    else:
        reason, diagnostic = recipient.reason, recipient.diagnostic
        codes = f"{reason}" if diagnostic is None else f"{reason} {diagnostic}"
        names = _name(reason, REASONS) + (
            "" if diagnostic is None else f", {_name(diagnostic, DIAGNOSTICS)}"
        )
        block += [
            ("Action", "failed"),
            ("Status", status_for(reason, diagnostic)),
            # RFC 3464 §2.3.6: the foreign system's own codes, in its diagnostic type.
            ("Diagnostic-Code", f"{X400_DIAGNOSTIC_TYPE}; {codes} ({names})"),
        ]
    block.append(("X400-Last-Trace", _date(recipient.arrival)))
    if recipient.supplementary:
        block.append(("X400-Supplementary-Info", _line(recipient.supplementary)))
    if recipient.intended_recipient is not None:
        block.append(("X400-Intended-Recipient", _line(recipient.intended_recipient)))
    return block


def _explanation(
    content: ReportContent, or_to_mail: AddressMapper, gateway: str, failed: bool
) -> bytes:
    lines = [
        f"This is the X.400 gateway at {_line(gateway)}, passing on a report from X.400.",
        "",
        "Your message could not be delivered to one or more of its recipients."
        if failed
        else "Your message was delivered to the recipients listed below.",
        "",
    ]
    for recipient in content.recipients:
        address = or_to_mail(recipient.actual_recipient)
        lines.append(f"<{_line(address)}>: {recipient.describe()}")
        if recipient.supplementary:
            lines.append(f"    {_line(recipient.supplementary)}")
    return ("\r\n".join(lines) + "\r\n").encode("ascii", "replace")


def _name(code: int | None, table: tuple[str, ...]) -> str:
    if code is None:
        return "unspecified"
    return table[code] if 0 <= code < len(table) else f"code {code}"


def _line(text: str) -> str:
    """One line of printable text: a value from X.400 never breaks the DSN's syntax."""
    return "".join(c if c.isprintable() else " " for c in text).strip()


def _date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC))


# --- Internet → X.400: a DSN becomes a report's content -------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DSNRecipient:
    """One per-recipient block of a DSN, as read (RFC 3464 §2.3)."""

    final_recipient: str
    action: str
    status: str
    original_recipient: str | None = None
    diagnostic: str | None = None
    last_attempt: float | None = None


def read_dsn(dsn: bytes | Message) -> tuple[Message, list[DSNRecipient], Message | None]:
    """(per-message fields, recipient blocks, returned message or None) of a DSN;
    raises DSNError naming what is missing or malformed."""
    message = (
        dsn
        if isinstance(dsn, Message)
        else email.message_from_bytes(dsn, policy=email.policy.default)
    )
    if message.get_content_type() != "multipart/report":
        raise DSNError(f"Content-Type: {message.get_content_type()} is not multipart/report")
    report_type = str(message.get_param("report-type", "")).lower()
    if report_type not in ("delivery-status", "global-delivery-status"):
        raise DSNError(f"Content-Type: report-type {report_type!r} is not delivery-status")
    status_part: Message | None = None
    returned: Message | None = None
    payload = message.get_payload()
    for part in payload if isinstance(payload, list) else []:
        if not isinstance(part, Message):
            continue
        kind = part.get_content_type()
        if kind in ("message/delivery-status", "message/global-delivery-status"):
            status_part = part
        elif kind in ("message/rfc822", "message/global") and status_part is not None:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                returned = inner[0]
    if status_part is None:
        raise DSNError("no message/delivery-status part")
    found = status_part.get_payload()
    # Blank lines at the end read as empty blocks: they say nothing.
    blocks = (
        [b for b in found if isinstance(b, Message) and b.keys()] if isinstance(found, list) else []
    )
    if len(blocks) < 2:
        raise DSNError("message/delivery-status: no per-recipient fields")
    recipients = [_read_block(index, block) for index, block in enumerate(blocks[1:], 1)]
    return blocks[0], recipients, returned


def _read_block(index: int, block: Message) -> DSNRecipient:
    where = f"message/delivery-status block {index}"
    final = block.get("Final-Recipient")
    action = block.get("Action")
    status = block.get("Status")
    if final is None or action is None or status is None:
        raise DSNError(f"{where}: Final-Recipient, Action and Status are required (RFC 3464 §2.3)")
    code = str(status).split()[0] if str(status).split() else ""
    if not _CODE.fullmatch(code):
        raise DSNError(f"{where}: Status {str(status)!r} is not an RFC 3463 code")
    original = block.get("Original-Recipient")
    diagnostic = block.get("Diagnostic-Code")
    attempt = block.get("Last-Attempt-Date")
    return DSNRecipient(
        final_recipient=_typed_address(where, "Final-Recipient", str(final)),
        original_recipient=None if original is None else str(original).strip(),
        action=str(action).strip().lower(),
        status=code,
        diagnostic=None if diagnostic is None else " ".join(str(diagnostic).split()),
        last_attempt=None
        if attempt is None
        else _timestamp(where, "Last-Attempt-Date", str(attempt)),
    )


def _typed_address(where: str, name: str, value: str) -> str:
    _, separator, address = value.partition(";")
    if not separator or not address.strip():
        raise DSNError(f"{where}: {name} {value!r} is not address-type; address")
    return address.strip()


def _timestamp(where: str, name: str, value: str) -> float:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise DSNError(f"{where}: {name} {value!r} is not an RFC 5322 date-time") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def dsn_to_report(
    dsn: bytes | Message,
    *,
    mail_to_or: AddressMapper,
    subject_id: str,
    recipients: Sequence[str] = (),
    content_return_requested: bool = False,
    mail_to_content: ContentConverter | None = None,
    now: float | None = None,
) -> ReportContent:
    """The X.411 ReportContent for an RFC 3464 DSN about a message that crossed the
    gateway from X.400 (`subject_id`: its MTS identifier).

    Each failed recipient is non-delivered with the reason and diagnostic of its status;
    delivered, relayed and expanded ones are delivered; delayed ones are left out (X.400
    has no delay report). `recipients` are the subject's O/R recipients in order: a
    recipient found there keeps its originally-specified number. The returned message
    comes back (through `mail_to_content`) when the originator asked for content return.
    """
    now = time.time() if now is None else now
    fields, blocks, returned = read_dsn(dsn)
    arrival_field = fields.get("Arrival-Date")
    arrival = (
        _timestamp("per-message fields", "Arrival-Date", str(arrival_field))
        if arrival_field
        else now
    )
    reported: list[ReportedRecipient] = []
    for block in blocks:
        if block.action == "delayed":
            continue
        actual = _recipient_or(block, mail_to_or)
        number = recipients.index(actual) + 1 if actual in recipients else len(reported) + 1
        delivered = block.action in ("delivered", "relayed", "expanded")
        if not delivered and block.action != "failed":
            raise DSNError(f"Action {block.action!r} for {block.final_recipient} is not RFC 3464's")
        reason, diagnostic = (None, None) if delivered else codes_for(block.status)
        detail = _detail(block)
        reported.append(
            ReportedRecipient(
                actual_recipient=actual,
                originally_specified_number=number,
                arrival=arrival,
                report_request=ReportRequest.ALWAYS if delivered else ReportRequest.NON_DELIVERY,
                delivered_at=(block.last_attempt or now) if delivered else None,
                reason=reason,
                diagnostic=diagnostic,
                supplementary=printable(detail),
            )
        )
    if not reported:
        raise DSNError("the DSN reports only delays, which X.400 has no report for")
    returned_content = None
    if returned is not None and content_return_requested and mail_to_content is not None:
        returned_content = mail_to_content(returned.as_bytes(policy=email.policy.SMTP))
    envid = fields.get("Original-Envelope-Id")
    return ReportContent(
        subject_id=subject_id,
        recipients=tuple(reported),
        content_id=None if envid is None else printable(str(envid).strip(), 16),
        returned_content=returned_content,
    )


def _detail(block: DSNRecipient) -> str:
    """The supplementary information: the diagnostic's text (its type dropped), led by the
    status code unless the text gives it."""
    if not block.diagnostic:
        return block.status
    _, separator, text = block.diagnostic.partition(";")
    text = text.strip() if separator else block.diagnostic
    return text if block.status in text else f"{block.status} {text}"


def _recipient_or(block: DSNRecipient, mail_to_or: AddressMapper) -> str:
    """The O/R address a DSN's recipient stands for: an ORCPT of type x400 names it
    exactly (RFC 3461 §4.2); otherwise the final recipient's mail address is mapped."""
    if block.original_recipient:
        kind, _, address = block.original_recipient.partition(";")
        if kind.strip().lower() == X400_TYPE and address.strip():
            # RFC 3464 §2.3.1: the address as ORCPT gave it, in xtext; some MTAs write it
            # decoded ('=' is not xtext), which is read as it stands.
            try:
                return decode_xtext(address.strip())
            except XtextError:
                return address.strip()
    return mail_to_or(block.final_recipient)
