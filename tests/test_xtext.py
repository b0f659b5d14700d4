"""RFC 3461 §4 xtext: what is encoded, and that decoding gives the text back."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from waypost.smtp.xtext import decode_xtext, encode_xtext


def _one_by_one(text: str) -> str:
    # RFC 3461 §4, character by character: "!" to "~" but "+" and "=" stand for
    # themselves, anything else is "+" and two upper-case hex digits per octet.
    return "".join(
        c if "!" <= c <= "~" and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in text
    )


def test_plain_text_is_its_own_xtext_and_the_rest_is_hex() -> None:
    assert encode_xtext("rfc822;jo@example.com") == "rfc822;jo@example.com"
    assert encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert encode_xtext("/C=GB/ADMD= /") == "/C+3DGB/ADMD+3D+20/"
    assert encode_xtext("é") == "+C3+A9"
    assert encode_xtext("") == ""


@given(st.text(st.characters(min_codepoint=0, max_codepoint=0x3FF)) | st.text("!~+= a/;"))
def test_encoding_is_rfc_3461s_and_decoding_reverses_it(text: str) -> None:
    encoded = encode_xtext(text)
    assert encoded == _one_by_one(text)
    assert decode_xtext(encoded) == text
