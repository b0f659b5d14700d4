"""P22 content (X.420 1988 and later) downgraded to P2 (X.420 1984) for a 1984 peer, where
nothing a reader needs is lost; DowngradeError names what stands in the way otherwise.

The walk is over the BER, not the model: every field P2 shares with P22 goes out as it came
(strings as received, O/R names with all their attributes, body parts of any basic kind).
"""

from __future__ import annotations

from waypost.asn1 import (
    EXTERNAL,
    OID,
    SEQUENCE,
    SET,
    BERError,
    Element,
    constructed,
    context,
    decode,
    encode_bit_set,
)

# MESSAGE: X.420 §7.4.11's message body part; EXTENDED: §7.4's extended body parts, which
# 1984 lacks.
from waypost.x400.ipm_bodies_ber import EXTENDED, MESSAGE
from waypost.x400.ipm_codec import IPM_TAG, IPN_TAG
from waypost.x400.ipm_heading_ber import (
    BLIND_COPY_RECIPIENTS,
    COPY_RECIPIENTS,
    EXTENSIONS,
    ID_HEX_LANGUAGES,
    NOTIFICATION_REQUESTS_FIELD,
    PRIMARY_RECIPIENTS,
    RECIPIENT_EXTENSIONS,
)

# Heading extensions (X.420 §7.2.17) that may go unsaid to a 1984 reader: languages only
# describes the body's languages, which the reader sees. RFC 2156 (§5.3.x, Discarded-
# X400-IPMS-Extensions) drops an extension only where it can say it did; P2 has no field
# to say so, so every other extension (incomplete-copy, auto-submitted, security labels,
# private ones) stops the downgrade rather than vanish.
DROPPABLE_EXTENSIONS = frozenset({ID_HEX_LANGUAGES})
# X.420 §7.2.4 NotificationRequests: rn(0), nrn(1), ipm-return(2) are X.420 (1984)'s;
# an-supported(3) and suppress-an(4) concern acknowledgement notifications, which a 1984
# recipient cannot send, so they are dropped.
P2_NOTIFICATION_BITS = frozenset({0, 1, 2})
# X.420 §8 IPN: notification-extensions [3] and other-notification-type-fields [2] are
# later additions; non-receipt-fields' returned-ipm [3] holds an IPM, nrn-extensions [4]
# and receipt-fields' rn-extensions [3] are later additions too.
NOTIFICATION_EXTENSIONS = context(3, True)
IPN_CHOICE = context(0, True)
NON_RECEIPT = context(0, True)
OTHER_NOTIFICATION = context(2, True)
RETURNED_IPM = context(3, True)
NRN_EXTENSIONS = context(4, True)
RN_EXTENSIONS = context(3, True)
_RECIPIENT_LABELS = {
    PRIMARY_RECIPIENTS: "primary-recipients",
    COPY_RECIPIENTS: "copy-recipients",
    BLIND_COPY_RECIPIENTS: "blind-copy-recipients",
}


