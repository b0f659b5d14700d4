"""Contents octets ⇄ Python values for the primitive universal types (no tags, no lengths).

Decoders raise `ValueError` with a short reason; `Element` turns it into a
`BadValueError` carrying the element's path and offset.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone

PRINTABLE_CHARS = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()+,-./:=?"
)
NUMERIC_CHARS = frozenset("0123456789 ")

# Universal tag number -> Python codec for the character string types.
STRING_CODECS = {
    12: "utf-8",  # UTF8String
    18: "ascii",  # NumericString
    19: "ascii",  # PrintableString
    20: "latin-1",  # TeletexString (T.61): Latin-1 is the usual practical reading
    22: "ascii",  # IA5String
    25: "latin-1",  # GraphicString
    26: "ascii",  # VisibleString
    27: "latin-1",  # GeneralString
    28: "utf-32-be",  # UniversalString
    30: "utf-16-be",  # BMPString
}


def int_from(content: bytes | memoryview) -> int:
    """INTEGER/ENUMERATED contents (two's complement, at least one octet)."""
    if not content:
        raise ValueError("INTEGER with no contents octets")
    return int.from_bytes(content, "big", signed=True)


def int_to(value: int) -> bytes:
    """Shortest two's complement contents for `value`."""
    size = (value + (value < 0)).bit_length() // 8 + 1
    return value.to_bytes(size, "big", signed=True)


def oid_from(content: bytes | memoryview) -> str:
    """OBJECT IDENTIFIER contents -> dotted text."""
    if not content:
        raise ValueError("OBJECT IDENTIFIER with no contents octets")
    if content[-1] & 0x80:
        raise ValueError("OBJECT IDENTIFIER ends inside a subidentifier")
    arcs: list[int] = []
    value = 0
    fresh = True
    for octet in content:
        if fresh and octet == 0x80:
            raise ValueError("OBJECT IDENTIFIER subidentifier with a leading 0x80 octet")
        value = (value << 7) | (octet & 0x7F)
        fresh = not octet & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(map(str, head + arcs[1:]))


def oid_to(oid: str | Iterable[int]) -> bytes:
    """Dotted text or arcs -> OBJECT IDENTIFIER contents."""
    arcs = [int(a) for a in oid.split(".")] if isinstance(oid, str) else list(oid)
    if len(arcs) < 2 or arcs[0] not in (0, 1, 2) or (arcs[0] < 2 and arcs[1] >= 40):
        raise ValueError(f"not a valid OBJECT IDENTIFIER: {oid!r}")
    if any(a < 0 for a in arcs):
        raise ValueError(f"negative arc in OBJECT IDENTIFIER: {oid!r}")
    out = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        rest = arc >> 7
        chunk = [arc & 0x7F]
        while rest:
            chunk.append(0x80 | (rest & 0x7F))
            rest >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def string_from(content: bytes, number: int, *, check: bool = True) -> str:
    """Character string contents of universal type `number` -> str."""
    codec = STRING_CODECS.get(number)
    if codec is None:
        raise ValueError(f"[UNIVERSAL {number}] is not a character string type")
    try:
        text = content.decode(codec)
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid {codec} contents at octet {exc.start}") from None
    allowed = PRINTABLE_CHARS if number == 19 else NUMERIC_CHARS if number == 18 else None
    if check and allowed is not None and not allowed.issuperset(text):
        bad = next(c for c in text if c not in allowed)
        raise ValueError(f"character {bad!r} not allowed in this string type")
    return text


def string_as_received(content: bytes, number: int) -> str:
    """Contents that break their string type, read so that `string_to` gives them back:
    octets outside ASCII in an ASCII type are read as Latin-1."""
    codec = STRING_CODECS.get(number)
    if codec is None:
        raise ValueError(f"[UNIVERSAL {number}] is not a character string type")
    if codec == "ascii":
        return content.decode("latin-1")
    return content.decode(codec, "replace")  # no reading keeps broken UTF-8/16/32


def string_to(text: str, number: int) -> bytes:
    """str -> character string contents of universal type `number`.

    An ASCII type's text with Latin-1 characters is a string received with octets
    outside its type (`string_as_received`): it goes out as it came.
    """
    codec = STRING_CODECS.get(number)
    if codec is None:
        raise ValueError(f"[UNIVERSAL {number}] is not a character string type")
    if codec == "ascii" and not text.isascii():
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise ValueError(f"{text!r} does not fit [UNIVERSAL {number}]") from None
    return text.encode(codec)


def bits_from(content: bytes | memoryview) -> tuple[bytes, int]:
    """Primitive BIT STRING contents -> (octets, unused bits in the last octet)."""
    if not content:
        raise ValueError("BIT STRING with no contents octets")
    unused = content[0]
    if unused > 7 or (unused and len(content) == 1):
        raise ValueError(f"BIT STRING with {unused} unused bits")
    return bytes(content[1:]), unused


def bit_numbers(data: bytes, unused: int) -> frozenset[int]:
    """Numbers of the bits that are set (bit 0 is the first, most significant)."""
    total = len(data) * 8 - unused
    return frozenset(i for i in range(total) if data[i >> 3] & (0x80 >> (i & 7)))


def bits_to(numbers: Iterable[int]) -> tuple[bytes, int]:
    """Set bit numbers -> (octets, unused), trailing zero bits dropped (named bits)."""
    wanted = set(numbers)
    if not wanted:
        return b"", 0
    if min(wanted) < 0:
        raise ValueError("negative bit number")
    size = max(wanted) + 1
    out = bytearray((size + 7) // 8)
    for n in wanted:
        out[n >> 3] |= 0x80 >> (n & 7)
    return bytes(out), len(out) * 8 - size


_UTC = re.compile(r"(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(Z|[+-]\d{4})\Z")
_GEN = re.compile(r"(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)?(\d\d)?(?:[.,](\d{1,6})\d*)?(Z|[+-]\d{4})?\Z")


def _zone(text: str | None) -> timezone | None:
    if text is None:
        return None
    if text == "Z":
        return UTC
    hours, minutes = int(text[1:3]), int(text[3:5])
    if hours > 23 or minutes > 59:
        raise ValueError(f"bad time zone offset {text!r}")
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)


def time_from(content: bytes, number: int) -> datetime:
    """UTCTime (23) or GeneralizedTime (24) contents -> datetime (aware when a zone is given).

    A two-digit UTCTime year below 50 is 20xx, otherwise 19xx (RFC 5280).
    """
    text = content.decode("ascii", "replace")
    if number == 23 and len(text) == 13 and text[12] == "Z" and text[:12].isdigit():
        # YYMMDDhhmmssZ, what nearly every MTA sends: the regular expression's own reading.
        yy = int(text[0:2])
        fields = [yy + (2000 if yy < 50 else 1900)]
        fields += (int(text[i : i + 2]) for i in range(2, 12, 2))
        micro, zone = 0, "Z"
    elif number == 23:
        m = _UTC.match(text)
        if not m:
            raise ValueError(f"not a UTCTime: {text!r}")
        yy = int(m[1])
        fields = [yy + (2000 if yy < 50 else 1900), *(int(g or 0) for g in m.groups()[1:6])]
        micro, zone = 0, m[7]
    elif number == 24:
        m = _GEN.match(text)
        if not m:
            raise ValueError(f"not a GeneralizedTime: {text!r}")
        fields = [int(g or 0) for g in m.groups()[:6]]
        micro, zone = int((m[7] or "0").ljust(6, "0")), m[8]
    else:
        raise ValueError(f"[UNIVERSAL {number}] is not a time type")
    try:
        year, month, day, hour, minute, second = fields
        return datetime(year, month, day, hour, minute, second, micro, tzinfo=_zone(zone))
    except ValueError as exc:
        raise ValueError(f"bad time {text!r}: {exc}") from None


def time_to(value: datetime, number: int) -> bytes:
    """datetime -> UTCTime (23) or GeneralizedTime (24) contents, in UTC with "Z"."""
    if value.tzinfo is not None and value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    if number == 23:
        if not 1950 <= value.year < 2050:
            raise ValueError(f"year {value.year} does not fit a UTCTime")
        return value.strftime("%y%m%d%H%M%SZ").encode("ascii")
    if number == 24:
        frac = f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
        return (value.strftime("%Y%m%d%H%M%S") + frac + "Z").encode("ascii")
    raise ValueError(f"[UNIVERSAL {number}] is not a time type")
