"""X.411 reports ⇄ RFC 3464 DSNs: Waypost's own X.400 reports become DSNs and back, the
DSNs Waypost's SMTP side and Postfix write become report contents, the status code table
both ways, and DSNs that cannot be read are refused by name."""

from __future__ import annotations

import dataclasses
import email
import email.policy
from email.message import EmailMessage, Message

import pytest

from waypost.handoff import ReportKind
from waypost.message import ContentType, Envelope, Recipient, ReportRequest, TraceElement
from waypost.mixer.notices import report_kind
from waypost.mixer.reports import (
    DIAGNOSTIC_STATUS,
    REASON_STATUS,
    DSNError,
    codes_for,
    dsn_to_report,
    report_to_dsn,
    status_for,
)
from waypost.smtp.dsn import Action, RecipientReport, build_dsn
from waypost.smtp.xtext import encode_xtext
from waypost.x400.p1_report import ReportContent, decode_report_content
from waypost.x400.report_maker import _CODES, RecipientFate, build_report

A = "/C=GB/ADMD= /PRMD=A/"
B = "/C=GB/ADMD= /PRMD=B/"
SMITH = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
KAY = "/C=GB/ADMD= /PRMD=B/S=Kay/"
T0 = 1_700_000_000.0
GATEWAY = "gw.example"


def or_to_mail(oraddress: str) -> str:
    """A table-free stand-in for the address mapper: /…/PRMD=p/S=s/ ⇄ s@p.example."""
    attributes = dict(part.split("=", 1) for part in oraddress.strip("/").split("/"))
    return f"{attributes['S'].lower()}@{attributes['PRMD'].lower()}.example"


def mail_to_or(mail: str) -> str:
    local, _, domain = mail.partition("@")
    return f"/C=GB/ADMD= /PRMD={domain.removesuffix('.example').upper()}/S={local.title()}/"


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def status_blocks(message: Message) -> list[Message]:
    status = next(p for p in subparts(message) if p.get_content_type() == "message/delivery-status")
    return subparts(status)


def subparts(message: Message) -> list[Message]:
    """The parts of a multipart (or the messages of a message/* part), typed."""
    payload = message.get_payload()
    assert isinstance(payload, list)
    return [p for p in payload if isinstance(p, Message)]


def waypost_x400_report(*, returned: bool) -> tuple[Envelope, ReportContent]:
    """The report Waypost's X.400 side makes: Jones unknown, Kay delivered."""
    subject = Envelope(
        mts_id=f"{A};m1",
        originator=SMITH,
        recipients=[
            Recipient(address=JONES, originally_specified_number=1),
            Recipient(
                address=KAY, originally_specified_number=2, report_request=ReportRequest.ALWAYS
            ),
        ],
        content_type=ContentType.P22,
        content_id="lunch-1",
        per_message_indicators=["content-return-request"] if returned else [],
        trace=[TraceElement(domain=A, arrival=T0)],
    )
    report = build_report(
        subject=subject,
        content=b"\xa0\x00",
        outcomes=[
            RecipientFate(
                rcpt_index=0, delivered=False, detail="5.1.1 no such O/R address", when=T0 + 1
            ),
            RecipientFate(rcpt_index=1, delivered=True, detail="2.0.0 delivered", when=T0 + 2),
        ],
        received_at=T0,
        domain=B,
        now=T0 + 3,
    )
    return report.envelope, decode_report_content(report.content)


# --- X.400 → Internet ----------------------------------------------------------------


