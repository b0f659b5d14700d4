"""BER of the IPM heading (X.420 §7.2) ⇄ the IPMHeading model of ipm_heading.py, every
field both ways, and the HeadingCodec that gives a forwarded IPM (X.420 §7.4.11) that model.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from waypost.address.mailbox import AddressError
from waypost.asn1 import (
    GENERALIZED_TIME,
    OID,
    PRINTABLE_STRING,
    SEQUENCE,
    SET,
    TELETEX_STRING,
    UTC_TIME,
    BadValueError,
    BERError,
    Element,
    Tag,
    application,
    constructed,
    context,
    decode,
    encode_bit_set,
    encode_bool,
    encode_int,
    encode_oid,
    encode_string,
    encode_time,
    sequence,
)
from waypost.asn1.values import PRINTABLE_CHARS
from waypost.x400.ipm_heading import (
    IMPORTANCE,
    NOTIFICATION_REQUESTS,
    SENSITIVITY,
    HeadingExtension,
    IPMHeading,
    IPMIdentifier,
    ORDescriptor,
)
from waypost.x400.ipm_heading_fast import read_usual_heading
from waypost.x400.p1_names import OR_NAME, decode_orname, encode_orname_text

# X.420 §7.2 Heading ::= SET {...} (module IPMSInformationObjects, IMPLICIT TAGS).
THIS_IPM = application(11, True)  # IPMIdentifier ::= [APPLICATION 11] SET
ORIGINATOR = context(0, True)
AUTHORIZING_USERS = context(1, True)
PRIMARY_RECIPIENTS = context(2, True)
COPY_RECIPIENTS = context(3, True)
BLIND_COPY_RECIPIENTS = context(4, True)
REPLIED_TO_IPM = context(5, True)
OBSOLETED_IPMS = context(6, True)
RELATED_IPMS = context(7, True)
SUBJECT = context(8, True)  # the one EXPLICIT field
EXPIRY_TIME = context(9)
REPLY_TIME = context(10)
REPLY_RECIPIENTS = context(11, True)
IMPORTANCE_FIELD = context(12)
SENSITIVITY_FIELD = context(13)
AUTO_FORWARDED = context(14)
EXTENSIONS = context(15, True)
# X.420 §7.2.3 ORDescriptor ::= SET { formal-name ORName OPTIONAL, free-form-name [0]
# TeletexString OPTIONAL, telephone-number [1] PrintableString OPTIONAL }
FREE_FORM_NAME = context(0)
TELEPHONE_NUMBER = context(1)
# X.420 §7.2.4 RecipientSpecifier ::= SET { recipient [0] ORDescriptor,
# notification-requests [1] BIT STRING DEFAULT {}, reply-requested [2] BOOLEAN DEFAULT
# FALSE, recipient-extensions [3] SET OF IPMSExtension OPTIONAL }
RECIPIENT = context(0, True)
NOTIFICATION_REQUESTS_FIELD = context(1)
REPLY_REQUESTED = context(2)
RECIPIENT_EXTENSIONS = context(3, True)
# X.420 §7.2.17 heading extensions: id-hex = {id-ipms 5}; incomplete-copy {id-hex 0}
# (value NULL, the default), languages {id-hex 1} (value SET OF Language, a PrintableString).
ID_HEX_INCOMPLETE_COPY = "2.6.1.5.0"
ID_HEX_LANGUAGES = "2.6.1.5.1"
# X.420 upper bounds: ub-local-ipm-identifier, ub-subject-field, ub-free-form-name,
# ub-telephone-number.
UB_LOCAL_IPM_IDENTIFIER = 64
UB_SUBJECT_FIELD = 128
UB_FREE_FORM_NAME = 64
UB_TELEPHONE_NUMBER = 32

_RECIPIENT_FIELDS = {
    PRIMARY_RECIPIENTS: "primary_recipients",
    COPY_RECIPIENTS: "copy_recipients",
    BLIND_COPY_RECIPIENTS: "blind_copy_recipients",
}


class IPMContentError(ValueError):
    """IPM content (or a heading to encode) that breaks X.420; `field` names the field."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --- encoding -------------------------------------------------------------------------


