"""RFC 3464 delivery status notifications: who gets one, the report message, its envelope.

`build_dsn()` writes a complete RFC 5322 message, `multipart/report;
report-type=delivery-status`, in three parts: a plain-English explanation, the
machine-readable `message/delivery-status`, and the original message (or its
header section). When the original envelope asked for SMTPUTF8 the RFC 6533
types are used instead (`message/global-delivery-status`, `message/global`,
`message/global-headers`, report-type `global-delivery-status`); otherwise
everything is 7-bit except the returned message itself, which is marked
`8bit` when it has 8-bit octets.

The API (whether a report is owed at all is `waypost.handoff.should_report`):
`recipient_report(address=, action=, detail=, …)` turns an attempt's
detail into a `RecipientReport`; `build_dsn(envelope=, content=, kind=,
recipients=, reporting_mta=, …) -> bytes` writes the report; and
`dsn_envelope(original, mts_id=, to=)` is the envelope it travels in.

Choices, and why:

* What is returned: a failure report returns the whole message unless RET=HDRS
  (RFC 3461 §4.3 leaves the choice to the MTA when RET is absent; Postfix
  returns the message too). Delay and success reports return only the header
  section. A message larger than `return_limit` (1 MiB by default; Postfix's
  `bounce_size_limit` is 50 kB) is returned as its header section rather than
  cut short: a truncated MIME message is a broken one, while the headers are
  what the sender needs to recognise it. 1 MiB keeps the text of nearly every
  message and stays far below any receiving limit. BINARYMIME content is
  never returned whole (it could not travel over DATA).
* Returned content gets CRLF line endings, as everything Waypost sends.
* Original-Envelope-Id and Original-Recipient carry the ENVID and ORCPT values
  in their xtext form, as they travelled as SMTP parameters (RFC 3464 §2.2.1,
  §2.3.1); the envelope keeps them decoded (ORCPT as `addr-type;address`). A
  non-ASCII address is written with the `utf-8` address type (RFC 6533 §3).
* Local failures, with no remote reply, are explained in
  `Diagnostic-Code: X-Waypost; …`, as Postfix does with `X-Postfix`.
"""

from __future__ import annotations

import enum
import os
import quopri
import re
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime

from waypost.handoff import ReportKind
from waypost.message import (
    ContentType,
    Envelope,
    Notify,
    Recipient,
    ReportRequest,
    Ret,
)
from waypost.smtp.xtext import encode_xtext

DEFAULT_RETURN_LIMIT = 1 << 20
"""The largest message returned whole in a failure report (octets)."""

MAX_DIAGNOSTIC = 2000
"""Diagnostic texts longer than this are cut (a reply may have 100 lines of 2 kB)."""


class Action(enum.StrEnum):
    """The per-recipient Action field (RFC 3464 §2.3.3)."""

    FAILED = "failed"
    DELAYED = "delayed"
    DELIVERED = "delivered"
    RELAYED = "relayed"
    EXPANDED = "expanded"


