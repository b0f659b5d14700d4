"""BER of the IPM heading (X.420 §7.2): golden bytes, every field round-tripped over
generated headings, what other agents send read leniently, bad headings refused by field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from ipm_strategies import headings

from waypost.asn1 import (
    PRINTABLE_STRING,
    SET,
    TELETEX_STRING,
    application,
    constructed,
    context,
    decode,
    encode_string,
    encode_tlv,
)
from waypost.x400.ipm_bodies import IA5Text, MessagePart
from waypost.x400.ipm_bodies_ber import decode_body_part, encode_body_part
from waypost.x400.ipm_heading import HeadingExtension, IPMHeading, IPMIdentifier, ORDescriptor
from waypost.x400.ipm_heading_ber import (
    ID_HEX_INCOMPLETE_COPY,
    ID_HEX_LANGUAGES,
    IPM_HEADINGS,
    IPMContentError,
    decode_heading,
    encode_heading,
)
from waypost.x400.p1_names import encode_orname_text

SMITH = "/C=GB/ADMD= /PRMD=Acme/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=Acme/S=Jones/"


def test_minimal_heading_golden() -> None:
    heading = IPMHeading(this_ipm=IPMIdentifier(user=None, local="id1"))
    # SET { [APPLICATION 11] { PrintableString "id1" } }
    assert encode_heading(heading) == bytes.fromhex("3107 6b05 1303 696431")
    assert decode_heading(encode_heading(heading)) == heading


def test_every_field_has_its_x420_tag() -> None:
    heading = IPMHeading(
        this_ipm=IPMIdentifier(user=SMITH, local="1"),
        originator=ORDescriptor(address=SMITH, free_form_name="Jo Smith", telephone_number="+44 1"),
        authorizing_users=(ORDescriptor(address=JONES),),
        primary_recipients=(
            ORDescriptor(address=JONES, notification_requests=frozenset({"rn", "ipm-return"})),
        ),
        copy_recipients=(ORDescriptor(address=SMITH, reply_requested=True),),
        blind_copy_recipients=(ORDescriptor(free_form_name="Hidden"),),
        replied_to_ipm=IPMIdentifier(user=None, local="0"),
        obsoleted_ipms=(IPMIdentifier(user=None, local="a"),),
        related_ipms=(IPMIdentifier(user=JONES, local="b"),),
        subject="Grüße",
        expiry_time=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC),
        reply_time=datetime(2029, 1, 2, 3, 4, 5, tzinfo=UTC),
        reply_recipients=(ORDescriptor(address=JONES),),
        importance="high",
        sensitivity="company-confidential",
        auto_forwarded=True,
        languages=("en", "fr"),
        incomplete_copy=True,
        other_extensions=(HeadingExtension(type="1.3.26.0.4406.0.2.0", value=b"\x02\x01\x03"),),
    )
    wire = encode_heading(heading)
    fields = decode(wire).children()
    assert [f.tag.number for f in fields] == [11, *range(16)]
    assert bytes(fields[0].raw).startswith(b"\x6b")  # [APPLICATION 11]
    # free-form-name [0] IMPLICIT TeletexString, telephone-number [1] IMPLICIT PrintableString
    originator = fields[1]
    assert [c.tag for c in originator] == [application(0, True), context(0), context(1)]
    assert bytes(originator.child(0).raw) == encode_orname_text(SMITH)
    # notification-requests [1] BIT STRING {rn(0), ipm-return(2)}: one octet, 5 unused bits
    primary = fields[3].child(0)
    assert bytes(primary.child(context(1)).raw) == b"\x81\x02\x05\xa0"
    assert bytes(fields[10].raw) == b"\x89\x0d" + b"300102030405Z"  # expiry-time, UTCTime
    assert bytes(fields[13].raw) == b"\x8c\x01\x02"  # importance high
    assert bytes(fields[14].raw) == b"\x8d\x01\x03"  # sensitivity company-confidential
    assert bytes(fields[15].raw) == b"\x8e\x01\xff"  # auto-forwarded TRUE
    kinds = [e.child(0).as_oid() for e in fields[16]]
    assert kinds == [ID_HEX_LANGUAGES, ID_HEX_INCOMPLETE_COPY, "1.3.26.0.4406.0.2.0"]
    assert decode_heading(wire) == heading


@settings(max_examples=150, deadline=None)
@given(headings())
def test_generated_headings_round_trip(heading: IPMHeading) -> None:
    wire = encode_heading(heading)
    assert decode_heading(wire) == heading
    assert encode_heading(decode_heading(wire)) == wire


def _heading(*fields: bytes) -> bytes:
    this_ipm = constructed(application(11, True), encode_string(PRINTABLE_STRING, "x"))
    return constructed(SET, this_ipm, *fields)


def test_lenient_readings() -> None:
    # A GeneralizedTime under expiry-time, a free-form name wrapped in a constructed [0],
    # not-sensitive(0), an unknown field: read, not refused.
    wire = _heading(
        constructed(
            context(0, True), constructed(context(0, True), encode_string(TELETEX_STRING, "Jo"))
        ),
        encode_tlv(context(9), b"20300102030405Z"),
        encode_tlv(context(13), b"\x00"),
        encode_tlv(context(30), b"?"),
    )
    heading = decode_heading(wire)
    assert heading.originator == ORDescriptor(free_form_name="Jo")
    assert heading.expiry_time == datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert heading.sensitivity is None


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ((encode_tlv(context(9), b"not a time"),), "expiry-time"),
        ((encode_tlv(context(12), b"\x07"),), "heading.importance"),
        ((encode_tlv(context(13), b"\x09"),), "heading.sensitivity"),
        ((constructed(context(0, True)),), "originator"),
        ((encode_tlv(context(14), b"\xff"), encode_tlv(context(14), b"\xff")), "appears twice"),
    ],
)
def test_bad_fields_are_named(fields: tuple[bytes, ...], field: str) -> None:
    with pytest.raises(IPMContentError, match=field):
        decode_heading(_heading(*fields))


def test_missing_this_ipm_is_named() -> None:
    with pytest.raises(IPMContentError, match="this-IPM"):
        decode_heading(constructed(SET))


@pytest.mark.parametrize(
    ("heading", "field"),
    [
        (IPMHeading(this_ipm=IPMIdentifier(user=None, local="a@b")), "user-relative-identifier"),
        (IPMHeading(this_ipm=IPMIdentifier(user="/nonsense", local="a")), "this-IPM.user"),
        (IPMHeading(this_ipm=IPMIdentifier(user=None, local="a"), subject="€"), "subject"),
        (
            IPMHeading(
                this_ipm=IPMIdentifier(user=None, local="a"),
                originator=ORDescriptor(address=SMITH, reply_requested=True),
            ),
            "originator",
        ),
        (
            IPMHeading(
                this_ipm=IPMIdentifier(user=None, local="a"),
                other_extensions=(HeadingExtension(type="1.2.3", value=b"\x02"),),
            ),
            r"extensions\[0\]",
        ),
    ],
)
def test_headings_x420_forbids_are_refused_by_field(heading: IPMHeading, field: str) -> None:
    with pytest.raises(IPMContentError, match=field):
        encode_heading(heading)


def test_a_forwarded_ipm_gets_a_real_heading() -> None:
    inner = IPMHeading(this_ipm=IPMIdentifier(user=SMITH, local="fwd"), subject="Inner")
    part = MessagePart(heading=inner, body=(IA5Text(text="hi"),))
    wire = encode_body_part(part, IPM_HEADINGS)
    assert decode_body_part(wire, IPM_HEADINGS) == MessagePart(
        heading=inner, body=(IA5Text(text="hi"),)
    )
    with pytest.raises(TypeError):
        IPM_HEADINGS.encode_heading(b"raw")