def encode_heading(heading: IPMHeading) -> bytes:
    """The BER of a Heading (a SET, its fields in tag order); raises IPMContentError."""
    fields = [_identifier(heading.this_ipm, THIS_IPM, "this-IPM")]
    if heading.originator is not None:
        fields.append(_descriptor(heading.originator, ORIGINATOR, "originator"))
    if heading.authorizing_users:
        fields.append(
            _descriptors(heading.authorizing_users, AUTHORIZING_USERS, "authorizing-users")
        )
    for tag, name in _RECIPIENT_FIELDS.items():
        recipients: tuple[ORDescriptor, ...] = getattr(heading, name)
        if recipients:
            label = name.replace("_", "-")
            specifiers = (_specifier(r, f"{label}[{i}]") for i, r in enumerate(recipients))
            fields.append(constructed(tag, *specifiers))
    if heading.replied_to_ipm is not None:
        fields.append(_identifier(heading.replied_to_ipm, REPLIED_TO_IPM, "replied-to-IPM"))
    for tag, ids, label in (
        (OBSOLETED_IPMS, heading.obsoleted_ipms, "obsoleted-IPMs"),
        (RELATED_IPMS, heading.related_ipms, "related-IPMs"),
    ):
        if ids:
            items = (_identifier(i, THIS_IPM, f"{label}[{n}]") for n, i in enumerate(ids))
            fields.append(constructed(tag, *items))
    if heading.subject is not None:
        fields.append(constructed(SUBJECT, _teletex(heading.subject, UB_SUBJECT_FIELD, "subject")))
    for tag, when, label in (
        (EXPIRY_TIME, heading.expiry_time, "expiry-time"),
        (REPLY_TIME, heading.reply_time, "reply-time"),
    ):
        if when is not None:
            fields.append(_time(when, tag, label))
    if heading.reply_recipients:
        fields.append(_descriptors(heading.reply_recipients, REPLY_RECIPIENTS, "reply-recipients"))
    if heading.importance != "normal":  # DEFAULT normal
        fields.append(encode_int(IMPORTANCE.index(heading.importance), IMPORTANCE_FIELD))
    if heading.sensitivity is not None:
        fields.append(encode_int(SENSITIVITY.index(heading.sensitivity) + 1, SENSITIVITY_FIELD))
    if heading.auto_forwarded:  # DEFAULT FALSE
        fields.append(encode_bool(True, AUTO_FORWARDED))
    extensions = heading_extensions(heading)
    if extensions:
        fields.append(constructed(EXTENSIONS, *_extensions(extensions, "extensions")))
    return constructed(SET, *fields)


def heading_extensions(heading: IPMHeading) -> list[HeadingExtension]:
    """Every heading extension of `heading` as IPMSExtensions: languages, incomplete-copy,
    then the others in their order."""
    found = []
    if heading.languages:
        for language in heading.languages:
            _check_printable(language, 5, "extensions.languages")
        value = constructed(SET, *(encode_string(PRINTABLE_STRING, x) for x in heading.languages))
        found.append(HeadingExtension(type=ID_HEX_LANGUAGES, value=value))
    if heading.incomplete_copy:
        found.append(HeadingExtension(type=ID_HEX_INCOMPLETE_COPY))
    found.extend(heading.other_extensions)
    return found


def _extensions(extensions: Iterable[HeadingExtension], field: str) -> list[bytes]:
    # SET OF IPMSExtension, sent in the order given (BER does not sort a SET OF) so a
    # relayed heading keeps its extensions' order.
    out = []
    for n, extension in enumerate(extensions):
        label = f"{field}[{n}]"
        try:
            oid = encode_oid(extension.type)
            if extension.value:
                decode(extension.value, name=label)  # one whole BER element, or nothing
        except ValueError as error:
            raise IPMContentError(label, str(error)) from None
        # IPMSExtension ::= SEQUENCE { type OID, value DEFAULT NULL }: no value, no field.
        out.append(sequence(oid, extension.value))
    return out


