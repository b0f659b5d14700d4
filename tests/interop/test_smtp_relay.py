"""Relaying to a real next hop (Postfix's smtp-sink) that accepts, refuses and hangs up."""

from __future__ import annotations

import collections
import email.message
import smtplib
import subprocess
from collections.abc import Callable

import pytest
from interop_helpers import (
    SMTP_SOURCE,
    RawSmtp,
    SmtpSink,
    Waypost,
    require_tool,
    wait_for,
    waypost_received,
)

pytestmark = pytest.mark.interop

MESSAGE = (
    "From: alice@localhost\r\n"
    "To: x@remote.example\r\n"
    "Subject: {subject}\r\n"
    "Message-ID: <{subject}@client.test>\r\n"
    "\r\n"
    "Body of {subject}.\r\n"
)


def send(
    wp: Waypost,
    subject: str,
    *,
    sender: str = "alice@localhost",
    to: str = "x@remote.example",
    mail_options: tuple[str, ...] = (),
    rcpt_options: tuple[str, ...] = (),
) -> None:
    with smtplib.SMTP("127.0.0.1", wp.port, timeout=10) as client:
        client.ehlo("client.test")
        refused = client.sendmail(
            sender,
            [to],
            MESSAGE.format(subject=subject),
            mail_options=list(mail_options),
            rcpt_options=list(rcpt_options),
        )
        assert refused == {}


def relay_to(make_waypost: Callable[..., Waypost], sink: SmtpSink) -> Waypost:
    return make_waypost(routes=[("remote.example", sink.next_hop)])


def dsn_parts(msg: email.message.EmailMessage) -> tuple[list[dict[str, str]], object]:
    """The per-recipient fields of a delivery-status report, and its third part."""
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts][:2] == ["text/plain", "message/delivery-status"]
    blocks = [dict(block.items()) for block in parts[1].get_payload()]
    return blocks[1:], parts[2] if len(parts) > 2 else None


