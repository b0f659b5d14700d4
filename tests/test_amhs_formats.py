"""The AMHS formats byte for byte: the ATS message header in the IPM text (ICAO Doc 9880
Part II) in its three end-of-heading forms, AFTN messages of each priority in the IA-5 and
ITA-2 framings (Annex 10 Volume II §4.4), their deframing from a TCP stream, and the
gateway's conversions both ways, with Hypothesis round trips AFTN → AMHS → AFTN."""

from __future__ import annotations

import contextlib
from dataclasses import replace

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from waypost.amhs.addressing import load_register
from waypost.amhs.aftn import (
    AFTNFormatError,
    AFTNMessage,
    Deframer,
    Framing,
    check_text,
    decode,
    encode,
)
from waypost.amhs.ats import ATSHeader, ATSHeaderError, EndOfHeading, split_header
from waypost.amhs.convert import (
    ConversionError,
    GatewaySettings,
    acknowledgement,
    aftn_to_amhs,
    amhs_to_aftn,
)
from waypost.amhs.priority import PriorityIndicator, indicator_of
from waypost.message import Priority
from waypost.x400.ipm_bodies import BilaterallyDefined, IA5Text
from waypost.x400.ipm_codec import decode_ipm, encode_ipm

P = PriorityIndicator
REGISTER = load_register(
    "prefix,scheme,country,admd,prmd,organization\n"
    "BA,CAAS,XX,ICAO,AFTNLAND-1,BA-REGION\n"
    "BB,XF,XX,ICAO,AFTNLAND-2,\n"
    "EG,XF,XX,ICAO,EG,\n"
    "LG,CAAS,XX,ICAO,GREECE,LGGG\n"
)
SETTINGS = GatewaySettings(
    register=REGISTER, aftn_address="BAAAYFYX", global_domain="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/"
)
NOW = 1_796_000_000.0  # 2026-11-30 00:53 UTC


# -- priorities -------------------------------------------------------------------------


def test_each_priority_indicator_travels_with_its_x411_priority() -> None:
    assert {p: p.envelope_priority for p in P} == {
        P.SS: Priority.URGENT,
        P.DD: Priority.NORMAL,
        P.FF: Priority.NORMAL,
        P.GG: Priority.NON_URGENT,
        P.KK: Priority.NON_URGENT,
    }
    # A message without an ATS header: the first indicator of its priority.
    assert [indicator_of(p) for p in Priority] == [P.FF, P.GG, P.SS]


# -- the ATS message header -------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "rendered"),
    [
        (EndOfHeading.CRLF, "PRI: FF\r\nFT: 041030\r\nOHI: ABC 123\r\n\r\n"),
        (EndOfHeading.LF, "PRI: FF\nFT: 041030\nOHI: ABC 123\n\n"),
        (EndOfHeading.NONE, "PRI: FF\r\nFT: 041030\r\nOHI: ABC 123\r\n"),
    ],
)
def test_the_header_in_each_end_of_heading_form(end: EndOfHeading, rendered: str) -> None:
    header = ATSHeader(P.FF, "041030", "ABC 123")
    assert header.render(end) == rendered
    assert split_header(rendered + "TEXT\r\n") == (header, "TEXT\r\n")


def test_the_lf_form_travels_as_written_in_the_ia5_text() -> None:
    from waypost.amhs.ats import ATSMessage  # noqa: PLC0415

    message = ATSMessage(
        header=ATSHeader(P.GG, "011200"),
        originator="/C=XX/ADMD=ICAO/PRMD=EG/O=AFTN/OU1=EGLLYFYX/",
        recipients=("/C=XX/ADMD=ICAO/PRMD=EG/O=AFTN/OU1=EGKKZTZX/",),
        text="METAR EGLL 011150Z",
    )
    content = encode_ipm(message.ipm("id-1", EndOfHeading.LF))
    assert b"PRI: GG\nFT: 011200\nOHI: \n\nMETAR EGLL 011150Z" in content
    crlf = encode_ipm(message.ipm("id-1", EndOfHeading.CRLF))
    assert b"PRI: GG\r\nFT: 011200\r\nOHI: \r\n\r\nMETAR EGLL 011150Z" in crlf


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: ATSHeader(P.FF, "321200"), "not DDHHMM"),
        (lambda: ATSHeader(P.FF, "012400"), "not DDHHMM"),
        (lambda: ATSHeader(P.FF, "011260"), "not DDHHMM"),
        (lambda: ATSHeader(P.FF, "011200", "X" * 54), "54 characters; at most 53"),
        (lambda: ATSHeader(P.SS, "011200", "X" * 49), "at most 48 for a SS message"),
        (lambda: split_header("PRI: XX\nFT: 011200\nOHI: \n\nTEXT"), "not one of SS"),
    ],
)
def test_a_header_that_breaks_its_rules_says_which(make: object, reason: str) -> None:
    with pytest.raises(ATSHeaderError, match=reason):
        make()  # type: ignore[operator]


