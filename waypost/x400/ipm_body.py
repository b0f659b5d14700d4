"""The text of an IPM's body parts (X.420 §7.3), for an operator reading a message:
ia5-text, teletex and general-text as text, any other part named with its size."""

from __future__ import annotations

from dataclasses import dataclass

from waypost.asn1 import (
    EXTERNAL,
    GENERAL_STRING,
    IA5_STRING,
    OID,
    SEQUENCE,
    TELETEX_STRING,
    Element,
    context,
    decode,
)
from waypost.x400.ipm import BODY_PARTS, IPM

IA5_TEXT = context(0, True)
TELETEX = context(5, True)  # X.420 §7.4: teletex [5]
EXTENDED = context(15, True)
# X.420 §7.4.12 (1992): id-et-general-text, the extended body part type for general text.
GENERAL_TEXT_OID = "2.6.1.4.11"


@dataclass(frozen=True, slots=True)
class BodyPart:
    """One body part: its X.420 kind, and its text when it is a text part (else None)."""

    kind: str
    text: str | None
    size: int


def body_parts(content: bytes) -> list[BodyPart]:
    """Every body part of an IPM, in order; raises BERError (a ValueError) if the IPM does
    not decode. Strings are read leniently: a wrong character is shown, not refused."""
    ipm = decode(content, name="ipm").expect(IPM)
    body = ipm.child(1, "body").expect(SEQUENCE)
    return [_part(part) for part in body]


def _part(part: Element) -> BodyPart:
    kind = BODY_PARTS.get(part.tag.number, f"[{part.tag.number}]")
    size = len(part.raw)
    if part.tag == IA5_TEXT:
        strings = [c for c in part if c.tag == IA5_STRING]
        return BodyPart(kind, "".join(s.as_string(IA5_STRING, check=False) for s in strings), size)
    if part.tag == TELETEX:
        data = [c for c in part if c.tag == SEQUENCE]
        lines = [s.as_string(TELETEX_STRING, check=False) for d in data for s in d]
        return BodyPart(kind, "".join(lines), size)
    if part.tag == EXTENDED:
        return _extended(part, size)
    return BodyPart(kind, None, size)


def _extended(part: Element, size: int) -> BodyPart:
    """An externally defined body part: text when its EXTERNAL's type is general-text."""
    externals = [c for c in part if c.tag == EXTERNAL]
    if externals:
        data = externals[-1]
        oid = data.find(OID)
        value = next((c for c in data if c.tag == context(0, True)), None)
        if oid is not None and oid.as_oid() == GENERAL_TEXT_OID and value is not None:
            strings = [s for s in value if s.tag == GENERAL_STRING]
            if strings:
                return BodyPart("general-text", strings[0].as_string(check=False), size)
        if oid is not None:
            return BodyPart(f"extended {oid.as_oid()}", None, size)
    return BodyPart("extended", None, size)
