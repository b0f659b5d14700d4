"""MTS-APDUs ⇄ what the MTA database keeps: messages, reports and probes, with their trace.

What a received envelope holds beyond the internal model travels in
`Envelope.p1` and `Recipient.p1_unknown`, so that a relayed object leaves
with everything it came with. Trace: the first MTA of a domain adds the
domain's element (X.411 trace-information); an object whose trace shows it
already left this domain has come back: a loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar

import msgspec

from waypost.asn1 import OCTET_STRING, OID, SET, BadValueError, BERError, Element, decode
from waypost.message import (
    ContentType,
    Envelope,
    Message,
    ObjectKind,
    P1Extra,
    Recipient,
    TraceElement,
    new_mts_id,
)
from waypost.x400.p1_envelope import (
    BUILTIN_CONTENT_TYPE,
    MESSAGE_APDU,
    PER_MESSAGE_INDICATORS,
    PER_RECIPIENT_FIELDS,
    PMI_NAMES,
    PROBE_APDU,
    REPORT_APDU,
    TRACE_INFORMATION,
    P1Message,
    TransferEnvelope,
    decode_envelope,
    decode_mts_apdu,
    decode_recipient,
    decode_trace,
    encode_envelope,
    encode_mts_apdu,
    names_of,
)
from waypost.x400.p1_names import (
    MTS_IDENTIFIER,
    OR_NAME,
    ORName,
    decode_mts_identifier,
    decode_orname,
    encode_orname,
)
from waypost.x400.p1_report import decode_report_content, decode_report_envelope, encode_report_apdu

Input = bytes | bytearray | memoryview
T = TypeVar("T")


def decode_object(data: Input) -> tuple[Envelope, bytes]:
    """An MTS-APDU as the envelope and content to store (raises BERError naming the path).

    A report's content is checked to decode and kept as received; a probe has none.
    Strings that break their type are read as received: what was taken from a peer
    (`receive_object`) must read back.
    """
    return _interpret(decode(data, name="mts-apdu", lenient=True))


@dataclass(frozen=True, slots=True)
class ReceivedObject:
    """An MTS-APDU taken from a peer: what to store, and the strings kept as received
    although their octets break their ASN.1 type (each with its path)."""

    envelope: Envelope
    content: bytes = field(repr=False)
    kept: tuple[BadValueError, ...] = ()


class UninterpretableError(Exception):
    """An MTS-APDU whose BER frames but which cannot be taken (a required field missing,
    a value out of range): `error` says why; `salvage` is the message to non-deliver with
    a report to its originator, or None when not even that can be read (or it is a
    report, which is never reported on)."""

    def __init__(self, error: BERError, kind: str, salvage: Message | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.kind = kind
        self.salvage = salvage


def receive_object(data: Input, *, domain: str) -> ReceivedObject:
    """An MTS-APDU from a peer, read liberally (RFC 1122's robustness principle: what
    other MTAs really send, an RFC 822 subject copied into a PrintableString, is taken).

    Raises BERError when the BER itself cannot be framed (the association must go), and
    UninterpretableError when the object frames but cannot be taken; `domain` names
    the MTS identifier made for a salvaged message that has none.
    """
    element = decode(data, name="mts-apdu", lenient=True)
    try:
        envelope, content = _interpret(element)
    except BERError as exc:
        kind = {MESSAGE_APDU: "message", REPORT_APDU: "report", PROBE_APDU: "probe"}
        raise UninterpretableError(
            exc, kind.get(element.tag, "object"), _salvage(element, domain)
        ) from None
    return ReceivedObject(envelope, content, tuple(element.faults))


def _interpret(element: Element) -> tuple[Envelope, bytes]:
    apdu = decode_mts_apdu(element)
    if isinstance(apdu, P1Message):
        return stored_envelope(apdu.envelope), apdu.content
    if apdu.kind == "report":
        envelope = decode_report_envelope(element.child(0, "envelope"))
        content = element.child(1, "content")
        decode_report_content(content)
        return envelope, bytes(content.raw)
    return stored_envelope(decode_envelope(element, probe=True)), b""


def _salvage(element: Element, domain: str) -> Message | None:
    """What can be read of a message or probe that cannot be taken, enough to report its
    non-delivery: its originator and the recipients that decode (None without them)."""
    if element.tag == MESSAGE_APDU:
        items = _attempt(element.children)
        if not items or items[0].tag != SET:
            return None
        envelope, kind = items[0], ObjectKind.MESSAGE
        body = items[1] if len(items) > 1 else None
        content = b""
        if body is not None and body.tag.number == OCTET_STRING.number:
            content = _attempt(body.as_octets) or b""
    elif element.tag == PROBE_APDU:
        envelope, kind, content = element, ObjectKind.PROBE, b""
    else:
        return None  # a report is never the subject of another (X.411)
    originator = _attempt(lambda: decode_orname(envelope.child(OR_NAME)).text)
    recipients: list[Recipient] = []
    per_recipient = _attempt(lambda: envelope.child(PER_RECIPIENT_FIELDS).children())
    for item in per_recipient or []:
        decoded = _attempt(partial(decode_recipient, item, {}))
        if decoded is not None:
            recipients.append(decoded[0])
    if originator is None or not recipients:
        return None
    mts_id = _attempt(lambda: decode_mts_identifier(envelope.child(MTS_IDENTIFIER)))
    content_type = _attempt(partial(_content_type, envelope)) or ContentType.P2
    indicators = _attempt(lambda: envelope.child(PER_MESSAGE_INDICATORS).as_bit_set())
    salvaged = Envelope(
        mts_id=mts_id or f"{domain};{new_mts_id('x').partition('@')[0]}",
        originator=originator,
        recipients=recipients,
        content_type=content_type,
        per_message_indicators=names_of(indicators or frozenset(), PMI_NAMES),
        trace=_attempt(lambda: decode_trace(envelope.child(TRACE_INFORMATION))) or [],
        object_kind=kind,
    )
    return Message(envelope=salvaged, content=content)


def _content_type(envelope: Element) -> str:
    builtin = envelope.find(BUILTIN_CONTENT_TYPE)
    if builtin is not None:
        number = builtin.as_int()
        if number < 0:
            raise builtin.error(f"{number} is negative")
        return f"builtin:{number}"
    return f"oid:{envelope.child(OID).as_oid()}"


def _attempt(read: Callable[[], T]) -> T | None:
    """`read()`, or None when what it reads does not decode."""
    try:
        return read()
    except BERError:
        return None


def stored_envelope(transfer: TransferEnvelope) -> Envelope:
    """The envelope to store, carrying what the internal model does not hold."""
    envelope = transfer.envelope
    names = {text: encode_orname(name) for text, name in transfer.names.items() if _unusual(name)}
    if transfer.unknown or transfer.eit_extra or names:
        extra = P1Extra(
            unknown=list(transfer.unknown), eit_extra=list(transfer.eit_extra), names=names
        )
        envelope = msgspec.structs.replace(envelope, p1=extra)
    if transfer.recipient_unknown:
        recipients = [
            msgspec.structs.replace(r, p1_unknown=list(u)) if u else r
            for r, u in zip(envelope.recipients, transfer.recipient_unknown, strict=True)
        ]
        envelope = msgspec.structs.replace(envelope, recipients=recipients)
    return envelope


def transfer_envelope(envelope: Envelope) -> TransferEnvelope:
    """The TransferEnvelope of a stored envelope (the inverse of `stored_envelope`)."""
    extra = envelope.p1 or P1Extra()
    names: dict[str, ORName] = {
        text: decode_orname(decode(raw, name="or-name")) for text, raw in extra.names.items()
    }
    per_recipient = tuple(tuple(r.p1_unknown) for r in envelope.recipients)
    return TransferEnvelope(
        envelope=envelope,
        unknown=tuple(extra.unknown),
        recipient_unknown=per_recipient if any(per_recipient) else (),
        eit_extra=tuple(extra.eit_extra),
        names=names,
    )


def encode_stored(envelope: Envelope, content: bytes, *, domain: str | None = None) -> bytes:
    """The MTS-APDU of a stored object; with `domain`, its trace element is added if missing."""
    if domain is not None:
        envelope = add_trace(envelope, domain, envelope.arrival)
    if envelope.object_kind is ObjectKind.REPORT:
        return encode_report_apdu(envelope, content)
    if envelope.object_kind is ObjectKind.PROBE:
        return encode_envelope(transfer_envelope(envelope), PROBE_APDU)
    return encode_mts_apdu(P1Message(envelope=transfer_envelope(envelope), content=content))


def add_trace(envelope: Envelope, domain: str, arrival: float) -> Envelope:
    """The envelope with this domain's trace element, unless it is already the last one."""
    trace = envelope.trace
    if trace and _same_domain(trace[-1].domain, domain):
        return envelope
    hop = TraceElement(domain=domain, arrival=arrival or 0.0, action="relayed")
    return msgspec.structs.replace(envelope, trace=[*trace, hop])


def loop_detected(envelope: Envelope, domain: str) -> bool:
    """True when the trace shows the object left `domain` before and has come back to it."""
    trace = envelope.trace
    if not trace:
        return False
    # The last element may be this domain's own (another MTA of the domain relayed it).
    earlier = trace[:-1] if _same_domain(trace[-1].domain, domain) else trace
    return any(_same_domain(hop.domain, domain) and hop.action == "relayed" for hop in earlier)


def _same_domain(a: str, b: str) -> bool:
    return a.upper() == b.upper()


def _unusual(name: ORName) -> bool:
    return name.directory_name is not None or bool(name.extra)


__all__ = [
    "ReceivedObject",
    "UninterpretableError",
    "add_trace",
    "decode_object",
    "encode_stored",
    "loop_detected",
    "receive_object",
    "stored_envelope",
    "transfer_envelope",
]