def test_text_without_a_header_is_text() -> None:
    assert split_header("HELLO\r\nPRI: FF\r\n") == (None, "HELLO\r\nPRI: FF\r\n")


# -- AFTN messages ----------------------------------------------------------------------

# Annex 10 Volume II, the page-copy example under §4.4.2 to §4.4.6.1.
ANNEX_EXAMPLE = AFTNMessage(
    priority=P.GG,
    addressees=("LGGGZRZX", "LGATKLMW"),
    filing_time="201838",
    originator="EGLLKLMW",
    text="AS REQUIRED",
    transmission_id="ABC001",
)


def test_the_annex_example_in_both_framings() -> None:
    assert encode(ANNEX_EXAMPLE, Framing.ITA2) == (
        b"ZCZC ABC001\r\nGG LGGGZRZX LGATKLMW\r\n201838 EGLLKLMW\r\nAS REQUIRED\r\n"
        b"\n\n\n\n\n\n\nNNNN\r\n"
    )
    assert encode(ANNEX_EXAMPLE, Framing.IA5) == (
        b"\x01ABC001\r\nGG LGGGZRZX LGATKLMW\r\n201838 EGLLKLMW\r\n\x02AS REQUIRED\r\n\x0b\x03"
    )


@pytest.mark.parametrize("priority", list(P))
@pytest.mark.parametrize("framing", list(Framing))
def test_each_priority_in_each_framing_reads_back(priority: P, framing: Framing) -> None:
    message = AFTNMessage(
        priority=priority,
        addressees=tuple(f"BBB{chr(65 + n)}ZQZX" for n in range(9)),  # two address lines
        filing_time="041030",
        originator="BAAAFTAA",
        ohi="REF 12",
        text=f"CT501 PRIORITY {priority}\nLINE TWO",
        transmission_id="BAA042",
        service_info="CH",
    )
    data = encode(message, framing)
    if framing is Framing.IA5:
        # The priority alarm: five BEL before the origin line of an SS message.
        assert (
            (b"\x07" * 5 + b"041030 BAAAFTAA") in data if priority is P.SS else b"\x07" not in data
        )
    assert data.count(b"\r\n") >= 5  # the second address line is its own
    assert decode(data, framing) == message


def test_a_line_end_of_cr_cr_lf_or_lf_is_read_as_one() -> None:
    data = (
        b"ZCZC ABC001\r\r\nGG LGGGZRZX LGATKLMW\n201838 EGLLKLMW\r\nAS REQUIRED\n\n\n\n\n\n\n\nNNNN"
    )
    assert decode(data, Framing.ITA2) == ANNEX_EXAMPLE


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"ZCZC ABC001\r\nGG LGGGZRZX\r\nAS REQUIRED\r\nNNNN", "no origin line"),
        (b"ZCZC ABC001\r\nXX LGGGZRZX\r\n201838 EGLLKLMW\r\nTEXT\r\nNNNN", "not one of SS"),
        (b"ZCZC ABC\r\nGG LGGGZRZX\r\n201838 EGLLKLMW\r\nTEXT\r\nNNNN", "not a transmission"),
        (b"ZCZC ABC001\r\nGG LGGGZRZ\r\n201838 EGLLKLMW\r\nTEXT\r\nNNNN", "not an AFTN address"),
        (b"\x01ABC001\r\nGG LGGGZRZX\r\n201838 EGLLKLMW\r\nTEXT\x03", "no STX"),
        (b"\x01ABC001\r\nGG LGGGZRZX\r\n201838 EGLLKLMW\r\n\x02T\xe9XT\x03", "outside IA-5"),
        (
            b"ZCZC ABC001\r\nGG "
            + b" ".join([b"LGGGZRZX"] * 22)
            + b"\r\n201838 EGLLKLMW\r\nT\r\nNNNN",
            "22 addressees",
        ),
    ],
)
def test_a_broken_message_is_refused_with_its_reason(data: bytes, reason: str) -> None:
    framing = Framing.IA5 if data.startswith(b"\x01") else Framing.ITA2
    with pytest.raises(AFTNFormatError, match=reason):
        decode(data, framing)