def test_x400_report_becomes_an_rfc_3464_dsn() -> None:
    envelope, content = waypost_x400_report(returned=False)
    data = report_to_dsn(
        envelope=envelope, content=content, or_to_mail=or_to_mail, gateway=GATEWAY, now=T0 + 4
    )
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    message = parse(data)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert message["To"].addresses[0].addr_spec == "smith@a.example"
    assert message["Auto-Submitted"] == "auto-replied"
    per_message, jones, kay = status_blocks(message)
    # RFC 3464 §2.2.2-§2.2.3: the X.400 MTA reported, the gateway converted.
    assert per_message["Reporting-MTA"] == f"x400; {B}"
    assert per_message["DSN-Gateway"] == f"dns; {GATEWAY}"
    assert per_message["Original-Envelope-Id"] == "lunch-1"
    assert per_message["X400-Subject-Submission-Identifier"] == f"{A};m1"
    assert per_message["X400-Content-Type"] == ContentType.P22
    assert jones["Final-Recipient"] == "rfc822; jones@b.example"
    assert jones["X400-Recipient"] == JONES
    assert jones["Action"] == "failed" and jones["Status"] == "5.1.1"
    assert jones["Diagnostic-Code"] == "X-400; 1 0 (unable-to-transfer, unrecognised-OR-name)"
    assert jones["X400-Supplementary-Info"] == "5.1.1 no such O/R address"
    assert jones["X400-Originally-Specified-Recipient-Number"] == "1"
    assert kay["Action"] == "delivered" and kay["Status"] == "2.0.0"
    assert kay["Final-Recipient"] == "rfc822; kay@b.example"
    first = subparts(message)[0]
    assert isinstance(first, EmailMessage)
    text = first.get_content()
    assert "<jones@b.example>: non-delivered: unable-to-transfer" in text


def test_returned_content_is_the_third_part_when_the_report_returns_it() -> None:
    envelope, content = waypost_x400_report(returned=True)
    assert content.returned_content == b"\xa0\x00"
    converted = b"From: smith@a.example\nSubject: lunch\n\nShall we?\n"
    message = parse(
        report_to_dsn(
            envelope=envelope,
            content=content,
            or_to_mail=or_to_mail,
            gateway=GATEWAY,
            returned_message=converted,
            now=T0,
        )
    )
    parts = subparts(message)
    assert len(parts) == 3
    assert parts[2].get_content_type() == "message/rfc822"
    (returned,) = subparts(parts[2])
    assert returned["Subject"] == "lunch"


def test_a_delivery_only_report_is_a_success_dsn() -> None:
    envelope, content = waypost_x400_report(returned=False)
    content = dataclasses.replace(content, recipients=content.recipients[1:])
    message = parse(
        report_to_dsn(envelope=envelope, content=content, or_to_mail=or_to_mail, gateway=GATEWAY)
    )
    assert message["Subject"] == "Successful Mail Delivery Report"


def test_x400_report_round_trips_through_its_dsn() -> None:
    envelope, content = waypost_x400_report(returned=False)
    dsn = report_to_dsn(envelope=envelope, content=content, or_to_mail=or_to_mail, gateway=GATEWAY)
    back = dsn_to_report(
        dsn, mail_to_or=mail_to_or, subject_id=content.subject_id, recipients=[JONES, KAY]
    )
    assert back.subject_id == content.subject_id
    assert back.content_id == "lunch-1"
    assert [(r.actual_recipient, r.originally_specified_number) for r in back.recipients] == [
        (JONES, 1),
        (KAY, 2),
    ]
    assert [r.describe() for r in back.recipients] == [r.describe() for r in content.recipients]
    assert back.recipients[1].delivered_at == content.recipients[1].delivered_at


# --- Internet → X.400 ----------------------------------------------------------------

WAYPOST_CONTENT = (
    b"From: Smith <smith@a.example>\r\nTo: bob@example.net\r\nSubject: lunch\r\n"
    b"X400-MTS-Identifier: [/C=GB/ADMD= /PRMD=A/;m1]\r\n\r\nShall we?\r\n"
)


def waypost_dsn() -> bytes:
    """The failure DSN Waypost's SMTP side writes (waypost.smtp.dsn)."""
    envelope = Envelope(
        mts_id="18bc.abcdef@gw.example",
        originator="smith@a.example",
        recipients=[
            Recipient(address="bob@example.net", orcpt="rfc822;Bob+lunch@example.net"),
            Recipient(address="carol@example.net"),
        ],
        envid="lunch-1",
        arrival=T0 - 7200,
    )
    return build_dsn(
        envelope=envelope,
        content=WAYPOST_CONTENT,
        kind=ReportKind.FAILURE,
        recipients=[
            RecipientReport(
                address="bob@example.net",
                orcpt="rfc822;Bob+lunch@example.net",
                action=Action.FAILED,
                status="5.1.1",
                remote_mta="mx.example.net",
                diagnostic="550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
                last_attempt=T0 - 60,
            ),
            RecipientReport(
                address="carol@example.net",
                action=Action.FAILED,
                status="5.3.4",
                reason="5.3.4 message size 99999 exceeds the size limit 1000",
                last_attempt=T0 - 30,
            ),
        ],
        reporting_mta="gw.example",
        now=T0,
    )