def _identifier(identifier: IPMIdentifier, tag: Tag, field: str) -> bytes:
    """X.420 §7.2.1 IPMIdentifier ::= [APPLICATION 11] SET { user ORName OPTIONAL,
    user-relative-identifier PrintableString }; `tag` replaces [APPLICATION 11] where a
    field tags it implicitly."""
    _check_printable(identifier.local, UB_LOCAL_IPM_IDENTIFIER, f"{field}.user-relative-identifier")
    parts = []
    if identifier.user is not None:
        parts.append(_orname(identifier.user, f"{field}.user"))
    parts.append(encode_string(PRINTABLE_STRING, identifier.local))
    return constructed(tag, *parts)


def _descriptor(descriptor: ORDescriptor, tag: Tag, field: str) -> bytes:
    if not descriptor.is_plain:
        raise IPMContentError(
            field, "recipient-specifier fields on a descriptor that is no recipient"
        )
    return constructed(tag, *_descriptor_fields(descriptor, field))


def _descriptor_fields(descriptor: ORDescriptor, field: str) -> list[bytes]:
    parts = []
    if descriptor.address is not None:
        parts.append(_orname(descriptor.address, f"{field}.formal-name"))
    if descriptor.free_form_name is not None:
        name = descriptor.free_form_name
        parts.append(_teletex(name, UB_FREE_FORM_NAME, f"{field}.free-form-name", FREE_FORM_NAME))
    if descriptor.telephone_number is not None:
        number = descriptor.telephone_number
        _check_printable(number, UB_TELEPHONE_NUMBER, f"{field}.telephone-number")
        parts.append(encode_string(TELEPHONE_NUMBER, number, PRINTABLE_STRING))
    return parts


def _descriptors(descriptors: Iterable[ORDescriptor], tag: Tag, field: str) -> bytes:
    return constructed(
        tag, *(_descriptor(d, SET, f"{field}[{n}]") for n, d in enumerate(descriptors))
    )


def _specifier(recipient: ORDescriptor, field: str) -> bytes:
    parts = [constructed(RECIPIENT, *_descriptor_fields(recipient, f"{field}.recipient"))]
    if recipient.notification_requests:
        bits = (NOTIFICATION_REQUESTS.index(b) for b in recipient.notification_requests)
        parts.append(encode_bit_set(bits, NOTIFICATION_REQUESTS_FIELD))
    if recipient.reply_requested:
        parts.append(encode_bool(True, REPLY_REQUESTED))
    if recipient.recipient_extensions:
        extensions = _extensions(recipient.recipient_extensions, f"{field}.recipient-extensions")
        parts.append(constructed(RECIPIENT_EXTENSIONS, *extensions))
    return constructed(SET, *parts)


def _orname(text: str, field: str) -> bytes:
    try:
        return encode_orname_text(text)
    except (AddressError, ValueError) as error:
        raise IPMContentError(field, str(error)) from None


def _teletex(text: str, limit: int, field: str, tag: Tag = TELETEX_STRING) -> bytes:
    # TeletexString is read and written as Latin-1 (waypost.asn1.values).
    if len(text) > limit:
        raise IPMContentError(field, f"longer than X.420's {limit} characters")
    try:
        return encode_string(tag, text, TELETEX_STRING)
    except UnicodeEncodeError:
        raise IPMContentError(field, "has characters a TeletexString cannot carry") from None


def _check_printable(text: str, limit: int, field: str) -> None:
    if len(text) > limit:
        raise IPMContentError(field, f"longer than X.420's {limit} characters")
    bad = next((c for c in text if c not in PRINTABLE_CHARS), None)
    if bad is not None:
        raise IPMContentError(field, f"{bad!r} is not a PrintableString character")


def _time(when: datetime, tag: Tag, field: str) -> bytes:
    # X.420 Time ::= UTCTime.
    try:
        return encode_time(when, tag, UTC_TIME)
    except ValueError as error:
        raise IPMContentError(field, str(error)) from None


# --- decoding -------------------------------------------------------------------------


def decode_heading(data: bytes) -> IPMHeading:
    """An IPMHeading from the BER of a Heading; raises IPMContentError naming the field."""
    try:
        element = decode(data, name="heading", lenient=True)
    except BERError as error:
        raise IPMContentError("heading", str(error)) from None
    return read_heading(element)


