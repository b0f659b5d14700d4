"""X.411 MessageTransferEnvelope ⇄ `waypost.message.Envelope`, and the MTS-APDU around it.

`decode_envelope` maps every field waypost models and keeps every other SET
member as received (`TransferEnvelope.unknown`), so that decode → encode loses
nothing an MTA must relay. Extensions are kept as `Extension`s (type, critical
bits, value BER); `unsupported_critical` finds those an MTA must refuse.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, lru_cache

from waypost.address.mailbox import AddressError
from waypost.asn1 import (
    INTEGER,
    OCTET_STRING,
    OID,
    SEQUENCE,
    SET,
    UTC_TIME,
    Element,
    Tag,
    application,
    constructed,
    context,
    decode,
    encode_bit_set,
    encode_bits,
    encode_int,
    encode_octets,
    encode_oid,
    encode_string,
    encode_time,
    sequence,
    set_of,
)
from waypost.asn1 import PRINTABLE_STRING as PS
from waypost.message import (
    Envelope,
    Extension,
    ObjectKind,
    Priority,
    Recipient,
    ReportRequest,
    TraceElement,
)
from waypost.x400.p1_names import (
    GLOBAL_DOMAIN_IDENTIFIER,
    MTS_IDENTIFIER,
    OR_NAME,
    ORName,
    decode_gdi,
    decode_mts_identifier,
    decode_orname,
    encode_gdi,
    encode_mts_identifier,
    encode_orname,
    encode_orname_text,
)

Input = bytes | bytearray | memoryview

ORIGINAL_EITS = application(5, True)
BUILTIN_CONTENT_TYPE = application(6)
PRIORITY = application(7)
PER_MESSAGE_INDICATORS = application(8)
TRACE_INFORMATION = application(9, True)
CONTENT_IDENTIFIER = application(10)
DEFERRED_DELIVERY = context(0)
EXTENSIONS = context(3, True)
PER_RECIPIENT_FIELDS = context(2, True)

MESSAGE_APDU = context(0, True)
REPORT_APDU = context(1, True)
PROBE_APDU = context(2, True)

EIT_NAMES = (
    "undefined", "telex", "ia5-text", "g3-facsimile", "g4-class-1",
    "teletex", "videotex", "voice", "sfd", "mixed-mode",
)  # fmt: skip
PMI_NAMES = (
    "disclosure-of-recipients", "implicit-conversion-prohibited",
    "alternate-recipient-allowed", "content-return-request",
)  # fmt: skip
PMI_SERVICE_MESSAGE = 7
CRITICALITY_NAMES = ("submission", "transfer", "delivery")
ROUTING_ACTIONS = ("relayed", "rerouted")


@dataclass(frozen=True, slots=True, kw_only=True)
class TransferEnvelope:
    """A decoded MessageTransferEnvelope: the internal `Envelope` plus what it cannot hold.

    `unknown` holds the SET members waypost does not map (per-domain bilateral
    information, fields of later editions), `recipient_unknown` those of each
    per-recipient SET, `eit_extra` the non-basic parameters of the original
    EITs; `names` the decoded ORNames by canonical text, so that a directory
    name or an unusual extension attribute is re-encoded as received.
    """

    envelope: Envelope
    unknown: tuple[bytes, ...] = ()
    recipient_unknown: tuple[tuple[bytes, ...], ...] = ()
    eit_extra: tuple[bytes, ...] = ()
    names: dict[str, ORName] = field(default_factory=dict, compare=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class P1Message:
    """MTS-APDU message [0]: envelope and content (the OCTET STRING's bytes)."""

    envelope: TransferEnvelope
    content: bytes = field(repr=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class P1Raw:
    """A report [1] or probe [2] MTS-APDU, kept as received until it is modelled."""

    kind: str
    data: bytes = field(repr=False)


# --- helpers ---------------------------------------------------------------------------


def epoch(element: Element) -> float:
    return element.as_time(UTC_TIME).timestamp()


def utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def names_of(bits: Iterable[int], table: tuple[str, ...]) -> list[str]:
    """The names of the bits set (`bit-N` for those the table does not name)."""
    return _names(bits, table)


def _names(bits: Iterable[int], table: tuple[str, ...]) -> list[str]:
    return [table[n] if n < len(table) else f"bit-{n}" for n in sorted(bits)]


def _bits(names: Iterable[str], table: tuple[str, ...]) -> list[int]:
    out: list[int] = []
    for name in names:
        if name in table:
            out.append(table.index(name))
        elif name.startswith("bit-") and name[4:].isdigit():
            out.append(int(name[4:]))
        else:
            raise ValueError(f"unknown bit name {name!r}")
    return out


def _natural(element: Element) -> int:
    value = element.as_int()
    if value < 0:
        raise element.error(f"{value} is negative")
    return value


def _text(element: Element, kind: Tag) -> str:
    return element.as_string(kind)


# --- extensions ------------------------------------------------------------------------


def decode_extensions(element: Element) -> list[Extension]:
    """`[3] SET OF ExtensionField` (X.411 1988 form `type [0] CHOICE {INTEGER, OID}`)."""
    out: list[Extension] = []
    for raw_item in element:
        item = raw_item.expect(SEQUENCE, name=f"extension[{len(out)}]")
        kind = item.child(0, "type")
        if kind.tag == context(0, True):
            inner = kind.child(0, "type").expect(INTEGER, OID)
            type_text = str(_natural(inner)) if inner.tag == INTEGER else inner.as_oid()
        elif kind.tag == context(0):  # the 1992+ form, [0] IMPLICIT INTEGER
            type_text = str(_natural(kind))
        elif kind.tag == context(3):  # … and [3] IMPLICIT OBJECT IDENTIFIER
            type_text = kind.as_oid()
        else:
            raise kind.error(f"unexpected {kind.tag} as an extension type")
        critical = item.find(context(1))
        value = item.find(context(2, True))
        if value is not None and len(value) != 1:
            raise value.error("an extension value must be one element")
        for extra in item.children()[1:]:
            if extra.tag not in (context(1), context(2, True)):
                raise extra.error(f"unexpected {extra.tag} in ExtensionField")
        out.append(
            Extension(
                type=type_text,
                critical_for=_names(critical.as_bit_set(), CRITICALITY_NAMES)
                if critical is not None
                else [],
                value=bytes(value.child(0).raw) if value is not None else b"",
            )
        )
    return out


def encode_extension(extension: Extension) -> bytes:
    """One ExtensionField in the 1988 form PP sends: `[0] { INTEGER | OID }`."""
    if extension.type.isdigit():
        kind = encode_int(int(extension.type))
    else:
        kind = encode_oid(extension.type)
    parts = [constructed(context(0), kind)]
    if extension.critical_for:
        parts.append(encode_bit_set(_bits(extension.critical_for, CRITICALITY_NAMES), context(1)))
    if extension.value:
        parts.append(constructed(context(2), extension.value))
    return sequence(*parts)


def encode_extensions(extensions: Iterable[Extension]) -> bytes:
    """`[3] SET OF ExtensionField`, in the order given (BER does not sort a SET OF)."""
    return constructed(EXTENSIONS, *(encode_extension(e) for e in extensions))


def unsupported_critical(
    envelope: Envelope, supported: Collection[str] = (), *, critical_for: str = "transfer"
) -> list[Extension]:
    """Extensions (envelope and per recipient) marked critical for `critical_for` that
    are not in `supported`: X.411 says such a message must not be transferred but
    non-delivered (unsupported-critical-function)."""
    found = [e for e in envelope.extensions if critical_for in e.critical_for]
    for recipient in envelope.recipients:
        found.extend(e for e in recipient.extensions if critical_for in e.critical_for)
    return [e for e in found if e.type not in supported]


# --- trace -----------------------------------------------------------------------------


def decode_trace(element: Element) -> list[TraceElement]:
    out: list[TraceElement] = []
    for index, raw_item in enumerate(element):
        item = raw_item.expect(SEQUENCE, name=f"trace[{index}]")
        domain = decode_gdi(item.child(0, "global-domain-identifier"))
        info = item.child(1, "domain-supplied-information").expect(SET)
        action = info.child(context(2), "routing-action").as_int()
        attempted = info.find(GLOBAL_DOMAIN_IDENTIFIER)
        converted = info.find(ORIGINAL_EITS)
        out.append(
            TraceElement(
                domain=domain,
                arrival=epoch(info.child(context(0), "arrival-time")),
                action=ROUTING_ACTIONS[action] if 0 <= action < 2 else f"action-{action}",
                converted_eits=decode_eits(converted)[0] if converted is not None else [],
                attempted_domain=decode_gdi(attempted) if attempted is not None else None,
            )
        )
    return out


def encode_trace(trace: Iterable[TraceElement]) -> bytes:
    items = []
    for hop in trace:
        action = hop.action
        code = (
            ROUTING_ACTIONS.index(action)
            if action in ROUTING_ACTIONS
            else int(action.removeprefix("action-"))
        )
        info = [
            encode_time(utc(hop.arrival), context(0), UTC_TIME),
            encode_int(code, context(2)),
        ]
        if hop.attempted_domain is not None:
            info.append(encode_gdi(hop.attempted_domain))
        if hop.converted_eits:
            info.append(encode_eits(hop.converted_eits, ()))
        items.append(sequence(encode_gdi(hop.domain), set_of(*info)))
    return constructed(TRACE_INFORMATION, *items)


# --- encoded information types ---------------------------------------------------------


def decode_eits(element: Element) -> tuple[list[str], tuple[bytes, ...]]:
    names: list[str] = []
    extra: list[bytes] = []
    for item in element.expect(ORIGINAL_EITS):
        if item.tag == context(0):
            names.extend(_names(item.as_bit_set(), EIT_NAMES))
        elif item.tag == context(4, True):
            names.extend("oid:" + oid.expect(OID).as_oid() for oid in item)
        else:
            extra.append(bytes(item.raw))
    return names, tuple(extra)


def encode_eits(names: Iterable[str], extra: Iterable[bytes]) -> bytes:
    """EncodedInformationTypes; the encodings of the usual few sets are kept."""
    return _encode_eits(tuple(names), tuple(extra))


@lru_cache(maxsize=256)
def _encode_eits(names: tuple[str, ...], extra: tuple[bytes, ...]) -> bytes:
    oids = [encode_oid(n[4:]) for n in names if n.startswith("oid:")]
    bits = _bits((n for n in names if not n.startswith("oid:")), EIT_NAMES)
    parts = [encode_bit_set(bits, context(0)), *extra]
    if oids:
        parts.append(constructed(context(4, True), *oids))
    return set_of(*parts, tag=ORIGINAL_EITS)


# --- per-recipient fields --------------------------------------------------------------


def report_request(bits: frozenset[int], report: int) -> ReportRequest:
    # X.411 PerRecipientIndicators: the "report" bit asks for every report; the
    # "non-delivery-report" bit alone for non-delivery only; both is an audited report.
    if report in bits:
        return ReportRequest.ALWAYS
    if report + 1 in bits:
        return ReportRequest.NON_DELIVERY
    return ReportRequest.NONE


# The bits a request sets, counted from the "report" bit (the inverse of report_request).
_REQUEST_BITS: dict[ReportRequest, tuple[int, ...]] = {
    ReportRequest.ALWAYS: (0,),
    ReportRequest.NON_DELIVERY: (1,),
    ReportRequest.NONE: (),
}


def request_bits(request: ReportRequest, report: int) -> list[int]:
    return [report + bit for bit in _REQUEST_BITS[request]]


@cache  # three requests of each kind, two responsibilities, two tags: 36 at most
def per_recipient_indicators(
    mta: ReportRequest, report: ReportRequest, responsibility: bool, tag: Tag
) -> bytes:
    """The PerRecipientIndicators of a recipient's MTA and originator report requests,
    under `tag` ([1] in a message envelope, [2] in a report's per-recipient fields)."""
    bits = request_bits(mta, 1) + request_bits(report, 3)
    if responsibility:
        bits.append(0)
    octet = sum(0x80 >> n for n in bits)
    return encode_bits(bytes((octet,)), 0, tag)  # SIZE (8..ub-bit-options)


_RECIPIENT_FIELDS = (OR_NAME, context(0), context(1), context(2), EXTENSIONS)


def decode_recipient(
    item: Element, names: dict[str, ORName]
) -> tuple[Recipient, tuple[bytes, ...]]:
    item = item.expect(SET)
    name = decode_orname(item.child(OR_NAME, "recipient-name"))
    names[name.text] = name
    bits = item.child(context(1), "per-recipient-indicators").as_bit_set()
    conversion = item.find(context(2))
    extensions = item.find(EXTENSIONS)
    unknown = tuple(bytes(c.raw) for c in item if c.tag not in _RECIPIENT_FIELDS)
    recipient = Recipient(
        address=name.text,
        originally_specified_number=item.child(
            context(0), "originally-specified-recipient-number"
        ).as_int(),
        responsibility=0 in bits,
        mta_report_request=report_request(bits, 1),
        report_request=report_request(bits, 3),
        explicit_conversion=conversion.as_int() if conversion is not None else None,
        extensions=decode_extensions(extensions.named("extensions"))
        if extensions is not None
        else [],
    )
    return recipient, unknown


def encode_recipient(
    recipient: Recipient, unknown: Iterable[bytes], names: dict[str, ORName]
) -> bytes:
    parts = [
        encode_name(recipient.address, names),
        encode_int(recipient.originally_specified_number, context(0)),
        per_recipient_indicators(
            recipient.mta_report_request,
            recipient.report_request,
            recipient.responsibility,
            context(1),
        ),
        *unknown,
    ]
    if recipient.explicit_conversion is not None:
        parts.append(encode_int(recipient.explicit_conversion, context(2)))
    if recipient.extensions:
        parts.append(encode_extensions(recipient.extensions))
    return set_of(*parts)


def encode_name(text: str, names: dict[str, ORName]) -> bytes:
    known = names.get(text)
    return encode_orname(known) if known is not None else encode_orname_text(text)


# --- the envelope ----------------------------------------------------------------------


def decode_envelope(element: Element, *, probe: bool = False) -> TransferEnvelope:
    """A MessageTransferEnvelope SET (or, with `probe`, a ProbeTransferEnvelope, whose [0]
    is the content length); raises BERError-derived errors naming the path."""
    # A top-level element is named for errors; one inside an APDU already has its path.
    label = ("probe" if probe else "envelope") if element.path == "$" else None
    element = element.expect(PROBE_APDU if probe else SET, name=label)
    fields: dict[str, object] = {}
    names: dict[str, ORName] = {}
    unknown: list[bytes] = []
    recipients: list[Recipient] = []
    recipient_unknown: list[tuple[bytes, ...]] = []
    eit_extra: tuple[bytes, ...] = ()
    for item in element:
        tag = item.tag
        if tag == MTS_IDENTIFIER:
            fields["mts_id"] = decode_mts_identifier(item.named("message-identifier"))
        elif tag == OR_NAME:
            name = decode_orname(item.named("originator-name"))
            names[name.text] = name
            fields["originator"] = name.text
        elif tag == ORIGINAL_EITS:
            eits, eit_extra = decode_eits(item.named("original-encoded-information-types"))
            fields["encoded_information_types"] = eits
        elif tag == BUILTIN_CONTENT_TYPE:
            fields["content_type"] = f"builtin:{_natural(item.named('content-type'))}"
        elif tag == OID:
            fields["content_type"] = f"oid:{item.named('content-type').as_oid()}"
        elif tag == CONTENT_IDENTIFIER:
            fields["content_id"] = _text(item.named("content-identifier"), PS)
        elif tag == PRIORITY:
            value = item.named("priority").as_int()
            if value not in (0, 1, 2):
                raise item.named("priority").error(f"priority {value} is not 0, 1 or 2")
            fields["priority"] = Priority(value)
        elif tag == PER_MESSAGE_INDICATORS:
            bits = item.named("per-message-indicators").as_bit_set()
            fields["per_message_indicators"] = _names(bits, PMI_NAMES)
        elif tag == DEFERRED_DELIVERY and probe:
            fields["content_length"] = _natural(item.named("content-length"))
        elif tag == DEFERRED_DELIVERY:
            fields["deferred_delivery"] = epoch(item.named("deferred-delivery-time"))
        elif tag == TRACE_INFORMATION:
            fields["trace"] = decode_trace(item.named("trace-information"))
        elif tag == EXTENSIONS:
            fields["extensions"] = decode_extensions(item.named("extensions"))
        elif tag == PER_RECIPIENT_FIELDS:
            for index, child in enumerate(item.named("per-recipient-fields")):
                recipient, extra = decode_recipient(child.named(f"recipient[{index}]"), names)
                recipients.append(recipient)
                recipient_unknown.append(extra)
        else:
            unknown.append(bytes(item.raw))
    for required in ("mts_id", "originator", "content_type"):
        if required not in fields:
            raise element.error(f"MessageTransferEnvelope without {required.replace('_', '-')}")
    if not recipients:
        raise element.error("MessageTransferEnvelope without per-recipient-fields")
    if "trace" not in fields:
        raise element.error("MessageTransferEnvelope without trace-information")
    if probe:
        fields["object_kind"] = ObjectKind.PROBE
    envelope = Envelope(recipients=recipients, **fields)  # type: ignore[arg-type]
    return TransferEnvelope(
        envelope=envelope,
        unknown=tuple(unknown),
        recipient_unknown=tuple(recipient_unknown) if any(recipient_unknown) else (),
        eit_extra=eit_extra,
        names=names,
    )


def encode_envelope(envelope: Envelope | TransferEnvelope, tag: Tag = SET) -> bytes:
    """The MessageTransferEnvelope SET, or a probe's with `tag` PROBE_APDU (raises
    ValueError/AddressError on values P1 cannot hold)."""
    if isinstance(envelope, Envelope):
        envelope = TransferEnvelope(envelope=envelope)
    env, names = envelope.envelope, envelope.names
    # X.411's definition order, as PP sends it (BER lets a SET come in any order).
    parts = [encode_mts_identifier(env.mts_id), encode_name(env.originator, names)]
    if env.encoded_information_types or envelope.eit_extra:
        parts.append(encode_eits(env.encoded_information_types, envelope.eit_extra))
    parts.append(encode_content_type(env.content_type))
    if env.content_id is not None:
        parts.append(encode_string(CONTENT_IDENTIFIER, env.content_id, PS))
    if env.priority != Priority.NORMAL:
        parts.append(encode_int(int(env.priority), PRIORITY))
    if env.per_message_indicators:
        bits = _bits(env.per_message_indicators, PMI_NAMES)
        parts.append(encode_bit_set(bits, PER_MESSAGE_INDICATORS))
    if env.object_kind is ObjectKind.PROBE:
        if env.content_length is not None:
            parts.append(encode_int(env.content_length, DEFERRED_DELIVERY))  # [0] in a probe
    elif env.deferred_delivery is not None:
        parts.append(encode_time(utc(env.deferred_delivery), DEFERRED_DELIVERY, UTC_TIME))
    parts.extend(envelope.unknown)  # per-domain-bilateral-information comes here
    parts.append(encode_trace(env.trace))
    if env.extensions:
        parts.append(encode_extensions(env.extensions))
    unknown = envelope.recipient_unknown or ((),) * len(env.recipients)
    if len(unknown) != len(env.recipients):
        raise ValueError("recipient_unknown does not match the recipients")
    recipients = (
        encode_recipient(r, u, names) for r, u in zip(env.recipients, unknown, strict=True)
    )
    parts.append(constructed(PER_RECIPIENT_FIELDS, *recipients))
    return constructed(tag, *parts)


@lru_cache(maxsize=64)  # P2, P22, P772 and a few others
def encode_content_type(content_type: str) -> bytes:
    kind, _, value = content_type.partition(":")
    if kind == "builtin" and value.isdigit():
        return encode_int(int(value), BUILTIN_CONTENT_TYPE)
    if kind == "oid":
        return encode_oid(value)
    raise AddressError(f"content type {content_type!r} cannot travel in P1")


# --- MTS-APDU --------------------------------------------------------------------------


def decode_mts_apdu(data: Input | Element) -> P1Message | P1Raw:
    """An MTS-APDU: message [0] decoded; report [1] and probe [2] kept raw."""
    element = data if isinstance(data, Element) else decode(data, name="mts-apdu")
    element = element.expect(MESSAGE_APDU, REPORT_APDU, PROBE_APDU)
    if element.tag != MESSAGE_APDU:
        # A report is [1] IMPLICIT SEQUENCE { envelope SET, content SET }; a probe [2] SET.
        if element.tag == REPORT_APDU and [c.tag for c in element] != [SET, SET]:
            raise element.error("a report holds an envelope SET and a content SET")
        element.children()
        kind = "report" if element.tag == REPORT_APDU else "probe"
        return P1Raw(kind=kind, data=bytes(element.raw))
    if len(element) != 2:
        raise element.error(f"a message holds an envelope and a content, found {len(element)}")
    envelope = decode_envelope(element.child(0, "envelope"))
    content = element.child(1, "content").expect(OCTET_STRING, OCTET_STRING.as_constructed())
    return P1Message(envelope=envelope, content=content.as_octets())


def encode_mts_apdu(apdu: P1Message | P1Raw) -> bytes:
    """The MTS-APDU bytes."""
    if isinstance(apdu, P1Raw):
        return apdu.data
    return constructed(MESSAGE_APDU, encode_envelope(apdu.envelope), encode_octets(apdu.content))