def test_the_deframer_cuts_a_stream_whatever_the_reads() -> None:
    one, two = encode(ANNEX_EXAMPLE, Framing.IA5), encode(ANNEX_EXAMPLE, Framing.IA5)
    stream = b"\x16\x16" + one + b"\r\n" + two
    for size in (1, 2, 7, len(stream)):
        deframer = Deframer(Framing.IA5)
        found = [
            m for i in range(0, len(stream), size) for m in deframer.feed(stream[i : i + size])
        ]
        assert found == [one, two]
    ita2 = encode(ANNEX_EXAMPLE, Framing.ITA2)
    deframer = Deframer(Framing.ITA2)
    assert [m for b in (ita2[:3], ita2[3:40], ita2[40:]) for m in deframer.feed(b)] == [
        ita2[: ita2.index(b"NNNN") + 4]
    ]


def test_the_deframer_gives_up_on_a_message_with_no_end() -> None:
    deframer = Deframer(Framing.IA5)
    assert deframer.feed(b"\x01" + b"X" * 70_000) == []
    assert deframer.discarded == 1
    good = encode(ANNEX_EXAMPLE, Framing.IA5)
    assert deframer.feed(good) == [good]


def test_text_that_aftn_cannot_carry() -> None:
    assert check_text("A" * 70, Framing.IA5, max_length=1800) == (
        "line 1 of the text is 70 characters; at most 69"
    )
    assert "at most 1800" in (check_text("A\n" * 901, Framing.ITA2, max_length=1800) or "")
    assert "ITA-2 cannot carry" in (check_text("lower case", Framing.ITA2, max_length=1800) or "")
    assert check_text("lower case; fine", Framing.IA5, max_length=1800) is None
    assert "NNNN" in (check_text("A NNNN B", Framing.ITA2, max_length=1800) or "")


# -- the gateway's conversions ----------------------------------------------------------


def test_an_aftn_message_becomes_an_ats_message() -> None:
    message = AFTNMessage(
        priority=P.SS,
        addressees=("BBBBZQZX",),
        filing_time="041030",
        originator="BAAAFTAA",
        ohi="OHI TEXT",
        text="MAYDAY TEST",
        transmission_id="BAA001",
    )
    converted = aftn_to_amhs(message, SETTINGS, NOW)
    assert converted.unknown == () and converted.service is None
    assert converted.message is not None
    envelope = converted.message.envelope
    assert envelope.priority is Priority.URGENT
    assert (
        envelope.originator == "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/O=BA-REGION/OU1=BAAA/CN=BAAAFTAA/"
    )
    assert [r.address for r in envelope.recipients] == [
        "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBZQZX/"
    ]
    assert envelope.mts_id.startswith("/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/;BAA001-041030-BAAAFTAA-")
    ipm = decode_ipm(converted.message.content)
    (part,) = ipm.body
    assert isinstance(part, IA5Text)
    assert part.text == "PRI: SS\r\nFT: 041030\r\nOHI: OHI TEXT\r\n\r\nMAYDAY TEST"
    # An SS message asks for a receipt notification: AFTN acknowledges SS messages.
    assert {n for r in ipm.heading.primary_recipients for n in r.notification_requests} == {"rn"}


def test_an_unknown_originator_refuses_the_whole_message() -> None:
    message = ANNEX_EXAMPLE  # EGLLKLMW is in the register; LG addressees are too
    refused = AFTNMessage(**{**_fields(message), "originator": "KJFKZTZX"})
    converted = aftn_to_amhs(refused, SETTINGS, NOW)
    assert converted.message is None and converted.service is not None
    assert converted.service.text == "SVC QTA OGN ABC001 INCORRECT"
    assert converted.service.addressees == ("KJFKZTZX",)
    assert converted.service.originator == "BAAAYFYX"


