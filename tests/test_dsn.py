"""RFC 3464 DSNs: parsed back with the email package, field by field."""

from __future__ import annotations

import email
import email.policy
import os
from email.message import EmailMessage, Message

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.handoff import ReportKind, should_report
from waypost.message import Envelope, Notify, Recipient, ReportRequest, Ret, validate_envelope
from waypost.smtp.dsn import (
    Action,
    RecipientReport,
    build_dsn,
    dsn_envelope,
    recipient_report,
)

CONTENT = (
    b"From: Alice <alice@example.org>\r\n"
    b"To: bob@example.net\r\n"
    b"Subject: lunch\r\n"
    b"Message-ID: <m1@example.org>\r\n"
    b"\r\n"
    b"Shall we?\r\n"
    b".\r\n"
    b"-- \r\nAlice\r\n"
)
NOW = 1_700_000_000.0


def make_envelope(**kw: object) -> Envelope:
    fields: dict[str, object] = {
        "mts_id": "18bc.abcdef@mx.example.org",
        "originator": "alice@example.org",
        "recipients": [
            Recipient(address="bob@example.net", orcpt="rfc822;Bob+lunch@example.net"),
            Recipient(address="carol@example.net"),
        ],
        "arrival": NOW - 7200,
    }
    fields.update(kw)
    return Envelope(**fields)  # type: ignore[arg-type]


BOB = RecipientReport(
    address="bob@example.net",
    orcpt="rfc822;Bob+lunch@example.net",
    action=Action.FAILED,
    status="5.1.1",
    remote_mta="mx.example.net",
    diagnostic="550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown",
    last_attempt=NOW - 60,
)
CAROL = RecipientReport(
    address="carol@example.net",
    action=Action.FAILED,
    status="5.3.4",
    reason="5.3.4 message size 99999 exceeds the size limit 1000 that the server announced",
    last_attempt=NOW - 30,
)


def build(
    envelope: Envelope | None = None,
    content: bytes = CONTENT,
    kind: ReportKind = ReportKind.FAILURE,
    recipients: tuple[RecipientReport, ...] = (BOB, CAROL),
    **kw: object,
) -> bytes:
    return build_dsn(
        envelope=envelope or make_envelope(),
        content=content,
        kind=kind,
        recipients=recipients,
        reporting_mta="mx.example.org",
        now=NOW,
        **kw,  # type: ignore[arg-type]
    )


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def parts(message: Message) -> list[Message]:
    payload = message.get_payload()
    assert isinstance(payload, list)
    return [p for p in payload if isinstance(p, Message)]


def status_blocks(part: Message) -> list[Message]:
    blocks = part.get_payload()
    assert isinstance(blocks, list)
    return [b for b in blocks if isinstance(b, Message)]


# --- the report's structure ------------------------------------------------------------


def test_failure_report_structure() -> None:
    data = build()
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF throughout
    message = parse(data)
    assert message.get_content_type() == "multipart/report"
    assert message.get_param("report-type") == "delivery-status"
    assert b'\r\nFrom: "Mail Delivery System" <MAILER-DAEMON@mx.example.org>\r\n' in data
    [sender] = message["From"].addresses
    assert sender.display_name == "Mail Delivery System"
    assert sender.addr_spec == "MAILER-DAEMON@mx.example.org"
    assert [a.addr_spec for a in message["To"].addresses] == ["alice@example.org"]
    assert message["Subject"] == "Undelivered Mail Returned to Sender"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["MIME-Version"] == "1.0"
    assert message["Date"] == "Tue, 14 Nov 2023 22:13:20 +0000"
    assert message["Message-ID"].startswith("<") and message["Message-ID"].endswith(
        "@mx.example.org>"
    )
    text, status, returned = parts(message)
    assert text.get_content_type() == "text/plain"
    assert status.get_content_type() == "message/delivery-status"
    assert returned.get_content_type() == "message/rfc822"
    assert data.isascii()


