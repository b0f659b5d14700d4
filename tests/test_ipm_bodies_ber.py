"""BER of IPM body parts (X.420 §7.4): golden bytes, round trips over generated parts,
and the body parts as the existing IPM body reader sees them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.asn1 import SET, BERError, constructed, context, sequence
from waypost.x400.ipm import IPM
from waypost.x400.ipm_bodies import (
    ISO_8859_REGISTRATIONS,
    BilaterallyDefined,
    BodyPart,
    GeneralText,
    IA5Text,
    MessagePart,
)
from waypost.x400.ipm_bodies_ber import (
    UnsupportedBodyPartError,
    decode_body,
    decode_body_part,
    encode_body,
    encode_body_part,
)
from waypost.x400.ipm_body import body_parts


def test_ia5_text_golden() -> None:
    encoded = encode_body_part(IA5Text(text="Hi\n"))
    # [0] { parameters SET {} (repertoire ia5 by default), IA5String "Hi" CRLF }
    assert encoded == bytes.fromhex("a008 3100 1604 48690d0a")
    assert decode_body_part(encoded) == IA5Text(text="Hi\r\n")


def test_bilaterally_defined_golden() -> None:
    assert encode_body_part(BilaterallyDefined(data=b"\x00\xff")) == b"\x8e\x02\x00\xff"
    assert decode_body_part(b"\xae\x06\x04\x01\x00\x04\x01\xff") == BilaterallyDefined(
        data=b"\x00\xff"
    )


def test_general_text_golden() -> None:
    encoded = encode_body_part(GeneralText(charset="iso-8859-1", text="é"))
    expected = bytes.fromhex(
        "af1f"  # extended [15]
        "a010 0604 56010b0b a008 3106 020106 020164"  # id-ep-general-text, SET {6, 100}
        "280b 0604 5601040b a003 1b01e9"  # EXTERNAL id-et-general-text, GeneralString
    )
    assert encoded == expected
    assert decode_body_part(encoded) == GeneralText(charset="iso-8859-1", text="é")


def test_message_body_part_golden_with_its_heading_kept_as_ber() -> None:
    heading = bytes.fromhex("3100")
    part = MessagePart(heading=heading, body=(BilaterallyDefined(data=b"x"),))
    encoded = encode_body_part(part)
    # [9] { parameters SET {}, data IPM SEQUENCE { heading SET {}, body SEQUENCE { [14] } } }
    assert encoded == bytes.fromhex("a90b 3100 3007 3100 3003 8e0178")
    assert decode_body_part(encoded) == part


def test_the_ipm_body_reader_reads_what_is_encoded() -> None:
    body = encode_body([IA5Text(text="a"), GeneralText(charset="iso-8859-1", text="Grüße")])
    content = constructed(IPM, constructed(SET), body)
    assert [(p.kind, p.text) for p in body_parts(content)] == [
        ("ia5-text", "a"),
        ("general-text", "Grüße"),
    ]


def test_unsupported_parts_are_named() -> None:
    with pytest.raises(UnsupportedBodyPartError, match="not read yet"):
        decode_body_part(constructed(context(3, True), constructed(SET)))
    with pytest.raises(BERError):
        decode_body_part(b"\xa0\x05\x31\x00\x16")


def _alphabet(charset: str) -> str:
    chars = []
    for code in [*range(0x20, 0x7F), *range(0xA0, 0x100)]:
        try:
            chars.append(bytes([code]).decode(charset))
        except UnicodeDecodeError:
            continue
    return "".join(chars) + "\n"


leaves = st.one_of(
    st.builds(IA5Text, text=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E))),
    st.sampled_from(sorted(ISO_8859_REGISTRATIONS)).flatmap(
        lambda cs: st.builds(GeneralText, charset=st.just(cs), text=st.text(_alphabet(cs)))
    ),
    st.builds(BilaterallyDefined, data=st.binary()),
)


headings = st.sampled_from([bytes.fromhex("3100"), bytes.fromhex("3105a803140178")])
parts = st.recursive(
    leaves,
    lambda inner: st.builds(
        lambda heading, body: MessagePart(heading=heading, body=tuple(body)),
        headings,
        st.lists(inner, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(parts, max_size=5))
def test_round_trip(body: list[BodyPart]) -> None:
    assert decode_body(encode_body(body)) == body
    assert decode_body(sequence(*(encode_body_part(p) for p in body))) == body
