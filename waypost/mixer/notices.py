"""Reports and notifications across the gateway: an X.411 report ⇄ an RFC 3464 DSN, an
X.420 IPN ⇄ an RFC 8098 MDN (RFC 2156 §5.3.x and its IPN mapping), each a whole message
with its envelope, as waypost.mixer.convert makes messages of messages."""

from __future__ import annotations

import email.policy
import os
from collections.abc import Callable, Sequence
from email.message import Message as EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses

from waypost.message import (
    ContentType,
    Envelope,
    Message,
    Notify,
    ObjectKind,
    Recipient,
    ReportRequest,
    TraceElement,
)
from waypost.mixer.convert import (
    ConversionError,
    Converted,
    GatewaySide,
    gdi_text,
    mail_to_or_of,
    or_to_mail_of,
)
from waypost.mixer.mdn import MDNError, ipn_to_mdn, mdn_to_ipn
from waypost.mixer.reports import DSNError, dsn_to_report, read_dsn, report_to_dsn
from waypost.x400.ipn import IPNError, decode_ipn, encode_ipn
from waypost.x400.p1_names import split_mts_identifier
from waypost.x400.p1_report import decode_report_content, encode_report_content

_PARSING = email.policy.default


class NotANoticeError(ValueError):
    """A report or notification that does not say what it is about in a way the other
    world can use: the gateway carries it as an ordinary message instead."""


def report_kind(content: bytes) -> str | None:
    """`delivery-status` or `disposition-notification` for an RFC 6522 multipart/report of
    that type (a DSN or an MDN), else None; only the header is read."""
    end = content.find(b"\r\n\r\n")
    head = content if end < 0 else content[: end + 4]
    if b"report" not in head.lower():
        # RFC 2045 §5.1: the subtype is a token, which neither folding nor a comment can
        # split; a header without the word is not a multipart/report, and ordinary mail
        # need not be parsed twice.
        return None
    message = BytesParser(policy=_PARSING).parsebytes(head, headersonly=True)
    if message.get_content_type() != "multipart/report":
        return None
    kind = str(message.get_param("report-type", "") or "").lower()
    return kind or None


# -- X.400 → Internet mail -------------------------------------------------------------