def test_waypost_dsn_becomes_a_non_delivery_report() -> None:
    report = dsn_to_report(waypost_dsn(), mail_to_or=mail_to_or, subject_id=f"{A};m1", now=T0)
    bob, carol = report.recipients
    assert bob.actual_recipient == mail_to_or("bob@example.net")
    assert bob.describe() == "non-delivered: unable-to-transfer / unrecognised-OR-name"
    assert bob.supplementary is not None and bob.supplementary.startswith(
        "550 5.1.1 ?bob?example.net?: Recipient"
    )
    assert carol.describe() == "non-delivered: unable-to-transfer / content-too-long"
    assert [r.originally_specified_number for r in report.recipients] == [1, 2]
    assert bob.arrival == T0 - 7200  # the DSN's Arrival-Date
    assert report.content_id == "lunch-1"  # Original-Envelope-Id ⇄ content-identifier
    assert report.returned_content is None  # not asked for


def test_returned_message_comes_back_only_when_asked() -> None:
    def to_content(message: bytes) -> bytes:
        return b"P22:" + message

    asked = dsn_to_report(
        waypost_dsn(),
        mail_to_or=mail_to_or,
        subject_id=f"{A};m1",
        content_return_requested=True,
        mail_to_content=to_content,
    )
    assert asked.returned_content is not None
    assert asked.returned_content.startswith(b"P22:From: Smith <smith@a.example>\r\n")
    assert b"Shall we?\r\n" in asked.returned_content
    not_asked = dsn_to_report(
        waypost_dsn(), mail_to_or=mail_to_or, subject_id=f"{A};m1", mail_to_content=to_content
    )
    assert not_asked.returned_content is None


# A DSN as Postfix's bounce(8) writes one (its layout, names changed).
POSTFIX_DSN = b"""\
Date: Tue, 14 Nov 2023 22:20:00 +0000 (UTC)
From: MAILER-DAEMON@mx.example.net (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: smith@a.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="2D4A63F2C2.1700000400/mx.example.net"
Message-Id: <20231114222000.9A1B23F2C3@mx.example.net>

This is a MIME-encapsulated message.

--2D4A63F2C2.1700000400/mx.example.net
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.net.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

                   The mail system

<nosuch@example.net>: host mail.example.net[192.0.2.7] said: 550 5.1.1
    <nosuch@example.net>: Recipient address rejected: User unknown in local
    recipient table (in reply to RCPT TO command)

--2D4A63F2C2.1700000400/mx.example.net
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net
X-Postfix-Queue-ID: 2D4A63F2C2
X-Postfix-Sender: rfc822; smith@a.example
Arrival-Date: Tue, 14 Nov 2023 22:13:20 +0000 (UTC)

Final-Recipient: rfc822; nosuch@example.net
Original-Recipient: rfc822;nosuch@example.net
Action: failed
Status: 5.1.1
Remote-MTA: dns; mail.example.net
Diagnostic-Code: smtp; 550 5.1.1 <nosuch@example.net>: Recipient address
    rejected: User unknown in local recipient table

Final-Recipient: rfc822; later@example.net
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mail.example.net[192.0.2.7]:25: Connection
    timed out

--2D4A63F2C2.1700000400/mx.example.net
Content-Description: Undelivered Message
Content-Type: message/rfc822

From: smith@a.example
To: nosuch@example.net
Subject: lunch

Shall we?

--2D4A63F2C2.1700000400/mx.example.net--
""".replace(b"\n", b"\r\n")


def test_postfix_dsn_becomes_a_non_delivery_report() -> None:
    report = dsn_to_report(
        POSTFIX_DSN,
        mail_to_or=mail_to_or,
        subject_id=f"{A};m1",
        recipients=[KAY, mail_to_or("nosuch@example.net")],
        content_return_requested=True,
        mail_to_content=lambda m: m,
    )
    # The delayed recipient is left out: X.400 has no delay report.
    (nosuch,) = report.recipients
    assert nosuch.actual_recipient == "/C=GB/ADMD= /PRMD=EXAMPLE.NET/S=Nosuch/"
    assert nosuch.originally_specified_number == 2
    assert (nosuch.reason, nosuch.diagnostic) == (1, 0)
    assert nosuch.arrival == T0
    assert (
        nosuch.supplementary is not None
        and "User unknown in local recipient table" in nosuch.supplementary
    )
    assert report.returned_content is not None and b"Subject: lunch\r\n" in report.returned_content


