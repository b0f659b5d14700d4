"""STANAG 4406 Annex A (P772) heading extensions, 1.3.26.0.4406.0.2.n: a typed model and
their BER, read from and written to the IPM heading's extensions (X.420 §7.2.17)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from waypost.address import parse_oraddress
from waypost.asn1 import (
    INTEGER,
    OID,
    PRINTABLE_STRING,
    SEQUENCE,
    SET,
    TELETEX_STRING,
    UTC_TIME,
    BERError,
    Element,
    Tag,
    constructed,
    context,
    decode,
    encode_int,
    encode_oid,
    encode_string,
    encode_time,
    sequence,
)
from waypost.x400.ipm_heading import HeadingExtension, ORDescriptor
from waypost.x400.p1_names import OR_NAME, decode_orname, encode_orname

# STANAG 4406 Annex A, MMSObjectIdentifiers: id-mm = {id-mmhs 2}, id-mmhs = 1.3.26.0.4406.0.
P772_ARC = "1.3.26.0.4406.0.2."
PRIMARY_PRECEDENCE = P772_ARC + "0"
COPY_PRECEDENCE = P772_ARC + "1"
MESSAGE_TYPE = P772_ARC + "2"
ADDRESS_LIST_INDICATOR = P772_ARC + "3"
EXEMPTED_ADDRESS = P772_ARC + "4"
EXTENDED_AUTHORISATION_INFO = P772_ARC + "5"
DISTRIBUTION_CODES = P772_ARC + "6"
HANDLING_INSTRUCTIONS = P772_ARC + "7"
MESSAGE_INSTRUCTIONS = P772_ARC + "8"
CODRESS_MESSAGE = P772_ARC + "9"
ORIGINATOR_REFERENCE = P772_ARC + "10"
OTHER_RECIPIENTS_INDICATOR = P772_ARC + "11"
PILOT_FORWARDING_INFO = P772_ARC + "12"
ACP127_MESSAGE_IDENTIFIER = P772_ARC + "13"
ORIGINATOR_PLAD = P772_ARC + "14"
# {id-mm 17}, security-information-labels: deprecated by STANAG 4406 Annex B; kept whole.
INFORMATION_LABELS = P772_ARC + "17"

# STANAG 4406 Annex A, MMHSPrecedence: 0 to 15 NATO-defined, 16 to 31 for national use.
PRECEDENCE_NAMES = ("deferred", "routine", "priority", "immediate", "flash", "override")
MAX_PRECEDENCE = 31
# TypeMessage: 0 to 127 NATO-defined, 128 to 255 national or bilateral.
MESSAGE_TYPE_NAMES = ("exercise", "operation", "project", "drill")
MAX_MESSAGE_TYPE = 255
# MMSUpperBounds: ub-military-string, lb/ub-military-sic, ub-military-number-of-sics.
UB_MILITARY_STRING = 69
LB_MILITARY_SIC, UB_MILITARY_SIC = 3, 8
UB_MILITARY_NUMBER_OF_SICS = 8
# AddressListDesignator.type and OtherRecipientDesignator.type: primary(0), copy(1);
# AddressListRequest: action(0), info(1), both(2).
RECIPIENT_KINDS = ("primary", "copy")
LIST_REQUESTS = ("action", "info", "both")

_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


class P772Error(ValueError):
    """A STANAG 4406 heading field that breaks its type; the message names the field."""


def _military_string(what: str, text: str) -> None:
    """MilitaryString ::= PrintableString (SIZE (1..ub-military-string))."""
    if not 1 <= len(text) <= UB_MILITARY_STRING:
        raise P772Error(f"{what}: {text!r} is not 1 to {UB_MILITARY_STRING} characters")
    if not _PRINTABLE.issuperset(text):
        bad = next(c for c in text if c not in _PRINTABLE)
        raise P772Error(f"{what}: {bad!r} is not a PrintableString character")


def _in_range(what: str, value: int, top: int) -> None:
    if not 0 <= value <= top:
        raise P772Error(f"{what}: {value} is not between 0 and {top}")


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageType:
    """MessageType ::= SET { type [0] TypeMessage, identifier [1] MessageIdentifier OPTIONAL }."""

    type: int
    identifier: str | None = None

    def __post_init__(self) -> None:
        _in_range("message-type", self.type, MAX_MESSAGE_TYPE)
        if self.identifier is not None:
            _military_string("message-type identifier", self.identifier)


@dataclass(frozen=True, slots=True, kw_only=True)
class AddressListDesignator:
    """AddressListDesignator ::= SET { type [0] primaryAddressList(0) | copyAddressList(1),
    listName [1] ORDescriptor, notificationRequest [2], replyRequest [3] (AddressListRequest) }."""

    type: int
    list_name: ORDescriptor
    notification_request: int | None = None
    reply_request: int | None = None

    def __post_init__(self) -> None:
        _in_range("address-list type", self.type, len(RECIPIENT_KINDS) - 1)
        for what, request in (
            ("notificationRequest", self.notification_request),
            ("replyRequest", self.reply_request),
        ):
            if request is not None:
                _in_range(f"address-list {what}", request, len(LIST_REQUESTS) - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributionExtension:
    """DistributionExtensionField ::= SEQUENCE { dist-type OID, dist-value ANY }: the
    value's BER kept whole."""

    type: str
    value: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class DistributionCodes:
    """DistributionCodes ::= SET { sics [0] SEQUENCE OF Sic OPTIONAL, dist-Extensions [1]
    SEQUENCE OF DistributionExtensionField OPTIONAL }; Sic is 3 to 8 PrintableString characters."""

    sics: tuple[str, ...] = ()
    extensions: tuple[DistributionExtension, ...] = ()

    def __post_init__(self) -> None:
        if len(self.sics) > UB_MILITARY_NUMBER_OF_SICS:
            raise P772Error(f"distribution-codes: more than {UB_MILITARY_NUMBER_OF_SICS} SICs")
        for sic in self.sics:
            if not LB_MILITARY_SIC <= len(sic) <= UB_MILITARY_SIC or not _PRINTABLE.issuperset(sic):
                raise P772Error(
                    f"distribution-codes: SIC {sic!r} is not {LB_MILITARY_SIC} to "
                    f"{UB_MILITARY_SIC} PrintableString characters"
                )


