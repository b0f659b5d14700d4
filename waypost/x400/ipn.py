"""X.420 §8 interpersonal notifications (receipt RN and non-receipt NRN): a typed model and
their BER, as the IPN [1] alternative of the IPM content (X.420 §7.1, InformationObject)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from waypost.address import parse_oraddress
from waypost.asn1 import (
    PRINTABLE_STRING,
    SEQUENCE,
    SET,
    UTC_TIME,
    BERError,
    Element,
    Tag,
    application,
    constructed,
    context,
    decode,
    encode_int,
    encode_string,
    encode_time,
)
from waypost.x400.ipm_heading import IPMIdentifier, ORDescriptor
from waypost.x400.p1_envelope import ORIGINAL_EITS, decode_eits, encode_eits
from waypost.x400.p1_names import OR_NAME, decode_orname, encode_orname
from waypost.x400.p772 import encode_ordescriptor, read_ordescriptor

# X.420 §7.1: InformationObject ::= CHOICE { ipm [0] IPM, ipn [1] IPN } (IMPLICIT TAGS).
IPN_TAG = context(1, True)
# X.420 §7.2.1: IPMIdentifier ::= [APPLICATION 11] SET { user ORName OPTIONAL,
# user-relative-identifier LocalIPMIdentifier (PrintableString, at most 64 characters) }.
IPM_IDENTIFIER = application(11, True)
UB_LOCAL_IPM_IDENTIFIER = 64
# X.420 §8.1 CommonFields: ipn-originator [1], ipm-intended-recipient [2],
# notification-extensions [3]; the notification's kind is choice [0] (a CHOICE, so
# explicitly tagged) holding non-receipt-fields [0], receipt-fields [1] or
# other-notification-type-fields [2].
IPN_ORIGINATOR = context(1, True)
INTENDED_RECIPIENT = context(2, True)
NOTIFICATION_EXTENSIONS = context(3, True)
CHOICE = context(0, True)
NON_RECEIPT = context(0, True)
RECEIPT = context(1, True)
OTHER_NOTIFICATION = context(2, True)
# X.420 §8.2 NonReceiptFields and §8.3 ReceiptFields, by their context tags.
NON_RECEIPT_REASON, DISCARD_REASON, AUTO_FORWARD_COMMENT = context(0), context(1), context(2)
RETURNED_IPM, NRN_EXTENSIONS = context(3, True), context(4, True)
RECEIPT_TIME, ACKNOWLEDGMENT_MODE = context(0), context(1)
SUPPL_RECEIPT_INFO, RN_EXTENSIONS = context(2), context(3, True)

# X.420 §8.2.1 NonReceiptReasonField, §8.2.2 DiscardReasonField, §8.3.2 AcknowledgmentMode.
NON_RECEIPT_REASONS = ("ipm-discarded", "ipm-auto-forwarded")
DISCARD_REASONS = ("ipm-expired", "ipm-obsoleted", "user-subscription-terminated", "not-used")
ACKNOWLEDGMENT_MODES = ("manual", "automatic")
UB_AUTO_FORWARD_COMMENT = 256  # ub-auto-forward-comment
UB_SUPPLEMENTARY_INFO = 256  # X.411 ub-supplementary-info-length

_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?")


class IPNError(ValueError):
    """An IPN that breaks X.420 §8; the message names the field and why."""


def _printable(what: str, text: str, low: int, high: int) -> None:
    if not low <= len(text) <= high:
        raise IPNError(f"{what}: {len(text)} characters, not {low} to {high}")
    if not _PRINTABLE.issuperset(text):
        bad = next(c for c in text if c not in _PRINTABLE)
        raise IPNError(f"{what}: {bad!r} is not a PrintableString character")


def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise IPNError(f"{what}: {value!r} is not one of {allowed}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReceiptFields:
    """X.420 §8.3 ReceiptFields: when and how the IPM was received (an RN)."""

    receipt_time: datetime
    acknowledgment_mode: str = "manual"
    supplementary_receipt_info: str | None = None
    extensions: bytes | None = None  # rn-extensions [3], its BER kept whole

    def __post_init__(self) -> None:
        if self.receipt_time.tzinfo is None or self.receipt_time.microsecond:
            raise IPNError("receipt-time: needs a time zone and whole seconds (UTCTime)")
        _one_of("acknowledgment-mode", self.acknowledgment_mode, ACKNOWLEDGMENT_MODES)
        if self.supplementary_receipt_info is not None:
            _printable(
                "suppl-receipt-info", self.supplementary_receipt_info, 1, UB_SUPPLEMENTARY_INFO
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class NonReceiptFields:
    """X.420 §8.2 NonReceiptFields: why the IPM was not received (an NRN)."""

    reason: str
    discard_reason: str | None = None
    auto_forward_comment: str | None = None
    returned_ipm: bytes | None = None  # the IPM (SEQUENCE { heading, body }), as BER
    extensions: bytes | None = None  # nrn-extensions [4], its BER kept whole

    def __post_init__(self) -> None:
        _one_of("non-receipt-reason", self.reason, NON_RECEIPT_REASONS)
        if self.discard_reason is not None:
            _one_of("discard-reason", self.discard_reason, DISCARD_REASONS)
        if self.auto_forward_comment is not None:
            _printable(
                "auto-forward-comment", self.auto_forward_comment, 0, UB_AUTO_FORWARD_COMMENT
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class IPN:
    """X.420 §8 IPN: the common fields and exactly one of receipt, non-receipt or another
    notification type (whose fields are kept as BER)."""

    subject_ipm: IPMIdentifier
    ipn_originator: ORDescriptor | None = None
    ipm_intended_recipient: ORDescriptor | None = None
    conversion_eits: tuple[str, ...] | None = None
    notification_extensions: bytes | None = None
    receipt: ReceiptFields | None = None
    non_receipt: NonReceiptFields | None = None
    other_notification: bytes | None = None

    def __post_init__(self) -> None:
        kinds = [self.receipt, self.non_receipt, self.other_notification]
        if sum(kind is not None for kind in kinds) != 1:
            raise IPNError("an IPN is exactly one of receipt, non-receipt or another type")
        if self.subject_ipm.local and len(self.subject_ipm.local) > UB_LOCAL_IPM_IDENTIFIER:
            raise IPNError(f"subject-ipm: more than {UB_LOCAL_IPM_IDENTIFIER} characters")


# --- BER --------------------------------------------------------------------------------


def encode_ipm_identifier(identifier: IPMIdentifier) -> bytes:
    """X.420 §7.2.1 IPMIdentifier, [APPLICATION 11]."""
    parts = []
    if identifier.user is not None:
        parts.append(encode_orname(parse_oraddress(identifier.user)))
    parts.append(encode_string(PRINTABLE_STRING, identifier.local))
    return constructed(IPM_IDENTIFIER, *parts)


def read_ipm_identifier(element: Element) -> IPMIdentifier:
    user = local = None
    for item in element.expect(IPM_IDENTIFIER, name="subject-ipm"):
        if item.tag == OR_NAME:
            user = decode_orname(item.named("user")).text
        elif item.tag == PRINTABLE_STRING:
            local = item.named("user-relative-identifier").as_string(check=False)
    if local is None:
        raise element.error("IPMIdentifier without its user-relative-identifier")
    return IPMIdentifier(user=user, local=local)


def encode_ipn(ipn: IPN) -> bytes:
    """The IPN [1] of an IPM content (X.420 §7.1), its SET members in X.420's order."""
    parts = [encode_ipm_identifier(ipn.subject_ipm)]
    if ipn.ipn_originator is not None:
        parts.append(encode_ordescriptor(ipn.ipn_originator, IPN_ORIGINATOR))
    if ipn.ipm_intended_recipient is not None:
        parts.append(encode_ordescriptor(ipn.ipm_intended_recipient, INTENDED_RECIPIENT))
    if ipn.conversion_eits is not None:
        parts.append(encode_eits(ipn.conversion_eits, ()))
    if ipn.notification_extensions is not None:
        parts.append(_retagged(ipn.notification_extensions, NOTIFICATION_EXTENSIONS))
    if ipn.receipt is not None:
        kind = constructed(RECEIPT, *_receipt_parts(ipn.receipt))
    elif ipn.non_receipt is not None:
        kind = constructed(NON_RECEIPT, *_non_receipt_parts(ipn.non_receipt))
    else:
        assert ipn.other_notification is not None
        kind = _retagged(ipn.other_notification, OTHER_NOTIFICATION)
    parts.append(constructed(CHOICE, kind))
    return constructed(IPN_TAG, *parts)