def test_human_readable_part() -> None:
    text = parts(parse(build()))[0]
    assert isinstance(text, EmailMessage)
    body = text.get_content().replace("\r\n", "\n")
    assert body.startswith("This is the mail system at host mx.example.org.\n")
    flat = " ".join(body.split())
    assert "could not be delivered" in flat
    assert "your message is attached" in flat
    assert (
        "<bob@example.net> (originally <Bob+lunch@example.net>): host mx.example.net said:"
        " 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown"
    ) in flat
    assert "<carol@example.net>: 5.3.4 message size 99999 exceeds the size limit" in flat
    assert all(len(line) <= 76 for line in body.splitlines())


def test_delivery_status_fields() -> None:
    per_message, bob, carol = status_blocks(
        parts(parse(build(make_envelope(envid="lunch 42=x"))))[1]
    )
    assert per_message["Reporting-MTA"] == "dns; mx.example.org"
    assert per_message["Original-Envelope-Id"] == "lunch+2042+3Dx"  # the xtext form
    assert per_message["Arrival-Date"] == "Tue, 14 Nov 2023 20:13:20 +0000"
    assert per_message["X-Waypost-Queue-ID"] == "18bc.abcdef@mx.example.org"
    assert bob["Original-Recipient"] == "rfc822;Bob+2Blunch@example.net"
    assert bob["Final-Recipient"] == "rfc822; bob@example.net"
    assert bob["Action"] == "failed"
    assert bob["Status"] == "5.1.1"
    assert bob["Remote-MTA"] == "dns; mx.example.net"
    assert bob["Diagnostic-Code"] == (
        "smtp; 550 5.1.1 <bob@example.net>: Recipient address rejected: User unknown"
    )
    assert bob["Last-Attempt-Date"] == "Tue, 14 Nov 2023 22:12:20 +0000"
    assert bob["Will-Retry-Until"] is None
    assert carol["Original-Recipient"] is None
    assert carol["Remote-MTA"] is None
    assert carol["Diagnostic-Code"].startswith("X-Waypost; 5.3.4 message size")


def test_no_envelope_id_no_arrival() -> None:
    per_message = status_blocks(parts(parse(build(make_envelope(arrival=0.0))))[1])[0]
    assert per_message["Original-Envelope-Id"] is None
    assert per_message["Arrival-Date"] is None


def test_delay_report() -> None:
    delayed = RecipientReport(
        address="bob@example.net",
        action=Action.DELAYED,
        status="4.4.1",
        reason="connect to mx.example.net[192.0.2.1]:25: Connection timed out",
        last_attempt=NOW - 60,
        will_retry_until=NOW + 5 * 86400,
    )
    message = parse(
        build(kind=ReportKind.DELAY, recipients=(delayed,), envelope=make_envelope(ret=Ret.FULL))
    )
    assert message["Subject"] == "Delayed Mail (still being retried)"
    text, status, returned = parts(message)
    assert isinstance(text, EmailMessage)
    body = " ".join(text.get_content().split())
    assert "WARNING ONLY" in body and "for 2.0 hours" in body
    assert "tried again until Sun, 19 Nov 2023 22:13:20 +0000" in body
    block = status_blocks(status)[1]
    assert block["Action"] == "delayed"
    assert block["Will-Retry-Until"] == "Sun, 19 Nov 2023 22:13:20 +0000"
    # Only the headers, even with RET=FULL: RET is about failure reports.
    assert returned.get_content_type() == "text/rfc822-headers"


def test_success_report() -> None:
    reports = (
        RecipientReport(address="bob@example.net", action=Action.DELIVERED, status="2.0.0"),
        RecipientReport(
            address="carol@example.net",
            action=Action.RELAYED,
            status="2.0.0",
            remote_mta="legacy.example.net",
            diagnostic="250 2.0.0 queued as 1234",
        ),
    )
    message = parse(build(kind=ReportKind.SUCCESS, recipients=reports))
    assert message["Subject"] == "Successful Mail Delivery Report"
    _, status, returned = parts(message)
    assert [b["Action"] for b in status_blocks(status)[1:]] == ["delivered", "relayed"]
    assert returned.get_content_type() == "text/rfc822-headers"