def read_heading(element: Element) -> IPMHeading:
    """An IPMHeading from a decoded Heading element; raises IPMContentError."""
    if element.tag == SET:
        # Most headings: read from their octets (anything unusual, errors included, is
        # read below, where errors name their path).
        usual = read_usual_heading(bytes(element.value))
        if usual is not None:
            return usual
    try:
        return _read_heading(element.expect(SET, name="heading"))
    except IPMContentError:
        raise
    except BERError as error:
        raise IPMContentError(error.path, error.reason) from None
    except (AddressError, ValueError) as error:
        raise IPMContentError("heading", str(error)) from None


def _read_heading(heading: Element) -> IPMHeading:
    fields: dict[str, object] = {}
    languages: list[str] = []
    incomplete_copy = False
    others: list[HeadingExtension] = []
    seen: set[Tag] = set()
    for item in heading:
        if item.tag in seen:
            raise IPMContentError(f"heading.{item.tag}", "the field appears twice")
        seen.add(item.tag)
        tag = item.tag
        if tag == THIS_IPM:
            fields["this_ipm"] = _read_identifier(item.named("this-IPM"))
        elif tag == ORIGINATOR:
            fields["originator"] = _read_descriptor(item.named("originator"))
        elif tag == AUTHORIZING_USERS:
            fields["authorizing_users"] = _read_descriptors(item.named("authorizing-users"))
        elif tag in _RECIPIENT_FIELDS:
            name = _RECIPIENT_FIELDS[tag]
            field = item.named(name.replace("_", "-"))
            fields[name] = tuple(_read_specifier(s.expect(SET)) for s in field)
        elif tag == REPLIED_TO_IPM:
            fields["replied_to_ipm"] = _read_identifier(item.named("replied-to-IPM"))
        elif tag in (OBSOLETED_IPMS, RELATED_IPMS):
            label = "obsoleted-IPMs" if tag == OBSOLETED_IPMS else "related-IPMs"
            ids = tuple(_read_identifier(i.expect(THIS_IPM)) for i in item.named(label))
            fields["obsoleted_ipms" if tag == OBSOLETED_IPMS else "related_ipms"] = ids
        elif tag == SUBJECT:
            subject = item.named("subject")
            fields["subject"] = _read_string(subject.child(0, "value"))
        elif tag in (EXPIRY_TIME, REPLY_TIME):
            label = "expiry-time" if tag == EXPIRY_TIME else "reply-time"
            fields[label.replace("-", "_")] = _read_time(item.named(label))
        elif tag == REPLY_RECIPIENTS:
            fields["reply_recipients"] = _read_descriptors(item.named("reply-recipients"))
        elif tag == IMPORTANCE_FIELD:
            code = item.named("importance").as_int()
            if not 0 <= code < len(IMPORTANCE):
                raise IPMContentError("heading.importance", f"{code} is not low, normal or high")
            fields["importance"] = IMPORTANCE[code]
        elif tag == SENSITIVITY_FIELD:
            code = item.named("sensitivity").as_int()
            # Later editions of X.420 add not-sensitive(0): the field's absence.
            if not 0 <= code <= len(SENSITIVITY):
                raise IPMContentError("heading.sensitivity", f"{code} is no sensitivity")
            fields["sensitivity"] = SENSITIVITY[code - 1] if code else None
        elif tag == AUTO_FORWARDED:
            fields["auto_forwarded"] = item.named("auto-forwarded").as_bool()
        elif tag == EXTENSIONS:
            for extension in _read_extensions(item.named("extensions")):
                if extension.type == ID_HEX_LANGUAGES and extension.value:
                    languages.extend(_read_languages(extension.value))
                elif extension.type == ID_HEX_INCOMPLETE_COPY:
                    incomplete_copy = True
                else:
                    others.append(extension)
        # Any other tag is no X.420 heading field: it is ignored, as X.411 §12.2 has a
        # receiver ignore what it does not know that is not marked critical.
    if "this_ipm" not in fields:
        raise IPMContentError("heading.this-IPM", "missing (X.420 §7.2 requires it)")
    return IPMHeading(
        **fields,  # type: ignore[arg-type]
        languages=tuple(languages),
        incomplete_copy=incomplete_copy,
        other_extensions=tuple(others),
    )


