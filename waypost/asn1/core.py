"""BER building blocks shared by the decoder and the encoder: tags, limits and errors."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple


class TagClass(IntEnum):
    """The two high bits of the identifier octet (X.690 8.1.2.2)."""

    UNIVERSAL = 0
    APPLICATION = 1
    CONTEXT = 2
    PRIVATE = 3


_CLASS_TEXT = ("UNIVERSAL ", "APPLICATION ", "", "PRIVATE ")


class Tag(NamedTuple):
    """An identifier: class, primitive/constructed form and tag number."""

    cls: TagClass
    constructed: bool
    number: int

    def __str__(self) -> str:
        name = _UNIVERSAL_NAMES.get(self.number) if self.cls == TagClass.UNIVERSAL else None
        text = name or f"[{_CLASS_TEXT[self.cls]}{self.number}]"
        return f"{text}{'*' if self.constructed else ''}"

    def primitive(self) -> Tag:
        """This tag in primitive form."""
        return Tag(self.cls, False, self.number)

    def as_constructed(self) -> Tag:
        """This tag in constructed form."""
        return Tag(self.cls, True, self.number)


# The tags of the low numbers, made once: the codecs call these constructors for every
# element, and a NamedTuple costs more to build than to look up.
_TABLED = 64
_TAGS = {
    cls: tuple(tuple(Tag(cls, form, n) for n in range(_TABLED)) for form in (False, True))
    for cls in (TagClass.UNIVERSAL, TagClass.APPLICATION, TagClass.CONTEXT)
}
_UNIVERSAL_TAGS = _TAGS[TagClass.UNIVERSAL]
_APPLICATION_TAGS = _TAGS[TagClass.APPLICATION]
_CONTEXT_TAGS = _TAGS[TagClass.CONTEXT]


def universal(number: int, constructed: bool = False) -> Tag:
    """A UNIVERSAL tag."""
    if 0 <= number < _TABLED and constructed in (False, True):
        return _UNIVERSAL_TAGS[constructed][number]
    return Tag(TagClass.UNIVERSAL, constructed, number)


def application(number: int, constructed: bool = False) -> Tag:
    """An [APPLICATION n] tag."""
    if 0 <= number < _TABLED and constructed in (False, True):
        return _APPLICATION_TAGS[constructed][number]
    return Tag(TagClass.APPLICATION, constructed, number)


def context(number: int, constructed: bool = False) -> Tag:
    """A context-specific [n] tag."""
    if 0 <= number < _TABLED and constructed in (False, True):
        return _CONTEXT_TAGS[constructed][number]
    return Tag(TagClass.CONTEXT, constructed, number)


BOOLEAN = universal(1)
INTEGER = universal(2)
BIT_STRING = universal(3)
OCTET_STRING = universal(4)
NULL = universal(5)
OID = universal(6)
EXTERNAL = universal(8, True)
ENUMERATED = universal(10)
UTF8_STRING = universal(12)
SEQUENCE = universal(16, True)
SET = universal(17, True)
NUMERIC_STRING = universal(18)
PRINTABLE_STRING = universal(19)
TELETEX_STRING = universal(20)
T61_STRING = TELETEX_STRING
IA5_STRING = universal(22)
UTC_TIME = universal(23)
GENERALIZED_TIME = universal(24)
GRAPHIC_STRING = universal(25)
VISIBLE_STRING = universal(26)
GENERAL_STRING = universal(27)
UNIVERSAL_STRING = universal(28)
BMP_STRING = universal(30)

_UNIVERSAL_NAMES = {
    1: "BOOLEAN",
    2: "INTEGER",
    3: "BIT STRING",
    4: "OCTET STRING",
    5: "NULL",
    6: "OID",
    8: "EXTERNAL",
    10: "ENUMERATED",
    12: "UTF8String",
    16: "SEQUENCE",
    17: "SET",
    18: "NumericString",
    19: "PrintableString",
    20: "TeletexString",
    22: "IA5String",
    23: "UTCTime",
    24: "GeneralizedTime",
    25: "GraphicString",
    26: "VisibleString",
    27: "GeneralString",
    28: "UniversalString",
    30: "BMPString",
}

MIB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Limits:
    """Hard limits applied while decoding; exceeding one raises `LimitError`.

    max_length: largest declared length of one element, refused as soon as
        its length octets are read (nothing is allocated for it).
    max_depth: deepest nesting of constructed elements (the outermost is 1).
    max_elements: elements (TLVs) in one `decode`/`decode_all` call.
    max_total: size of the input (or of what a `TLVReader` may buffer).
    """

    max_length: int = 64 * MIB
    max_depth: int = 64
    max_elements: int = 100_000
    max_total: int = 64 * MIB


class BERError(ValueError):
    """A BER decoding error: `reason`, absolute byte `offset` and `path` of the element."""

    def __init__(self, reason: str, offset: int, path: str = "$") -> None:
        super().__init__(f"{reason} (at {path}, offset {offset})")
        self.reason = reason
        self.offset = offset
        self.path = path


class TruncatedError(BERError):
    """The input ends before the element does."""


class MalformedError(BERError):
    """The octets break a BER encoding rule (tag, length, end-of-contents, nesting)."""


class LimitError(BERError):
    """A `Limits` value was exceeded; `limit` names it."""

    def __init__(self, reason: str, offset: int, path: str = "$", *, limit: str = "") -> None:
        super().__init__(reason, offset, path)
        self.limit = limit


class UnexpectedTagError(BERError):
    """An element has another tag than the one expected, or is missing."""


class BadValueError(BERError):
    """An element's contents are not a valid value of the type asked for."""