# --- what is returned -------------------------------------------------------------------


def returned_bytes(data: bytes) -> bytes:
    """The raw body of the third part."""
    message = parse(data)
    boundary = message.get_boundary()
    assert boundary is not None
    third = data.split(b"--" + boundary.encode())[3]
    return third.split(b"\r\n\r\n", 1)[1][: -len(b"\r\n")]


def test_ret_hdrs_returns_only_the_header_section() -> None:
    data = build(make_envelope(ret=Ret.HDRS))
    returned = parts(parse(data))[2]
    assert returned.get_content_type() == "text/rfc822-headers"
    raw = returned_bytes(data)
    assert raw == CONTENT.split(b"\r\n\r\n")[0] + b"\r\n"
    assert b"Shall we?" not in data
    text = parts(parse(data))[0]
    assert isinstance(text, EmailMessage)
    assert "its headers are attached" in " ".join(text.get_content().split())


@pytest.mark.parametrize("ret", [Ret.FULL, None])
def test_ret_full_or_absent_returns_the_whole_message(ret: Ret | None) -> None:
    data = build(make_envelope(ret=ret))
    returned = parts(parse(data))[2]
    assert returned.get_content_type() == "message/rfc822"
    assert returned_bytes(data) == CONTENT
    [inner] = parts(returned)
    assert inner["Subject"] == "lunch"


def test_a_message_over_the_limit_is_returned_as_its_headers() -> None:
    big = CONTENT + b"x" * 5000 + b"\r\n"
    data = build(content=big, return_limit=1000)
    assert parts(parse(data))[2].get_content_type() == "text/rfc822-headers"
    assert b"x" * 100 not in data
    text = parts(parse(data))[0]
    assert isinstance(text, EmailMessage)
    assert "larger than 1000 bytes" in " ".join(text.get_content().split())


def test_returned_content_gets_crlf_and_a_final_newline() -> None:
    data = build(content=b"Subject: x\n\nbare\nlf")
    assert returned_bytes(data) == b"Subject: x\r\n\r\nbare\r\nlf\r\n"


def test_binary_content_is_returned_as_headers() -> None:
    data = build(make_envelope(body="BINARYMIME"), content=b"Subject: x\r\n\r\n\x00\x01\x02")
    assert parts(parse(data))[2].get_content_type() == "text/rfc822-headers"


def test_eight_bit_content_keeps_the_rest_seven_bit() -> None:
    content = "Subject: caf\u00e9\r\n\r\nd\u00e9j\u00e0 vu\r\n".encode()
    data = build(content=content)
    message = parse(data)
    assert message["Content-Transfer-Encoding"] == "8bit"
    returned = parts(message)[2]
    assert returned.get_content_type() == "message/rfc822"
    assert returned["Content-Transfer-Encoding"] == "8bit"
    assert returned_bytes(data) == content
    boundary = message.get_boundary()
    assert boundary is not None
    before_returned = data[: data.index(b"Content-Description: Undelivered Message")]
    assert before_returned.isascii()


def test_non_ascii_diagnostic_without_smtputf8_stays_seven_bit() -> None:
    report = RecipientReport(
        address="bob@example.net",
        action=Action.FAILED,
        status="5.0.0",
        diagnostic="550 non, d\u00e9sol\u00e9",
    )
    data = build(recipients=(report,))
    assert data.isascii()
    text, status, _ = parts(parse(data))
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert isinstance(text, EmailMessage)
    assert "550 non, d\u00e9sol\u00e9" in text.get_content()
    assert status_blocks(status)[1]["Diagnostic-Code"] == "smtp; 550 non, d?sol?"