def _read_identifier(element: Element) -> IPMIdentifier:
    user: str | None = None
    local: str | None = None
    for part in element:
        if part.tag == OR_NAME:
            user = decode_orname(part.named("user")).text
        elif part.tag == PRINTABLE_STRING:
            local = part.as_string(PRINTABLE_STRING, check=False)
    if local is None:
        raise IPMContentError(f"{element.path}.user-relative-identifier", "missing")
    return IPMIdentifier(user=user, local=local)


def _read_descriptor(element: Element) -> ORDescriptor:
    address = name = telephone = None
    for part in element:
        if part.tag == OR_NAME:
            address = decode_orname(part.named("formal-name")).text
        elif part.tag.number == 0 and part.tag.cls == FREE_FORM_NAME.cls:
            # Some agents send [0] constructed around the TeletexString: read both forms.
            name = part.named("free-form-name").as_string(TELETEX_STRING, check=False)
        elif part.tag == TELEPHONE_NUMBER:
            telephone = part.named("telephone-number").as_string(PRINTABLE_STRING, check=False)
    if address is None and name is None:
        raise IPMContentError(element.path, "an ORDescriptor with no formal or free-form name")
    return ORDescriptor(address=address, free_form_name=name, telephone_number=telephone)


def _read_descriptors(element: Element) -> tuple[ORDescriptor, ...]:
    return tuple(_read_descriptor(d.expect(SET)) for d in element)


def _read_specifier(element: Element) -> ORDescriptor:
    recipient = _read_descriptor(element.child(RECIPIENT, "recipient"))
    requests: frozenset[str] = frozenset()
    reply_requested = False
    extensions: tuple[HeadingExtension, ...] = ()
    for part in element:
        if part.tag == NOTIFICATION_REQUESTS_FIELD:
            bits = part.named("notification-requests").as_bit_set()
            # Bits past suppress-an are of later editions: ignored, as X.680 extensible
            # named bits are.
            requests = frozenset(NOTIFICATION_REQUESTS[b] for b in bits if b < 5)
        elif part.tag == REPLY_REQUESTED:
            reply_requested = part.named("reply-requested").as_bool()
        elif part.tag == RECIPIENT_EXTENSIONS:
            extensions = tuple(_read_extensions(part.named("recipient-extensions")))
    return ORDescriptor(
        address=recipient.address,
        free_form_name=recipient.free_form_name,
        telephone_number=recipient.telephone_number,
        notification_requests=requests,
        reply_requested=reply_requested,
        recipient_extensions=extensions,
    )


def _read_extensions(element: Element) -> list[HeadingExtension]:
    found = []
    for extension in element:
        parts = extension.expect(SEQUENCE).children()
        if not parts or len(parts) > 2:
            raise IPMContentError(extension.path, "an IPMSExtension is SEQUENCE { type, value }")
        oid = parts[0].expect(OID, name="type").as_oid()
        found.append(
            HeadingExtension(type=oid, value=bytes(parts[1].raw) if len(parts) > 1 else b"")
        )
    return found


def _read_languages(value: bytes) -> list[str]:
    languages = decode(value, name="extensions.languages", lenient=True).expect(SET)
    return [x.as_string(PRINTABLE_STRING, check=False) for x in languages]


def _read_string(element: Element) -> str:
    """A string of the type X.420 names, or of another string type some agents send."""
    if element.tag.cls.name == "UNIVERSAL" and not element.tag.constructed:
        return element.as_string(check=False)
    return element.as_string(TELETEX_STRING, check=False)


def _read_time(element: Element) -> datetime:
    # X.420 Time ::= UTCTime; a GeneralizedTime under the same tag is read as well.
    try:
        return element.as_time(UTC_TIME)
    except BadValueError:
        return element.as_time(GENERALIZED_TIME)


# --- the codec a message body part uses -----------------------------------------------


class IPMHeadingCodec:
    """The HeadingCodec (waypost.x400.ipm_bodies_ber) whose headings are IPMHeadings."""

    def encode_heading(self, heading: object) -> bytes:
        if not isinstance(heading, IPMHeading):
            raise TypeError("this heading codec takes an IPMHeading")
        return encode_heading(heading)

    def read_heading(self, element: Element) -> object:
        return read_heading(element)


IPM_HEADINGS = IPMHeadingCodec()