def _fields(message: AFTNMessage) -> dict[str, object]:
    return {f: getattr(message, f) for f in message.__dataclass_fields__}


def amhs(
    body: str, *, priority: Priority = Priority.NORMAL, originator: str | None = None
) -> tuple[object, bytes]:
    from waypost.message import ContentType, Envelope, Recipient  # noqa: PLC0415
    from waypost.x400.ipm import build_ipm  # noqa: PLC0415

    sender = originator or "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/O=BA-REGION/OU1=BAAA/CN=BAAAFTAA/"
    rcpt = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBZQZX/"
    content = build_ipm(originator=sender, recipients=[rcpt], subject="", text=body, ipm_id="x")
    envelope = Envelope(
        mts_id="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/;x",
        originator=sender,
        recipients=[Recipient(address=rcpt)],
        content_type=ContentType.P22,
        priority=priority,
        arrival=NOW,
    )
    return envelope, content


RCPT = ["/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBZQZX/"]


def test_an_ipm_without_an_ats_header_takes_its_priority_and_arrival() -> None:
    envelope, content = amhs("PLAIN IPM TEXT", priority=Priority.URGENT)
    aftn = amhs_to_aftn(envelope, content, RCPT, SETTINGS, Framing.IA5)  # type: ignore[arg-type]
    assert (aftn.priority, aftn.filing_time, aftn.originator, aftn.text) == (
        P.SS,
        "300053",
        "BAAAFTAA",
        "PLAIN IPM TEXT",
    )


@pytest.mark.parametrize(
    ("body", "originator", "code", "reason"),
    [
        ("PRI: FF\nFT: 991200\nOHI: \n\nTEXT", None, "5.6.0", "ATS-Message-Header syntax"),
        ("A" * 1801, None, "5.3.4", "message text length"),
        ("A" * 70, None, "5.6.0", "unsupported characters"),
        ("TEXT", "/C=GB/ADMD= /PRMD=ACME/S=SMITH/", "5.5.4", "unrecognized originator"),
    ],
)
def test_what_aftn_cannot_carry_fails_with_its_diagnostic(
    body: str, originator: str | None, code: str, reason: str
) -> None:
    envelope, content = amhs(body, originator=originator)
    with pytest.raises(ConversionError) as info:
        amhs_to_aftn(envelope, content, RCPT, SETTINGS, Framing.IA5)  # type: ignore[arg-type]
    assert info.value.detail.startswith(code) and reason in info.value.detail


def test_more_than_one_body_part_does_not_convert() -> None:
    envelope, content = amhs("TEXT")
    ipm = decode_ipm(content)
    two = encode_ipm(replace(ipm, body=(*ipm.body, BilaterallyDefined(data=b"\x00\x01"))))
    with pytest.raises(ConversionError, match="multiple body parts"):
        amhs_to_aftn(envelope, two, RCPT, SETTINGS, Framing.IA5)  # type: ignore[arg-type]


def test_the_acknowledgement_of_an_ss_message() -> None:
    ack = acknowledgement(ANNEX_EXAMPLE, SETTINGS, NOW)
    assert (ack.priority, ack.addressees, ack.text) == (P.SS, ("EGLLKLMW",), "R 201838 EGLLKLMW")


letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=6, max_size=6)
ita2_line = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-?:().,'=/+ ", max_size=69)