def test_smtputf8_uses_the_global_types() -> None:
    envelope = make_envelope(
        originator="j\u00f6rg@example.org",
        smtputf8=True,
        recipients=[Recipient(address="\u00e5sa@example.se")],
    )
    report = RecipientReport(
        address="\u00e5sa@example.se",
        orcpt="rfc822;\u00c5sa@example.se",
        action=Action.FAILED,
        status="5.1.1",
        diagnostic="550 5.1.1 \u00e5sa: ok\u00e4nd",
    )
    content = "Subject: \u00e5\r\n\r\nhej\r\n".encode()
    data = build(envelope, content=content, recipients=(report,))
    message = parse(data)
    assert message.get_param("report-type") == "global-delivery-status"
    assert b"\r\nTo: <j\xc3\xb6rg@example.org>\r\n" in data
    text, status, returned = parts(message)
    assert status.get_content_type() == "message/global-delivery-status"
    assert returned.get_content_type() == "message/global"
    assert text.get_content_charset() == "utf-8"
    # The email package does not know message/global-delivery-status: read it by hand.
    body = data.split(b"message/global-delivery-status\r\n")[1].split(b"\r\n\r\n", 1)[1]
    fields = body.decode().split("\r\n--")[0]
    assert "Final-Recipient: utf-8; \u00e5sa@example.se\r\n" in fields
    assert "Original-Recipient: utf-8;\u00c5sa@example.se\r\n" in fields
    assert "Diagnostic-Code: smtp; 550 5.1.1 \u00e5sa: ok\u00e4nd\r\n" in fields
    headers_only = build(make_envelope(smtputf8=True, ret=Ret.HDRS))
    assert parts(parse(headers_only))[2].get_content_type() == "message/global-headers"


def test_non_ascii_addresses_without_smtputf8_use_utf8_addr_xtext() -> None:
    report = RecipientReport(
        address="\u00e5sa@example.se",
        orcpt="rfc822;\u00c5sa+1@example.se",
        action=Action.FAILED,
        status="5.1.1",
    )
    data = build(recipients=(report,))
    block = status_blocks(parts(parse(data))[1])[1]
    assert block["Final-Recipient"] == "utf-8; \\x{E5}sa@example.se"
    assert block["Original-Recipient"] == "utf-8;\\x{C5}sa\\x{2B}1@example.se"


def test_the_boundary_is_not_in_the_content(monkeypatch: pytest.MonkeyPatch) -> None:
    first = "=_waypost_" + "00" * 12
    content = CONTENT + f"--{first}\r\n".encode()
    draws = iter([b"\x00" * 12, b"\x01" * 12])
    real = os.urandom
    monkeypatch.setattr(os, "urandom", lambda n: next(draws) if n == 12 else real(n))
    message = parse(build(content=content))
    assert message.get_boundary() == "=_waypost_" + "01" * 12
    assert len(parts(message)) == 3


def test_header_injection_is_neutralised() -> None:
    envelope = make_envelope(originator="alice@example.org\r\nBcc: victim@example.com")
    report = RecipientReport(
        address="bob@example.net\r\nAction: delivered",
        action=Action.FAILED,
        status="5.1.1",
        remote_mta="mx\r\nX-Evil: 1",
        diagnostic="550 no\r\n\r\nStatus: 2.0.0",
    )
    message = parse(
        build_dsn(
            envelope=envelope,
            content=CONTENT,
            kind=ReportKind.FAILURE,
            recipients=[report],
            reporting_mta="mx.example.org\r\nBcc: x@y",
            now=NOW,
        )
    )
    assert message["Bcc"] is None
    blocks = status_blocks(parts(message)[1])
    assert len(blocks) == 2
    assert blocks[1]["Action"] == "failed" and blocks[1]["Status"] == "5.1.1"
    assert blocks[1]["X-Evil"] is None


def test_long_diagnostics_are_folded_and_cut() -> None:
    report = RecipientReport(
        address="bob@example.net",
        action=Action.FAILED,
        status="5.0.0",
        diagnostic="550 " + " ".join(["word"] * 2000) + " " + "y" * 3000,
    )
    data = build(recipients=(report,))
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    code = status_blocks(parts(parse(data))[1])[1]["Diagnostic-Code"]
    assert code.startswith("smtp; 550 word word") and code.endswith(" ...")


