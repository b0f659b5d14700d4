"""waypost.x400.ipm_heading_fast reads the usual IPM heading from its octets exactly as
the general reader of ipm_heading_ber does, and leaves every other heading to it."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from ipm_strategies import LATIN1, descriptors, headings, identifiers

from waypost.asn1 import (
    PRINTABLE_STRING,
    SET,
    BERError,
    application,
    constructed,
    context,
    decode,
    encode_string,
    encode_tlv,
)
from waypost.x400.ipm_heading import IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.ipm_heading_ber import (
    IPMContentError,
    _read_heading,
    decode_heading,
    encode_heading,
)
from waypost.x400.ipm_heading_fast import read_usual_heading

plain = descriptors(recipient=False)
usual_headings = st.builds(
    IPMHeading,
    this_ipm=identifiers,
    originator=st.none() | plain,
    primary_recipients=st.lists(plain, max_size=3).map(tuple),
    copy_recipients=st.lists(plain, max_size=2).map(tuple),
    blind_copy_recipients=st.lists(plain, max_size=2).map(tuple),
    subject=st.none() | LATIN1.filter(lambda t: len(t) <= 128),
)


def general(wire: bytes) -> IPMHeading | str:
    """What the general reader makes of a heading's BER: the heading, or its error."""
    try:
        return _read_heading(decode(wire, name="heading", lenient=True).expect(SET))
    except (BERError, IPMContentError, ValueError) as error:
        return type(error).__name__


def fast(wire: bytes) -> IPMHeading | None:
    return read_usual_heading(bytes(decode(wire, lenient=True).value))


@settings(max_examples=300, deadline=None)
@given(usual_headings)
def test_usual_headings_are_read_from_their_octets(heading: IPMHeading) -> None:
    wire = encode_heading(heading)
    assert decode_heading(wire) == heading  # the O/R names decoded once, then remembered
    assert fast(wire) == heading == general(wire)


@settings(max_examples=200, deadline=None)
@given(headings())
def test_other_headings_are_read_alike_or_left_alone(heading: IPMHeading) -> None:
    wire = encode_heading(heading)
    assert decode_heading(wire) == heading
    got = fast(wire)
    assert got is None or got == general(wire) == heading


@settings(max_examples=400, deadline=None)
@given(usual_headings, st.integers(0, 10_000), st.integers(0, 255))
@example(
    IPMHeading(
        this_ipm=IPMIdentifier(user=None, local="id-1"),
        primary_recipients=(ORDescriptor(address="/S=Jones/PRMD=B/ADMD= /C=GB/"),),
    ),
    3,
    0x00,
)
def test_damaged_headings_are_left_to_the_general_reader(
    heading: IPMHeading, position: int, octet: int
) -> None:
    wire = bytearray(encode_heading(heading))
    decode_heading(bytes(wire))  # names remembered
    wire[position % len(wire)] = octet
    try:
        element = decode(bytes(wire), lenient=True)
    except BERError:
        return  # refused before any heading reader runs
    if element.tag != SET:
        return
    got = read_usual_heading(bytes(element.value))
    expected = general(bytes(wire))
    assert got is None or got == expected
    if isinstance(expected, str):
        assert got is None


THIS_IPM = constructed(application(11, True), encode_string(PRINTABLE_STRING, "id-1"))


@pytest.mark.parametrize(
    "fields",
    [
        (THIS_IPM, THIS_IPM),  # a field twice: the general reader names it
        (constructed(application(11, True), encode_tlv(PRINTABLE_STRING, b"caf\xe9")),),
        (THIS_IPM, encode_tlv(context(30), b"?")),  # a field of a later edition
        (THIS_IPM, constructed(context(0, True))),  # a descriptor with no name
        (),  # no this-IPM
    ],
)
def test_what_the_fast_reader_leaves_alone(fields: tuple[bytes, ...]) -> None:
    wire = constructed(SET, *fields)
    assert fast(wire) is None
    expected = general(wire)
    try:
        assert decode_heading(wire) == expected
    except IPMContentError:
        assert expected == "IPMContentError"


def test_a_subject_in_latin1_and_a_name_not_yet_remembered() -> None:
    address = "/C=GB/ADMD= /PRMD=B/O=Unseen/S=Fastpath/"
    heading = IPMHeading(
        this_ipm=IPMIdentifier(user=None, local="id-1"),
        originator=ORDescriptor(address=address, free_form_name="Jöns"),
        subject="café crème",
    )
    wire = encode_heading(heading)
    assert fast(wire) is None  # the O/R name is decoded by the general reader first
    assert decode_heading(wire) == heading
    assert fast(wire) == heading
