"""Whole messages across the gateway: an X.400 IPM (P1 envelope, P22/P2 content) ⇄ an
Internet message (SMTP envelope, RFC 5322/MIME), by RFC 2156 (addresses, heading,
envelope) and RFC 2157 (bodies). Pure functions: the gateway's delivery agent calls them."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.message import EmailMessage
from functools import lru_cache

import msgspec

from waypost.address import (
    AddressError,
    format_slash,
    is_oraddress_text,
    parse_mailbox,
    parse_oraddress,
)
from waypost.address.oraddress import ORAddress, parse_global_domain
from waypost.message import ContentType, Envelope, Message, Recipient, ReportRequest, Ret
from waypost.mixer.address_map import AddressMapper
from waypost.mixer.bodies import (
    DEFAULT_POLICY,
    BodyConversionError,
    as_bytes,
    body_to_mime,
    mime_to_body,
    written_body,
)
from waypost.mixer.envelope_fields import (
    envelope_fields,
    notify_of,
    priority_of,
    report_request_of,
    trace_of,
)
from waypost.mixer.header_fields import HeaderFields
from waypost.mixer.header_text import FieldValue, header_block, mail_date
from waypost.mixer.heading import (
    HeadingMappingError,
    headers_to_heading,
    heading_fields,
    heading_to_headers,
)
from waypost.mixer.mime_reader import read_message
from waypost.mixer.mmhs import MMHS_HEADERS, fields_to_p772, p772_to_fields, unmapped_p772
from waypost.smtp.server_message import has_bare_cr_or_lf
from waypost.x400.ipm_bodies import IA5Text
from waypost.x400.ipm_codec import InterpersonalMessage, decode_ipm, encode_ipm
from waypost.x400.ipm_heading import IPMHeading, IPMIdentifier
from waypost.x400.p772 import P772_ARC, p772_extensions, p772_fields

# Parsing keeps every octet: 8-bit and UTF-8 header fields and bodies (RFC 6532) cross as
# they are; writing folds only at RFC 5322's 998-character limit.
_PARSING = DEFAULT_POLICY
_WRITING = DEFAULT_POLICY.clone(linesep="\r\n", max_line_length=998)
_CONTENT_ID_LIMIT = 16  # X.411 ContentIdentifier: PrintableString (SIZE (1..16))
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")
_X400_CONTENT = (ContentType.P2, ContentType.P22, ContentType.P772)
_MMHS_NAMES = frozenset(name.lower() for name in MMHS_HEADERS)


class ConversionError(ValueError):
    """The message cannot cross: `detail` starts with the enhanced status code the report
    gives (RFC 3463 5.6.x; X.411 content-syntax-error or conversion-not-performed)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class GatewayLoopError(ConversionError):
    """The message crossed this gateway before and came back (5.4.6 loop-detected)."""


@dataclass(frozen=True, slots=True)
class GatewaySide:
    """What a conversion needs of the gateway: its mappings, its X.400 global domain (the
    MTS identifiers and trace it writes), the host name of its Received: fields, the time."""

    mapper: AddressMapper
    x400_domain: str
    hostname: str
    now: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class Converted:
    """The other world's message for the recipients it could carry (`kept`, as indexes of
    the original envelope's recipients, in the new envelope's order), and the reason each
    other recipient cannot cross (`refused`: index → status and text)."""

    message: Message | None
    kept: tuple[int, ...]
    refused: dict[int, str]


# -- X.400 → Internet mail -------------------------------------------------------------