def _receipt_parts(fields: ReceiptFields) -> list[bytes]:
    parts = [encode_time(fields.receipt_time, RECEIPT_TIME, UTC_TIME)]
    if fields.acknowledgment_mode != "manual":  # DEFAULT manual (X.690 §11.5)
        code = ACKNOWLEDGMENT_MODES.index(fields.acknowledgment_mode)
        parts.append(encode_int(code, ACKNOWLEDGMENT_MODE))
    if fields.supplementary_receipt_info is not None:
        parts.append(
            encode_string(SUPPL_RECEIPT_INFO, fields.supplementary_receipt_info, PRINTABLE_STRING)
        )
    if fields.extensions is not None:
        parts.append(_retagged(fields.extensions, RN_EXTENSIONS))
    return parts


def _non_receipt_parts(fields: NonReceiptFields) -> list[bytes]:
    parts = [encode_int(NON_RECEIPT_REASONS.index(fields.reason), NON_RECEIPT_REASON)]
    if fields.discard_reason is not None:
        parts.append(encode_int(DISCARD_REASONS.index(fields.discard_reason), DISCARD_REASON))
    if fields.auto_forward_comment is not None:
        parts.append(
            encode_string(AUTO_FORWARD_COMMENT, fields.auto_forward_comment, PRINTABLE_STRING)
        )
    if fields.returned_ipm is not None:
        parts.append(_retagged(fields.returned_ipm, RETURNED_IPM))
    if fields.extensions is not None:
        parts.append(_retagged(fields.extensions, NRN_EXTENSIONS))
    return parts


