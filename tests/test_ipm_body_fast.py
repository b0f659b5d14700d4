"""An ia5-text body part as most agents send it is read from its octets; the reading is
what the general one gives, and any other form is left to it."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st
from ipm_strategies import TEXT

from waypost.asn1 import SET, BERError, constructed, context, decode, encode_int
from waypost.x400.ipm_bodies import IA5Text
from waypost.x400.ipm_bodies_ber import (
    IA5_TEXT,
    REPERTOIRE,
    _read_ia5_text,
    _usual_ia5_text,
    encode_body_part,
    read_body_part,
)


def outcome(read):  # type: ignore[no-untyped-def]
    """What a reading gives: its result, or its exception's type and text."""
    try:
        return read()
    except (BERError, ValueError) as error:
        return type(error).__name__, str(error)


@settings(max_examples=300, deadline=None)
@given(TEXT | st.text(st.characters(max_codepoint=0x7F), max_size=300))
def test_ia5_text_as_sent_is_read_from_its_octets(text: str) -> None:
    element = decode(encode_body_part(IA5Text(text=text)), lenient=True)
    usual = _usual_ia5_text(element.value)
    assert usual is not None
    assert IA5Text(text=usual) == read_body_part(element) == _read_ia5_text(element)


PARAMETERS = [
    constructed(SET),
    constructed(SET, encode_int(5, REPERTOIRE)),  # ia5, said
    constructed(SET, encode_int(2, REPERTOIRE)),  # ita2
    constructed(SET, encode_int(1, context(1))),  # a field of a later edition
]
LENGTHS = {
    "short": lambda n: bytes([n]) if n < 0x80 else None,
    "long": lambda n: b"\x82" + n.to_bytes(2, "big"),  # not the shortest: BER allows it
    "longer": lambda n: b"\x84" + n.to_bytes(4, "big"),
}


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from(PARAMETERS),
    st.sampled_from([0x16, 0x13, 0x04, 0x1A]),
    st.sampled_from(sorted(LENGTHS)),
    st.binary(max_size=150) | st.text(max_size=60).map(lambda t: t.encode("latin-1", "replace")),
    st.sampled_from([b"", b"\x16\x01a", b"\x05\x00"]),
)
@example(PARAMETERS[0], 0x16, "short", b"caf\xe9", b"")
@example(PARAMETERS[2], 0x16, "short", b"x", b"")
@example(PARAMETERS[0], 0x16, "short", b"x", b"\x16\x01a")
def test_other_forms_are_read_as_the_general_reading_does(
    parameters: bytes, tag: int, length_form: str, octets: bytes, after: bytes
) -> None:
    length = LENGTHS[length_form](len(octets))
    if length is None:
        length = LENGTHS["long"](len(octets))
    wire = constructed(IA5_TEXT, parameters + bytes([tag]) + length + octets + after)
    element = decode(wire, lenient=True)
    general = outcome(lambda: _read_ia5_text(decode(wire, lenient=True)))
    assert outcome(lambda: read_body_part(element)) == general
    usual = _usual_ia5_text(element.value)
    if usual is not None:
        assert IA5Text(text=usual) == general