def ipm_to_mail(
    envelope: Envelope,
    content: bytes,
    indexes: Sequence[int],
    side: GatewaySide,
    ipm: InterpersonalMessage | None = None,
) -> Converted:
    """An IPM for the given recipients as an Internet message; raises ConversionError when
    the content cannot be converted (then no recipient can be served). `ipm` is the
    content already decoded, when the caller has it."""
    mapper = side.mapper
    or_to_mail = or_to_mail_of(mapper)

    def for_mail(recipient: Recipient, address: str, number: int) -> Recipient:
        request = max(recipient.report_request, recipient.mta_report_request)
        return Recipient(
            address=address,
            originally_specified_number=number,
            report_request=recipient.report_request,
            notify=notify_of(request),
            # RFC 3461 §4.2's "x400" address type: a DSN names the O/R address exactly.
            orcpt=f"x400;{recipient.address}",
        )

    recipients, kept, refused = _map_recipients(
        envelope, indexes, or_to_mail, "has no RFC 822 form", for_mail
    )
    if not recipients:
        return Converted(None, (), refused)
    try:
        originator = or_to_mail(envelope.originator) if envelope.originator else ""
    except ValueError as exc:
        raise ConversionError(f"5.1.7 the originator has no RFC 822 form: {exc}") from None
    try:
        ipm = decode_ipm(content) if ipm is None else ipm
    except ValueError as exc:
        raise ConversionError(f"5.6.0 the IPM cannot be read: {exc}") from None
    headings = MixerHeadings(mapper)
    try:
        mmhs, ipm_heading = _mmhs_fields(ipm.heading, or_to_mail)
        heading = heading_fields(
            ipm_heading, or_to_mail=or_to_mail, gateway_domain=mapper.gateway.domain
        )
        heading.extend(mmhs)
        # One short-lined text (most messages), or text and attachments, is written
        # directly: the same octets as the email package's generator writes.
        written = written_body(ipm.body, _WRITING, headings)
        body = body_to_mime(ipm.body, headings) if written is None else written[0]
    except (ValueError, TypeError) as exc:
        raise ConversionError(f"5.6.5 the IPM cannot be converted: {exc}") from None
    submitted = envelope.trace[0].arrival if envelope.trace else envelope.arrival or side.now
    top: list[tuple[str, FieldValue]] = [
        ("Received", _received(envelope, side)),
        *envelope_fields(envelope, _lenient(or_to_mail)),
        ("Date", mail_date(submitted)),
    ]
    # The header fields are written as text (waypost.mixer.header_text), as the email
    # package would write them: its header objects were most of a small message's cost.
    head = header_block([*top, *heading])
    if not isinstance(body, bytes):
        body = as_bytes(body, _WRITING)
    data = head + body
    # Whether the SMTP client may send it unscanned (Envelope.crlf): the body's pieces
    # are known from how they were written; the header block and any other body are
    # checked here.
    crlf = not has_bare_cr_or_lf(head) and (
        written[1] if written is not None else not has_bare_cr_or_lf(body)
    )
    mail = Envelope(
        mts_id=f"{os.urandom(8).hex()}@{side.hostname}",
        originator=originator,
        recipients=recipients,
        content_type=ContentType.INTERNET,
        envid=envelope.content_id,
        # The headers come back in a DSN: X400-MTS-Identifier names the X.400 message the
        # report is about (waypost.mixer.notices), and no content is returned by default.
        ret=Ret.FULL if "content-return-request" in envelope.per_message_indicators else Ret.HDRS,
        priority=envelope.priority,
        arrival=side.now,
        body=None if data.isascii() else "8BITMIME",
        smtputf8=not all(r.address.isascii() for r in recipients) or not originator.isascii(),
        crlf=crlf,
    )
    return Converted(Message(envelope=mail, content=data), tuple(kept), refused)


def _mmhs_fields(
    heading: IPMHeading, or_to_mail: Callable[[str], str]
) -> tuple[list[tuple[str, str]], IPMHeading]:
    """A P772 heading's STANAG 4406 fields as RFC 6477 §3's MMHS-* header fields, and the
    heading without them (so they are not also named as discarded extensions)."""
    military = [e for e in heading.other_extensions if e.type.startswith(P772_ARC)]
    if not military:
        return [], heading
    p772 = p772_fields(military, strict=False)
    fields = p772_to_fields(p772, or_to_mail=or_to_mail)
    # What RFC 6477 has no field for stays, to be named as discarded (RFC 2156 §5.3).
    lost = set(unmapped_p772(p772))
    rest = tuple(
        e for e in heading.other_extensions if not e.type.startswith(P772_ARC) or e.type in lost
    )
    return fields, replace(heading, other_extensions=rest)


def _received(envelope: Envelope, side: GatewaySide) -> str:
    """The gateway's own Received: field (RFC 5321 §4.4): the X.400 domain it came from."""
    # The domain it came from: the newest trace element that is not this MTA's own.
    others = [t.domain for t in envelope.trace if not _same_domain(t.domain, side.x400_domain)]
    came_from = others[-1] if others else side.x400_domain
    when = mail_date(side.now)
    return f"from X.400 ({came_from}) by {side.hostname} (Waypost MIXER) with X.400; {when}"


# -- Internet mail → X.400 -------------------------------------------------------------