def _retagged(data: bytes, tag: Tag) -> bytes:
    """A constructed value kept as its universal encoding, under an IMPLICIT tag."""
    element = decode(data, name="kept value")
    if not element.tag.constructed:
        raise IPNError(f"{element.tag}: a kept value must be constructed")
    return constructed(tag, bytes(element.value))


def _kept(element: Element, universal: Tag) -> bytes:
    """The inverse of _retagged: an implicitly tagged constructed value as its universal form."""
    return constructed(universal, bytes(element.value))


def decode_ipn(data: bytes | Element) -> IPN:
    """An IPN from its BER (the [1] of an IPM content); raises IPNError naming the field."""
    try:
        element = data if isinstance(data, Element) else decode(data, name="ipn")
        return _read_ipn(element.expect(IPN_TAG, name="ipn"))
    except BERError as error:
        raise IPNError(str(error)) from None
    except IPNError:
        raise
    except ValueError as error:  # an O/R name that is no address, a bad enumeration
        raise IPNError(f"ipn: {error}") from None


def _read_ipn(element: Element) -> IPN:
    fields: dict[str, object] = {}
    for item in element:
        if item.tag == IPM_IDENTIFIER:
            fields["subject_ipm"] = read_ipm_identifier(item)
        elif item.tag == IPN_ORIGINATOR:
            fields["ipn_originator"] = read_ordescriptor(item.named("ipn-originator"))
        elif item.tag == INTENDED_RECIPIENT:
            fields["ipm_intended_recipient"] = read_ordescriptor(
                item.named("ipm-intended-recipient")
            )
        elif item.tag == ORIGINAL_EITS:
            fields["conversion_eits"] = tuple(decode_eits(item.named("conversion-eits"))[0])
        elif item.tag == NOTIFICATION_EXTENSIONS:
            fields["notification_extensions"] = _kept(item, SET)
        elif item.tag == CHOICE:
            choice = item.named("choice")
            if len(choice) != 1:
                raise choice.error("the notification choice holds one alternative")
            kind = choice.child(0)
            if kind.tag == RECEIPT:
                fields["receipt"] = _read_receipt(kind.named("receipt-fields"))
            elif kind.tag == NON_RECEIPT:
                fields["non_receipt"] = _read_non_receipt(kind.named("non-receipt-fields"))
            elif kind.tag == OTHER_NOTIFICATION:
                fields["other_notification"] = _kept(kind, SET)
            else:
                raise kind.error(f"{kind.tag} is no notification type")
    if "subject_ipm" not in fields:
        raise element.error("IPN without subject-ipm")
    if (
        "receipt" not in fields
        and "non_receipt" not in fields
        and "other_notification" not in fields
    ):
        raise element.error("IPN without its notification choice [0]")
    return IPN(**fields)  # type: ignore[arg-type]


def _enumerated(element: Element, names: tuple[str, ...]) -> str:
    code = element.as_int()
    if not 0 <= code < len(names):
        raise element.error(f"{code} is not one of {names}")
    return names[code]


def _read_receipt(element: Element) -> ReceiptFields:
    members = {item.tag: item for item in element}
    time_element = members.get(RECEIPT_TIME)
    if time_element is None:
        raise element.error("ReceiptFields without receipt-time [0]")
    when = time_element.named("receipt-time").as_time(UTC_TIME)
    mode = members.get(ACKNOWLEDGMENT_MODE)
    info = members.get(SUPPL_RECEIPT_INFO)
    extensions = members.get(RN_EXTENSIONS)
    return ReceiptFields(
        receipt_time=when if when.tzinfo is not None else when.replace(tzinfo=UTC),
        acknowledgment_mode="manual"
        if mode is None
        else _enumerated(mode.named("acknowledgment-mode"), ACKNOWLEDGMENT_MODES),
        supplementary_receipt_info=None
        if info is None
        else info.named("suppl-receipt-info").as_string(PRINTABLE_STRING, check=False),
        extensions=None if extensions is None else _kept(extensions, SET),
    )


def _read_non_receipt(element: Element) -> NonReceiptFields:
    members = {item.tag: item for item in element}
    reason = members.get(NON_RECEIPT_REASON)
    if reason is None:
        raise element.error("NonReceiptFields without non-receipt-reason [0]")
    discard = members.get(DISCARD_REASON)
    comment = members.get(AUTO_FORWARD_COMMENT)
    returned = members.get(RETURNED_IPM)
    extensions = members.get(NRN_EXTENSIONS)
    return NonReceiptFields(
        reason=_enumerated(reason.named("non-receipt-reason"), NON_RECEIPT_REASONS),
        discard_reason=None
        if discard is None
        else _enumerated(discard.named("discard-reason"), DISCARD_REASONS),
        auto_forward_comment=None
        if comment is None
        else comment.named("auto-forward-comment").as_string(PRINTABLE_STRING, check=False),
        # ReturnedIPMField ::= IPM, a SEQUENCE { heading, body }, kept as that SEQUENCE.
        returned_ipm=None if returned is None else _kept(returned, SEQUENCE),
        extensions=None if extensions is None else _kept(extensions, SET),
    )