def test_build_refuses_what_cannot_be_reported() -> None:
    with pytest.raises(ValueError):
        build(make_envelope(originator=""))
    with pytest.raises(ValueError):
        build(recipients=())


@pytest.mark.parametrize(
    ("action", "status"),
    [
        (Action.FAILED, "4.0.0"),
        (Action.DELAYED, "5.0.0"),
        (Action.DELIVERED, "5.1.1"),
        (Action.FAILED, "5.1"),
    ],
)
def test_recipient_report_validates(action: Action, status: str) -> None:
    with pytest.raises(ValueError):
        RecipientReport(address="x@y", action=action, status=status)


def test_recipient_report_from_a_detail() -> None:
    remote = recipient_report(
        address="b@x", action=Action.FAILED, detail="550 5.1.1 <b@x>: unknown", remote_mta="mx"
    )
    assert (remote.status, remote.diagnostic, remote.reason) == (
        "5.1.1",
        "550 5.1.1 <b@x>: unknown",
        "",
    )
    local = recipient_report(address="b@x", action=Action.DELAYED, detail="4.4.2 connection lost")
    assert (local.status, local.diagnostic, local.reason) == (
        "4.4.2",
        None,
        "4.4.2 connection lost",
    )
    expired = recipient_report(address="b@x", action=Action.FAILED, detail="451 4.3.0 try later")
    assert expired.status == "5.3.0"
    plain = recipient_report(address="b@x", action=Action.FAILED, detail="554 no")
    assert plain.status == "5.0.0" and plain.diagnostic == "554 no"
    given_status = recipient_report(
        address="b@x", action=Action.FAILED, detail="451 4.3.0 later", status="5.4.7"
    )
    assert given_status.status == "5.4.7"


# --- who gets a report ----------------------------------------------------------------


def test_never_for_a_null_reverse_path_or_a_report() -> None:
    recipient = Recipient(address="bob@example.net", notify=[Notify.FAILURE])
    for envelope in (make_envelope(originator=""), make_envelope(is_report=True)):
        assert not any(should_report(envelope, recipient, kind) for kind in ReportKind)


@pytest.mark.parametrize(
    ("notify", "expected"),
    [
        ([Notify.NEVER], set()),
        ([Notify.SUCCESS], {ReportKind.SUCCESS}),
        ([Notify.FAILURE], {ReportKind.FAILURE}),
        ([Notify.DELAY], {ReportKind.DELAY}),
        ([Notify.FAILURE, Notify.DELAY], {ReportKind.FAILURE, ReportKind.DELAY}),
        ([Notify.SUCCESS, Notify.FAILURE, Notify.DELAY], set(ReportKind)),
        ([], {ReportKind.FAILURE}),
    ],
)
def test_notify_decides(notify: list[Notify], expected: set[ReportKind]) -> None:
    recipient = Recipient(address="bob@example.net", notify=notify)
    assert {k for k in ReportKind if should_report(make_envelope(), recipient, k)} == expected


def test_without_notify() -> None:
    envelope = make_envelope()
    plain = Recipient(address="bob@example.net")
    assert should_report(envelope, plain, ReportKind.DELAY, delay_without_notify=True)
    assert not should_report(envelope, plain, ReportKind.SUCCESS)
    silent = Recipient(address="bob@example.net", report_request=ReportRequest.NONE)
    assert not any(
        should_report(envelope, silent, k, delay_without_notify=True) for k in ReportKind
    )
    x400 = Recipient(address="bob@example.net", report_request=ReportRequest.ALWAYS)
    assert should_report(envelope, x400, ReportKind.SUCCESS)
    # NOTIFY, when present, wins over the X.400 report request.
    both = Recipient(address="b@x", report_request=ReportRequest.ALWAYS, notify=[Notify.FAILURE])
    assert not should_report(envelope, both, ReportKind.SUCCESS)