def report_to_mail(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> Converted:
    """An X.411 report for a mail originator as an RFC 3464 DSN to the mapped address."""
    or_to_mail = or_to_mail_of(side.mapper)
    try:
        report = decode_report_content(content)
        to = or_to_mail(envelope.recipients[0].address)
        dsn = report_to_dsn(
            envelope=envelope,
            content=report,
            or_to_mail=or_to_mail,
            gateway=side.hostname,
            to=to,
            now=side.now,
        )
    except (ValueError, DSNError) as exc:
        raise ConversionError(f"5.6.5 the report cannot be converted: {exc}") from None
    # X.411 §8.3.1: a report has one destination.
    return Converted(Message(envelope=_notice_envelope(to, side), content=dsn), (indexes[0],), {})


def ipn_to_mail(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> Converted:
    """An X.420 IPN as an RFC 8098 MDN to each recipient's mapped address."""
    or_to_mail = or_to_mail_of(side.mapper)
    try:
        ipn = decode_ipn(content)
        recipients = [or_to_mail(envelope.recipients[i].address) for i in indexes]
        mdn = ipn_to_mdn(
            ipn,
            or_to_mail=or_to_mail,
            gateway_domain=side.mapper.gateway.domain,
            to=recipients[0],
            now=side.now,
        )
    except (ValueError, MDNError, IPNError) as exc:
        raise ConversionError(f"5.6.5 the notification cannot be converted: {exc}") from None
    mail = _notice_envelope(recipients[0], side)
    mail = Envelope(
        mts_id=mail.mts_id,
        originator="",
        recipients=[Recipient(address=r, notify=[Notify.NEVER]) for r in recipients],
        arrival=side.now,
        is_report=True,
    )
    return Converted(Message(envelope=mail, content=mdn), tuple(indexes), {})


def _notice_envelope(to: str, side: GatewaySide) -> Envelope:
    # RFC 3461 §6.2 and RFC 8098 §2.1: a report goes from the null reverse path.
    return Envelope(
        mts_id=f"{os.urandom(8).hex()}@{side.hostname}",
        originator="",
        recipients=[Recipient(address=to, notify=[Notify.NEVER])],
        arrival=side.now,
        is_report=True,
    )


# -- Internet mail → X.400 -------------------------------------------------------------


def dsn_to_x400(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> Converted:
    """An RFC 3464 DSN about a message that crossed from X.400 as the X.411 report to its
    originator; raises NotANoticeError when the DSN does not name the X.400 message it is about."""
    mail_to_or = mail_to_or_of(side.mapper)
    message = BytesParser(policy=_PARSING).parsebytes(content)
    try:
        fields, _, returned = read_dsn(message)
    except DSNError as exc:
        raise NotANoticeError(str(exc)) from None
    header = returned or _returned_headers(message)
    subject_id = _subject_id(fields, header)
    if subject_id is None:
        raise NotANoticeError("the DSN does not name an X.400 MTS identifier")
    try:
        destination = mail_to_or(envelope.recipients[indexes[0]].address)
        report = dsn_to_report(
            message,
            mail_to_or=mail_to_or,
            subject_id=subject_id,
            recipients=_subject_recipients(header, mail_to_or),
            now=side.now,
        )
    except (DSNError, ValueError) as exc:
        raise NotANoticeError(str(exc)) from None
    local = f"r{int(side.now * 1000):x}.{os.urandom(6).hex()}"
    x400 = Envelope(
        mts_id=f"{gdi_text(side.x400_domain)};{local}",
        originator="",
        recipients=[
            Recipient(
                address=destination,
                originally_specified_number=1,
                report_request=ReportRequest.NONE,
                mta_report_request=ReportRequest.NONE,
            )
        ],
        content_type=ContentType.X400_REPORT,
        # X.411 §12.2.1.3: the report's trace starts with the domain that made it.
        trace=[TraceElement(domain=side.x400_domain, arrival=side.now)],
        arrival=side.now,
        is_report=True,
        object_kind=ObjectKind.REPORT,
    )
    # X.411 §8.3.1: one destination; a DSN sent to several addresses crosses for the first.
    refused = {i: "5.6.3 an X.411 report has one destination" for i in indexes[1:]}
    report_message = Message(envelope=x400, content=encode_report_content(report))
    return Converted(report_message, (indexes[0],), refused)


def mdn_to_x400(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> Converted:
    """An RFC 8098 MDN about an IPM that crossed from X.400 as the X.420 IPN to its
    originator; raises NotANoticeError when the MDN cannot be an IPN."""
    mail_to_or = mail_to_or_of(side.mapper)
    message = BytesParser(policy=_PARSING).parsebytes(content)
    try:
        ipn = mdn_to_ipn(
            message, mail_to_or=mail_to_or, gateway_domain=side.mapper.gateway.domain, now=side.now
        )
        recipients = [mail_to_or(envelope.recipients[i].address) for i in indexes]
    except (MDNError, IPNError, ValueError) as exc:
        raise NotANoticeError(str(exc)) from None
    originator = (
        ipn.ipn_originator.address
        if ipn.ipn_originator is not None and ipn.ipn_originator.address
        else mail_to_or(f"postmaster@{side.mapper.gateway.domain}")
    )
    local = f"n{int(side.now * 1000):x}.{os.urandom(6).hex()}"
    x400 = Envelope(
        mts_id=f"{gdi_text(side.x400_domain)};{local}",
        originator=originator,
        recipients=[
            Recipient(
                address=address,
                originally_specified_number=i + 1,
                # X.420 §8: nothing answers a notification.
                report_request=ReportRequest.NONE,
            )
            for i, address in enumerate(recipients)
        ],
        content_type=ContentType.P22,
        arrival=side.now,
    )
    converted = Message(envelope=x400, content=encode_ipn(ipn))
    return Converted(converted, tuple(indexes), {})


def _returned_headers(dsn: EmailMessage) -> EmailMessage | None:
    """The header of the returned message when a DSN returns only that (RFC 3462's
    text/rfc822-headers, RFC 6533's message/global-headers)."""
    payload = dsn.get_payload()
    for part in payload if isinstance(payload, list) else []:
        if isinstance(part, EmailMessage) and part.get_content_type() in (
            "text/rfc822-headers",
            "message/global-headers",
        ):
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return BytesParser(policy=_PARSING).parsebytes(data, headersonly=True)
    return None


def _subject_recipients(
    returned: EmailMessage | None, mail_to_or: Callable[[str], str]
) -> list[str]:
    """The X.400 message's recipients in its envelope's order, from the X400-Recipients
    field the gateway wrote into the mail (RFC 2156 §5.3.4), so that each recipient a
    DSN reports keeps its originally-specified-recipient-number (X.411's
    PerRecipientReportTransferFields) rather than its place in the DSN. An address that
    no longer maps keeps its place."""
    field = None if returned is None else returned.get("X400-Recipients")
    if field is None:
        return []
    recipients = []
    for _, address in getaddresses([str(field)]):
        try:
            recipients.append(mail_to_or(address))
        except ValueError:
            recipients.append("")
    return recipients


def _subject_id(fields: EmailMessage, returned: EmailMessage | None) -> str | None:
    """The MTS identifier of the X.400 message a DSN is about: the X400-MTS-Identifier the
    gateway wrote into it (RFC 2156 §5.3.4), in the returned message or its header."""
    candidates = []
    if returned is not None:
        candidates.append(str(returned.get("X400-MTS-Identifier", "")))
    candidates.append(str(fields.get("Original-Envelope-Id", "")))
    for candidate in candidates:
        text = candidate.strip().removeprefix("[").removesuffix("]").strip()
        try:
            split_mts_identifier(text)
        except ValueError:
            continue
        return text
    return None
