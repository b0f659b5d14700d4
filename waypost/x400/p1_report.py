"""X.411 reports: the ReportTransferEnvelope ⇄ a stored `Envelope`, and the ReportTransferContent.

A stored report keeps its content as the ReportTransferContent's BER (what
an MTA relays untouched); `decode_report_content` reads it for reports made
here, for summaries and for tests. Tags follow X.411 (1988), IMPLICIT TAGS:
an ORName under a context tag loses its [APPLICATION 0].
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from waypost.asn1 import (
    OID,
    PRINTABLE_STRING,
    SET,
    UTC_TIME,
    Element,
    Tag,
    constructed,
    context,
    decode,
    encode_int,
    encode_octets,
    encode_string,
    encode_time,
    set_of,
)
from waypost.message import (
    ContentType,
    Envelope,
    Extension,
    ObjectKind,
    P1Extra,
    Recipient,
    ReportRequest,
    TraceElement,
)
from waypost.x400.p1_envelope import (
    BUILTIN_CONTENT_TYPE,
    CONTENT_IDENTIFIER,
    ORIGINAL_EITS,
    REPORT_APDU,
    TRACE_INFORMATION,
    decode_eits,
    decode_extensions,
    decode_trace,
    encode_content_type,
    encode_eits,
    encode_extension,
    encode_trace,
    epoch,
    per_recipient_indicators,
    report_request,
    utc,
)
from waypost.x400.p1_names import (
    MTS_IDENTIFIER,
    OR_NAME,
    ORName,
    decode_mts_identifier,
    decode_or_components,
    decode_orname,
    encode_mts_identifier,
    encode_orname,
    encode_orname_as,
    encode_orname_text,
    orname_from_text,
)

Input = bytes | bytearray | memoryview

REPORT_ENVELOPE_EXTENSIONS = context(1, True)
RETURNED_CONTENT = context(1)
ADDITIONAL_INFORMATION = context(2, True)
CONTENT_EXTENSIONS = context(3, True)
REPORT_RECIPIENTS = context(0, True)

# X.411 NonDeliveryReasonCode and NonDeliveryDiagnosticCode, by number.
REASONS = (
    "transfer-failure", "unable-to-transfer", "conversion-not-performed",
    "physical-rendition-not-performed", "physical-delivery-not-performed",
    "restricted-delivery", "directory-operation-unsuccessful",
    "deferred-delivery-not-performed", "transfer-failure-for-security-reason",
)  # fmt: skip
DIAGNOSTICS = (
    "unrecognised-OR-name", "ambiguous-OR-name", "mts-congestion", "loop-detected",
    "recipient-unavailable", "maximum-time-expired", "encoded-information-types-unsupported",
    "content-too-long", "conversion-impractical", "implicit-conversion-prohibited",
    "implicit-conversion-not-subscribed", "invalid-arguments", "content-syntax-error",
    "size-constraint-violation", "protocol-violation", "content-type-not-supported",
    "too-many-recipients", "no-bilateral-agreement", "unsupported-critical-function",
    "conversion-with-loss-prohibited", "line-too-long", "page-split",
    "pictorial-symbol-loss", "punctuation-symbol-loss", "alphabetic-character-loss",
    "multiple-information-loss", "recipient-reassignment-prohibited",
    "redirection-loop-detected", "dl-expansion-prohibited", "no-dl-submit-permission",
    "dl-expansion-failure", "physical-rendition-attributes-not-supported",
    "undeliverable-mail-physical-delivery-address-incorrect",
    "undeliverable-mail-physical-delivery-office-incorrect-or-invalid",
    "undeliverable-mail-physical-delivery-address-incomplete",
    "undeliverable-mail-recipient-unknown", "undeliverable-mail-recipient-deceased",
    "undeliverable-mail-organization-expired", "undeliverable-mail-recipient-refused-to-accept",
    "undeliverable-mail-recipient-did-not-claim",
    "undeliverable-mail-recipient-changed-address-permanently",
    "undeliverable-mail-recipient-changed-address-temporarily",
    "undeliverable-mail-recipient-changed-temporary-address",
    "undeliverable-mail-new-address-unknown",
    "undeliverable-mail-recipient-did-not-want-forwarding",
    "undeliverable-mail-originator-prohibited-forwarding", "secure-messaging-error",
    "unable-to-downgrade",
)  # fmt: skip
MAX_SUPPLEMENTARY = 256  # ub-supplementary-info-length
PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportedRecipient:
    """One PerRecipientReportTransferFields: delivered (`delivered_at`) or not (`reason`)."""

    actual_recipient: str
    originally_specified_number: int
    arrival: float
    responsibility: bool = False
    mta_report_request: ReportRequest = ReportRequest.NON_DELIVERY
    report_request: ReportRequest = ReportRequest.NON_DELIVERY
    delivered_at: float | None = None
    type_of_mts_user: int = 0
    reason: int | None = None
    diagnostic: int | None = None
    converted_eits: tuple[str, ...] = ()
    intended_recipient: str | None = None
    supplementary: str | None = None
    extensions: tuple[Extension, ...] = ()

    @property
    def delivered(self) -> bool:
        return self.delivered_at is not None

    def describe(self) -> str:
        """`delivered` or `non-delivered: reason / diagnostic`, for operators."""
        if self.delivered:
            return "delivered"
        reason = _name(self.reason, REASONS)
        text = f"non-delivered: {reason}"
        if self.diagnostic is not None:
            text += f" / {_name(self.diagnostic, DIAGNOSTICS)}"
        return text


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportContent:
    """A ReportTransferContent: about which message (or probe), and each recipient's fate."""

    subject_id: str
    recipients: tuple[ReportedRecipient, ...]
    subject_trace: tuple[TraceElement, ...] | None = None
    eits: tuple[str, ...] | None = None
    content_type: str | None = None
    content_id: str | None = None
    returned_content: bytes | None = None
    extensions: tuple[Extension, ...] = ()
    unknown: tuple[bytes, ...] = ()  # additional-information and later fields, as received


