"""Whole messages across the gateway (waypost.mixer.convert): Internet mail → P22 → Internet
mail keeps every field RFC 2156 maps and every body part RFC 2157 maps, and the envelope
fields cross as RFC 2156 §5.3.4 writes them; loops and unreadable content are refused."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.address import parse_oraddress
from waypost.message import ContentType, Envelope, Notify, Priority, Recipient, ReportRequest
from waypost.mixer.address_map import AddressMapper, Gateway, MappingEntry
from waypost.mixer.convert import (
    REMEMBERED_MAPPINGS,
    ConversionError,
    GatewayLoopError,
    GatewaySide,
    ipm_to_mail,
    mail_to_ipm,
    mail_to_or_of,
)
from waypost.mixer.envelope_fields import parse_trace_field, trace_field
from waypost.smtp.server_message import has_bare_cr_or_lf
from waypost.x400.ipm_codec import decode_ipm

DOMAIN = "/C=ZZ/ADMD= /PRMD=Waypost/"
MAPPER = AddressMapper.symmetric(
    Gateway("gw.example", parse_oraddress("/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/")),
    [MappingEntry.parse("/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/", "sales.example")],
)
SIDE = GatewaySide(mapper=MAPPER, x400_domain=DOMAIN, hostname="mx.test", now=1_800_000_000.0)
SMITH = "/C=ZZ/ADMD= /PRMD=Waypost/O=Sales/S=Smith/G=Jo/"


def mail_envelope(*recipients: str, notify: list[Notify] | None = None) -> Envelope:
    return Envelope(
        mts_id="m1@mx.test",
        originator="bob@remote.example",
        recipients=[Recipient(address=r, notify=notify or []) for r in recipients],
        envid="ENV-1",
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


HEADERS = (
    "From: Bob Brown <bob@remote.example>\r\n"
    "To: Jo Smith <Jo.Smith@sales.example>\r\n"
    "Cc: carol@remote.example\r\n"
    "Subject: quarterly figures\r\n"
    "Message-ID: <q3.figures@remote.example>\r\n"
    "In-Reply-To: <q2.figures@remote.example>\r\n"
    "Importance: high\r\n"
    "Sensitivity: Company-Confidential\r\n"
    "Priority: urgent\r\n"
)


def test_mail_to_ipm_maps_envelope_heading_and_body() -> None:
    data = (HEADERS + "\r\nThe figures.\r\n").encode()
    envelope = mail_envelope("Jo.Smith@sales.example", notify=[Notify.SUCCESS, Notify.FAILURE])
    converted = mail_to_ipm(envelope, data, [0], SIDE)
    assert converted.message is not None and converted.kept == (0,) and not converted.refused
    x400 = converted.message.envelope
    assert x400.content_type == ContentType.P22
    assert x400.mts_id.startswith(DOMAIN + ";")
    (recipient,) = x400.recipients
    assert recipient.address == SMITH and recipient.report_request is ReportRequest.ALWAYS
    assert (
        x400.originator == "/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/DDA:RFC-822=bob(a)remote.example/"
    )
    assert x400.content_id == "ENV-1"
    assert x400.priority is Priority.URGENT
    ipm = decode_ipm(converted.message.content)
    assert ipm.heading.subject == "quarterly figures"
    assert ipm.heading.importance == "high"
    assert ipm.heading.sensitivity == "company-confidential"
    assert [d.address for d in ipm.heading.primary_recipients] == [SMITH]


def test_ipm_to_mail_writes_the_envelope_fields_rfc_2156_defines() -> None:
    data = (HEADERS + "\r\nThe figures.\r\n").encode()
    x400 = mail_to_ipm(mail_envelope("Jo.Smith@sales.example"), data, [0], SIDE).message
    assert x400 is not None
    back = ipm_to_mail(x400.envelope, x400.content, [0], SIDE)
    assert back.message is not None
    mail = back.message.envelope
    assert mail.originator == "bob@remote.example"
    assert [r.address for r in mail.recipients] == ["Jo.Smith@sales.example"]
    assert mail.recipients[0].notify == [Notify.FAILURE]
    assert mail.envid == "ENV-1"
    message = parse(back.message.content)
    assert message["X400-MTS-Identifier"] == f"[{x400.envelope.mts_id}]"
    assert message["X400-Content-Type"] == "P2-1988 (22)"
    assert message["Priority"] == "urgent"
    assert message["X400-Content-Identifier"] == "ENV-1"
    assert message["Received"].startswith("from X.400")
    # Every heading field RFC 2156 maps came back as it was.
    original = parse(data)
    for name in ("From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "Importance"):
        assert str(message[name]) == str(original[name]), name
    assert str(message["Sensitivity"]).lower() == "company-confidential"
    assert message.get_content().replace("\r\n", "\n") == "The figures.\n"


def test_a_trace_field_reads_back_as_the_element_it_was() -> None:
    x400 = mail_to_ipm(
        mail_envelope("Jo.Smith@sales.example"), b"Subject: x\r\n\r\nx\r\n", [0], SIDE
    ).message
    assert x400 is not None
    traced = x400.envelope  # no trace yet: the intake adds this MTA's own
    from waypost.x400.p1_objects import add_trace  # noqa: PLC0415

    traced = add_trace(traced, DOMAIN, 1_800_000_000.0)
    (element,) = traced.trace
    assert parse_trace_field(trace_field(element)) == element


def test_mail_that_crossed_this_gateway_before_is_a_loop() -> None:
    data = (
        f"X400-Received: by {DOMAIN}; relayed; Thu, 3 Dec 2026 10:00:00 +0000\r\n"
        "X400-Received: by /C=GB/ADMD= /PRMD=Other/; relayed; Thu, 3 Dec 2026 10:01:00 +0000\r\n"
        "Subject: round and round\r\n\r\ntext\r\n"
    ).encode()
    with pytest.raises(GatewayLoopError, match=r"^5\.4\.6"):
        mail_to_ipm(mail_envelope("Jo.Smith@sales.example"), data, [0], SIDE)
    # Another domain's trace alone is carried into the X.400 envelope, oldest first.
    other = data.replace(DOMAIN.encode(), b"/C=GB/ADMD= /PRMD=Third/")
    x400 = mail_to_ipm(mail_envelope("Jo.Smith@sales.example"), other, [0], SIDE).message
    assert x400 is not None
    assert [t.domain for t in x400.envelope.trace] == [
        "/C=GB/ADMD= /PRMD=Other/",
        "/C=GB/ADMD= /PRMD=Third/",
    ]


def test_unreadable_ipm_content_is_a_conversion_error() -> None:
    envelope = Envelope(
        mts_id=f"{DOMAIN};x1",
        originator=SMITH,
        recipients=[
            Recipient(address="/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/DDA:RFC-822=b(a)x.example/")
        ],
        content_type=ContentType.P22,
    )
    with pytest.raises(ConversionError, match=r"^5\.6\.0"):
        ipm_to_mail(envelope, b"\xa0\x03\x01\x02", [0], SIDE)


def test_a_recipient_with_no_o_r_form_is_refused_alone() -> None:
    data = b"Subject: two\r\n\r\ntext\r\n"
    # Too long for any O/R attribute: the DDA value is limited to 128 characters.
    long_local = "x" * 200
    envelope = mail_envelope("Jo.Smith@sales.example", f"{long_local}@remote.example")
    converted = mail_to_ipm(envelope, data, [0, 1], SIDE)
    assert converted.kept == (0,)
    assert list(converted.refused) == [1] and converted.refused[1].startswith("5.1.3")


_WORD = st.from_regex(r"[A-Za-z][a-z]{0,7}", fullmatch=True)
_TEXT = st.from_regex(r"[ -~]{0,60}(\n[ -~]{0,60}){0,4}", fullmatch=True)


@settings(max_examples=60, deadline=None)
@given(
    subject=st.from_regex(r"[ -~]{0,50}", fullmatch=True).map(str.strip),
    given_name=_WORD,
    surname=_WORD,
    text=_TEXT,
    importance=st.sampled_from(["low", "normal", "high"]),
    attachment=st.none() | st.binary(max_size=300),
)
def test_mail_round_trips_through_p22(
    subject: str,
    given_name: str,
    surname: str,
    text: str,
    importance: str,
    attachment: bytes | None,
) -> None:
    original = EmailMessage(policy=email.policy.default)
    original["From"] = "Bob <bob@remote.example>"
    original["To"] = f"{given_name}.{surname}@sales.example"
    if subject:
        original["Subject"] = subject
    original["Message-ID"] = "<rt.1@remote.example>"
    if importance != "normal":
        original["Importance"] = importance
    original.set_content(text.replace("\n", "\r\n") + "\r\n")
    if attachment is not None:
        original.add_attachment(
            attachment, maintype="application", subtype="pdf", filename="file.pdf"
        )
    data = original.as_bytes(policy=email.policy.default.clone(linesep="\r\n"))
    envelope = mail_envelope(str(original["To"]))
    x400 = mail_to_ipm(envelope, data, [0], SIDE).message
    assert x400 is not None
    back = ipm_to_mail(x400.envelope, x400.content, [0], SIDE).message
    assert back is not None
    message, original = parse(back.content), parse(data)
    for name in ("From", "To", "Subject", "Message-ID", "Importance"):
        assert str(message.get(name, "")) == str(original.get(name, "")), name
    parts = list(message.iter_parts()) if message.is_multipart() else [message]
    originals = list(original.iter_parts()) if original.is_multipart() else [original]
    assert len(parts) == len(originals)
    for got, want in zip(parts, originals, strict=True):
        assert got.get_content_type() == want.get_content_type()
        assert got.get_filename() == want.get_filename()
        assert got.get_content() == want.get_content()


def test_mmhs_fields_make_a_p772_message_and_come_back() -> None:
    data = (
        b"From: bob@remote.example\r\nTo: Jo.Smith@sales.example\r\nSubject: orders\r\n"
        b"MMHS-Primary-Precedence: 4\r\n"
        b"MMHS-Subject-Indicator-Codes: ABC, XYZ12\r\n"
        b"MMHS-Originator-Reference: REF (1)/25\r\n"
        b"\r\nMove out.\r\n"
    )
    x400 = mail_to_ipm(mail_envelope("Jo.Smith@sales.example"), data, [0], SIDE).message
    assert x400 is not None
    # RFC 6477: a message with MMHS-* fields is a STANAG 4406 (P772) message.
    assert x400.envelope.content_type == ContentType.P772
    from waypost.x400.p772 import p772_fields  # noqa: PLC0415

    heading = decode_ipm(x400.content).heading
    military = p772_fields(heading.other_extensions)
    assert military.primary_precedence == 4
    back = ipm_to_mail(x400.envelope, x400.content, [0], SIDE).message
    assert back is not None
    message = parse(back.content)
    assert message["MMHS-Primary-Precedence"] == "4"
    assert message["MMHS-Subject-Indicator-Codes"] == "ABC, XYZ12"
    assert message["MMHS-Originator-Reference"] == "REF (1)/25"
    # Mapped fields are not also named as discarded heading extensions.
    assert message["Discarded-X400-IPMS-Extensions"] is None


def test_disposition_notification_to_asks_each_recipient_for_a_receipt() -> None:
    data = (
        b"From: Bob <bob@remote.example>\r\nTo: Jo.Smith@sales.example\r\n"
        b"Disposition-Notification-To: Bob <bob@remote.example>\r\nSubject: read?\r\n\r\nx\r\n"
    )
    x400 = mail_to_ipm(mail_envelope("Jo.Smith@sales.example"), data, [0], SIDE).message
    assert x400 is not None
    (recipient,) = decode_ipm(x400.content).heading.primary_recipients
    assert "rn" in recipient.notification_requests  # X.420 §7.2.4
    back = ipm_to_mail(x400.envelope, x400.content, [0], SIDE).message
    assert back is not None
    assert parse(back.content)["Disposition-Notification-To"] == "Bob <bob@remote.example>"
    plain = mail_to_ipm(
        mail_envelope("Jo.Smith@sales.example"), data.replace(b"Disposition", b"X-Disp"), [0], SIDE
    ).message
    assert plain is not None
    (recipient,) = decode_ipm(plain.content).heading.primary_recipients
    assert not recipient.notification_requests


def test_a_mapper_remembers_its_answers_and_a_mapper_with_dns_entries_its_own() -> None:
    tables = AddressMapper.symmetric(
        Gateway("gw.example", parse_oraddress("/C=ZZ/ADMD= /PRMD=Waypost/O=Gateway/")), []
    )
    to_or = mail_to_or_of(tables)
    fallback = to_or("Jo.Smith@px.example")
    # No table entry: the gateway's RFC-822 DDA (RFC 2156 §4.3.5), and remembered.
    assert "DDA:RFC-822=Jo.Smith(a)px.example" in fallback
    assert tables.mapped_to_x400 == {"Jo.Smith@px.example": fallback}
    assert mail_to_or_of(tables)("Jo.Smith@px.example") == fallback
    # An entry found in DNS (RFC 2163) makes a new mapper, which answers from its tables.
    found = tables.with_entries(
        domain_to_oraddress=[MappingEntry.parse("/C=ZZ/ADMD= /PRMD=PX/", "px.example")]
    )
    assert mail_to_or_of(found)("Jo.Smith@px.example") == "/C=ZZ/ADMD= /PRMD=PX/S=Smith/G=Jo/"
    assert mail_to_or_of(tables)("Jo.Smith@px.example") == fallback
    # A refusal is not remembered.
    with pytest.raises(ValueError):
        to_or("no address")
    assert "no address" not in tables.mapped_to_x400


def test_what_a_mapper_remembers_is_bounded() -> None:
    tables = AddressMapper.symmetric(MAPPER.gateway, [])
    to_or = mail_to_or_of(tables)
    for i in range(REMEMBERED_MAPPINGS + 10):
        to_or(f"user{i}@example.org")
    assert 0 < len(tables.mapped_to_x400) <= REMEMBERED_MAPPINGS


@pytest.mark.parametrize(
    "field",
    [b"Message-ID: <", b"In-Reply-To: <", b"Expiry-Date: tomorrow", b"Importance: very"],
)
def test_a_malformed_heading_field_fails_the_message_with_a_report(field: bytes) -> None:
    data = b"From: Jo <jo@remote.example>\r\n" + field + b"\r\nSubject: x\r\n\r\ntext\r\n"
    with pytest.raises(ConversionError, match=r"^5\.6\.5"):
        mail_to_ipm(mail_envelope("Jo.Smith@sales.example"), data, [0], SIDE)


@pytest.mark.parametrize(
    "body",
    [
        "The figures.\r\n",  # one text part: written directly
        "--b\r\nContent-Type: text/plain\r\n\r\nSee the file.\r\n--b\r\n"
        'Content-Type: application/pdf\r\nContent-Disposition: attachment; filename="q3.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n--b--\r\n",  # text and a file
        "--b\r\nContent-Type: message/rfc822\r\n\r\nSubject: fwd\r\n\r\nold\r\n--b\r\n"
        "Content-Type: text/plain\r\n\r\nnew\r\n--b--\r\n",  # a forwarded IPM: the package
    ],
    ids=["text", "text-and-file", "forwarded"],
)
def test_converted_mail_is_marked_crlf_clean_exactly_when_it_is(body: str) -> None:
    # Envelope.crlf lets the SMTP client skip its scan for bare CR and LF: the gateway
    # sets it from how it wrote each piece, and it must be what a scan of the octets says.
    headers = HEADERS
    if body.startswith("--b"):
        headers += 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n'
    data = (headers + "\r\n" + body).encode()
    x400 = mail_to_ipm(mail_envelope("Jo.Smith@sales.example"), data, [0], SIDE).message
    assert x400 is not None
    back = ipm_to_mail(x400.envelope, x400.content, [0], SIDE).message
    assert back is not None
    assert back.envelope.crlf == (not has_bare_cr_or_lf(back.content))
    assert back.envelope.crlf