@dataclass(frozen=True, slots=True, kw_only=True)
class OtherRecipient:
    """OtherRecipientDesignator ::= SET { type [0] primary(0) | copy(1), designator [1]
    MilitaryString }: a recipient reached outside this message's O/R recipients."""

    type: int
    designator: str

    def __post_init__(self) -> None:
        _in_range("other-recipient type", self.type, len(RECIPIENT_KINDS) - 1)
        _military_string("other-recipient designator", self.designator)


@dataclass(frozen=True, slots=True, kw_only=True)
class PilotInformation:
    """PilotInformation ::= SEQUENCE { pilotPrecedence [0], pilotRecipient [1] SEQUENCE OF
    ORDescriptor, pilotSecurity [2] SecurityLabel, pilotHandling [3] SEQUENCE OF MilitaryString },
    all optional. The security label (X.411 §8.5.9, a SET) is kept as its BER."""

    precedence: int | None = None
    recipients: tuple[ORDescriptor, ...] | None = None
    security_label: bytes | None = None
    handling: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.precedence is not None:
            _in_range("pilot precedence", self.precedence, MAX_PRECEDENCE)
        for text in self.handling or ():
            _military_string("pilot handling", text)


@dataclass(frozen=True, slots=True, kw_only=True)
class P772Heading:
    """The STANAG 4406 heading fields of an IPM; None and () stand for absent ones.

    `unread` holds the P772 extensions not read into fields — of a kind this model does
    not know, given twice, or (with `p772_fields(strict=False)`) breaking their type —
    kept whole so that they are relayed as received.
    """

    primary_precedence: int | None = None
    copy_precedence: int | None = None
    message_type: MessageType | None = None
    address_list_indicator: tuple[AddressListDesignator, ...] = ()
    exempted_addresses: tuple[ORDescriptor, ...] = ()
    extended_authorisation_info: datetime | None = None
    distribution_codes: DistributionCodes | None = None
    handling_instructions: tuple[str, ...] = ()
    message_instructions: tuple[str, ...] = ()
    codress_message: int | None = None
    originator_reference: str | None = None
    other_recipients: tuple[OtherRecipient, ...] = ()
    pilot_forwarding_info: tuple[PilotInformation, ...] = ()
    acp127_message_identifier: str | None = None
    originator_plad: str | None = None
    information_labels: bytes | None = None
    unread: tuple[HeadingExtension, ...] = field(default=())

    def __post_init__(self) -> None:
        for what, precedence in (
            ("primary-precedence", self.primary_precedence),
            ("copy-precedence", self.copy_precedence),
        ):
            if precedence is not None:
                _in_range(what, precedence, MAX_PRECEDENCE)
        for what, texts in (
            ("handling-instructions", self.handling_instructions),
            ("message-instructions", self.message_instructions),
        ):
            for text in texts:
                _military_string(what, text)
        for what, value in (
            ("originator-reference", self.originator_reference),
            ("acp127-message-identifier", self.acp127_message_identifier),
            ("originator-plad", self.originator_plad),
        ):
            if value is not None:
                _military_string(what, value)
        when = self.extended_authorisation_info
        if when is not None and (when.tzinfo is None or when.microsecond):
            # X.411 §8.5.4 UTCTime: whole seconds, and a known offset from UTC.
            raise P772Error("extended-authorisation-info: needs a time zone and whole seconds")

    def is_empty(self) -> bool:
        """Whether no STANAG 4406 field is present."""
        return self == P772Heading()