def _name(code: int | None, table: tuple[str, ...]) -> str:
    if code is None:
        return "unspecified"
    return table[code] if 0 <= code < len(table) else str(code)


def printable(text: str, limit: int = MAX_SUPPLEMENTARY) -> str:
    """`text` reduced to PrintableString characters (others become '?'), at most `limit`."""
    return "".join(c if c in PRINTABLE else "?" for c in text)[:limit]


# --- the envelope ----------------------------------------------------------------------


def decode_report_envelope(element: Element) -> Envelope:
    """A ReportTransferEnvelope SET as a stored report envelope (no content)."""
    element = element.expect(SET, name="report-envelope")
    report_id: str | None = None
    destination: ORName | None = None
    trace: list[TraceElement] | None = None
    extensions: list[Extension] = []
    unknown: list[bytes] = []
    for item in element:
        if item.tag == MTS_IDENTIFIER:
            report_id = decode_mts_identifier(item.named("report-identifier"))
        elif item.tag == OR_NAME:
            destination = decode_orname(item.named("report-destination-name"))
        elif item.tag == TRACE_INFORMATION:
            trace = decode_trace(item.named("trace-information"))
        elif item.tag == REPORT_ENVELOPE_EXTENSIONS:
            extensions = decode_extensions(item.named("extensions"))
        else:
            unknown.append(bytes(item.raw))
    if report_id is None:
        raise element.error("ReportTransferEnvelope without report-identifier")
    if destination is None:
        raise element.error("ReportTransferEnvelope without report-destination-name")
    if trace is None:
        raise element.error("ReportTransferEnvelope without trace-information")
    names = {destination.text: encode_orname(destination)} if _unusual(destination) else {}
    extra = P1Extra(unknown=unknown, names=names) if unknown or names else None
    return Envelope(
        mts_id=report_id,
        originator="",
        recipients=[
            Recipient(
                address=destination.text,
                originally_specified_number=1,
                report_request=ReportRequest.NONE,
                mta_report_request=ReportRequest.NONE,
            )
        ],
        content_type=ContentType.X400_REPORT,
        trace=trace,
        extensions=extensions,
        is_report=True,
        object_kind=ObjectKind.REPORT,
        p1=extra,
    )


