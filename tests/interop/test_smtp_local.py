"""Mail into the local store over real SMTP: swaks, raw sockets; loops, smuggling, full disks."""

from __future__ import annotations

import smtplib
from collections.abc import Callable

import pytest
from interop_helpers import RawSmtp, Waypost, swaks, wait_for, waypost_received

pytestmark = pytest.mark.interop


def test_swaks_pipelined_message_lands_in_the_maildir(
    make_waypost: Callable[..., Waypost],
) -> None:
    wp = make_waypost()
    result = swaks(
        wp.port,
        "--pipeline",
        "--from",
        "alice@localhost",
        "--to",
        "bob@localhost",
        "--header",
        "Subject: interop 1",
        "--body",
        "Hello over a pipeline.",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    transcript = result.stdout
    assert "<-  250-PIPELINING" in transcript
    # swaks pipelined MAIL, RCPT and DATA: all three went out before the first reply.
    sent_before_reply = transcript.split("<-  250 2.1.0")[0]
    assert " -> RCPT TO:<bob@localhost>" in sent_before_reply
    assert " -> DATA" in sent_before_reply
    assert "<-  250 2.0.0 Ok: queued as " in transcript

    files = wait_for(lambda: wp.maildir("bob"), 10, "delivery to bob's Maildir")
    assert len(files) == 1
    msg = wp.message(files[0])
    assert msg["Return-Path"] == "<alice@localhost>"
    assert msg["Delivered-To"] == "bob@localhost"
    received = waypost_received(msg)
    assert len(received) == 1, msg.get_all("Received")
    assert received[0].startswith("from client.test ([127.0.0.1])")
    assert "by mx.test (Waypost) with ESMTP id " in received[0]
    assert "for <bob@localhost>" in received[0]
    assert msg["Subject"] == "interop 1"
    assert "Hello over a pipeline." in msg.get_content()
    wp.wait_queue_empty()


def test_too_many_received_fields_is_a_loop(make_waypost: Callable[..., Waypost]) -> None:
    wp = make_waypost()
    trace = "".join(
        f"Received: from hop{i}.example by hop{i + 1}.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        for i in range(60)
    )
    message = trace + "Subject: loop\r\n\r\nround and round\r\n"
    with smtplib.SMTP("127.0.0.1", wp.port, timeout=10) as client:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail("alice@localhost", ["bob@localhost"], message)
        assert refused.value.smtp_code == 554
        assert refused.value.smtp_error.startswith(b"5.4.6")
        # The session goes on.
        assert client.noop()[0] == 250
    lines = wp.wait_event(1706)
    assert "alice@localhost" in lines[0] and "554 5.4.6" in lines[0]
    assert wp.maildir("bob") == []
    assert "-- 0 recipients" in wp.queue_list()


# A body that ends early for a receiver that takes a bare LF (or CR) as a line end, and
# smuggles a second transaction behind it; the real end of data follows.
SMUGGLED_TAIL = (
    b"MAIL FROM:<evil@x>\r\n"
    b"RCPT TO:<victim@localhost>\r\n"
    b"DATA\r\n"
    b"From: evil@x\r\nSubject: smuggled\r\n\r\nYou have been smuggled.\r\n"
)


FAKE_ENDS = {
    "LF.LF": b"\n.\n",
    "CRLF.LF": b"\r\n.\n",
    "LF.CRLF": b"\n.\r\n",
    "CR.CR": b"\r.\r",
    "CRLF.CR": b"\r\n.\r",
    "CR.CRLF": b"\r.\r\n",
}


def test_smtp_smuggling_is_refused_whole(make_waypost: Callable[..., Waypost]) -> None:
    wp = make_waypost()
    for name, fake_end in FAKE_ENDS.items():
        with RawSmtp(wp.port) as raw:
            assert raw.reply()[0] == 220
            assert raw.command("EHLO client.test")[0] == 250
            raw.send(b"MAIL FROM:<alice@localhost>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
            assert raw.reply()[0] == 250
            assert raw.reply()[0] == 250
            assert raw.reply()[0] == 354
            raw.send(
                b"From: alice@localhost\r\nSubject: innocent\r\n\r\nHello."
                + fake_end
                + SMUGGLED_TAIL
                + b"\r\n.\r\n"
            )
            code, text = raw.reply()
            assert (code, text[:6]) == (550, "5.6.11"), (name, code, text)
            # Exactly one reply to the whole thing: the smuggled lines were never commands.
            code, text = raw.command("QUIT")
            assert code == 221, f"{name}: an extra reply: {code} {text}"
            assert raw.closed_by_peer()
    assert len(wp.events(1703)) == len(FAKE_ENDS), "each violation is logged"
    assert not wp.events(1700), "nothing was accepted"
    assert wp.all_maildir_files() == []
    assert "-- 0 recipients" in wp.queue_list()
    assert wp.maildir("victim") == [] and wp.maildir("bob") == []


def test_low_disk_space_refuses_mail_at_mail_from(make_waypost: Callable[..., Waypost]) -> None:
    wp = make_waypost(settings={"smtp": {"min_free_space": 2**50}})
    with smtplib.SMTP("127.0.0.1", wp.port, timeout=10) as client:
        client.ehlo("client.test")
        code, text = client.mail("alice@localhost")
        assert code == 452 and text.startswith(b"4.3.1"), (code, text)
        code, _ = client.rcpt("bob@localhost")
        assert code == 503, "no transaction was opened"
    lines = wp.wait_event(1705)
    assert "452 4.3.1" in lines[0]
    assert "-- 0 recipients" in wp.queue_list()