def test_smtp_source_burst_is_relayed_to_smtp_sink(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    source = require_tool(SMTP_SOURCE)
    sink = make_sink()
    wp = relay_to(make_waypost, sink)
    result = subprocess.run(
        [
            source,
            "-s",
            "5",
            "-m",
            "100",
            "-l",
            "1024",
            "-f",
            "a@src.example",
            "-t",
            "x@remote.example",
            f"127.0.0.1:{wp.port}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(wp.events(1700)) == 100
    wp.wait_queue_empty(timeout=30)
    dumps = sink.dumps()
    assert len(dumps) == 100
    for dump in dumps:
        assert dump.mail_args.startswith("<a@src.example>")
        assert [r.split()[0] for r in dump.rcpt_args] == ["<x@remote.example>"]
        received = waypost_received(dump.message())
        assert len(received) == 1, dump.path
        assert "for <x@remote.example>" in received[0]
    ids = collections.Counter(d.message()["Message-Id"] for d in dumps)
    assert len(ids) == 100, [i for i, n in ids.items() if n > 1]
    assert len(wp.events(1500)) == 100


def test_hard_bounce_returns_a_dsn_to_the_local_originator(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    sink = make_sink("-f", "RCPT", "-B", "550 5.1.1 no such user")
    wp = relay_to(make_waypost, sink)
    send(wp, "hard-bounce")
    files = wait_for(lambda: wp.maildir("alice"), 15, "a DSN in alice's Maildir")
    assert len(files) == 1
    dsn = wp.message(files[0])
    assert dsn["Return-Path"] == "<>"
    assert [a.addr_spec for a in dsn["To"].addresses] == ["alice@localhost"]
    recipients, returned = dsn_parts(dsn)
    assert len(recipients) == 1
    block = recipients[0]
    assert block["Action"] == "failed"
    assert block["Status"] == "5.1.1"
    assert block["Final-Recipient"].replace(" ", "") == "rfc822;x@remote.example"
    assert "550 5.1.1 no such user" in block["Diagnostic-Code"]
    assert block["Diagnostic-Code"].startswith("smtp;")
    # The whole original message comes back.
    assert isinstance(returned, email.message.EmailMessage)
    assert returned.get_content_type() == "message/rfc822"
    original = returned.get_content()
    assert original["Subject"] == "hard-bounce"
    assert "Body of hard-bounce." in original.get_content()
    assert wp.events(1402) and wp.events(1711)
    assert sink.messages() == []
    wp.wait_queue_empty()


def test_soft_bounce_defers_then_delivers(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    sink = make_sink("-r", "RCPT")
    wp = relay_to(make_waypost, sink)
    send(wp, "soft-bounce")
    wp.wait_event(1400)
    listing = wp.queue_list()
    assert "deferred" in listing and "x@remote.example" in listing
    assert "450 4.3.0" in listing, listing
    assert wp.maildir("alice") == [], "no DSN for a deferral"
    sink.stop()
    sink.start(dump_dir=sink.dir / "normal")
    wp.wait_queue_empty(timeout=15)
    dumps = sink.dumps(sink.dir / "normal")
    assert [d.message()["Subject"] for d in dumps] == ["soft-bounce"]
    assert sink.messages() == [], "the refusing sink never got as far as the message"
    assert wp.maildir("alice") == []
    assert not wp.events(1711)


@pytest.mark.parametrize(
    "fault",
    [("-q", "DATA"), ("-Q", "."), ("-q", ".")],
    ids=["q-DATA", "Q-dot", "q-dot"],
)
def test_disconnects_defer_and_nothing_is_lost(
    make_waypost: Callable[..., Waypost],
    make_sink: Callable[..., SmtpSink],
    fault: tuple[str, str],
) -> None:
    sink = make_sink(*fault)
    wp = relay_to(make_waypost, sink)
    subjects = [f"disconnect-{i}" for i in range(3)]
    for subject in subjects:
        send(wp, subject)
    wait_for(lambda: len(wp.events(1400)) >= 3, 15, "every message deferred at least once")
    rows = wp.queue_rows()
    assert len(rows) == 3 and {r[2] for r in rows} <= {"deferred", "queued", "leased"}, rows
    sink.stop()
    faulty = sink.messages()  # -Q . dumps what it then refused with 421
    sink.start(dump_dir=sink.dir / "normal")
    wp.wait_queue_empty(timeout=15)
    delivered = collections.Counter(d.message()["Subject"] for d in sink.dumps(sink.dir / "normal"))
    assert set(delivered) == set(subjects), delivered
    duplicates = {s: n for s, n in delivered.items() if n > 1}
    # At least once: duplicates are allowed, but reported. With -q . the faulty sink got
    # the whole message and hung up without a reply: Waypost cannot know it arrived, so
    # it is sent again (one copy per faulty attempt is the expected duplication).
    print(
        f"\n{' '.join(fault)}: {len(faulty)} message(s) dumped by the faulty sink, "
        f"{sum(delivered.values())} delivered after recovery, duplicates {duplicates or 'none'}"
    )
    assert not duplicates, "the healthy sink got a message twice"
    assert wp.maildir("alice") == [], "no DSN: nothing failed"


def test_notify_success_is_passed_on_to_a_dsn_capable_hop(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    sink = make_sink()
    wp = relay_to(make_waypost, sink)
    send(
        wp,
        "notify-success",
        mail_options=("RET=HDRS", "ENVID=abc123"),
        rcpt_options=("NOTIFY=SUCCESS", "ORCPT=rfc822;x@remote.example"),
    )
    wp.wait_queue_empty()
    (dump,) = sink.dumps()
    mail_args = dump.mail_args.split()
    assert "RET=HDRS" in mail_args and "ENVID=abc123" in mail_args, dump.mail_args
    (rcpt,) = dump.rcpt_args
    rcpt_args = rcpt.split()
    assert rcpt_args[0] == "<x@remote.example>"
    assert "NOTIFY=SUCCESS" in rcpt_args, rcpt
    assert "ORCPT=rfc822;x@remote.example" in rcpt_args, rcpt
    # The queue is empty: any report would have been queued and delivered locally by now.
    assert wp.maildir("alice") == [], "the next hop reports success; Waypost must not"
    assert not wp.events(1711)


def test_notify_success_to_a_hop_without_dsn_gets_a_relayed_report(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    sink = make_sink("-N")
    wp = relay_to(make_waypost, sink)
    send(
        wp,
        "notify-relayed",
        mail_options=("RET=HDRS", "ENVID=abc123"),
        rcpt_options=("NOTIFY=SUCCESS", "ORCPT=rfc822;x@remote.example"),
    )
    files = wait_for(lambda: wp.maildir("alice"), 15, "a relayed DSN in alice's Maildir")
    (dump,) = sink.dumps()
    assert "NOTIFY=" not in dump.rcpt_args[0] and "ENVID=" not in dump.mail_args, (
        "DSN parameters must not go to a server that does not offer DSN"
    )
    assert len(files) == 1
    dsn = wp.message(files[0])
    assert dsn["Return-Path"] == "<>"
    recipients, returned = dsn_parts(dsn)
    (block,) = recipients
    assert block["Action"] == "relayed"
    assert block["Status"].startswith("2.")
    assert block["Final-Recipient"].replace(" ", "") == "rfc822;x@remote.example"
    assert block["Original-Recipient"].replace(" ", "") == "rfc822;x@remote.example"
    per_message = dict(list(dsn.iter_parts())[1].get_payload()[0].items())
    assert per_message["Original-Envelope-Id"] == "abc123"
    # A success report returns the headers only.
    assert returned is not None
    assert returned.get_content_type() == "text/rfc822-headers"
    wp.wait_queue_empty()


def test_null_reverse_path_failure_makes_no_report(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    sink = make_sink("-f", "RCPT", "-B", "550 5.1.1 no such user")
    wp = relay_to(make_waypost, sink)
    send(wp, "null-sender", sender="")
    wp.wait_event(1402)
    wp.wait_queue_empty()
    assert not wp.events(1711) and not wp.events(1712)
    assert wp.all_maildir_files() == []


def test_dot_stuffing_survives_data_and_bdat(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    """Lines starting with "." arrive intact: unstuffed on the way in (DATA) or never stuffed
    (BDAT), stuffed again on the way out to the sink, which unstuffs them."""
    sink = make_sink()
    wp = relay_to(make_waypost, sink)
    body = b"line1\r\n.\r\n..two dots\r\n.one dot\r\nlast\r\n"
    with smtplib.SMTP("127.0.0.1", wp.port, timeout=10) as client:  # smtplib stuffs
        client.sendmail("alice@localhost", ["x@remote.example"], b"Subject: data\r\n\r\n" + body)
    with RawSmtp(wp.port) as raw:
        assert raw.reply()[0] == 220
        assert "CHUNKING" in raw.command("EHLO client.test")[1].splitlines()
        assert raw.command("MAIL FROM:<alice@localhost>")[0] == 250
        assert raw.command("RCPT TO:<x@remote.example>")[0] == 250
        message = b"Subject: bdat\r\n\r\n" + body
        raw.send(b"BDAT 20\r\n" + message[:20])
        assert raw.reply()[0] == 250
        raw.send(b"BDAT %d LAST\r\n" % (len(message) - 20) + message[20:])
        assert raw.reply()[0] == 250
        assert raw.command("QUIT")[0] == 221
    wp.wait_queue_empty()
    dumps = {d.message()["Subject"]: d for d in sink.messages()}
    assert set(dumps) == {"data", "bdat"}
    for dump in dumps.values():
        assert dump.content.endswith(b"\r\n\r\n" + body), dump.content


def test_smtputf8_to_a_hop_without_it_bounces_with_5_6_7(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    sink = make_sink()  # smtp-sink never offers SMTPUTF8
    wp = relay_to(make_waypost, sink)
    with smtplib.SMTP("127.0.0.1", wp.port, timeout=10) as client:
        client.ehlo("client.test")
        refused = client.sendmail(
            "alice@localhost",
            ["j\u00f6rg@remote.example"],
            "Subject: utf8\r\n\r\nGr\u00fc\u00dfe\r\n".encode(),
            mail_options=["SMTPUTF8"],
        )
        assert refused == {}
    files = wait_for(lambda: wp.maildir("alice"), 15, "a DSN in alice's Maildir")
    dsn = wp.message(files[0])
    assert dsn.get_param("report-type") == "global-delivery-status"
    types = [p.get_content_type() for p in dsn.iter_parts()]
    assert types == ["text/plain", "message/global-delivery-status", "message/global"], types
    text = files[0].read_bytes().decode()
    status = text.split("Content-Type: message/global-delivery-status")[1].split("\r\n--")[0]
    for field in (
        "Action: failed",
        "Status: 5.6.7",
        "Final-Recipient: utf-8; j\u00f6rg@remote.example",
    ):
        assert field in status, status
    assert sink.dumps() == [], "nothing went to a server that cannot take it"
    wp.wait_queue_empty()


def test_connect_timeout_covers_a_slow_greeting(
    make_waypost: Callable[..., Waypost], make_sink: Callable[..., SmtpSink]
) -> None:
    sink = make_sink("-W", "CONNECT:4")  # the 220 comes 4 s after the connection
    wp = make_waypost(
        routes=[("remote.example", sink.next_hop)],
        settings={"smtp_client": {"connect_timeout": 1, "command_timeout": 10}},
    )
    send(wp, "slow-greeting")
    (line, *_) = wp.wait_event(1400, timeout=3)
    assert "timeout" in line, line