# --- BER ------------------------------------------------------------------------------

_ORDESCRIPTOR_FREE_FORM = context(0)  # X.420 §7.2.3 free-form-name [0] IMPLICIT TeletexString


def encode_ordescriptor(descriptor: ORDescriptor, tag: Tag = SET) -> bytes:
    """X.420 §7.2.3 ORDescriptor ::= SET { formal-name ORName, free-form-name [0] }."""
    # X.420 §7.2.3: the formal name is optional when a free-form name is given.
    parts = [encode_orname(parse_oraddress(descriptor.address))] if descriptor.address else []
    if descriptor.free_form_name is not None:
        parts.append(
            encode_string(_ORDESCRIPTOR_FREE_FORM, descriptor.free_form_name, TELETEX_STRING)
        )
    return constructed(tag, *parts)


def read_ordescriptor(element: Element) -> ORDescriptor:
    """An ORDescriptor (whatever its tag); one without a formal name cannot be mapped."""
    address = free_form = None
    for item in element:
        if item.tag == OR_NAME:
            address = decode_orname(item).text
        elif item.tag.number == 0 and item.tag.cls == _ORDESCRIPTOR_FREE_FORM.cls:
            free_form = item.as_string(TELETEX_STRING, check=False)
    if address is None:
        raise element.error("ORDescriptor without a formal-name (an O/R name)")
    return ORDescriptor(address=address, free_form_name=free_form)


def _strings(element: Element) -> tuple[str, ...]:
    return tuple(item.expect(PRINTABLE_STRING).as_string(check=False) for item in element)


def _encode_strings(texts: Sequence[str], tag: Tag = SEQUENCE) -> bytes:
    return constructed(tag, *(encode_string(PRINTABLE_STRING, t) for t in texts))


def _set_fields(element: Element) -> dict[int, Element]:
    """The context-tagged members of a SET (or a SEQUENCE read leniently) by number."""
    return {item.tag.number: item for item in element}


def _read_message_type(value: Element) -> MessageType:
    # STANAG 4406 Annex A says SET; some writers send a SEQUENCE, which reads the same.
    members = _set_fields(value.expect(SET, SEQUENCE))
    if 0 not in members:
        raise value.error("message-type without its type [0]")
    identifier = members.get(1)
    return MessageType(
        type=members[0].as_int(),
        identifier=None
        if identifier is None
        else identifier.as_string(PRINTABLE_STRING, check=False),
    )


def _read_address_list(value: Element) -> tuple[AddressListDesignator, ...]:
    found = []
    for item in value.expect(SEQUENCE):
        members = _set_fields(item.expect(SET, SEQUENCE))
        if 0 not in members or 1 not in members:
            raise item.error("address-list designator without its type [0] or listName [1]")
        found.append(
            AddressListDesignator(
                type=members[0].as_int(),
                list_name=read_ordescriptor(members[1]),
                notification_request=members[2].as_int() if 2 in members else None,
                reply_request=members[3].as_int() if 3 in members else None,
            )
        )
    return tuple(found)


def _read_distribution_codes(value: Element) -> DistributionCodes:
    members = _set_fields(value.expect(SET, SEQUENCE))
    sics = _strings(members[0]) if 0 in members else ()
    extensions = []
    for item in members.get(1, ()):
        parts = item.expect(SEQUENCE).children()
        if len(parts) != 2:
            raise item.error("distribution extension is not SEQUENCE { dist-type, dist-value }")
        extensions.append(
            DistributionExtension(type=parts[0].expect(OID).as_oid(), value=bytes(parts[1].raw))
        )
    return DistributionCodes(sics=sics, extensions=tuple(extensions))