def encode_report_apdu(envelope: Envelope, content: bytes) -> bytes:
    """The MTS-APDU report [1] for a stored report: envelope SET, then the content SET."""
    if len(envelope.recipients) != 1:
        raise ValueError("a report has exactly one destination")
    extra = envelope.p1 or P1Extra()
    destination = envelope.recipients[0].address
    raw_name = extra.names.get(destination)
    parts = [
        encode_mts_identifier(envelope.mts_id),
        raw_name if raw_name is not None else encode_orname_text(destination),
        encode_trace(envelope.trace),
        *extra.unknown,
    ]
    if envelope.extensions:
        parts.append(_extensions(envelope.extensions, REPORT_ENVELOPE_EXTENSIONS))
    return constructed(REPORT_APDU, set_of(*parts), content)


def _unusual(name: ORName) -> bool:
    return name.directory_name is not None or bool(name.extra)


def _extensions(extensions: Iterable[Extension], tag: Tag) -> bytes:
    return constructed(tag, *(encode_extension(e) for e in extensions))


# --- the content -----------------------------------------------------------------------


def decode_report_content(data: Input | Element) -> ReportContent:
    """A ReportTransferContent SET; raises BERError-derived errors naming the path."""
    # Stored reports were taken liberally (a peer's "@" in a PrintableString): read so too.
    element = (
        data if isinstance(data, Element) else decode(data, name="report-content", lenient=True)
    )
    element = element.expect(SET, name="report-content")
    fields: dict[str, object] = {}
    unknown: list[bytes] = []
    recipients: list[ReportedRecipient] = []
    for item in element:
        tag = item.tag
        if tag == MTS_IDENTIFIER:
            fields["subject_id"] = decode_mts_identifier(item.named("subject-identifier"))
        elif tag == TRACE_INFORMATION:
            trace = decode_trace(item.named("subject-intermediate-trace-information"))
            fields["subject_trace"] = tuple(trace)
        elif tag == ORIGINAL_EITS:
            fields["eits"] = tuple(decode_eits(item.named("original-encoded-information-types"))[0])
        elif tag == BUILTIN_CONTENT_TYPE:
            fields["content_type"] = f"builtin:{item.named('content-type').as_int()}"
        elif tag == OID:
            fields["content_type"] = f"oid:{item.named('content-type').as_oid()}"
        elif tag == CONTENT_IDENTIFIER:
            fields["content_id"] = item.named("content-identifier").as_string(PRINTABLE_STRING)
        elif tag in (RETURNED_CONTENT, RETURNED_CONTENT.as_constructed()):
            fields["returned_content"] = item.named("returned-content").as_octets()
        elif tag == CONTENT_EXTENSIONS:
            fields["extensions"] = tuple(decode_extensions(item.named("extensions")))
        elif tag == REPORT_RECIPIENTS:
            for index, child in enumerate(item.named("per-recipient-fields")):
                recipients.append(_decode_reported(child.named(f"recipient[{index}]")))
        else:
            unknown.append(bytes(item.raw))
    if "subject_id" not in fields:
        raise element.error("ReportTransferContent without subject-identifier")
    if not recipients:
        raise element.error("ReportTransferContent without per-recipient-fields")
    return ReportContent(recipients=tuple(recipients), unknown=tuple(unknown), **fields)  # type: ignore[arg-type]