def test_an_x400_orcpt_names_the_recipient_exactly() -> None:
    dsn = POSTFIX_DSN.replace(
        b"Original-Recipient: rfc822;nosuch@example.net",
        b"Original-Recipient: x400;" + JONES.encode(),
    )
    report = dsn_to_report(dsn, mail_to_or=mail_to_or, subject_id=f"{A};m1")
    assert report.recipients[0].actual_recipient == JONES
    # As an MTA that keeps ORCPT in xtext writes it (RFC 3464 §2.3.1): the same recipient.
    encoded = POSTFIX_DSN.replace(
        b"Original-Recipient: rfc822;nosuch@example.net",
        b"Original-Recipient: x400;" + encode_xtext(JONES).encode(),
    )
    report = dsn_to_report(encoded, mail_to_or=mail_to_or, subject_id=f"{A};m1")
    assert report.recipients[0].actual_recipient == JONES


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (
            (b"multipart/report; report-type=delivery-status", b"multipart/mixed"),
            "not multipart/report",
        ),
        ((b"report-type=delivery-status", b"report-type=disposition-notification"), "report-type"),
        ((b"Status: 5.1.1", b"Status: bounced"), r"block 1: Status 'bounced'"),
        ((b"Action: failed", b"X-Action: failed"), r"block 1: Final-Recipient, Action and Status"),
        ((b"Final-Recipient: rfc822; nosuch", b"Final-Recipient: nosuch"), "address-type; address"),
        ((b"Action: failed", b"Action: exploded"), "Action 'exploded'"),
        ((b"Action: failed", b"Action: delayed"), "only delays"),
    ],
)
def test_dsns_that_cannot_be_read_are_refused_by_name(
    change: tuple[bytes, bytes], match: str
) -> None:
    with pytest.raises(DSNError, match=match):
        dsn_to_report(POSTFIX_DSN.replace(*change), mail_to_or=mail_to_or, subject_id="x")


# --- the status code table -----------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "diagnostic", "status"),
    [
        (1, 0, "5.1.1"),
        (1, 1, "5.1.4"),
        (1, 3, "5.4.6"),
        (0, 5, "5.4.7"),
        (1, 7, "5.3.4"),
        (2, 8, "5.6.3"),
        (1, 15, "5.6.1"),
        (5, None, "5.7.1"),
        (0, None, "5.4.0"),
        (4, 33, "5.1.0"),  # a physical delivery diagnostic without its own code
        (1, 99, "5.4.4"),  # an unknown diagnostic: the reason speaks
    ],
)
def test_status_for_reason_and_diagnostic(reason: int, diagnostic: int | None, status: str) -> None:
    assert status_for(reason, diagnostic) == status


def test_every_code_is_a_permanent_failure() -> None:
    assert all(s.startswith("5.") for s in [*DIAGNOSTIC_STATUS.values(), *REASON_STATUS.values()])


@pytest.mark.parametrize("pair", sorted(set(_CODES.values()), key=str))
def test_waypost_report_codes_survive_the_crossing(pair: tuple[int, int | None]) -> None:
    # Each (reason, diagnostic) Waypost's own reports use crosses to a status and back.
    assert codes_for(status_for(*pair)) == pair


@pytest.mark.parametrize(
    ("header", "kind"),
    [
        (b"Content-Type: multipart/report; report-type=delivery-status; b=x", "delivery-status"),
        (
            b"Content-Type: Multipart/REPORT;\r\n report-type=disposition-notification",
            "disposition-notification",
        ),
        (b"Subject: the report of the quarter\r\nContent-Type: text/plain", None),
        (b"Content-Type: multipart/mixed; boundary=report", None),
        (b"Content-Type: text/plain", None),
    ],
)
def test_report_kind_reads_the_content_type_only(header: bytes, kind: str | None) -> None:
    # A DSN or an MDN is told by its Content-Type (RFC 6522 §3), wherever else the word
    # "report" appears; mail without the word anywhere is told apart without parsing.
    assert report_kind(header + b"\r\n\r\nbody\r\n") == kind