def _read_other_recipients(value: Element) -> tuple[OtherRecipient, ...]:
    found = []
    for item in value.expect(SEQUENCE):
        members = _set_fields(item.expect(SET, SEQUENCE))
        if 0 not in members or 1 not in members:
            raise item.error("other-recipient designator without its type [0] or designator [1]")
        found.append(
            OtherRecipient(
                type=members[0].as_int(),
                designator=members[1].as_string(PRINTABLE_STRING, check=False),
            )
        )
    return tuple(found)


def _read_pilot_info(value: Element) -> tuple[PilotInformation, ...]:
    found = []
    for item in value.expect(SEQUENCE):
        members = _set_fields(item.expect(SEQUENCE))
        recipients = members.get(1)
        label = members.get(2)
        handling = members.get(3)
        found.append(
            PilotInformation(
                precedence=members[0].as_int() if 0 in members else None,
                recipients=None
                if recipients is None
                else tuple(read_ordescriptor(r.expect(SET)) for r in recipients),
                # [2] IMPLICIT SecurityLabel: kept as the SET it replaces.
                security_label=None if label is None else constructed(SET, bytes(label.value)),
                handling=None if handling is None else _strings(handling),
            )
        )
    return tuple(found)


def _utc(value: Element) -> datetime:
    when = value.expect(UTC_TIME).as_time()
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


# Each field: the model attribute, how its value is read, and how it is written.
_Reader = Callable[[Element], Any]
_Writer = Callable[[Any], bytes]


@dataclass(frozen=True, slots=True)
class _Field:
    attribute: str
    read: _Reader
    write: _Writer


def _read_string(value: Element) -> str:
    return value.expect(PRINTABLE_STRING).as_string(check=False)


def _read_int(value: Element) -> int:
    return value.expect(INTEGER).as_int()


def _write_message_type(value: MessageType) -> bytes:
    parts = [encode_int(value.type, context(0))]
    if value.identifier is not None:
        parts.append(encode_string(context(1), value.identifier, PRINTABLE_STRING))
    return constructed(SET, *parts)


def _write_address_list(value: Sequence[AddressListDesignator]) -> bytes:
    items = []
    for designator in value:
        parts = [
            encode_int(designator.type, context(0)),
            encode_ordescriptor(designator.list_name, context(1, True)),
        ]
        if designator.notification_request is not None:
            parts.append(encode_int(designator.notification_request, context(2)))
        if designator.reply_request is not None:
            parts.append(encode_int(designator.reply_request, context(3)))
        items.append(constructed(SET, *parts))
    return sequence(*items)


def _write_distribution_codes(value: DistributionCodes) -> bytes:
    parts = []
    if value.sics:
        parts.append(_encode_strings(value.sics, context(0, True)))
    if value.extensions:
        parts.append(
            constructed(
                context(1, True),
                *(sequence(encode_oid(e.type), e.value) for e in value.extensions),
            )
        )
    return constructed(SET, *parts)


def _write_other_recipients(value: Sequence[OtherRecipient]) -> bytes:
    return sequence(
        *(
            constructed(
                SET,
                encode_int(r.type, context(0)),
                encode_string(context(1), r.designator, PRINTABLE_STRING),
            )
            for r in value
        )
    )


def _write_pilot_info(value: Sequence[PilotInformation]) -> bytes:
    items = []
    for info in value:
        parts = []
        if info.precedence is not None:
            parts.append(encode_int(info.precedence, context(0)))
        if info.recipients is not None:
            parts.append(
                constructed(context(1, True), *(encode_ordescriptor(r) for r in info.recipients))
            )
        if info.security_label is not None:
            label = decode(info.security_label, name="pilotSecurity").expect(SET)
            parts.append(constructed(context(2, True), bytes(label.value)))
        if info.handling is not None:
            parts.append(_encode_strings(info.handling, context(3, True)))
        items.append(sequence(*parts))
    return sequence(*items)


def _raw(value: Element) -> bytes:
    return bytes(value.raw)


def _check_raw(value: bytes) -> bytes:
    decode(value, name="information-labels")
    return value


def _write_string(value: str) -> bytes:
    return encode_string(PRINTABLE_STRING, value)


def _write_int(value: int) -> bytes:
    return encode_int(value)


def _write_time(value: datetime) -> bytes:
    return encode_time(value)


def _read_strings(value: Element) -> tuple[str, ...]:
    return _strings(value.expect(SEQUENCE))


def _write_strings(value: Sequence[str]) -> bytes:
    return _encode_strings(value)


def _read_descriptors(value: Element) -> tuple[ORDescriptor, ...]:
    return tuple(read_ordescriptor(d.expect(SET)) for d in value.expect(SEQUENCE))


