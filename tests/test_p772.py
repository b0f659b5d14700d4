"""STANAG 4406 (P772) heading extensions: golden BER of each field both ways, errors that
name the field, and round trips of generated headings through their extensions."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.address import ORAddress, format_slash
from waypost.asn1 import SET, constructed, encode_int, encode_oid, sequence
from waypost.x400.ipm_heading import HeadingExtension, ORDescriptor
from waypost.x400.p1_names import encode_orname_text
from waypost.x400.p772 import (
    MAX_PRECEDENCE,
    P772_ARC,
    UB_MILITARY_STRING,
    AddressListDesignator,
    DistributionCodes,
    DistributionExtension,
    MessageType,
    OtherRecipient,
    P772Error,
    P772Heading,
    PilotInformation,
    p772_extensions,
    p772_fields,
)

SMITH = "/C=GB/ADMD= /PRMD=Acme/O=Sales/S=Smith/"
SMITH_BER = encode_orname_text(SMITH)


def ext(number: int, value: bytes) -> HeadingExtension:
    return HeadingExtension(type=f"{P772_ARC}{number}", value=value)


def ps(text: str) -> bytes:
    """A PrintableString TLV (short texts only)."""
    return bytes((0x13, len(text))) + text.encode()


def tlv(tag: int, content: bytes) -> bytes:
    assert len(content) < 0x80
    return bytes((tag, len(content))) + content


# (P772Heading with one field, the extension STANAG 4406 Annex A gives it), byte for byte.
GOLDEN = [
    pytest.param(P772Heading(primary_precedence=4), ext(0, b"\x02\x01\x04"), id="primary"),
    pytest.param(P772Heading(copy_precedence=1), ext(1, b"\x02\x01\x01"), id="copy"),
    pytest.param(
        # MessageType ::= SET { type [0] IMPLICIT INTEGER, identifier [1] IMPLICIT MilitaryString }
        P772Heading(message_type=MessageType(type=1, identifier="OP X")),
        ext(2, tlv(0x31, b"\x80\x01\x01" + b"\x81\x04OP X")),
        id="message-type",
    ),
    pytest.param(
        P772Heading(
            address_list_indicator=(
                AddressListDesignator(
                    type=1,
                    list_name=ORDescriptor(address=SMITH, free_form_name="Sales"),
                    reply_request=2,
                ),
            )
        ),
        ext(
            3,
            tlv(
                0x30,
                tlv(
                    0x31,
                    b"\x80\x01\x01" + tlv(0xA1, SMITH_BER + b"\x80\x05Sales") + b"\x83\x01\x02",
                ),
            ),
        ),
        id="address-list",
    ),
    pytest.param(
        P772Heading(exempted_addresses=(ORDescriptor(address=SMITH),)),
        ext(4, tlv(0x30, tlv(0x31, SMITH_BER))),
        id="exempted",
    ),
    pytest.param(
        P772Heading(extended_authorisation_info=datetime(2025, 3, 1, 12, 30, tzinfo=UTC)),
        ext(5, b"\x17\x0d250301123000Z"),
        id="extended-authorisation",
    ),
    pytest.param(
        P772Heading(
            distribution_codes=DistributionCodes(
                sics=("ABC", "XYZ12"),
                extensions=(DistributionExtension(type="1.2.3", value=b"\x05\x00"),),
            )
        ),
        ext(
            6,
            tlv(
                0x31,
                tlv(0xA0, ps("ABC") + ps("XYZ12"))
                + tlv(0xA1, tlv(0x30, b"\x06\x02\x2a\x03\x05\x00")),
            ),
        ),
        id="distribution-codes",
    ),
    pytest.param(
        P772Heading(handling_instructions=("MAKE NO COPIES", "BURN")),
        ext(7, tlv(0x30, ps("MAKE NO COPIES") + ps("BURN"))),
        id="handling",
    ),
    pytest.param(
        P772Heading(message_instructions=("ZNR",)),
        ext(8, tlv(0x30, ps("ZNR"))),
        id="message-instructions",
    ),
    pytest.param(P772Heading(codress_message=7), ext(9, b"\x02\x01\x07"), id="codress"),
    pytest.param(
        P772Heading(originator_reference="REF-1/25"),
        ext(10, ps("REF-1/25")),
        id="originator-reference",
    ),
    pytest.param(
        P772Heading(
            other_recipients=(
                OtherRecipient(type=0, designator="HQ NORTH"),
                OtherRecipient(type=1, designator="CINC"),
            )
        ),
        ext(
            11,
            tlv(
                0x30,
                tlv(0x31, b"\x80\x01\x00\x81\x08HQ NORTH") + tlv(0x31, b"\x80\x01\x01\x81\x04CINC"),
            ),
        ),
        id="other-recipients",
    ),
    pytest.param(
        P772Heading(
            pilot_forwarding_info=(
                PilotInformation(
                    precedence=3,
                    recipients=(ORDescriptor(address=SMITH),),
                    security_label=b"\x31\x03\x02\x01\x01",
                    handling=("EYES ONLY",),
                ),
            )
        ),
        ext(
            12,
            tlv(
                0x30,
                tlv(
                    0x30,
                    b"\x80\x01\x03"
                    + tlv(0xA1, tlv(0x31, SMITH_BER))
                    + b"\xa2\x03\x02\x01\x01"
                    + tlv(0xA3, ps("EYES ONLY")),
                ),
            ),
        ),
        id="pilot-forwarding",
    ),
    pytest.param(
        P772Heading(acp127_message_identifier="RUFHNA 0042 0451200"),
        ext(13, ps("RUFHNA 0042 0451200")),
        id="acp127-identifier",
    ),
    pytest.param(P772Heading(originator_plad="CINCNORTH"), ext(14, ps("CINCNORTH")), id="plad"),
    pytest.param(
        P772Heading(information_labels=b"\x30\x03\x02\x01\x00"),
        ext(17, b"\x30\x03\x02\x01\x00"),
        id="information-labels",
    ),
]


@pytest.mark.parametrize(("heading", "extension"), GOLDEN)
def test_golden_field_encodes(heading: P772Heading, extension: HeadingExtension) -> None:
    assert p772_extensions(heading) == (extension,)


@pytest.mark.parametrize(("heading", "extension"), GOLDEN)
def test_golden_field_decodes(heading: P772Heading, extension: HeadingExtension) -> None:
    assert p772_fields([extension]) == heading


def test_other_extensions_are_left_alone() -> None:
    languages = HeadingExtension(type="2.6.1.5.0", value=b"\x31\x00")
    heading = p772_fields([languages, ext(0, b"\x02\x01\x02")])
    assert heading == P772Heading(primary_precedence=2)
    assert P772Heading().is_empty() and not heading.is_empty()


def test_message_type_sent_as_a_sequence_is_read() -> None:
    # Some writers send MessageType as a SEQUENCE (STANAG 4406 says SET); it reads the same.
    heading = p772_fields([ext(2, tlv(0x30, b"\x80\x01\x03"))])
    assert heading.message_type == MessageType(type=3)


def test_a_field_that_breaks_its_type_is_named() -> None:
    bad = ext(10, b"\x02\x01\x01")  # originator reference as an INTEGER
    with pytest.raises(P772Error, match=r"originator-reference \(1\.3\.26\.0\.4406\.0\.2\.10\)"):
        p772_fields([bad])


def test_a_value_out_of_range_is_named() -> None:
    with pytest.raises(P772Error, match=r"primary-precedence.*99"):
        p772_fields([ext(0, b"\x02\x01\x63")])
    with pytest.raises(P772Error, match="SIC 'AB'"):
        p772_fields([ext(6, tlv(0x31, tlv(0xA0, ps("AB"))))])


def test_unreadable_unknown_and_repeated_fields_are_kept_whole() -> None:
    bad = ext(14, b"\x04\x01x")
    unknown = ext(99, b"\x05\x00")
    repeated = ext(0, b"\x02\x01\x05")
    heading = p772_fields([ext(0, b"\x02\x01\x01"), bad, unknown, repeated], strict=False)
    assert heading.primary_precedence == 1
    assert heading.unread == (bad, unknown, repeated)
    assert p772_extensions(heading) == (ext(0, b"\x02\x01\x01"), bad, unknown, repeated)


def test_an_address_that_cannot_be_written_is_named() -> None:
    heading = P772Heading(exempted_addresses=(ORDescriptor(address="smith@example.org"),))
    with pytest.raises(P772Error, match=r"exempted-addresses \(1\.3\.26\.0\.4406\.0\.2\.4\)"):
        p772_extensions(heading)


def test_model_refuses_what_stanag_4406_does_not_allow() -> None:
    with pytest.raises(P772Error, match="handling-instructions"):
        P772Heading(handling_instructions=("x" * (UB_MILITARY_STRING + 1),))
    with pytest.raises(P772Error, match=r"originator-plad.*'@'"):
        P772Heading(originator_plad="A@B")
    with pytest.raises(P772Error, match="time zone"):
        P772Heading(extended_authorisation_info=datetime(2025, 1, 1))
    with pytest.raises(P772Error, match="more than 8 SICs"):
        DistributionCodes(sics=tuple(f"S{n:02d}" for n in range(9)))


# --- round trips ------------------------------------------------------------------------

_MIL = st.from_regex(rf"[A-Za-z0-9 '()+,\-./:=?]{{1,{UB_MILITARY_STRING}}}", fullmatch=True)
_SIC = st.from_regex(r"[A-Z0-9]{3,8}", fullmatch=True)
_NAME = st.from_regex(r"[A-Za-z]{1,12}", fullmatch=True)
_ADDRESS = st.builds(
    lambda prmd, org, surname: format_slash(
        ORAddress(country="GB", prmd=prmd, organization=org, surname=surname)
    ),
    _NAME,
    st.none() | _NAME,
    _NAME,
)
_DESCRIPTOR = st.builds(ORDescriptor, address=_ADDRESS, free_form_name=st.none() | _NAME)
_PRECEDENCE = st.integers(0, MAX_PRECEDENCE)
_WHEN = st.datetimes(min_value=datetime(1950, 1, 1), max_value=datetime(2049, 12, 31)).map(
    lambda d: d.replace(microsecond=0, tzinfo=UTC)
)
_LABEL = st.binary(max_size=8).map(
    lambda b: constructed(SET, encode_int(len(b)), b"\x04" + bytes([len(b)]) + b)
)


def _tuple(
    strategy: st.SearchStrategy[object], size: int = 3
) -> st.SearchStrategy[tuple[object, ...]]:
    return st.lists(strategy, max_size=size).map(tuple)


headings = st.builds(
    P772Heading,
    primary_precedence=st.none() | _PRECEDENCE,
    copy_precedence=st.none() | _PRECEDENCE,
    message_type=st.none()
    | st.builds(MessageType, type=st.integers(0, 255), identifier=st.none() | _MIL),
    address_list_indicator=_tuple(
        st.builds(
            AddressListDesignator,
            type=st.integers(0, 1),
            list_name=_DESCRIPTOR,
            notification_request=st.none() | st.integers(0, 2),
            reply_request=st.none() | st.integers(0, 2),
        )
    ),
    exempted_addresses=_tuple(_DESCRIPTOR),
    extended_authorisation_info=st.none() | _WHEN,
    distribution_codes=st.none()
    | st.builds(
        DistributionCodes,
        sics=_tuple(_SIC, 8),
        extensions=_tuple(
            st.builds(
                DistributionExtension,
                type=st.sampled_from(["1.2.3", "1.3.26.0.4406.0.99"]),
                value=st.sampled_from([b"\x05\x00", ps("X"), sequence(encode_oid("2.5"))]),
            )
        ),
    ),
    handling_instructions=_tuple(_MIL),
    message_instructions=_tuple(_MIL),
    codress_message=st.none() | st.integers(-(2**31), 2**31),
    originator_reference=st.none() | _MIL,
    other_recipients=_tuple(st.builds(OtherRecipient, type=st.integers(0, 1), designator=_MIL)),
    pilot_forwarding_info=_tuple(
        st.builds(
            PilotInformation,
            precedence=st.none() | _PRECEDENCE,
            recipients=st.none() | _tuple(_DESCRIPTOR),
            security_label=st.none() | _LABEL,
            handling=st.none() | _tuple(_MIL),
        ),
        2,
    ),
    acp127_message_identifier=st.none() | _MIL,
    originator_plad=st.none() | _MIL,
    information_labels=st.none() | _LABEL,
)


@given(headings)
def test_heading_round_trips_through_its_extensions(heading: P772Heading) -> None:
    extensions = p772_extensions(heading)
    assert p772_fields(extensions) == heading
    assert p772_extensions(p772_fields(extensions)) == extensions


@given(st.integers(0, 17), st.binary(max_size=40))
def test_garbage_values_raise_only_p772_errors(number: int, value: bytes) -> None:
    with contextlib.suppress(P772Error):
        p772_fields([ext(number, value)])
