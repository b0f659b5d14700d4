"""The IPM heading (X.420 §7.2) of the usual shape read straight from its octets, with no
element objects: this-IPM, originator, recipients of their recipient alone, a Teletex
subject, one-octet tags, definite lengths, O/R names already decoded once. Anything else
is left (None) to the general reader of ipm_heading_ber."""

from __future__ import annotations

from waypost.asn1.fast import read_length
from waypost.x400.ipm_heading import IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.p1_names import known_orname

# Identifier octets (X.690 §8.1.2) of the fields read here; X.420 §7.2, IMPLICIT TAGS.
_THIS_IPM = 0x6B  # [APPLICATION 11] SET
_ORIGINATOR = 0xA0  # [0] ORDescriptor (a SET)
_RECIPIENT_FIELDS = {0xA2: "primary_recipients", 0xA3: "copy_recipients"}
_BLIND_COPY = 0xA4
_SUBJECT = 0xA8  # [8] EXPLICIT SubjectField (a TeletexString)
_SET = 0x31
_OR_NAME = 0x60  # [APPLICATION 0] ORName
_PRINTABLE = 0x13
_TELETEX = 0x14
_FREE_FORM_NAME = 0x80  # [0] TeletexString, primitive
_TELEPHONE_NUMBER = 0x81  # [1] PrintableString
_RECIPIENT = 0xA0  # RecipientSpecifier's recipient [0] ORDescriptor

# (identifier octet, start of the element, start and end of its contents)
Items = list[tuple[int, int, int, int]]


class _UnusualError(Exception):
    """What the general reader is left to: another shape, an error, a name not remembered."""


def read_usual_heading(data: bytes) -> IPMHeading | None:
    """The heading whose Heading SET contents are `data`, when every field is of the
    shape most agents send (see above); else None. Where it answers, it
    is what ipm_heading_ber.read_heading gives for the same octets."""
    try:
        return _heading(data)
    except (_UnusualError, UnicodeDecodeError, ValueError):
        return None


def _items(data: bytes, start: int, stop: int) -> Items:
    """The elements in [start, stop) (see Items): one-octet tags and definite lengths in
    their shortest form only (the input was checked whole by waypost.asn1.decode before)."""
    found: Items = []
    p = start
    while p < stop:
        first = data[p]
        if first & 0x1F == 0x1F:
            raise _UnusualError
        length = data[p + 1] if p + 1 < stop else -1
        if length < 0x80:  # the short form (X.690 §8.1.3.4), nearly every one here
            begin = p + 2
        else:
            length, begin = read_length(data, p + 1)
        if length < 0 or begin + length > stop:
            raise _UnusualError
        found.append((first, p, begin, begin + length))
        p = begin + length
    return found


def _heading(data: bytes) -> IPMHeading:
    fields: dict[str, object] = {}
    seen: set[int] = set()
    for tag, _, begin, end in _items(data, 0, len(data)):
        if tag in seen:
            raise _UnusualError
        seen.add(tag)
        if tag == _THIS_IPM:
            fields["this_ipm"] = _identifier(data, begin, end)
        elif tag == _ORIGINATOR:
            fields["originator"] = _descriptor(data, begin, end)
        elif tag in _RECIPIENT_FIELDS or tag == _BLIND_COPY:
            name = _RECIPIENT_FIELDS.get(tag, "blind_copy_recipients")
            fields[name] = tuple(
                _specifier(data, b, e, t) for t, _, b, e in _items(data, begin, end)
            )
        elif tag == _SUBJECT:
            inside = _items(data, begin, end)
            if len(inside) != 1 or inside[0][0] != _TELETEX:
                raise _UnusualError
            fields["subject"] = data[inside[0][2] : inside[0][3]].decode("latin-1")
        else:
            raise _UnusualError
    if "this_ipm" not in fields:
        raise _UnusualError
    return IPMHeading(**fields)  # type: ignore[arg-type]


def _orname_text(data: bytes, start: int, end: int) -> str:
    name = known_orname(data[start:end])
    if name is None:
        raise _UnusualError
    return name.text


def _identifier(data: bytes, begin: int, end: int) -> IPMIdentifier:
    user: str | None = None
    local: str | None = None
    for tag, a, b, e in _items(data, begin, end):
        if tag == _OR_NAME:
            user = _orname_text(data, a, e)
        elif tag == _PRINTABLE:
            local = data[b:e].decode("ascii")
        else:
            raise _UnusualError
    if local is None:
        raise _UnusualError
    return IPMIdentifier(user=user, local=local)


def _descriptor(data: bytes, begin: int, end: int) -> ORDescriptor:
    address = name = telephone = None
    for tag, a, b, e in _items(data, begin, end):
        if tag == _OR_NAME:
            address = _orname_text(data, a, e)
        elif tag == _FREE_FORM_NAME:
            name = data[b:e].decode("latin-1")
        elif tag == _TELEPHONE_NUMBER:
            telephone = data[b:e].decode("ascii")
        else:
            raise _UnusualError
    if address is None and name is None:
        raise _UnusualError
    return ORDescriptor(address=address, free_form_name=name, telephone_number=telephone)


def _specifier(data: bytes, begin: int, end: int, tag: int) -> ORDescriptor:
    # A RecipientSpecifier of its recipient alone: notification requests, reply requested
    # and recipient extensions are left to the general reader.
    inside = _items(data, begin, end)
    if tag != _SET or len(inside) != 1 or inside[0][0] != _RECIPIENT:
        raise _UnusualError
    return _descriptor(data, inside[0][2], inside[0][3])