def _write_descriptors(value: Sequence[ORDescriptor]) -> bytes:
    return sequence(*(encode_ordescriptor(d) for d in value))


_FIELDS = {
    PRIMARY_PRECEDENCE: _Field("primary_precedence", _read_int, _write_int),
    COPY_PRECEDENCE: _Field("copy_precedence", _read_int, _write_int),
    MESSAGE_TYPE: _Field("message_type", _read_message_type, _write_message_type),
    ADDRESS_LIST_INDICATOR: _Field(
        "address_list_indicator", _read_address_list, _write_address_list
    ),
    EXEMPTED_ADDRESS: _Field("exempted_addresses", _read_descriptors, _write_descriptors),
    EXTENDED_AUTHORISATION_INFO: _Field("extended_authorisation_info", _utc, _write_time),
    DISTRIBUTION_CODES: _Field(
        "distribution_codes", _read_distribution_codes, _write_distribution_codes
    ),
    HANDLING_INSTRUCTIONS: _Field("handling_instructions", _read_strings, _write_strings),
    MESSAGE_INSTRUCTIONS: _Field("message_instructions", _read_strings, _write_strings),
    CODRESS_MESSAGE: _Field("codress_message", _read_int, _write_int),
    ORIGINATOR_REFERENCE: _Field("originator_reference", _read_string, _write_string),
    OTHER_RECIPIENTS_INDICATOR: _Field(
        "other_recipients", _read_other_recipients, _write_other_recipients
    ),
    PILOT_FORWARDING_INFO: _Field("pilot_forwarding_info", _read_pilot_info, _write_pilot_info),
    ACP127_MESSAGE_IDENTIFIER: _Field("acp127_message_identifier", _read_string, _write_string),
    ORIGINATOR_PLAD: _Field("originator_plad", _read_string, _write_string),
    INFORMATION_LABELS: _Field("information_labels", _raw, _check_raw),
}
FIELD_NAMES = {oid: spec.attribute for oid, spec in _FIELDS.items()}
_EMPTY = P772Heading()


def is_p772(extension: HeadingExtension) -> bool:
    """Whether a heading extension is one of STANAG 4406's (arc 1.3.26.0.4406.0.2)."""
    return extension.type.startswith(P772_ARC)


def decode_p772_extension(extension: HeadingExtension) -> tuple[str, Any]:
    """(model attribute, value) of one P772 heading extension; raises P772Error naming it."""
    spec = _FIELDS.get(extension.type)
    if spec is None:
        raise P772Error(f"heading extension {extension.type}: not a STANAG 4406 field read here")
    name = spec.attribute.replace("_", "-")
    try:
        value = spec.read(decode(extension.value, name=name))
        replace(_EMPTY, **{spec.attribute: value})  # the model's own checks of the value
    except (BERError, ValueError) as error:
        raise P772Error(f"{name} ({extension.type}): {error}") from None
    return spec.attribute, value


def p772_fields(extensions: Sequence[HeadingExtension], *, strict: bool = True) -> P772Heading:
    """The STANAG 4406 fields among an IPM heading's extensions; other extensions are
    left alone. A P772 field whose value breaks its type raises P772Error, or with
    `strict=False` is kept whole in `unread`, as are unknown and repeated P772 fields."""
    values: dict[str, Any] = {}
    unread: list[HeadingExtension] = []
    for extension in extensions:
        if not is_p772(extension):
            continue
        if extension.type not in _FIELDS:
            unread.append(extension)
            continue
        try:
            attribute, value = decode_p772_extension(extension)
        except P772Error:
            if strict:
                raise
            unread.append(extension)
            continue
        if attribute in values:
            unread.append(extension)  # X.420 §7.2.17 allows one of each type; relayed as is
        else:
            values[attribute] = value
    return P772Heading(**values, unread=tuple(unread))


def p772_extensions(heading: P772Heading) -> tuple[HeadingExtension, ...]:
    """The heading extensions that carry `heading`'s fields, in STANAG 4406's order,
    then the unread ones as received; raises P772Error naming a field that cannot be
    written (an address that is no O/R address)."""
    found = []
    for oid, spec in _FIELDS.items():
        value = getattr(heading, spec.attribute)
        if value is None or value == ():
            continue
        try:
            found.append(HeadingExtension(type=oid, value=spec.write(value)))
        except ValueError as error:  # an O/R address text that is no address, kept BER
            raise P772Error(f"{spec.attribute.replace('_', '-')} ({oid}): {error}") from None
    return (*found, *heading.unread)