class DowngradeError(ValueError):
    """The content cannot be P2 without losing something: `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def downgrade_to_p2(content: bytes) -> bytes:
    """The P2 form of P22 content (an IPM or an IPN); raises DowngradeError."""
    try:
        element = decode(content, name="content")
        if element.tag == IPM_TAG:
            return constructed(IPM_TAG, *_ipm(element, ""))
        if element.tag == IPN_TAG:
            return constructed(IPN_TAG, *_ipn(element))
    except BERError as error:
        raise DowngradeError(error.path, error.reason) from None
    raise DowngradeError("content", f"{element.tag} is neither an IPM nor an IPN")


def _ipm(ipm: Element, where: str) -> list[bytes]:
    """The heading and body of an IPM (its two elements), downgraded."""
    parts = ipm.children()
    if len(parts) != 2:
        raise DowngradeError(f"{where}ipm", "IPM ::= SEQUENCE { heading, body }")
    heading = parts[0].expect(SET, name="heading")
    body = parts[1].expect(SEQUENCE, name="body")
    return [_heading(heading, where), constructed(SEQUENCE, *_body(body, where))]


def _heading(heading: Element, where: str) -> bytes:
    fields = []
    for item in heading:
        if item.tag == EXTENSIONS:
            for extension in item:
                oid = extension.expect(SEQUENCE).child(0, "type").expect(OID).as_oid()
                if oid not in DROPPABLE_EXTENSIONS:
                    field = f"{where}heading.extensions"
                    raise DowngradeError(field, f"heading extension {oid} has no P2 form")
        elif item.tag in (PRIMARY_RECIPIENTS, COPY_RECIPIENTS, BLIND_COPY_RECIPIENTS):
            label = f"{where}heading.{_RECIPIENT_LABELS[item.tag]}"
            specifiers = [_specifier(s, f"{label}[{n}]") for n, s in enumerate(item)]
            fields.append(constructed(item.tag, *specifiers))
        else:
            fields.append(bytes(item.raw))
    return constructed(SET, *fields)


def _specifier(specifier: Element, field: str) -> bytes:
    parts = []
    for part in specifier.expect(SET):
        if part.tag == RECIPIENT_EXTENSIONS:
            raise DowngradeError(field, "recipient extensions have no P2 form")
        if part.tag == NOTIFICATION_REQUESTS_FIELD:
            bits = part.as_bit_set() & P2_NOTIFICATION_BITS
            if bits:  # DEFAULT {}: no bits, no field
                parts.append(encode_bit_set(bits, NOTIFICATION_REQUESTS_FIELD))
        else:
            parts.append(bytes(part.raw))
    return constructed(SET, *parts)


def _body(body: Element, where: str) -> list[bytes]:
    parts = []
    for n, part in enumerate(body):
        field = f"{where}body[{n}]"
        if part.tag == EXTENDED:
            raise DowngradeError(field, f"extended body part {_extended_type(part)} has no P2 form")
        if part.tag == MESSAGE:
            # MessageBodyPart ::= SEQUENCE { parameters SET, data IPM }: the forwarded IPM
            # is downgraded as well.
            parameters, data = part.child(0, "parameters"), part.child(1, "data")
            inner = constructed(SEQUENCE, *_ipm(data.expect(SEQUENCE), f"{field}.message."))
            parts.append(constructed(MESSAGE, bytes(parameters.raw), inner))
        else:
            parts.append(bytes(part.raw))
    return parts


def _extended_type(part: Element) -> str:
    data = part.find(EXTERNAL)
    kind = data.find(OID) if data is not None else None
    return kind.as_oid() if kind is not None else "(no type)"


def _ipn(ipn: Element) -> list[bytes]:
    fields = []
    for item in ipn.expect(IPN_TAG):
        if item.tag == NOTIFICATION_EXTENSIONS:
            raise DowngradeError("ipn.notification-extensions", "no P2 form")
        if item.tag == IPN_CHOICE:
            fields.append(constructed(IPN_CHOICE, _ipn_choice(item.child(0, "choice"))))
        else:
            fields.append(bytes(item.raw))
    return fields


def _ipn_choice(choice: Element) -> bytes:
    if choice.tag == OTHER_NOTIFICATION:
        raise DowngradeError("ipn.other-notification-type-fields", "no P2 form")
    later = NRN_EXTENSIONS if choice.tag == NON_RECEIPT else RN_EXTENSIONS
    fields = []
    for item in choice:
        if item.tag == later:
            raise DowngradeError(
                f"ipn.{'nrn' if later == NRN_EXTENSIONS else 'rn'}-extensions", "no P2 form"
            )
        if choice.tag == NON_RECEIPT and item.tag == RETURNED_IPM:
            fields.append(constructed(RETURNED_IPM, *_ipm(item, "ipn.returned-ipm.")))
        else:
            fields.append(bytes(item.raw))
    return constructed(choice.tag, *fields)