_ACTION_CLASS = {
    Action.FAILED: "5",
    Action.DELAYED: "4",
    Action.DELIVERED: "2",
    Action.RELAYED: "2",
    Action.EXPANDED: "2",
}
_STATUS = re.compile(r"[245]\.\d{1,3}\.\d{1,3}")
_NEWLINES = re.compile(rb"\r\n|\r|\n")
_SUBJECTS = {
    ReportKind.FAILURE: "Undelivered Mail Returned to Sender",
    ReportKind.DELAY: "Delayed Mail (still being retried)",
    ReportKind.SUCCESS: "Successful Mail Delivery Report",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class RecipientReport:
    """One recipient's block in the report.

    `status` is the RFC 3463 code (`5.1.1`), of the class that `action` calls
    for. `diagnostic` is the remote server's reply (`550 5.1.1 <x>: unknown`)
    when there was one, and `reason` our own words when there was none.
    `orcpt` is the envelope's ORCPT (`rfc822;bob@example.org`, decoded).
    """

    address: str
    action: Action
    status: str
    orcpt: str | None = None
    remote_mta: str | None = None
    diagnostic: str | None = None
    reason: str = ""
    last_attempt: float | None = None
    will_retry_until: float | None = None

    def __post_init__(self) -> None:
        if not self.address:
            raise ValueError("empty recipient address")
        if not _STATUS.fullmatch(self.status):
            raise ValueError(f"bad status code {self.status!r}")
        if self.status[0] != _ACTION_CLASS[self.action]:
            raise ValueError(f"status {self.status} does not fit action {self.action}")


_REMOTE_REPLY = re.compile(r"[2-5]\d\d(?: |$)")
_LEADING_STATUS = re.compile(r"(?:[2-5]\d\d )?([245])\.(\d{1,3}\.\d{1,3})(?: |$)")


def recipient_report(
    *,
    address: str,
    action: Action,
    detail: str,
    orcpt: str | None = None,
    remote_mta: str | None = None,
    status: str | None = None,
    last_attempt: float | None = None,
    will_retry_until: float | None = None,
) -> RecipientReport:
    """A RecipientReport from an attempt's detail as the SMTP client words it.

    A server's reply (`550 5.1.1 <x>: unknown`) becomes the Diagnostic-Code, our
    own words (`4.4.2 connection lost …`) the reason. The status is `status` if
    given, else the detail's enhanced code with its class made the action's
    (a `451 4.3.0` that ran out of time is reported `5.3.0`), else `N.0.0`.
    """
    if status is None:
        match = _LEADING_STATUS.match(detail)
        rest = match.group(2) if match else "0.0"
        status = f"{_ACTION_CLASS[action]}.{rest}"
    remote = bool(_REMOTE_REPLY.match(detail))
    return RecipientReport(
        address=address,
        action=action,
        status=status,
        orcpt=orcpt,
        remote_mta=remote_mta,
        diagnostic=detail if remote else None,
        reason="" if remote else detail,
        last_attempt=last_attempt,
        will_retry_until=will_retry_until,
    )


def dsn_envelope(
    original: Envelope, *, mts_id: str, to: str, arrival: float | None = None
) -> Envelope:
    """The envelope a DSN about `original` travels in: from the null reverse path
    `<>`, marked as a report, to `to` alone, with NOTIFY=NEVER — never a DSN for a DSN."""
    if not to:
        raise ValueError("a DSN needs a recipient (the null reverse path gets none)")
    eight_bit = original.smtputf8 or (original.body or "").upper() in ("8BITMIME", "BINARYMIME")
    return Envelope(
        mts_id=mts_id,
        originator="",
        recipients=[
            Recipient(
                address=to,
                notify=[Notify.NEVER],
                report_request=ReportRequest.NONE,
                mta_report_request=ReportRequest.NONE,
            )
        ],
        content_type=ContentType.INTERNET,
        arrival=time.time() if arrival is None else arrival,
        body="8BITMIME" if eight_bit else None,
        smtputf8=original.smtputf8 or not to.isascii(),
        is_report=True,
    )


def build_dsn(
    *,
    envelope: Envelope,
    content: bytes,
    kind: ReportKind,
    recipients: Sequence[RecipientReport],
    reporting_mta: str,
    message_id_domain: str | None = None,
    to: str | None = None,
    arrival: float | None = None,
    now: float | None = None,
    return_limit: int = DEFAULT_RETURN_LIMIT,
) -> bytes:
    """The DSN message about `envelope`/`content` for `recipients`, CRLF line endings.

    `to` defaults to the original reverse path; `arrival` to the envelope's;
    `now` (the report's Date) to the current time.
    """
    to = envelope.originator if to is None else to
    if not to:
        raise ValueError("no DSN to the null reverse path")
    if not recipients:
        raise ValueError("a DSN reports on at least one recipient")
    now = time.time() if now is None else now
    arrival = envelope.arrival if arrival is None else arrival
    utf8 = envelope.smtputf8 or not to.isascii()
    mta = _ascii(_clean(reporting_mta)) or "localhost"

    returned, returned_type = _returned(envelope, content, kind, return_limit, utf8)
    text_head, text = _text_part(
        kind, mta, recipients, arrival, now, returned_type, return_limit, utf8
    )
    status = _status_part(envelope, recipients, mta, arrival, utf8)
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    eight_bit = not (returned.isascii() and text.isascii() and status.isascii())

    boundary = _boundary(returned + text + status)
    domain = _ascii(_clean(message_id_domain or mta)) or "localhost"
    message_id = f"<{int(now):x}.{os.urandom(8).hex()}@{domain}>"
    report_type = "global-delivery-status" if utf8 else "delivery-status"
    head = [
        f"Date: {_date(now)}",
        f'From: "Mail Delivery System" <MAILER-DAEMON@{mta}>',
        f"Subject: {_SUBJECTS[kind]}",
        f"To: <{_clean(to)}>",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f"Content-Type: multipart/report; report-type={report_type};\r\n"
        f'\tboundary="{boundary.decode()}"',
        f"Content-Transfer-Encoding: {'8bit' if eight_bit else '7bit'}",
    ]
    parts = [
        (text_head, text),
        (
            [
                f"Content-Description: Delivery report\r\nContent-Type: {status_type}",
                f"Content-Transfer-Encoding: {'7bit' if status.isascii() else '8bit'}",
            ],
            status,
        ),
        (
            [
                "Content-Description: "
                + ("Undelivered Message" if kind is ReportKind.FAILURE else "Message")
                + (" Headers" if "headers" in returned_type else ""),
                f"Content-Type: {returned_type}",
                f"Content-Transfer-Encoding: {'7bit' if returned.isascii() else '8bit'}",
            ],
            returned,
        ),
    ]
    out = bytearray(
        ("\r\n".join(head) + "\r\n\r\nThis is a MIME-encapsulated message.\r\n").encode()
    )
    for part_head, body in parts:
        out += b"\r\n--" + boundary + b"\r\n"
        out += ("\r\n".join(part_head) + "\r\n\r\n").encode()
        out += body
    out += b"\r\n--" + boundary + b"--\r\n"
    return bytes(out)


# --- the three parts ------------------------------------------------------------


def _text_part(
    kind: ReportKind,
    mta: str,
    recipients: Sequence[RecipientReport],
    arrival: float,
    now: float,
    returned_type: str,
    return_limit: int,
    utf8: bool,
) -> tuple[list[str], bytes]:
    """The human-readable part, in the manner of Postfix's bounce(8) templates."""
    paragraphs = [f"This is the mail system at host {mta}."]
    if kind is ReportKind.FAILURE:
        whole = "headers" not in returned_type
        attached = "your message is attached." if whole else "its headers are attached."
        paragraphs.append(
            "I'm sorry to tell you that your message could not be delivered to one or"
            f" more of its recipients. The reasons are listed below; {attached}"
        )
        if not whole:
            paragraphs.append(
                "(Only the headers are returned: they alone were asked for, or the"
                f" message was larger than {return_limit} bytes.)"
            )
        paragraphs.append(
            "For further assistance, please send mail to the postmaster, and include this report."
        )
    elif kind is ReportKind.DELAY:
        paragraphs.append("THIS IS A WARNING ONLY. YOU DO NOT NEED TO SEND YOUR MESSAGE AGAIN.")
        waited = f" for {_duration(now - arrival)}" if 0 < arrival < now else ""
        until = max((r.will_retry_until or 0.0 for r in recipients), default=0.0)
        retry = f" Delivery will be tried again until {_date(until)}." if until else ""
        paragraphs.append(
            f"Your message could not be delivered{waited} to the recipients listed below."
            f"{retry} The headers of your message are attached."
        )
    else:
        paragraphs.append(
            "Your message was delivered to the destinations listed below. If it was"
            " delivered to a mailbox you will hear no more about it; a system it was"
            " relayed to may still send you reports of its own."
        )
    lines = [textwrap.fill(p, 72) + "\n" for p in paragraphs]
    lines.append(" " * 19 + "The mail system\n")
    lines += [
        textwrap.fill(_explain(r), 72, subsequent_indent="    ", break_on_hyphens=False) + "\n"
        for r in recipients
    ]
    text = "\n".join(_printable(line) for line in "\n".join(lines).split("\n"))
    head = ["Content-Description: Notification"]
    if text.isascii():
        head += ["Content-Type: text/plain; charset=us-ascii", "Content-Transfer-Encoding: 7bit"]
        return head, _crlf(text.encode())
    if utf8:
        head += ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"]
        return head, _crlf(text.encode())
    head += [
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
    ]
    return head, _crlf(_quoted_printable(text))


def _explain(report: RecipientReport) -> str:
    who = f"<{report.address}>"
    if report.orcpt:
        original = report.orcpt.partition(";")[2] if ";" in report.orcpt else report.orcpt
        if original and original != report.address:
            who += f" (originally <{original}>)"
    if report.diagnostic:
        host = f"host {report.remote_mta}" if report.remote_mta else "the remote server"
        why = f"{host} said: {_cut(report.diagnostic)}"
    elif report.reason:
        why = _cut(report.reason)
    elif report.action is Action.RELAYED and report.remote_mta:
        why = f"relayed to {report.remote_mta}"
    else:
        why = f"{report.action} (status {report.status})"
    return f"{who}: {why}"


def _status_part(
    envelope: Envelope,
    recipients: Sequence[RecipientReport],
    mta: str,
    arrival: float,
    utf8: bool,
) -> bytes:
    fields = [("Reporting-MTA", f"dns; {mta}"), ("X-Waypost-Queue-ID", envelope.mts_id)]
    fields.append(("X-Waypost-Sender", _address_field("rfc822", envelope.originator, utf8)))
    if envelope.envid:
        fields.append(("Original-Envelope-Id", encode_xtext(envelope.envid)))
    if arrival > 0:
        fields.append(("Arrival-Date", _date(arrival)))
    blocks = [fields]
    for report in recipients:
        block = []
        if report.orcpt:
            block.append(("Original-Recipient", _orcpt_field(report.orcpt, utf8)))
        block += [
            ("Final-Recipient", _address_field("rfc822", report.address, utf8)),
            ("Action", report.action.value),
            ("Status", report.status),
        ]
        if report.remote_mta:
            block.append(("Remote-MTA", f"dns; {_clean(report.remote_mta)}"))
        if report.diagnostic:
            block.append(("Diagnostic-Code", f"smtp; {_cut(report.diagnostic)}"))
        elif report.reason:
            block.append(("Diagnostic-Code", f"X-Waypost; {_cut(report.reason)}"))
        if report.last_attempt:
            block.append(("Last-Attempt-Date", _date(report.last_attempt)))
        if report.will_retry_until and report.action is Action.DELAYED:
            block.append(("Will-Retry-Until", _date(report.will_retry_until)))
        blocks.append(block)
    lines = []
    for block in blocks:
        for name, value in block:
            text = _clean(value) if utf8 else _ascii(_clean(value))
            lines.append(_fold(f"{name}: {text}"))
        lines.append("")
    return "\r\n".join(lines).encode()


def _returned(
    envelope: Envelope, content: bytes, kind: ReportKind, limit: int, utf8: bool
) -> tuple[bytes, str]:
    binary = (envelope.body or "").upper() == "BINARYMIME"
    if (
        kind is ReportKind.FAILURE
        and envelope.ret is not Ret.HDRS
        and not binary
        and len(content) <= limit
    ):
        body = _NEWLINES.sub(b"\r\n", content)
        if body and not body.endswith(b"\r\n"):
            body += b"\r\n"
        return body, "message/global" if utf8 else "message/rfc822"
    end = re.search(rb"\r?\n\r?\n", content)
    headers = _NEWLINES.sub(b"\r\n", content if end is None else content[: end.start()])
    if len(headers) > limit:
        headers = headers[: headers.rfind(b"\r\n", 0, limit)] if b"\r\n" in headers[:limit] else b""
    if headers and not headers.endswith(b"\r\n"):
        headers += b"\r\n"
    return headers, "message/global-headers" if utf8 else "text/rfc822-headers"


# --- small helpers -------------------------------------------------------------------


def _address_field(kind: str, address: str, utf8: bool) -> str:
    if address.isascii():
        return f"{kind}; {address}"
    return f"utf-8; {_utf8_address(address, utf8)}"


def _orcpt_field(orcpt: str, utf8: bool) -> str:
    kind, separator, address = orcpt.partition(";")
    if not separator:
        kind, address = "rfc822", orcpt
    kind = kind.strip() or "rfc822"
    if kind.lower() == "utf-8":
        # Kept as the client sent it, in its own RFC 6533 encoding.
        return f"utf-8;{address if utf8 else _utf8_address(address, False)}"
    if address.isascii():
        return f"{kind};{encode_xtext(address)}"
    return f"utf-8;{_utf8_address(address, utf8)}"


def _utf8_address(address: str, unitext: bool) -> str:
    """RFC 6533 utf-8-addr-unitext (UTF-8 allowed) or utf-8-addr-xtext (ASCII)."""
    out = []
    for c in address:
        if ("!" <= c <= "~" and c not in "+=\\") or (unitext and c > "\x7f" and c.isprintable()):
            out.append(c)
        else:
            out.append(f"\\x{{{ord(c):02X}}}")
    return "".join(out)


def _printable(value: str) -> str:
    return "".join(c if c.isprintable() else " " for c in value)


def _clean(value: str) -> str:
    """One line of printable text: no CR, LF or other control characters."""
    return _printable(value).strip()


def _ascii(value: str) -> str:
    return value.encode("ascii", "replace").decode("ascii")


def _cut(text: str) -> str:
    text = _clean(text)
    return text if len(text) <= MAX_DIAGNOSTIC else text[:MAX_DIAGNOSTIC] + " ..."


def _fold(line: str, width: int = 78, hard: int = 900) -> str:
    """A header field folded at spaces; a word too long even for `hard` is split."""
    words: list[str] = []
    for word in line.split(" "):
        words += [word[i : i + hard] for i in range(0, len(word), hard)] or [""]
    lines = [words[0]]
    for word in words[1:]:
        if lines[-1].strip() and len(lines[-1]) + 1 + len(word) > width:
            lines.append(word)
        else:
            lines[-1] += " " + word
    return "\r\n ".join(lines)


def _date(timestamp: float) -> str:
    return format_datetime(datetime.fromtimestamp(timestamp, UTC))


def _duration(seconds: float) -> str:
    hours = seconds / 3600
    if hours < 48:
        return f"{hours:.1f} hours"
    return f"{hours / 24:.1f} days"


def _crlf(data: bytes) -> bytes:
    data = _NEWLINES.sub(b"\r\n", data)
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _quoted_printable(text: str) -> bytes:
    return quopri.encodestring(text.encode())


def _boundary(content: bytes) -> bytes:
    while True:
        boundary = f"=_waypost_{os.urandom(12).hex()}".encode()
        if boundary not in content:
            return boundary
