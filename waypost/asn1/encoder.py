"""BER encoding: definite lengths in their shortest form, deterministic SET OF order."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from waypost.asn1 import values
from waypost.asn1.core import (
    BIT_STRING,
    BOOLEAN,
    INTEGER,
    NULL,
    OCTET_STRING,
    OID,
    SEQUENCE,
    SET,
    UTC_TIME,
    Tag,
    TagClass,
)

# Identifier octets of every tag in the one-octet form (numbers below 31), and the
# constructed form's octet for either form of such a tag (what `constructed` sends);
# one-octet lengths. Tables built once: the encoders look them up instead of computing.
_IDENTIFIERS = {
    Tag(cls, form, number): bytes(((int(cls) << 6) | (0x20 if form else 0) | number,))
    for cls in TagClass
    for form in (False, True)
    for number in range(0x1F)
}
_CONSTRUCTED_IDENTIFIERS = {tag: _IDENTIFIERS[tag.as_constructed()] for tag in _IDENTIFIERS}
_SHORT_LENGTHS = [bytes((length,)) for length in range(0x80)]
# The length and contents octets of the INTEGERs 0 to 127 (one contents octet).
_SMALL_INTEGERS = [bytes((1, value)) for value in range(0x80)]


def encode_tag(tag: Tag) -> bytes:
    """Identifier octets, in the high-tag-number form for numbers of 31 and above."""
    known = _IDENTIFIERS.get(tag)
    if known is not None:
        return known
    if tag.number < 0:
        raise ValueError(f"negative tag number {tag.number}")
    first = (int(tag.cls) << 6) | (0x20 if tag.constructed else 0)
    if tag.number < 0x1F:
        return bytes((first | tag.number,))
    number = tag.number
    chunk = [number & 0x7F]
    number >>= 7
    while number:
        chunk.append(0x80 | (number & 0x7F))
        number >>= 7
    return bytes((first | 0x1F, *reversed(chunk)))


def encode_length(length: int) -> bytes:
    """Length octets in the definite form, shortest encoding."""
    if length < 0x80:
        return _SHORT_LENGTHS[length] if length >= 0 else bytes((length,))
    size = (length.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


def encode_tlv(tag: Tag, content: bytes | bytearray | memoryview) -> bytes:
    """Tag, definite length and contents."""
    length = len(content)
    return b"".join(
        (
            _IDENTIFIERS.get(tag) or encode_tag(tag),
            _SHORT_LENGTHS[length] if length < 0x80 else encode_length(length),
            content,
        )
    )


def encode_int(value: int, tag: Tag = INTEGER) -> bytes:
    """INTEGER (or ENUMERATED, or an implicitly tagged one)."""
    if 0 <= value < 0x80:  # the usual numbers, choices and counts: from the table
        return (_IDENTIFIERS.get(tag) or encode_tag(tag)) + _SMALL_INTEGERS[value]
    return encode_tlv(tag, values.int_to(value))


def encode_bool(value: bool, tag: Tag = BOOLEAN) -> bytes:
    """BOOLEAN, TRUE as 0xFF."""
    return encode_tlv(tag, b"\xff" if value else b"\x00")


def encode_null(tag: Tag = NULL) -> bytes:
    """NULL."""
    return encode_tlv(tag, b"")


def encode_octets(data: bytes | bytearray | memoryview, tag: Tag = OCTET_STRING) -> bytes:
    """OCTET STRING, primitive."""
    return encode_tlv(tag, data)


def encode_oid(oid: str | Iterable[int], tag: Tag = OID) -> bytes:
    """OBJECT IDENTIFIER from dotted text or arcs."""
    return encode_tlv(tag, values.oid_to(oid))


def encode_string(tag: Tag, text: str, kind: Tag | None = None) -> bytes:
    """A character string of universal type `kind` (default: `tag` itself)."""
    return encode_tlv(tag, values.string_to(text, (kind or tag).number))


def encode_bits(data: bytes, unused: int = 0, tag: Tag = BIT_STRING) -> bytes:
    """BIT STRING from octets and the count of unused bits in the last one."""
    if not 0 <= unused <= 7 or (unused and not data):
        raise ValueError(f"BIT STRING cannot have {unused} unused bits here")
    return encode_tlv(tag, bytes((unused,)) + data)


def encode_bit_set(numbers: Iterable[int], tag: Tag = BIT_STRING) -> bytes:
    """BIT STRING of named bits (bit 0 first), trailing zero bits dropped."""
    return encode_bits(*values.bits_to(numbers), tag=tag)


def encode_time(value: datetime, tag: Tag = UTC_TIME, kind: Tag | None = None) -> bytes:
    """UTCTime or GeneralizedTime (`kind`, default `tag`), in UTC with "Z"."""
    return encode_tlv(tag, values.time_to(value, (kind or tag).number))


def constructed(tag: Tag, *children: bytes) -> bytes:
    """A constructed element holding already encoded children, in order."""
    # One join of the header and the children: joining the children first copied every
    # level's contents twice (a large body part once per enclosing element, and again).
    length = sum(map(len, children))
    return b"".join(
        (
            _CONSTRUCTED_IDENTIFIERS.get(tag) or encode_tag(tag.as_constructed()),
            _SHORT_LENGTHS[length] if length < 0x80 else encode_length(length),
            *children,
        )
    )


def sequence(*children: bytes) -> bytes:
    """SEQUENCE of already encoded children."""
    return constructed(SEQUENCE, *children)


def set_of(*children: bytes, tag: Tag = SET) -> bytes:
    """SET or SET OF: children sorted by their encodings, so the output is deterministic."""
    return constructed(tag, *sorted(children))