def mail_to_ipm(
    envelope: Envelope, content: bytes, indexes: Sequence[int], side: GatewaySide
) -> Converted:
    """An Internet message for the given recipients as a P22 IPM; raises ConversionError
    (GatewayLoopError when it has crossed here before)."""
    mapper = side.mapper
    # As the email package's parser reads it; a multipart/mixed's parts without feeding
    # it each line of a large attachment.
    message = read_message(content, _PARSING)
    fields = HeaderFields(message)
    trace = trace_of(fields)
    # The X.400 trace it carries shows this MTA's domain: the message was in this X.400
    # domain before it left as mail, and it is back (X.411 §12.3.1's check of trace, made
    # across the gateway: in the Internet leg no MTA added X.400 trace of its own).
    if any(_same_domain(t.domain, side.x400_domain) for t in trace):
        raise GatewayLoopError(
            "5.4.6 loop detected: an X400-Received field shows this gateway's domain "
            f"{side.x400_domain}"
        )
    mail_to_or = mail_to_or_of(mapper)

    def for_x400(recipient: Recipient, address: str, number: int) -> Recipient:
        return Recipient(
            address=address,
            originally_specified_number=number,
            report_request=report_request_of(recipient.notify)
            if recipient.notify
            else recipient.report_request,
            orcpt=recipient.orcpt,
        )

    recipients, kept, refused = _map_recipients(
        envelope, indexes, mail_to_or, "has no O/R address", for_x400
    )
    if not recipients:
        return Converted(None, (), refused)
    if envelope.originator:
        try:
            originator = mail_to_or(envelope.originator)
        except ValueError as exc:
            raise ConversionError(f"5.1.7 the originator has no O/R address: {exc}") from None
    else:
        # A null reverse path: the gateway's own address, and no report asked for (RFC
        # 5321 §4.5.5: nothing may answer a message with a null reverse path).
        originator = format_slash(mapper.gateway.oraddress)
        recipients = [
            msgspec.structs.replace(r, report_request=ReportRequest.NONE) for r in recipients
        ]
    local = f"{int(side.now * 1000):x}.{os.urandom(6).hex()}"
    try:
        heading = headers_to_heading(
            fields,
            mail_to_or=mail_to_or,
            gateway_domain=mapper.gateway.domain,
            generated_id=IPMIdentifier(user=originator, local=local[:64]),
        )
        body = mime_to_body(message, MixerHeadings(mapper))
        content_type = ContentType.P22
        if fields.any_of(_MMHS_NAMES):
            # RFC 6477: MMHS-* fields make a military message, P772 (STANAG 4406).
            military = p772_extensions(fields_to_p772(message, mail_to_or=mail_to_or))
            heading = replace(heading, other_extensions=heading.other_extensions + military)
            content_type = ContentType.P772
    except BodyConversionError as exc:
        raise ConversionError(f"5.6.3 conversion not performed: {exc}") from None
    except (HeadingMappingError, ValueError, TypeError, LookupError) as exc:
        # LookupError: the email package's header parsers raise IndexError on some
        # malformed fields; the message is refused with a report, not retried.
        raise ConversionError(f"5.6.5 the message cannot be converted: {exc}") from None
    try:
        data = encode_ipm(InterpersonalMessage(heading=heading, body=tuple(body)))
    except ValueError as exc:
        raise ConversionError(f"5.6.5 the IPM cannot be encoded: {exc}") from None
    x400 = Envelope(
        mts_id=f"{gdi_text(side.x400_domain)};{local}",
        originator=originator,
        recipients=recipients,
        content_type=content_type,
        content_id=_content_id(envelope.envid),
        encoded_information_types=["ia5-text"] if all(isinstance(p, IA5Text) for p in body) else [],
        priority=priority_of(fields),
        trace=trace,
        arrival=side.now,
    )
    return Converted(Message(envelope=x400, content=data), tuple(kept), refused)


def _map_recipients(
    envelope: Envelope,
    indexes: Sequence[int],
    convert: Callable[[str], str],
    missing: str,
    make: Callable[[Recipient, str, int], Recipient],
) -> tuple[list[Recipient], list[int], dict[int, str]]:
    """The other world's recipients for those given (numbered from 1 in their order), the
    indexes they came from, and why each of the others has no form there (5.1.3)."""
    recipients: list[Recipient] = []
    kept: list[int] = []
    refused: dict[int, str] = {}
    for index in indexes:
        recipient = envelope.recipients[index]
        try:
            address = convert(recipient.address)
        except ValueError as exc:
            refused[index] = f"5.1.3 {recipient.address} {missing}: {exc}"
            continue
        kept.append(index)
        recipients.append(make(recipient, address, len(recipients) + 1))
    return recipients, kept, refused


