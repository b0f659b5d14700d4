"""The BER fast paths (waypost.asn1.fast) against the full codec, on random inputs.

Each fast path answers only for definite, shortest lengths, one-octet tags and an
INTEGER of 0..127; what it answers must equal what the codec gives, and for the form
senders write (what the encoder writes) it must answer. Everything else it declines.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from waypost import asn1 as ber
from waypost.asn1 import fast
from waypost.asn1.values import int_to
from waypost.osi import presentation_ppdu as pp
from waypost.osi import rtse as r

EDGE_LENGTHS = (0, 1, 127, 128, 255, 256, 65535, 65536, (1 << 24) - 1, 1 << 24, (1 << 32) - 1)
lengths = st.one_of(st.sampled_from(EDGE_LENGTHS), st.integers(0, (1 << 32) - 1))
#: Values of sizes around the length-form boundaries (short form ends at 127).
payloads = st.one_of(
    st.binary(max_size=300),
    st.sampled_from((124, 125, 126, 127, 128, 129, 250, 255, 256, 260)).map(bytes),
)
idents = st.one_of(st.integers(0, 127), st.integers(-300, 70000))
#: Outer wrappers as the OSI layers use them: EXTERNAL; user-data { SEQUENCE { … } }.
OUTERS = ((fast.TAG_EXTERNAL,), (0x61, fast.TAG_SEQUENCE), (fast.TAG_SEQUENCE,))


def _tag(octet: int) -> ber.Tag:
    return ber.Tag(ber.TagClass(octet >> 6), bool(octet & 0x20), octet & 0x1F)


def _codec_ident_single(outer: tuple[int, ...], ident: int, value: bytes) -> bytes:
    """The shape `encode_ident_single` writes, built by the full encoder."""
    inner = ber.encode_int(ident) + ber.constructed(ber.context(0), value)
    for octet in reversed(outer):
        inner = ber.encode_tlv(_tag(octet), inner)
    return inner


def _length_octets(length: int, extra: int) -> bytes:
    """Length octets: the shortest form when `extra` is 0, else `extra` octets more
    than needed (BER allows them; the fast paths decline them)."""
    if extra == 0:
        return ber.encode_length(length)
    size = max(1, (length.bit_length() + 7) // 8) + extra - (1 if length < 0x80 else 0)
    return bytes((0x80 | size,)) + length.to_bytes(size, "big")


# --- lengths ----------------------------------------------------------------------


@given(lengths)
@example(127)
@example(128)
@example(255)
@example(256)
@example(65535)
def test_encode_length_equals_codec(length: int) -> None:
    assert fast.encode_length(length) == ber.encode_length(length)


@given(lengths, st.binary(max_size=3))
def test_read_length_reads_what_the_encoder_writes(length: int, before: bytes) -> None:
    octets = ber.encode_length(length)
    assert fast.read_length(before + octets + b"\x00", len(before)) == (
        length,
        len(before) + len(octets),
    )


@given(st.integers(0, 1 << 20), st.integers(1, 3))
def test_read_length_declines_longer_forms(length: int, extra: int) -> None:
    octets = _length_octets(length, extra)
    assert fast.read_length(octets, 0) == (-1, 0)
    # The codec reads the same length from them: BER allows the longer form.
    element = ber.decode(b"\x04" + octets + bytes(length))
    assert len(element.as_octets()) == length


@pytest.mark.parametrize(
    "octets",
    [b"", b"\x80", b"\x81", b"\x82\x01", b"\x85\x01\x00\x00\x00\x00", b"\xff", b"\x81\x7f"],
)
def test_read_length_declines(octets: bytes) -> None:
    """Indefinite, truncated, five octets and more, reserved, not shortest."""
    assert fast.read_length(octets, 0) == (-1, 0)


@given(st.binary(max_size=8))
def test_read_length_agrees_with_codec_on_random_octets(octets: bytes) -> None:
    length, end = fast.read_length(octets, 0)
    if length < 0:
        assert end == 0
        return
    assert ber.encode_length(length) == octets[:end]  # only the shortest form
    if length <= 1 << 16:  # (a content of up to 4 GB is not built to decode)
        element = ber.decode(b"\x04" + octets[:end] + bytes(length))
        assert len(element.as_octets()) == length


# --- OCTET STRING -----------------------------------------------------------------


@given(payloads)
def test_read_octet_string_reads_what_the_encoder_writes(value: bytes) -> None:
    data = ber.encode_octets(value)
    start = fast.read_octet_string(data)
    assert start is not None
    assert data[start:] == ber.decode(data).as_octets() == value


def _octet_string_forms() -> st.SearchStrategy[bytes]:
    """OCTET STRINGs in every form: long lengths, constructed, other tags, damaged."""
    plain = payloads.map(ber.encode_octets)
    longer = st.builds(
        lambda v, extra: b"\x04" + _length_octets(len(v), extra) + v, payloads, st.integers(1, 2)
    )
    nested = payloads.map(
        lambda v: ber.constructed(ber.OCTET_STRING.as_constructed(), ber.encode_octets(v))
    )
    other = st.builds(
        lambda tag, v: bytes((tag,)) + ber.encode_length(len(v)) + v,
        st.integers(0, 255),
        payloads,
    )
    truncated = st.builds(lambda v, cut: ber.encode_octets(v)[:cut], payloads, st.integers(0, 5))
    tails = st.binary(min_size=1, max_size=3)
    trailing = st.builds(lambda v, t: ber.encode_octets(v) + t, payloads, tails)
    return st.one_of(plain, longer, nested, other, truncated, trailing, st.binary(max_size=12))


@settings(max_examples=400)
@given(_octet_string_forms())
def test_read_octet_string_equals_codec(data: bytes) -> None:
    start = fast.read_octet_string(data)
    try:
        element = ber.decode(data)
    except ber.BERError:
        assert start is None
        return
    canonical = element.tag == ber.OCTET_STRING and ber.encode_octets(element.as_octets()) == data
    if start is None:
        assert not canonical
    else:
        assert canonical
        assert data[start:] == element.as_octets()


@given(payloads)
def test_decode_rttr_equals_the_rtse_decoder(value: bytes) -> None:
    data = r.encode_rttr(value)
    assert r.decode_rttr(data) == value
    decoded = r.decode_rtse_apdu(data)
    assert isinstance(decoded, r.RTTR) and decoded.data == value


# --- INTEGER ident, [0] { value } inside one-octet wrappers -----------------------


@settings(max_examples=400)
@given(st.sampled_from(OUTERS), idents, payloads.map(ber.encode_octets))
def test_encode_ident_single_equals_codec(outer: tuple[int, ...], ident: int, value: bytes) -> None:
    encoded = fast.encode_ident_single(outer, ident, value)
    if 0 <= ident < 0x80:
        assert encoded == _codec_ident_single(outer, ident, value)
    else:
        assert encoded is None  # two or more contents octets: the codec's


@settings(max_examples=400)
@given(st.sampled_from(OUTERS), idents, payloads.map(ber.encode_octets))
def test_read_ident_single_reads_what_the_codec_writes(
    outer: tuple[int, ...], ident: int, value: bytes
) -> None:
    data = _codec_ident_single(outer, ident, value)
    found = fast.read_ident_single(data, outer)
    if 0 <= ident < 0x80:
        assert found == (ident, len(data) - len(value))
    else:
        assert found is None


def _ident_single_forms() -> st.SearchStrategy[tuple[tuple[int, ...], bytes]]:
    """The shape with random length forms, tags, integers and damage."""

    @st.composite
    def build(draw: st.DrawFn) -> tuple[tuple[int, ...], bytes]:
        outer = draw(st.sampled_from(OUTERS))
        value = ber.encode_octets(draw(payloads))
        ident = draw(idents)
        integer = ber.encode_int(ident)
        if draw(st.booleans()):
            integer = b"\x02" + _length_octets(len(integer) - 2, draw(st.integers(0, 1)))
            integer += int_to(ident)
        single_tag = draw(st.sampled_from((0xA0, 0xA0, 0xA1, 0x80)))
        single = bytes((single_tag,)) + _length_octets(len(value), draw(st.integers(0, 1))) + value
        inner = integer + single
        for wanted in reversed(outer):
            octet = draw(st.integers(0, 255)) if draw(st.integers(0, 9)) == 0 else wanted
            inner = bytes((octet,)) + _length_octets(len(inner), draw(st.integers(0, 1))) + inner
        mangle = draw(st.integers(0, 4))
        if mangle == 0 and inner:
            at = draw(st.integers(0, len(inner) - 1))
            inner = inner[:at] + bytes((draw(st.integers(0, 255)),)) + inner[at + 1 :]
        elif mangle == 1:
            inner = inner[: draw(st.integers(0, len(inner)))]
        elif mangle == 2:
            inner += draw(st.binary(min_size=1, max_size=3))
        return outer, inner

    return build()


def _codec_reading(outer: tuple[int, ...], data: bytes) -> tuple[int, bytes] | None:
    """(ident, contents of [0]) by the full decoder when `data` has the shape, or None."""
    try:
        element = ber.decode(data)
        for depth, octet in enumerate(outer):
            if element.tag != _tag(octet):
                return None
            if depth < len(outer) - 1:  # each wrapper holds the next, the last the pair
                if len(element) != 1:
                    return None
                element = element.child(0)
        if len(element) != 2 or element.child(0).tag != ber.INTEGER:
            return None
        single = element.child(1)
        if single.tag != ber.context(0, True):
            return None
        contents = b"".join(bytes(c.raw) for c in single.children())
        return element.child(0).as_int(), contents
    except ber.BERError:
        return None


def _elements(data: bytes) -> bool:
    try:
        ber.decode_all(data)
    except ber.BERError:
        return False
    return True


@settings(max_examples=1500)
@given(_ident_single_forms())
def test_read_ident_single_equals_codec(case: tuple[tuple[int, ...], bytes]) -> None:
    outer, data = case
    found = fast.read_ident_single(data, outer)
    expected = _codec_reading(outer, data)
    if found is not None and _elements(data[found[1] :]):
        assert expected == (found[0], data[found[1] :])
    elif found is not None:
        # The contents of [0] are left to the layer above (one scan, not two): where
        # they are not BER, the codec refuses the whole and the reader of them will.
        assert expected is None
    elif expected is not None:
        # Declined: the encoder would write it otherwise (a longer length, a wide INTEGER).
        ident, contents = expected
        assert not 0 <= ident < 0x80 or _codec_ident_single(outer, ident, contents) != data


@settings(max_examples=400)
@given(idents.filter(lambda n: n >= 0), payloads.map(ber.encode_octets))
def test_single_pdv_equals_the_presentation_codec(ident: int, value: bytes) -> None:
    pdv = pp.PDV(context_id=ident, value=value)
    data = pp.encode_single_pdv(ident, value)
    assert data == pp.encode_user_data((pdv,))
    assert pp.decode_user_data(data) == (pdv,)
    assert pp.decode_single_pdv(data) == (pdv if ident < 0x80 else None)


@given(_ident_single_forms())
def test_decode_single_pdv_equals_the_presentation_codec(
    case: tuple[tuple[int, ...], bytes],
) -> None:
    _, data = case
    found = pp.decode_single_pdv(data)
    if found is not None:
        assert pp.decode_user_data(data) == (found,)
