"""The whole IPM (X.420 §7) ⇄ BER, P22 and P2: round trips over generated headings and
bodies, PP's IPMs decoded and re-encoded byte for byte, IPNs and bad content refused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from ipm_strategies import bodies, headings
from test_p1 import PP, _definite, _pp

from waypost.asn1 import SET, constructed, context, decode, encode_tlv, sequence
from waypost.x400.ipm import summarize_ipm
from waypost.x400.ipm_bodies import BilaterallyDefined, GeneralText, IA5Text, MessagePart
from waypost.x400.ipm_codec import (
    InterpersonalMessage,
    IPMContentError,
    NotAnIPMError,
    P2Error,
    decode_ipm,
    encode_ipm,
    p2_obstacles,
)
from waypost.x400.ipm_heading import HeadingExtension, IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu

SMITH = "/C=GB/ADMD= /PRMD=Acme/S=Smith/"
HEADING = IPMHeading(this_ipm=IPMIdentifier(user=SMITH, local="1"), subject="Hi")


@settings(max_examples=100, deadline=None)
@given(headings(), bodies())
def test_generated_ipms_round_trip(heading: IPMHeading, body: tuple[object, ...]) -> None:
    ipm = InterpersonalMessage(heading=heading, body=body)  # type: ignore[arg-type]
    wire = encode_ipm(ipm)
    assert wire[:1] == b"\xa0"  # ipm [0]
    assert decode_ipm(wire) == ipm
    assert encode_ipm(decode_ipm(wire)) == wire


@settings(max_examples=60, deadline=None)
@given(headings(p2=True), bodies(p2=True))
def test_p2_differs_from_p22_only_in_what_p2_cannot_carry(
    heading: IPMHeading, body: tuple[object, ...]
) -> None:
    ipm = InterpersonalMessage(heading=heading, body=body)  # type: ignore[arg-type]
    assert p2_obstacles(ipm) == []
    assert encode_ipm(ipm, p2=True) == encode_ipm(ipm)
    assert decode_ipm(encode_ipm(ipm, p2=True)) == ipm


@pytest.mark.parametrize(
    ("ipm", "field"),
    [
        (
            InterpersonalMessage(
                heading=HEADING, body=(GeneralText(charset="iso-8859-1", text="é"),)
            ),
            r"body\[0\]",
        ),
        (
            InterpersonalMessage(heading=IPMHeading(this_ipm=HEADING.this_ipm, languages=("en",))),
            "heading.extensions",
        ),
        (
            InterpersonalMessage(
                heading=IPMHeading(
                    this_ipm=HEADING.this_ipm,
                    other_extensions=(HeadingExtension(type="1.2.3"),),
                )
            ),
            "heading.extensions",
        ),
        (
            InterpersonalMessage(
                heading=IPMHeading(
                    this_ipm=HEADING.this_ipm,
                    primary_recipients=(
                        ORDescriptor(
                            address=SMITH, notification_requests=frozenset({"an-supported"})
                        ),
                    ),
                )
            ),
            r"primary-recipients\[0\]",
        ),
        (
            InterpersonalMessage(
                heading=HEADING,
                body=(
                    IA5Text(text="x"),
                    MessagePart(
                        heading=HEADING,
                        body=(GeneralText(charset="iso-8859-2", text="x"),),
                    ),
                ),
            ),
            r"body\[1\]\.message\.body\[0\]",
        ),
    ],
)
def test_p2_refuses_what_it_cannot_carry(ipm: InterpersonalMessage, field: str) -> None:
    with pytest.raises(P2Error, match=field):
        encode_ipm(ipm, p2=True)
    assert decode_ipm(encode_ipm(ipm)) == ipm  # P22 carries it


@pytest.mark.skipif(not (PP / "msg88.pcap").exists(), reason="PP vectors not present")
@pytest.mark.parametrize("name", ["msg88.pcap", "msgx410.pcap"])
def test_pp_ipms_decode_and_re_encode(name: str) -> None:
    message = decode_mts_apdu(_pp(name)[2])
    assert isinstance(message, P1Message)
    ipm = decode_ipm(message.content)
    heading = ipm.heading
    assert heading.this_ipm.user == "/C=GB/ADMD=TEST/PRMD=PPTEST/S=Sender/"
    assert heading.this_ipm.local.startswith("x400peer-")
    assert heading.originator == ORDescriptor(address="/C=GB/ADMD=TEST/PRMD=PPTEST/S=Sender/")
    assert heading.primary_recipients == (
        ORDescriptor(address="/C=GB/ADMD=TEST/PRMD=PEERB/O=Peer/S=Test/"),
    )
    assert heading.subject is not None and heading.subject.startswith("x400peer test IPM via PP")
    (text,) = ipm.body
    assert isinstance(text, IA5Text) and text.text.startswith("Hello from PP (x400out88")
    # PP sends indefinite lengths; apart from that, our encoding is PP's byte for byte.
    assert encode_ipm(ipm) == _definite(decode(message.content))
    assert encode_ipm(ipm, p2=True) == encode_ipm(ipm)
    assert summarize_ipm(encode_ipm(ipm)).subject == heading.subject


def test_an_ipn_is_not_an_ipm() -> None:
    ipn = constructed(context(1, True), constructed(SET))
    with pytest.raises(NotAnIPMError):
        decode_ipm(ipn)
    assert not issubclass(NotAnIPMError, IPMContentError)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"", "content"),
        (b"\x04\x00", "content"),
        (constructed(context(0, True), constructed(SET)), "ipm"),
        (constructed(context(0, True), constructed(SET), sequence()), "this-IPM"),
        (
            constructed(
                context(0, True),
                constructed(SET, encode_tlv(context(12), b"\x01")),
                sequence(),
            ),
            "this-IPM",
        ),
        (
            constructed(
                context(0, True),
                constructed(SET, bytes.fromhex("6b03130131")),
                sequence(encode_tlv(context(0, True), b"\x31\x00\x16\x01\xff")),
            ),
            r"body\[0\]",
        ),
    ],
)
def test_bad_content_is_refused_naming_the_field(content: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        decode_ipm(content)


def test_forwarded_bodies_and_bilateral_parts_round_trip() -> None:
    inner = InterpersonalMessage(heading=HEADING, body=(BilaterallyDefined(data=b"\x00\x01"),))
    ipm = InterpersonalMessage(
        heading=HEADING,
        body=(IA5Text(text="see below"), MessagePart(heading=inner.heading, body=inner.body)),
    )
    assert decode_ipm(encode_ipm(ipm, p2=True)) == ipm
    assert summarize_ipm(encode_ipm(ipm)).body_parts == ["ia5-text", "message"]


def test_the_operator_summary_reads_a_free_form_name() -> None:
    # free-form-name is [0] IMPLICIT TeletexString, primitive (X.420 §7.2.3).
    heading = IPMHeading(this_ipm=HEADING.this_ipm, originator=ORDescriptor(free_form_name="Jo"))
    assert summarize_ipm(encode_ipm(InterpersonalMessage(heading=heading))).originator == "Jo"