@lru_cache(maxsize=256)  # the same few domains, message after message
def _same_domain(a: str, b: str) -> bool:
    try:
        return (
            format_slash(parse_global_domain(a)).upper()
            == format_slash(parse_global_domain(b)).upper()
        )
    except AddressError:
        return a.upper() == b.upper()


@lru_cache(maxsize=64)  # a gateway has one domain: the same text for every message
def gdi_text(global_domain: str) -> str:
    """The MTS identifiers' global domain identifier (C, ADMD, PRMD) of a domain text."""
    domain = parse_global_domain(global_domain)
    return format_slash(ORAddress(country=domain.country, admd=domain.admd, prmd=domain.prmd))


def _content_id(envid: str | None) -> str | None:
    """RFC 3461 ENVID as the X.411 content identifier, when it fits its PrintableString."""
    if envid and len(envid) <= _CONTENT_ID_LIMIT and set(envid) <= _PRINTABLE:
        return envid
    return None


# -- address and heading helpers ---------------------------------------------------------


def or_to_mail_of(mapper: AddressMapper) -> Callable[[str], str]:
    """O/R address text → mail address text through the mapper (a mailbox stays itself);
    raises AddressError / MappingError."""

    def convert(address: str) -> str:
        if not is_oraddress_text(address):
            return str(parse_mailbox(address.strip("<>")))
        return str(mapper.to_rfc822(parse_oraddress(address)).mailbox)

    return _remembered(convert, mapper.mapped_to_rfc822)


def _lenient(convert: Callable[[str], str]) -> Callable[[str], str]:
    def lenient(address: str) -> str:
        try:
            return convert(address)
        except (AddressError, ValueError):
            return address

    return lenient


def mail_to_or_of(mapper: AddressMapper) -> Callable[[str], str]:
    """Mail address text → O/R address text through the mapper (an O/R address stays
    itself); raises AddressError / MappingError."""

    def convert(address: str) -> str:
        if is_oraddress_text(address):
            return format_slash(parse_oraddress(address))
        return format_slash(mapper.to_x400(parse_mailbox(address.strip("<>"))).oraddress)

    return _remembered(convert, mapper.mapped_to_x400)


# How many answers a mapper remembers in each direction: the addresses a gateway sees
# repeat (the same correspondents, message after message), and an answer is a few short
# strings.
REMEMBERED_MAPPINGS = 4096


def _remembered(convert: Callable[[str], str], answers: dict[str, str]) -> Callable[[str], str]:
    """`convert` remembering its answers in `answers`, the mapper's own: the same address
    is mapped for the envelope, the heading and the X400-* fields (an originator is also
    From:), and again in the next message. A mapper with entries read from DNS is made for
    one message, so what it remembers is never older than the message. Refusals are not
    remembered: they raise each time."""

    def remembered(address: str) -> str:
        answer = answers.get(address)
        if answer is None:
            answer = convert(address)
            if len(answers) >= REMEMBERED_MAPPINGS:
                answers.clear()  # a bound, not an LRU: cheap, and refilled at once
            answers[address] = answer
        return answer

    return remembered


class MixerHeadings:
    """A forwarded IPM's heading across the gateway (RFC 2157 §6.5 defers to the RFC 2156
    heading mapping): the HeadingHook of waypost.mixer.bodies."""

    def __init__(self, mapper: AddressMapper) -> None:
        self.mapper = mapper

    def heading_to_fields(self, heading: object) -> list[tuple[str, str]]:
        if not isinstance(heading, IPMHeading):
            raise TypeError("a forwarded message's heading must be an IPMHeading")
        headers = heading_to_headers(
            heading,
            or_to_mail=_lenient(or_to_mail_of(self.mapper)),
            gateway_domain=self.mapper.gateway.domain,
        )
        return [(name, str(value)) for name, value in headers.items()]

    def fields_to_heading(self, fields: list[tuple[str, str]]) -> object:
        message = EmailMessage(policy=_PARSING)
        for name, value in fields:
            message[name] = value
        return headers_to_heading(
            message,
            mail_to_or=mail_to_or_of(self.mapper),
            gateway_domain=self.mapper.gateway.domain,
            generated_id=IPMIdentifier(user=None, local=os.urandom(8).hex()),
        )


def is_ipm_content(content_type: str) -> bool:
    """Whether the gateway reads this content type as an IPM (P2 or P22)."""
    return content_type in _X400_CONTENT