# --- the DSN's own envelope -----------------------------------------------------------


def test_dsn_envelope() -> None:
    original = make_envelope(ret=Ret.FULL, envid="x")
    envelope = dsn_envelope(
        original, mts_id="dsn1@mx.example.org", to="alice@example.org", arrival=NOW
    )
    validate_envelope(envelope)
    assert envelope.originator == ""
    assert envelope.is_report
    assert envelope.mts_id == "dsn1@mx.example.org"
    assert envelope.arrival == NOW
    assert envelope.ret is None and envelope.envid is None
    [recipient] = envelope.recipients
    assert recipient.address == "alice@example.org"
    assert recipient.notify == [Notify.NEVER]
    assert recipient.report_request is ReportRequest.NONE
    assert not any(
        should_report(envelope, recipient, k, delay_without_notify=True) for k in ReportKind
    )
    assert not envelope.smtputf8 and envelope.body is None


def test_dsn_envelope_keeps_smtputf8_and_8bit() -> None:
    envelope = dsn_envelope(make_envelope(smtputf8=True), mts_id="d", to="j\u00f6rg@example.org")
    assert envelope.smtputf8 and envelope.body == "8BITMIME"
    envelope = dsn_envelope(make_envelope(body="8BITMIME"), mts_id="d", to="a@example.org")
    assert not envelope.smtputf8 and envelope.body == "8BITMIME"
    with pytest.raises(ValueError):
        dsn_envelope(make_envelope(), mts_id="d", to="")


# --- fuzzing ---------------------------------------------------------------------------

_texts = st.text(st.characters(codec="utf-8"), max_size=120)
reports = st.builds(
    RecipientReport,
    address=st.text(min_size=1, max_size=60),
    action=st.just(Action.FAILED),
    status=st.sampled_from(["5.0.0", "5.1.1", "5.7.1"]),
    orcpt=st.none() | st.text(max_size=60),
    remote_mta=st.none() | st.text(max_size=40),
    diagnostic=st.none() | _texts,
    reason=_texts,
    last_attempt=st.none() | st.floats(1, 4e9),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(reports, min_size=1, max_size=8),
    st.binary(max_size=300),
    st.sampled_from([None, Ret.FULL, Ret.HDRS]),
    st.none() | _texts,
    st.booleans(),
)
def test_random_reports_always_parse(
    recipients: list[RecipientReport],
    content: bytes,
    ret: Ret | None,
    envid: str | None,
    utf8: bool,
) -> None:
    envelope = make_envelope(ret=ret, envid=envid, smtputf8=utf8)
    data = build_dsn(
        envelope=envelope,
        content=content,
        kind=ReportKind.FAILURE,
        recipients=recipients,
        reporting_mta="mx.example.org",
        now=NOW,
    )
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/report"
    boundary = message.get_boundary()
    assert boundary is not None and boundary.encode() not in content
    _, status, _ = parts(message)
    # Read the delivery-status fields by hand, so that both types are checked alike.
    raw = data.split(b"--" + boundary.encode())[2].split(b"\r\n\r\n", 1)[1]
    blocks = [b for b in raw.decode().split("\r\n\r\n") if b.strip()]
    assert len(blocks) == 1 + len(recipients)
    for block, report in zip(blocks[1:], recipients, strict=True):
        fields = [line for line in block.split("\r\n") if not line.startswith(" ")]
        names = [line.split(":", 1)[0] for line in fields]
        assert names.count("Final-Recipient") == 1 and "Action" in names
        assert f"Status: {report.status}" in fields
    if utf8:
        assert status.get_content_type() == "message/global-delivery-status"
    else:
        assert len(status_blocks(status)) == 1 + len(recipients)
        before_returned = data[
            : data.index(b"--" + boundary.encode(), data.index(b"Delivery report"))
        ]
        assert before_returned.isascii()
