"""STANAG 4406 heading fields ⇄ RFC 6477 MMHS-* header fields: a golden case per field in
both directions, errors that name the field, and round trips P772 → fields → P772, also
through a real message written and parsed by the stdlib."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.test_mixer_heading import mail_to_or, or_to_mail
from waypost.mixer.mmhs import MMHSFieldError, fields_to_p772, p772_to_fields, unmapped_p772
from waypost.x400.ipm_heading import HeadingExtension, ORDescriptor
from waypost.x400.p772 import (
    ADDRESS_LIST_INDICATOR,
    DISTRIBUTION_CODES,
    MAX_PRECEDENCE,
    PILOT_FORWARDING_INFO,
    UB_MILITARY_STRING,
    AddressListDesignator,
    DistributionCodes,
    DistributionExtension,
    MessageType,
    OtherRecipient,
    P772Heading,
    PilotInformation,
)

WHEN = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)

# (heading with one field, the RFC 6477 §3 header fields that carry it)
GOLDEN = [
    pytest.param(
        P772Heading(
            exempted_addresses=(
                ORDescriptor(address="/O=hq/S=smith/", free_form_name="Jo Smith"),
                ORDescriptor(address="/O=ops/S=brown/"),
            )
        ),
        [("MMHS-Exempted-Address", "Jo Smith <smith@hq.example>, brown@ops.example")],
        id="3.1-exempted-address",
    ),
    pytest.param(
        P772Heading(extended_authorisation_info=WHEN),
        [("MMHS-Extended-Authorisation-Info", "Sat, 01 Mar 2025 12:30:00 +0000")],
        id="3.2-extended-authorisation-info",
    ),
    pytest.param(
        P772Heading(distribution_codes=DistributionCodes(sics=("ABC", "XYZ12"))),
        [("MMHS-Subject-Indicator-Codes", "ABC, XYZ12")],
        id="3.3-subject-indicator-codes",
    ),
    pytest.param(
        P772Heading(handling_instructions=("MAKE NO COPIES", "DESTROY, THEN REPORT")),
        [("MMHS-Handling-Instructions", 'MAKE NO COPIES, "DESTROY, THEN REPORT"')],
        id="3.4-handling-instructions",
    ),
    pytest.param(
        P772Heading(message_instructions=("ZNR UUUUU",)),
        [("MMHS-Message-Instructions", "ZNR UUUUU")],
        id="3.5-message-instructions",
    ),
    pytest.param(
        P772Heading(codress_message=1),
        [("MMHS-Codress-Message-Indicator", "1")],
        id="3.6-codress",
    ),
    pytest.param(
        P772Heading(originator_reference="REF (1)/25"),
        [("MMHS-Originator-Reference", "REF (1)/25")],
        id="3.7-originator-reference",
    ),
    pytest.param(
        P772Heading(primary_precedence=4),
        [("MMHS-Primary-Precedence", "4")],
        id="3.8-primary-precedence",
    ),
    pytest.param(
        P772Heading(copy_precedence=1),
        [("MMHS-Copy-Precedence", "1")],
        id="3.9-copy-precedence",
    ),
    pytest.param(
        P772Heading(message_type=MessageType(type=1, identifier="OP X")),
        [("MMHS-Message-Type", '1; identifier="OP X"')],
        id="3.10-message-type",
    ),
    pytest.param(
        P772Heading(
            other_recipients=(
                OtherRecipient(type=0, designator="HQ NORTH"),
                OtherRecipient(type=0, designator="CINC"),
                OtherRecipient(type=1, designator="ARCHIVE"),
            )
        ),
        [
            ("MMHS-Other-Recipients-Indicator-To", "HQ NORTH, CINC"),
            ("MMHS-Other-Recipients-Indicator-CC", "ARCHIVE"),
        ],
        id="3.11-3.12-other-recipients",
    ),
    pytest.param(
        P772Heading(acp127_message_identifier="RUFHNA 0042 0451200"),
        [("MMHS-Acp127-Message-Identifier", "RUFHNA 0042 0451200")],
        id="3.13-acp127-message-identifier",
    ),
    pytest.param(
        P772Heading(originator_plad="CINCNORTH"),
        [("MMHS-Originator-PLAD", "CINCNORTH")],
        id="3.14-originator-plad",
    ),
]


@pytest.mark.parametrize(("heading", "fields"), GOLDEN)
def test_golden_p772_to_fields(heading: P772Heading, fields: list[tuple[str, str]]) -> None:
    assert p772_to_fields(heading, or_to_mail=or_to_mail) == fields


@pytest.mark.parametrize(("heading", "fields"), GOLDEN)
def test_golden_fields_to_p772(heading: P772Heading, fields: list[tuple[str, str]]) -> None:
    assert fields_to_p772(fields, mail_to_or=mail_to_or) == heading


def test_fields_are_read_from_a_parsed_message_whatever_their_case_and_folding() -> None:
    message = email.message_from_string(
        "From: a@b.example\r\n"
        "mmhs-primary-precedence: Flash\r\n"
        "MMHS-Message-Type: operation;\r\n identifier=OPX\r\n"
        "MMHS-Handling-Instructions: A,\r\n B\r\n"
        "MMHS-Handling-Instructions: C\r\n"
        "\r\nbody\r\n"
    )
    heading = fields_to_p772(message)
    assert heading == P772Heading(
        primary_precedence=4,
        message_type=MessageType(type=1, identifier="OPX"),
        handling_instructions=("A", "B", "C"),
    )


def test_other_header_fields_are_left_alone() -> None:
    assert fields_to_p772([("Subject", "x"), ("X-MMHS", "1")]).is_empty()


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ([("MMHS-Primary-Precedence", "urgent")], r"MMHS-Primary-Precedence: 'urgent'"),
        ([("MMHS-Copy-Precedence", "99")], r"MMHS-Copy-Precedence: .*99"),
        ([("MMHS-Primary-Precedence", "1"), ("MMHS-Primary-Precedence", "2")], "more than once"),
        ([("MMHS-Extended-Authorisation-Info", "yesterday")], "not an RFC 5322 date-time"),
        ([("MMHS-Subject-Indicator-Codes", "AB")], r"MMHS-Subject-Indicator-Codes: .*'AB'"),
        ([("MMHS-Originator-PLAD", "A@B")], r"MMHS-Originator-PLAD: .*'@'"),
        ([("MMHS-Message-Type", "1; id=x")], r"MMHS-Message-Type: 'id=x'"),
        ([("MMHS-Handling-Instructions", '"open')], "quoted-string is not closed"),
        ([("MMHS-Exempted-Address", "nobody")], "holds no usable address"),
    ],
)
def test_bad_fields_are_named(fields: list[tuple[str, str]], match: str) -> None:
    with pytest.raises(MMHSFieldError, match=match):
        fields_to_p772(fields, mail_to_or=mail_to_or)


def test_exempted_addresses_need_an_address_mapping() -> None:
    heading = P772Heading(exempted_addresses=(ORDescriptor(address="/O=hq/S=smith/"),))
    with pytest.raises(MMHSFieldError, match="MMHS-Exempted-Address: no O/R"):
        p772_to_fields(heading)
    with pytest.raises(MMHSFieldError, match="MMHS-Exempted-Address: no mail"):
        fields_to_p772([("MMHS-Exempted-Address", "a@b.example")])


def test_fields_rfc_6477_lacks_are_named_for_rfc_2156() -> None:
    unknown = HeadingExtension(type="1.3.26.0.4406.0.2.99", value=b"\x05\x00")
    heading = P772Heading(
        primary_precedence=2,
        address_list_indicator=(
            AddressListDesignator(type=0, list_name=ORDescriptor(address="/O=hq/S=all/")),
        ),
        distribution_codes=DistributionCodes(
            sics=("ABC",), extensions=(DistributionExtension(type="1.2.3", value=b"\x05\x00"),)
        ),
        pilot_forwarding_info=(PilotInformation(precedence=1),),
        unread=(unknown,),
    )
    assert unmapped_p772(heading) == (
        ADDRESS_LIST_INDICATOR,
        DISTRIBUTION_CODES,
        PILOT_FORWARDING_INFO,
        unknown.type,
    )
    assert unmapped_p772(P772Heading(primary_precedence=2)) == ()


# --- round trips ------------------------------------------------------------------------

_MIL = st.from_regex(rf"[A-Za-z0-9 '()+,\-./:=?]{{1,{UB_MILITARY_STRING}}}", fullmatch=True)
_WORD = st.from_regex(r"[a-z][a-z0-9]{0,7}", fullmatch=True)
_NAME = st.from_regex(r"[A-Za-z]{1,8}( [A-Za-z]{1,8})?", fullmatch=True)
_DESCRIPTOR = st.builds(
    lambda s, o, n: ORDescriptor(address=f"/O={o}/S={s}/", free_form_name=n),
    _WORD,
    _WORD,
    st.none() | _NAME,
)
_WHEN = st.builds(
    lambda instant, minutes: instant.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1950, 1, 2), max_value=datetime(2049, 12, 30)).map(
        lambda d: d.replace(microsecond=0)
    ),
    st.integers(min_value=-14 * 60, max_value=14 * 60),
)


def _tuple(
    strategy: st.SearchStrategy[object], size: int = 3
) -> st.SearchStrategy[tuple[object, ...]]:
    return st.lists(strategy, max_size=size).map(tuple)


# Headings of the fields RFC 6477 carries; other-recipient designators in the one order
# the two header fields give back (primary, then copy).
headings = st.builds(
    P772Heading,
    primary_precedence=st.none() | st.integers(0, MAX_PRECEDENCE),
    copy_precedence=st.none() | st.integers(0, MAX_PRECEDENCE),
    message_type=st.none()
    | st.builds(MessageType, type=st.integers(0, 255), identifier=st.none() | _MIL),
    exempted_addresses=_tuple(_DESCRIPTOR),
    extended_authorisation_info=st.none() | _WHEN,
    distribution_codes=st.none()
    | st.lists(st.from_regex(r"[A-Z0-9]{3,8}", fullmatch=True), min_size=1, max_size=8).map(
        lambda sics: DistributionCodes(sics=tuple(sics))
    ),
    handling_instructions=_tuple(_MIL),
    message_instructions=_tuple(_MIL),
    codress_message=st.none() | st.integers(-(2**31), 2**31 - 1),
    originator_reference=st.none() | _MIL,
    other_recipients=_tuple(st.builds(OtherRecipient, type=st.integers(0, 1), designator=_MIL)).map(
        lambda others: tuple(sorted(others, key=lambda r: r.type))
    ),
    acp127_message_identifier=st.none() | _MIL,
    originator_plad=st.none() | _MIL,
)


@given(headings)
def test_p772_round_trips_through_fields(heading: P772Heading) -> None:
    fields = p772_to_fields(heading, or_to_mail=or_to_mail)
    assert fields_to_p772(fields, mail_to_or=mail_to_or) == heading
    assert unmapped_p772(heading) == ()


@given(headings)
def test_p772_round_trips_through_a_written_and_parsed_message(heading: P772Heading) -> None:
    message = EmailMessage(policy=email.policy.SMTP)
    for name, value in p772_to_fields(heading, or_to_mail=or_to_mail):
        message[name] = value
    message.set_content("body\n")
    parsed = email.message_from_bytes(message.as_bytes(), policy=email.policy.default)
    assert fields_to_p772(parsed, mail_to_or=mail_to_or) == heading