@given(
    priority=st.sampled_from(list(P)),
    day=st.integers(1, 31),
    hour=st.integers(0, 23),
    minute=st.integers(0, 59),
    originator=letters,
    addressees=st.lists(letters, min_size=1, max_size=21),
    ohi=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ", max_size=40),
    lines=st.lists(ita2_line, min_size=1, max_size=20),
    end=st.sampled_from(list(EndOfHeading)),
    framing=st.sampled_from(list(Framing)),
)
def test_aftn_to_amhs_to_aftn_keeps_what_must_survive(
    priority: P,
    day: int,
    hour: int,
    minute: int,
    originator: str,
    addressees: list[str],
    ohi: str,
    lines: list[str],
    end: EndOfHeading,
    framing: Framing,
) -> None:
    text = "\n".join(line.strip() for line in lines).strip("\n") or "X"
    if "ZCZC" in text or "NNNN" in text:
        return
    sent = AFTNMessage(
        priority=priority,
        addressees=tuple(f"BB{a}" for a in addressees),
        filing_time=f"{day:02d}{hour:02d}{minute:02d}",
        originator=f"BA{originator}",
        ohi=ohi.strip(),
        text=text,
        transmission_id="BAA001",
    )
    settings = GatewaySettings(
        register=REGISTER,
        aftn_address="BAAAYFYX",
        global_domain=SETTINGS.global_domain,
        end_of_heading=end,
    )
    converted = aftn_to_amhs(sent, settings, NOW).message
    assert converted is not None
    recipients = [r.address for r in converted.envelope.recipients]
    back = amhs_to_aftn(converted.envelope, converted.content, recipients, settings, framing)
    wire = decode(encode(replace(back, transmission_id="WPT001"), framing), framing)
    assert (wire.priority, wire.filing_time, wire.originator, wire.addressees, wire.ohi) == (
        sent.priority,
        sent.filing_time,
        sent.originator,
        sent.addressees,
        sent.ohi,
    )
    assert wire.text == "\n".join(line.rstrip() for line in sent.text.split("\n")).strip("\n")


def _converted(priority: P) -> tuple[object, str]:
    message = AFTNMessage(
        priority=priority,
        addressees=("BBBBZQZX",),
        filing_time="041030",
        originator="BAAAFTAA",
        text="TEXT",
        transmission_id="BAA001",
    )
    converted = aftn_to_amhs(message, SETTINGS, NOW).message
    assert converted is not None
    ipm = decode_ipm(converted.content)
    return converted.envelope, ipm.heading.this_ipm.local


def _receipt_for(local: str, originator: str) -> bytes:
    from datetime import UTC, datetime  # noqa: PLC0415

    from waypost.x400.ipm_heading import IPMIdentifier  # noqa: PLC0415
    from waypost.x400.ipn import IPN, ReceiptFields, encode_ipn  # noqa: PLC0415

    ipn = IPN(
        subject_ipm=IPMIdentifier(user=originator, local=local),
        receipt=ReceiptFields(receipt_time=datetime(2026, 12, 4, 10, 31, tzinfo=UTC)),
    )
    return encode_ipn(ipn)


def test_the_receipt_of_an_ss_message_becomes_its_aftn_acknowledgement() -> None:
    from waypost.message import ContentType, Envelope, Recipient  # noqa: PLC0415

    envelope, local = _converted(P.SS)
    originator = envelope.originator  # type: ignore[attr-defined]
    ipn = Envelope(
        mts_id="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/;rn-1",
        originator="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBZQZX/",
        recipients=[Recipient(address=originator)],
        content_type=ContentType.P22,
    )
    ack = amhs_to_aftn(ipn, _receipt_for(local, originator), [originator], SETTINGS, Framing.IA5)
    assert (ack.priority, ack.addressees, ack.filing_time, ack.text) == (
        P.SS,
        ("BAAAFTAA",),
        "041031",  # the receipt time
        "R 041030 BAAAFTAA",
    )
    # Of a message that was not SS there is no acknowledgement on AFTN.
    envelope, local = _converted(P.FF)
    with pytest.raises(ConversionError, match="answers no SS message"):
        amhs_to_aftn(ipn, _receipt_for(local, originator), [originator], SETTINGS, Framing.IA5)


