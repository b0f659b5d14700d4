"""The pieces of local submission on their own: the maildrop file's format and limits, the
message pickup makes of it, and the mailq listing."""

from __future__ import annotations

import pytest

from waypost.local_submit.compose import compose
from waypost.local_submit.dropfile import DropEnvelope, DropError, decode, encode
from waypost.local_submit.showq import HEADING, mailq_lines
from waypost.store.database import QueueRow


def _decode(data: bytes) -> tuple[DropEnvelope, bytes]:
    return decode(data, max_content=100, max_recipients=2)


def test_a_file_round_trips_and_its_limits_hold() -> None:
    envelope = DropEnvelope(recipients=["bob@localhost"], sender="a@x.example", full_name="A")
    assert _decode(encode(envelope, b"hello\n")) == (envelope, b"hello\n")
    cases = {
        b"garbage": "not a maildrop file",
        b"WAYPOST-MAILDROP 1\n{no json\n": "not JSON",
        b'WAYPOST-MAILDROP 1\n{"recipients": "bob"}\n': "bad envelope",
        b'WAYPOST-MAILDROP 1\n{"recipients": [], "uid": 0}\n': "bad envelope",
        b"WAYPOST-MAILDROP 1\n" + b"[" * 100: "no envelope line",
        encode(DropEnvelope(recipients=["a@b", "c@d", "e@f"]), b""): "3 recipients",
        encode(envelope, b"x" * 101): "101 bytes is over the limit of 100",
    }
    for data, reason in cases.items():
        with pytest.raises(DropError, match=reason):
            _decode(data)


def _compose(content: bytes, **fields: object) -> tuple[list[str], str, bytes]:
    envelope = DropEnvelope(**{"recipients": [], **fields})  # type: ignore[arg-type]
    message = compose(envelope, content, uid=1000, login="joe", hostname="mx.test")
    recipients = [r.address for r in message.envelope.recipients]
    return recipients, message.envelope.originator, message.content


def test_recipients_from_the_header_with_t_and_bcc_removed() -> None:
    content = b"To: a@localhost,\n\tB <b@localhost>\nCc: c\nBcc: d@localhost\nSubject: s\n\nbody\n"
    recipients, sender, text = _compose(
        content, extract_recipients=True, recipients=["a@localhost"]
    )
    assert recipients == ["a@localhost", "b@localhost", "c@mx.test", "d@localhost"]
    assert sender == "joe@mx.test"
    assert b"Bcc" not in text and text.endswith(b"Subject: s\n\nbody\n")
    assert text.startswith(b"Received: by mx.test (Waypost, from userid 1000) id ")
    assert b"\nFrom: joe@mx.test\n" in text and b"\nDate: " in text


def test_the_header_pickup_adds_and_what_it_leaves() -> None:
    # No header at all: the added fields, then a blank line, then the text as it was.
    _, _, text = _compose(b"just text\n", recipients=["bob@localhost"], sender="")
    assert text.endswith(b"\n\njust text\n") and b"From: joe@mx.test" in text
    # CRLF text keeps CRLF; present fields are not added twice.
    crlf = (
        b"From: x@y.example\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        b"Message-ID: <m@y>\r\n\r\nb\r\n"
    )
    _, sender, text = _compose(crlf, recipients=["bob@localhost"], full_name="Joe")
    assert sender == "joe@mx.test" and text.count(b"From:") == 1 and text.count(b"Date:") == 1
    assert text.split(b"\r\n", 1)[1] == crlf
    _, sender, text = _compose(b"\n", recipients=["bob"], full_name="Joe\nX: y", sender="<>")
    assert sender == "" and b"From: JoeX: y <joe@mx.test>" not in text
    assert b'From: "JoeX: y" <joe@mx.test>' in text  # no line a user can inject


def test_what_pickup_refuses() -> None:
    for fields, reason in (
        ({"recipients": []}, "no recipients"),
        ({"recipients": [], "extract_recipients": True}, "no recipients"),
        ({"recipients": ["a b@localhost"]}, "recipient 'a b@localhost'"),
        ({"recipients": ["/C=GB/ADMD= /PRMD=P/S=S/"]}, "X.400 O/R address"),
        ({"recipients": ["bob"], "sender": "a@@b"}, "sender 'a@@b'"),
    ):
        with pytest.raises(DropError, match=reason):
            _compose(b"Subject: x\n\nx\n", **fields)


def _row(
    message_id: int, address: str, state: str = "queued", error: str | None = None
) -> QueueRow:
    return QueueRow(
        message_id=message_id,
        recipient_id=0,
        address=address,
        originator="" if message_id == 2 else "alice@example.org",
        next_hop="local",
        state=state,
        attempts=0,
        last_error=error,
        due_at=None,
        received_at=1_700_000_000.0,
        size=1500,
        report=None,
    )


def test_mailq_layout_is_postfixs() -> None:
    assert list(mailq_lines([])) == ["Mail queue is empty"]
    lines = list(
        mailq_lines(
            [
                _row(1, "bob@localhost", "deferred", "4.4.1 refused"),
                _row(1, "carol@localhost", "leased"),
                _row(2, "dave@localhost", "held"),
            ]
        )
    )
    assert lines[0] == HEADING
    assert lines[1].startswith("1*") and lines[1].endswith(" alice@example.org")
    assert lines[1].index("alice") == 41 and lines[4].index("carol") == 41
    assert lines[2:5] == [
        "(4.4.1 refused)",
        " " * 41 + "bob@localhost",
        " " * 41 + "carol@localhost",
    ]
    assert lines[6].startswith("2!") and lines[6].endswith(" MAILER-DAEMON")
    assert lines[-1] == "-- 3 Kbytes in 2 Requests."
