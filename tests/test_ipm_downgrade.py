"""P22 → P2 downgrade (X.420 1984 for 1984 peers): what P2 carries goes unchanged, the
languages extension and the acknowledgement bits are dropped, anything else is refused by name."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from ipm_strategies import bodies, headings
from test_p1 import PP, _pp

from waypost.asn1 import SET, application, constructed, context, encode_oid, sequence
from waypost.x400.ipm_bodies import (
    BodyPart,
    FileTransfer,
    GeneralText,
    IA5Text,
    MessagePart,
)
from waypost.x400.ipm_codec import InterpersonalMessage, decode_ipm, encode_ipm, p2_obstacles
from waypost.x400.ipm_downgrade import DowngradeError, downgrade_to_p2
from waypost.x400.ipm_heading import HeadingExtension, IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.ipm_heading_ber import ID_HEX_LANGUAGES
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu

SMITH = "/C=GB/ADMD= /PRMD=Acme/S=Smith/"
THIS = IPMIdentifier(user=SMITH, local="1")


def _without_what_p2_drops(heading: IPMHeading) -> IPMHeading:
    def trim(recipients: tuple[ORDescriptor, ...]) -> tuple[ORDescriptor, ...]:
        return tuple(
            dataclasses.replace(
                r, notification_requests=r.notification_requests & {"rn", "nrn", "ipm-return"}
            )
            for r in recipients
        )

    return dataclasses.replace(
        heading,
        languages=(),
        primary_recipients=trim(heading.primary_recipients),
        copy_recipients=trim(heading.copy_recipients),
        blind_copy_recipients=trim(heading.blind_copy_recipients),
    )


def _expected(body: tuple[BodyPart, ...]) -> tuple[BodyPart, ...]:
    return tuple(
        MessagePart(heading=_without_what_p2_drops(p.heading), body=_expected(p.body))  # type: ignore[arg-type]
        if isinstance(p, MessagePart)
        else p
        for p in body
    )


@settings(max_examples=60, deadline=None)
@given(headings(p2=True), bodies(p2=True))
def test_what_p2_carries_goes_unchanged(heading: IPMHeading, body: tuple[BodyPart, ...]) -> None:
    ipm = InterpersonalMessage(heading=heading, body=body)
    assert downgrade_to_p2(encode_ipm(ipm)) == encode_ipm(ipm, p2=True)


@settings(max_examples=100, deadline=None)
@given(headings(), bodies())
def test_a_downgrade_keeps_everything_but_what_it_may_drop(
    heading: IPMHeading, body: tuple[BodyPart, ...]
) -> None:
    ipm = InterpersonalMessage(heading=heading, body=body)
    droppable = (f"heading extension {ID_HEX_LANGUAGES}", "notification requests")
    blocking = [o for o in p2_obstacles(ipm) if not o[1].startswith(droppable)]
    if blocking:
        with pytest.raises(DowngradeError):
            downgrade_to_p2(encode_ipm(ipm))
        return
    back = decode_ipm(downgrade_to_p2(encode_ipm(ipm)))
    assert back.heading == _without_what_p2_drops(heading)
    assert back.body == _expected(body)
    assert p2_obstacles(back) == []


def _ipm(heading: IPMHeading, *body: BodyPart) -> bytes:
    return encode_ipm(InterpersonalMessage(heading=heading, body=body))


def test_languages_and_acknowledgement_bits_are_dropped() -> None:
    heading = IPMHeading(
        this_ipm=THIS,
        languages=("en",),
        primary_recipients=(
            ORDescriptor(address=SMITH, notification_requests=frozenset({"rn", "suppress-an"})),
        ),
        copy_recipients=(
            ORDescriptor(address=SMITH, notification_requests=frozenset({"an-supported"})),
        ),
    )
    back = decode_ipm(downgrade_to_p2(_ipm(heading, IA5Text(text="x"))))
    assert back.heading.languages == ()
    assert back.heading.primary_recipients[0].notification_requests == {"rn"}
    assert back.heading.copy_recipients[0].notification_requests == frozenset()


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (_ipm(IPMHeading(this_ipm=THIS, incomplete_copy=True)), "heading.extensions"),
        (
            _ipm(IPMHeading(this_ipm=THIS, other_extensions=(HeadingExtension(type="1.2.3"),))),
            "heading.extensions",
        ),
        (
            _ipm(
                IPMHeading(
                    this_ipm=THIS,
                    blind_copy_recipients=(
                        ORDescriptor(
                            address=SMITH, recipient_extensions=(HeadingExtension(type="1.2.3"),)
                        ),
                    ),
                )
            ),
            r"heading.blind-copy-recipients\[0\]",
        ),
        (_ipm(IPMHeading(this_ipm=THIS), IA5Text(text="a"), FileTransfer(data=b"x")), r"body\[1\]"),
        (
            _ipm(
                IPMHeading(this_ipm=THIS),
                MessagePart(
                    heading=IPMHeading(this_ipm=THIS),
                    body=(GeneralText(charset="iso-8859-1", text="é"),),
                ),
            ),
            r"body\[0\]\.message\.body\[0\]",
        ),
        (
            constructed(context(1, True), constructed(context(3, True))),
            "ipn.notification-extensions",
        ),
        (b"\x04\x00", "content"),
        (b"\xa0\x80", "content"),
    ],
)
def test_what_p2_cannot_carry_is_refused_by_name(content: bytes, field: str) -> None:
    with pytest.raises(DowngradeError, match=field):
        downgrade_to_p2(content)


def test_a_plain_ipn_goes_through() -> None:
    # IPN { subject-ipm, choice [0] { receipt-fields [1] { receipt-time [0] } } }
    subject = constructed(application(11, True), b"\x13\x01x")
    receipt = constructed(context(1, True), b"\x80\x0d300102030405Z")
    ipn = constructed(context(1, True), subject, constructed(context(0, True), receipt))
    assert downgrade_to_p2(ipn) == ipn


@pytest.mark.skipif(not (PP / "msg88.pcap").exists(), reason="PP vectors not present")
def test_pps_ipm_downgrades_whole() -> None:
    message = decode_mts_apdu(_pp("msg88.pcap")[2])
    assert isinstance(message, P1Message)
    assert decode_ipm(downgrade_to_p2(message.content)) == decode_ipm(message.content)


def test_fields_p2_shares_go_byte_for_byte() -> None:
    # A heading field the model does not know survives: the walk copies what it does
    # not change.
    unknown = constructed(context(29, True), sequence(encode_oid("1.2.3")))
    heading = constructed(SET, bytes.fromhex("6b03130131"), unknown)
    content = constructed(context(0, True), heading, sequence())
    assert downgrade_to_p2(content) == content