def test_a_non_delivery_for_an_unknown_address_becomes_svc_ads() -> None:
    from waypost.amhs.convert import report_to_aftn  # noqa: PLC0415
    from waypost.x400.p1_report import ReportContent, ReportedRecipient  # noqa: PLC0415

    envelope, _ = _converted(P.GG)
    mts_id = envelope.mts_id  # type: ignore[attr-defined]
    unknown = ReportedRecipient(
        actual_recipient="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-2/O=AFTN/OU1=BBBBZQZX/",
        originally_specified_number=1,
        arrival=NOW,
        reason=1,
        diagnostic=0,
    )
    svc = report_to_aftn(ReportContent(subject_id=mts_id, recipients=(unknown,)), SETTINGS, NOW)
    assert svc is not None
    assert svc.text.splitlines() == ["SVC ADS 041030 BAAAFTAA", "GG BBBBZQZX", "UNKNOWN BBBBZQZX"]
    # Another diagnostic (or a delivery report) has no AFTN form.
    other = replace(unknown, diagnostic=7)
    assert (
        report_to_aftn(ReportContent(subject_id=mts_id, recipients=(other,)), SETTINGS, NOW) is None
    )


def test_an_extended_ats_message_carries_its_header_in_heading_fields() -> None:
    from datetime import UTC, datetime  # noqa: PLC0415

    from waypost.amhs.ats import ATSMessage, read_ats  # noqa: PLC0415
    from waypost.amhs.extended import (  # noqa: PLC0415
        AMHS_PRECEDENCE_POLICY,
        ID_HEX_AUTHORIZATION_TIME,
        ID_HEX_ORIGINATORS_REFERENCE,
        ID_HEX_PRECEDENCE_POLICY_ID,
        ID_REX_PRECEDENCE,
        filed_at,
    )

    message = ATSMessage(
        header=ATSHeader(P.DD, "011200", "REF 7"),
        originator="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/O=BA-REGION/OU1=BAAA/CN=BAAAFTAA/",
        recipients=RCPT,  # type: ignore[arg-type]
        text="TEXT ONLY",
        extended=True,
    )
    ipm = decode_ipm(encode_ipm(message.ipm("id-2")))
    (part,) = ipm.body
    assert isinstance(part, IA5Text) and part.text == "TEXT ONLY"  # no header in the text
    types = [e.type for e in ipm.heading.other_extensions]
    assert types == [
        ID_HEX_AUTHORIZATION_TIME,
        ID_HEX_PRECEDENCE_POLICY_ID,
        ID_HEX_ORIGINATORS_REFERENCE,
    ]
    (precedence,) = ipm.heading.primary_recipients[0].recipient_extensions
    assert (precedence.type, precedence.value) == (ID_REX_PRECEDENCE, b"\x02\x01\x47")  # 71: DD
    policy = ipm.heading.other_extensions[1].value
    assert policy == b"\x06\x05\x2b\x1b\x08\x00\x00"  # 1.3.27.8.0.0
    assert AMHS_PRECEDENCE_POLICY == "1.3.27.8.0.0"
    read = read_ats(ipm, Priority.NORMAL)
    assert read.header == ATSHeader(P.DD, "011200", "REF 7") and read.text == "TEXT ONLY"
    # A filing time is never in the future: day 31 filed on the 1st is last month's.
    now = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    assert filed_at("311200", now) == datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    assert filed_at("010700", now) == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)


def test_an_extended_ats_message_converts_to_aftn() -> None:
    from waypost.amhs.ats import ATSMessage  # noqa: PLC0415
    from waypost.message import ContentType, Envelope, Recipient  # noqa: PLC0415

    originator = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/O=BA-REGION/OU1=BAAA/CN=BAAAFTAA/"
    message = ATSMessage(
        header=ATSHeader(P.SS, "041030", "OHI X"),
        originator=originator,
        recipients=tuple(RCPT),
        text="EXTENDED",
        extended=True,
    )
    envelope = Envelope(
        mts_id="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/;e",
        originator=originator,
        recipients=[Recipient(address=RCPT[0])],
        content_type=ContentType.P22,
        priority=Priority.URGENT,
    )
    content = encode_ipm(message.ipm("id-3"))
    aftn = amhs_to_aftn(envelope, content, RCPT, SETTINGS, Framing.IA5)
    assert (aftn.priority, aftn.filing_time, aftn.ohi, aftn.text) == (
        P.SS,
        "041030",
        "OHI X",
        "EXTENDED",
    )


@given(data=st.binary(max_size=400), framing=st.sampled_from(list(Framing)))
def test_any_octets_decode_or_are_refused_with_a_reason(data: bytes, framing: Framing) -> None:
    # What a peer sends never raises anything but the format's own error.
    for raw in Deframer(framing).feed(data) or [data]:
        with contextlib.suppress(AFTNFormatError):
            decode(raw, framing)


