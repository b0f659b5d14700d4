"""MTS-APDUs ⇄ what the MTA database keeps: messages, reports and probes, with their trace.

What a received envelope holds beyond the internal model travels in
`Envelope.p1` and `Recipient.p1_unknown`, so that a relayed object leaves
with everything it came with. Trace: the first MTA of a domain adds the
domain's element (X.411 trace-information); an object whose trace shows it
already left this domain has come back: a loop.
"""

from __future__ import annotations

import msgspec

from waypost.asn1 import decode
from waypost.message import Envelope, ObjectKind, P1Extra, TraceElement
from waypost.x400.p1_envelope import (
    PROBE_APDU,
    P1Message,
    TransferEnvelope,
    decode_envelope,
    decode_mts_apdu,
    encode_envelope,
    encode_mts_apdu,
)
from waypost.x400.p1_names import ORName, decode_orname, encode_orname
from waypost.x400.p1_report import decode_report_content, decode_report_envelope, encode_report_apdu

Input = bytes | bytearray | memoryview


def decode_object(data: Input) -> tuple[Envelope, bytes]:
    """An MTS-APDU as the envelope and content to store (raises BERError naming the path).

    A report's content is checked to decode and kept as received; a probe has none.
    """
    apdu = decode_mts_apdu(data)
    if isinstance(apdu, P1Message):
        return stored_envelope(apdu.envelope), apdu.content
    element = decode(apdu.data, name=apdu.kind)
    if apdu.kind == "report":
        envelope = decode_report_envelope(element.child(0, "envelope"))
        content = element.child(1, "content")
        decode_report_content(content)
        return envelope, bytes(content.raw)
    return stored_envelope(decode_envelope(element, probe=True)), b""


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
    "add_trace",
    "decode_object",
    "encode_stored",
    "loop_detected",
    "stored_envelope",
    "transfer_envelope",
]