def _decode_reported(item: Element) -> ReportedRecipient:
    item = item.expect(SET)
    name_element = item.child(context(0, True), "actual-recipient-name")
    name = decode_or_components(name_element, name_element.children())
    bits = item.child(context(2), "per-recipient-indicators").as_bit_set()
    last = item.child(context(3, True), "last-trace-information")
    fields: dict[str, object] = {
        "actual_recipient": name.text,
        "originally_specified_number": item.child(
            context(1), "originally-specified-recipient-number"
        ).as_int(),
        "responsibility": 0 in bits,
        "mta_report_request": report_request(bits, 1),
        "report_request": report_request(bits, 3),
        "arrival": epoch(last.child(context(0), "arrival-time")),
    }
    converted = last.find(ORIGINAL_EITS)
    if converted is not None:
        fields["converted_eits"] = tuple(decode_eits(converted)[0])
    report_type = last.child(context(1, True), "report-type")
    if len(report_type) != 1:
        raise report_type.error("report-type holds one choice")
    choice = report_type.child(0, "report-type")
    if choice.tag == context(0, True):
        fields["delivered_at"] = epoch(choice.child(context(0), "message-delivery-time"))
        user = choice.find(context(1))
        if user is not None:
            fields["type_of_mts_user"] = user.as_int()
    elif choice.tag == context(1, True):
        fields["reason"] = choice.child(context(0), "non-delivery-reason-code").as_int()
        diagnostic = choice.find(context(1))
        if diagnostic is not None:
            fields["diagnostic"] = diagnostic.as_int()
    else:
        raise choice.error(f"unexpected {choice.tag} as a report type")
    intended = item.find(context(4, True))
    if intended is not None:
        fields["intended_recipient"] = decode_or_components(intended, intended.children()).text
    supplementary = item.find(context(5))
    if supplementary is not None:
        fields["supplementary"] = supplementary.named("supplementary-information").as_string(
            PRINTABLE_STRING
        )
    extensions = item.find(context(6, True))
    if extensions is not None:
        fields["extensions"] = tuple(decode_extensions(extensions))
    return ReportedRecipient(**fields)  # type: ignore[arg-type]


def encode_report_content(content: ReportContent) -> bytes:
    """The ReportTransferContent SET, in X.411's definition order."""
    parts = [encode_mts_identifier(content.subject_id)]
    if content.subject_trace is not None:
        parts.append(encode_trace(content.subject_trace))
    if content.eits:
        parts.append(encode_eits(content.eits, ()))
    if content.content_type is not None:
        parts.append(encode_content_type(content.content_type))
    if content.content_id is not None:
        parts.append(encode_string(CONTENT_IDENTIFIER, content.content_id, PRINTABLE_STRING))
    if content.returned_content is not None:
        parts.append(encode_octets(content.returned_content, RETURNED_CONTENT))
    parts.extend(content.unknown)
    if content.extensions:
        parts.append(_extensions(content.extensions, CONTENT_EXTENSIONS))
    recipients = (_encode_reported(r) for r in content.recipients)
    parts.append(constructed(REPORT_RECIPIENTS, *recipients))
    return set_of(*parts)


def _encode_reported(recipient: ReportedRecipient) -> bytes:
    if recipient.delivered_at is not None:
        delivery = [encode_time(utc(recipient.delivered_at), context(0), UTC_TIME)]
        if recipient.type_of_mts_user:
            delivery.append(encode_int(recipient.type_of_mts_user, context(1)))
        report_type = constructed(context(0, True), *delivery)
    else:
        if recipient.reason is None:
            raise ValueError("a non-delivered recipient needs a reason code")
        codes = [encode_int(recipient.reason, context(0))]
        if recipient.diagnostic is not None:
            codes.append(encode_int(recipient.diagnostic, context(1)))
        report_type = constructed(context(1, True), *codes)
    last = [encode_time(utc(recipient.arrival), context(0), UTC_TIME)]
    if recipient.converted_eits:
        last.append(encode_eits(recipient.converted_eits, ()))
    last.append(constructed(context(1, True), report_type))
    parts = [
        encode_orname_as(orname_from_text(recipient.actual_recipient), context(0, True)),
        encode_int(recipient.originally_specified_number, context(1)),
        per_recipient_indicators(
            recipient.mta_report_request,
            recipient.report_request,
            recipient.responsibility,
            context(2),
        ),
        set_of(*last, tag=context(3, True)),
    ]
    if recipient.intended_recipient is not None:
        name = orname_from_text(recipient.intended_recipient)
        parts.append(encode_orname_as(name, context(4, True)))
    if recipient.supplementary:
        text = printable(recipient.supplementary)
        parts.append(encode_string(context(5), text, PRINTABLE_STRING))
    if recipient.extensions:
        parts.append(_extensions(recipient.extensions, context(6, True)))
    return set_of(*parts)


__all__ = [
    "DIAGNOSTICS",
    "REASONS",
    "ReportContent",
    "ReportedRecipient",
    "decode_report_content",
    "decode_report_envelope",
    "encode_report_apdu",
    "encode_report_content",
    "printable",
]