@given(text=st.text(max_size=300))
def test_any_text_splits_or_is_text(text: str) -> None:
    try:
        header, rest = split_header(text)
    except ATSHeaderError:
        return
    assert header is not None or rest == text


@given(
    framing=st.sampled_from(list(Framing)),
    edits=st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), min_size=1, max_size=4),
    cut=st.integers(0, 130),
)
def test_a_damaged_message_is_refused_with_a_reason(
    framing: Framing, edits: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(encode(ANNEX_EXAMPLE, framing))
    for position, value in edits:
        data[position % len(data)] = value
    for raw in Deframer(framing).feed(bytes(data[: max(cut, 10)])) or [bytes(data)]:
        try:
            message = decode(raw, framing)
        except AFTNFormatError:
            continue
        assert message.addressees and message.originator  # whatever it read is whole


async def test_a_probe_is_answered_as_its_message_would_be() -> None:
    from waypost.delivery.aftn import AftnDeliverer, AftnStation  # noqa: PLC0415
    from waypost.handoff import Claim, Handoff, Result  # noqa: PLC0415
    from waypost.message import ContentType, Envelope, ObjectKind, Recipient  # noqa: PLC0415
    from waypost.nexthop import parse_next_hop  # noqa: PLC0415

    originator = "/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/O=BA-REGION/OU1=BAAA/CN=BAAAFTAA/"
    unknown = "/C=GB/ADMD= /PRMD=ACME/S=SMITH/"
    probe = Envelope(
        mts_id="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/;probe",
        originator=originator,
        recipients=[Recipient(address=RCPT[0]), Recipient(address=unknown)],
        content_type=ContentType.P22,
        object_kind=ObjectKind.PROBE,
        content_length=900,
    )
    claims = [
        Claim(recipient_id=n, message_id=1, rcpt_index=n, address=r.address,
              next_hop="aftn:SINK", attempts=0, received_at=NOW, expires_at=NOW + 60,
              size=0, envelope=probe)
        for n, r in enumerate(probe.recipients)
    ]  # fmt: skip
    station = AftnStation(name="SINK", host="127.0.0.1", port=1, framing=Framing.IA5, channel="WPT")
    agent = AftnDeliverer(SETTINGS, [station])
    handoff = Handoff(
        next_hop=parse_next_hop("aftn:SINK"), message_id=1, envelope=probe, content=b"",
        recipients=claims,
    )  # fmt: skip
    known, other = await agent.deliver(handoff)
    # Nothing is sent (the station is not even listening): a probe is answered here.
    assert known.result is Result.DELIVERED and "would be converted" in known.detail
    assert other.result is Result.FAILED and other.detail.startswith("5.1.1 no AFTN address")
    long = msgspec.structs.replace(probe, content_length=1800 + 4097)
    assert (await agent.deliver(replace(handoff, envelope=long)))[0].detail.startswith("5.3.4")


def test_the_gateway_writes_the_extended_form_for_domains_that_take_it() -> None:
    from waypost.amhs.ats import read_ats  # noqa: PLC0415

    extended = replace(SETTINGS, extended_domains=frozenset({"aftnland-2"}))
    message = AFTNMessage(
        priority=P.GG,
        addressees=("BBBBZQZX",),
        filing_time="041030",
        originator="BAAAFTAA",
        ohi="X",
        text="TEXT",
        transmission_id="BAA001",
    )
    converted = aftn_to_amhs(message, extended, NOW).message
    assert converted is not None
    ipm = decode_ipm(converted.content)
    assert ipm.body[0] == IA5Text(text="TEXT")  # no header in the text: the heading has it
    assert read_ats(ipm, Priority.NON_URGENT).header == ATSHeader(P.GG, "041030", "X")
    # One recipient outside those domains: the basic form for all.
    mixed = replace(message, addressees=("BBBBZQZX", "EGLLZPZX"))
    converted = aftn_to_amhs(mixed, extended, NOW).message
    assert converted is not None
    assert decode_ipm(converted.content).body[0].text.startswith("PRI: GG")  # type: ignore[union-attr]
