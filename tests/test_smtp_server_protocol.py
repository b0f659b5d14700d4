"""The sans-I/O ESMTP server, byte for byte: sessions, extensions, limits, smuggling, fuzzing."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from smtp_factory import (
    CRLF,
    HOSTNAME,
    SETTINGS,
    Answer,
    Session,
    b64,
    bdat,
    codes,
    data,
    ehlo,
    envelope,
    helo,
    line,
    mail,
    message,
    noop,
    parse_replies,
    plain,
    quit_,
    rcpt,
    rset,
    run,
    short,
    starttls,
    stuff,
)

from waypost.address import Mailbox
from waypost.message import Notify, Ret
from waypost.smtp import server_replies as replies
from waypost.smtp.server_message import MessageReader
from waypost.smtp.server_protocol import (
    NEED_DATA,
    PAUSED,
    AuthRequest,
    ConnectionClosed,
    Decidable,
    Hello,
    LocalProtocolError,
    MailFrom,
    MessageData,
    Phase,
    Quit,
    RcptTo,
    Reply,
    Reset,
    ServerConnection,
    ServerSettings,
    StartTLS,
    Violation,
    count_received,
    has_bare_cr_or_lf,
    protocol_name,
    received_header,
)
from waypost.smtp.server_sasl import SaslExchange
from waypost.smtp.server_state import SEQUENCE, TRANSITIONS, Transition, Verb

MIB = 1024 * 1024
SMALL = ServerSettings(hostname=HOSTNAME, tls_available=True, max_message_size=1000)
TLS_OFF = ServerSettings(hostname=HOSTNAME)
# A refusal of the application's own (the server never refuses a sender by itself).
SENDER_REJECTED = Reply(550, "5.7.1", "Sender rejected")


def one(answers: list[Answer]) -> Answer:
    assert len(answers) == 1, [str(a) for a in answers]
    return answers[0]


def ready(**options: object) -> Session:
    """A session after EHLO."""
    session = Session(**options)  # type: ignore[arg-type]
    assert codes(session.feed(ehlo())) == [250]
    return session


def in_transaction(*recipients: str, **options: object) -> Session:
    """A session after EHLO, MAIL and RCPT, all accepted."""
    session = Session(**options)  # type: ignore[arg-type]
    count = 2 + max(1, len(recipients))
    assert codes(session.feed(envelope(*recipients))) == [250] * count
    return session


def rejecting(**verdicts: Reply) -> Callable[[Decidable], Reply | None]:
    """A decide function rejecting events by type name (`RcptTo=...`), accepting the rest."""

    def decide(event: Decidable) -> Reply | None:
        return verdicts.get(type(event).__name__)

    return decide


# -- greeting ----------------------------------------------------------------------------


def test_greeting() -> None:
    assert Session().greeting == b"220 mx.example.net ESMTP Waypost\r\n"


def test_refused_greeting_serves_only_quit() -> None:
    session, answers = run(
        ehlo(), mail(), quit_(), refuse=Reply(554, "5.7.1", "No service for 192.0.2.1")
    )
    assert session.greeting == b"554 5.7.1 No service for 192.0.2.1\r\n"
    assert short(answers) == ["503 5.5.1", "503 5.5.1", "221 2.0.0"]
    assert session.conn.closed and not session.of(Hello)


def test_421_greeting_closes_at_once() -> None:
    session = Session(refuse=Reply(421, "4.3.2", "Shutting down"))
    assert session.greeting == b"421 4.3.2 Shutting down\r\n"
    assert session.conn.next_event() == ConnectionClosed(by_peer=False, after="CONNECT")


def test_greeting_misuse() -> None:
    conn = ServerConnection(SETTINGS)
    with pytest.raises(LocalProtocolError):
        conn.next_event()
    with pytest.raises(LocalProtocolError):
        conn.greeting(Reply(250, "2.0.0", "hi"))
    conn.greeting()
    with pytest.raises(LocalProtocolError):
        conn.greeting()


# -- HELO and EHLO -------------------------------------------------------------------------


def test_ehlo_reply_without_tls() -> None:
    session, answers = run(ehlo())
    assert one(answers).lines == (
        HOSTNAME,
        "PIPELINING",
        "SIZE 36700160",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "DSN",
        "SMTPUTF8",
        "CHUNKING",
    )
    assert session.events == [Hello(esmtp=True, name="client.example.org")]
    assert session.conn.esmtp and session.conn.hello_name == "client.example.org"


def test_ehlo_reply_over_tls_offers_auth_not_starttls() -> None:
    _, answers = run(ehlo(), tls_active=True)
    lines = one(answers).lines
    assert "AUTH PLAIN LOGIN" in lines and "STARTTLS" not in lines


def test_ehlo_offers_auth_without_tls_only_when_allowed() -> None:
    allowed = ServerSettings(hostname=HOSTNAME, allow_auth_without_tls=True)
    assert "AUTH PLAIN LOGIN" in one(run(ehlo(), settings=allowed)[1]).lines
    assert not any(x.startswith("AUTH") for x in one(run(ehlo(), settings=TLS_OFF)[1]).lines)


def test_ehlo_reply_follows_settings() -> None:
    bare = ServerSettings(
        hostname=HOSTNAME,
        pipelining=False,
        eight_bit_mime=False,
        smtputf8=False,
        dsn=False,
        chunking=False,
        auth_mechanisms=(),
        max_message_size=5000,
    )
    assert one(run(ehlo(), settings=bare)[1]).lines == (
        HOSTNAME,
        "SIZE 5000",
        "ENHANCEDSTATUSCODES",
    )
    binary = ServerSettings(hostname=HOSTNAME, binarymime=True)
    assert one(run(ehlo(), settings=binary)[1]).lines[-2:] == ("CHUNKING", "BINARYMIME")


def test_helo_is_plain_smtp() -> None:
    session, answers = run(helo("old.example"))
    assert session.conn.data_to_send() == b""
    assert one(answers).lines == (HOSTNAME,)
    assert session.events == [Hello(esmtp=False, name="old.example")]
    assert not session.conn.esmtp


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"EHLO", "501 5.5.4"),
        (b"EHLO ", "501 5.5.4"),
        (b"HELO", "501 5.5.4"),
        (b"EHLO two words", "501 5.5.2"),
        ("EHLO ünï.example".encode(), "501 5.5.2"),
        (b"EHLO " + b"a" * 256, "501 5.5.2"),
        (b"EHLO [192.0.2.1]", "250"),
        (b"EHLO my_pc", "250"),  # Windows machines say this; policy is the application's
        (b"EHLO a.example ", "250"),
    ],
)
def test_ehlo_argument(command: bytes, expected: str) -> None:
    assert short(run(line(command))[1]) == [expected]


def test_ehlo_resets_transaction() -> None:
    session = in_transaction()
    assert short(session.feed(ehlo(), data())) == ["250", "503 5.5.1"]


def test_second_ehlo_after_helo_is_esmtp() -> None:
    session, _ = run(helo())
    session.feed(ehlo())
    assert session.conn.esmtp


# -- mail transactions ---------------------------------------------------------------------


def test_full_transaction() -> None:
    body = message()
    session, answers = run(envelope() + data() + stuff(body) + quit_())
    assert short(answers) == [
        "250",
        "250 2.1.0",
        "250 2.1.5",
        "354",
        "250 2.0.0",
        "221 2.0.0",
    ]
    assert session.events[1] == MailFrom(reverse_path=Mailbox("alice", "example.org"))
    assert session.events[2] == RcptTo(path=Mailbox("bob", "example.net"))
    assert session.messages == [body]
    assert session.of(MessageData)[0].received_by_bdat is False
    assert session.of(MessageData)[0].crlf  # checked for bare line ends: none
    assert session.events[-2:] == [Quit(), ConnectionClosed(by_peer=False, after="QUIT")]
    assert session.conn.closed


def test_accept_text_and_rejections() -> None:
    def decide(event: Decidable) -> Reply | str | None:
        if isinstance(event, RcptTo) and event.path.local == "nobody":
            return replies.RECIPIENT_UNKNOWN
        if isinstance(event, MessageData):
            return "OK: queued as 4F2A"
        return None

    _, answers = run(
        envelope("<bob@example.net>", "<nobody@example.net>") + data() + stuff(message()),
        decide=decide,
    )
    assert [str(a) for a in answers[2:]] == [
        "250 2.1.5 Recipient OK",
        "550 5.1.1 Recipient address rejected: unknown user",
        "354 End data with <CR><LF>.<CR><LF>",
        "250 2.0.0 OK: queued as 4F2A",
    ]


def test_rejected_sender_means_no_transaction() -> None:
    session, answers = run(envelope() + data(), decide=rejecting(MailFrom=SENDER_REJECTED))
    assert short(answers) == ["250", "550 5.7.1", "503 5.5.1", "503 5.5.1"]
    assert session.conn.phase is Phase.READY


def test_all_recipients_rejected_then_data_is_554() -> None:
    _, answers = run(envelope() + data(), decide=rejecting(RcptTo=replies.RECIPIENT_UNKNOWN))
    assert short(answers)[-2:] == ["550 5.1.1", "554 5.5.1"]


def test_message_rejected_temporarily_ends_the_transaction() -> None:
    session, answers = run(
        envelope() + data() + stuff(message()) + rcpt(),
        decide=rejecting(MessageData=replies.TEMPORARY_FAILURE),
    )
    assert short(answers)[-2:] == ["451 4.3.0", "503 5.5.1"]
    assert session.conn.phase is Phase.READY


def test_several_messages_in_one_session() -> None:
    bodies = [message(subject=f"n{i}") for i in range(3)]
    transactions = b"".join(mail() + rcpt() + data() + stuff(b) for b in bodies)
    session, answers = run(ehlo() + transactions)
    assert session.messages == bodies
    assert codes(answers).count(354) == 3


def test_rset_discards_the_transaction() -> None:
    session = in_transaction()
    assert short(session.feed(rset(), data(), rset(), line("RSET now"))) == [
        "250 2.0.0",
        "503 5.5.1",
        "250 2.0.0",
        "501 5.5.4",
    ]
    assert session.of(Reset) == [Reset(), Reset()]


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (mail(), "503 5.5.1"),  # before EHLO
        (ehlo() + rcpt(), "503 5.5.1"),
        (ehlo() + data(), "503 5.5.1"),
        (ehlo() + mail() + mail(), "503 5.5.1"),
        (ehlo() + mail() + data(), "554 5.5.1"),
        (envelope() + line("DATA now"), "501 5.5.4"),
    ],
)
def test_bad_sequence(commands: bytes, expected: str) -> None:
    assert short(run(commands)[1])[-1] == expected


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"MAIL", "501 5.5.4"),
        (b"MAIL FROM:", "501 5.5.4"),
        (b"MAIL FROM:alice@example.org", "501 5.5.4"),
        (b"MAIL TO:<alice@example.org>", "501 5.5.4"),
        (b"MAIL FROM:<alice@example.org>SIZE=10", "501 5.5.4"),
        (b"MAIL FROM:<alice@example.org", "501 5.5.4"),
        (b"MAIL FROM:<alice>", "501 5.1.7"),
        (b"MAIL FROM:<alice@>", "501 5.1.7"),
        (b"MAIL FROM:<a..b@example.org>", "501 5.1.7"),
        (b"MAIL FROM:<@x,alice@example.org>", "501 5.1.7"),
    ],
)
def test_mail_syntax_errors(command: bytes, expected: str) -> None:
    session, answers = run(ehlo() + line(command))
    assert short(answers)[-1] == expected
    assert not session.of(MailFrom)


@pytest.mark.parametrize(
    ("command", "path"),
    [
        (b"MAIL FROM:<alice@example.org>", Mailbox("alice", "example.org")),
        (b"mail from:<alice@EXAMPLE.org>", Mailbox("alice", "example.org")),
        (b"MAIL FROM: <alice@example.org>", Mailbox("alice", "example.org")),  # common
        (b"MAIL FROM:<>", None),
        (b"MAIL FROM:<@relay.example:alice@example.org>", Mailbox("alice", "example.org")),
        (b'MAIL FROM:<"a>b c"@example.org>', Mailbox("a>b c", "example.org")),
        (b'MAIL FROM:<"a\\">b"@example.org>', Mailbox('a">b', "example.org")),
    ],
)
def test_mail_paths(command: bytes, path: Mailbox | None) -> None:
    session, answers = run(ehlo() + line(command))
    assert short(answers)[-1] == "250 2.1.0"
    assert session.of(MailFrom)[0].reverse_path == path


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"RCPT TO:<>", "501 5.1.3"),
        (b"RCPT TO:<bob>", "501 5.1.3"),
        (b"RCPT TO:bob@example.net", "501 5.5.4"),
        (b"RCPT FROM:<bob@example.net>", "501 5.5.4"),
        (b"RCPT TO:<bob@-bad-.example>", "501 5.1.3"),
    ],
)
def test_rcpt_syntax_errors(command: bytes, expected: str) -> None:
    session, answers = run(ehlo() + mail() + line(command))
    assert short(answers)[-1] == expected
    assert not session.of(RcptTo)


@pytest.mark.parametrize("word", ["postmaster", "Postmaster", "POSTMASTER"])
def test_rcpt_postmaster_without_domain(word: str) -> None:
    session, answers = run(ehlo() + mail() + rcpt(f"<{word}>"))
    assert short(answers)[-1] == "250 2.1.5"
    assert session.of(RcptTo)[0].path == Mailbox(word, HOSTNAME)


# -- ESMTP parameters ----------------------------------------------------------------------


def mail_event(*params: str, **options: object) -> tuple[MailFrom | None, str]:
    session, answers = run(ehlo() + mail("<alice@example.org>", *params), **options)
    events = session.of(MailFrom)
    return (events[0] if events else None), short(answers)[-1]


def rcpt_event(*params: str, sender: bytes = mail()) -> tuple[RcptTo | None, str]:
    session, answers = run(ehlo() + sender + rcpt("<bob@example.net>", *params))
    events = session.of(RcptTo)
    return (events[0] if events else None), short(answers)[-1]


@pytest.mark.parametrize(
    ("params", "field", "value"),
    [
        (("SIZE=1000",), "size", 1000),
        (("SIZE=0",), "size", 0),
        (("size=36700160",), "size", 36700160),
        (("BODY=8BITMIME",), "body", "8BITMIME"),
        (("BODY=7bit",), "body", "7BIT"),
        (("SMTPUTF8",), "smtputf8", True),
        (("RET=FULL",), "ret", Ret.FULL),
        (("RET=hdrs",), "ret", Ret.HDRS),
        (("ENVID=QQ+2B314",), "envid", "QQ+314"),
        (("AUTH=<>",), "auth", "<>"),
        (("SIZE=10", "BODY=8BITMIME", "RET=HDRS", "ENVID=x"), "envid", "x"),
    ],
)
def test_mail_parameters(params: tuple[str, ...], field: str, value: object) -> None:
    event, reply = mail_event(*params, tls_active=True)  # over TLS, AUTH= is offered too
    assert reply == "250 2.1.0"
    assert getattr(event, field) == value


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (("SIZE=36700161",), "552 5.3.4"),
        (("SIZE=99999999999999999",), "552 5.3.4"),
        (("SIZE=abc",), "501 5.5.4"),
        (("SIZE",), "501 5.5.4"),
        (("SIZE=",), "501 5.5.4"),
        (("SIZE=-1",), "501 5.5.4"),
        (("SIZE=1", "size=2"), "501 5.5.4"),
        (("BODY=9BIT",), "501 5.5.4"),
        (("BODY=BINARYMIME",), "555 5.5.4"),  # not offered by default
        (("SMTPUTF8=yes",), "501 5.5.4"),
        (("RET=NONE",), "501 5.5.4"),
        (("RET=FULL", "RET=HDRS"), "501 5.5.4"),
        (("ENVID=a+ZZ",), "501 5.5.4"),
        (("ENVID",), "501 5.5.4"),
        (("ENVID=a b",), "555 5.5.4"),  # "b" is an unknown keyword
        (("ENVID=" + "x" * 101,), "501 5.5.4"),
        (("ENVID=+0A",), "501 5.5.4"),  # decodes to a control character
        (("AUTH=alice+40example.org",), "555 5.5.4"),  # AUTH not offered without TLS
        (("XFOO=1",), "555 5.5.4"),
        (("NOTIFY=NEVER",), "555 5.5.4"),  # an RCPT parameter
        (("-BAD",), "501 5.5.4"),
        (("ENVID=ü",), "501 5.5.4"),  # non-ASCII without SMTPUTF8
    ],
)
def test_mail_parameter_errors(params: tuple[str, ...], expected: str) -> None:
    event, reply = mail_event(*params)
    assert (event, reply) == (None, expected)


@pytest.mark.parametrize(
    "command",
    [
        mail("<alice@example.org>", "X" * 1900),
        mail("<alice@" + "a." * 900 + ">"),
        mail("<jörg@" + "é" * 1000 + ".example>", "SMTPUTF8"),
        rcpt("<" + "b" * 1900 + "@example.net>"),
    ],
)
def test_long_bad_input_gives_a_valid_reply(command: bytes) -> None:
    session = Session()
    session.feed(ehlo() + (mail() if command.startswith(b"RCPT") else b""))
    answer = one(session.feed(command))
    assert answer.code in (501, 553, 555) and len(str(answer)) < 300
    assert answer.text.isascii()


def test_mail_parameters_after_helo_are_unknown() -> None:
    _, answers = run(helo() + mail("<alice@example.org>", "SIZE=10") + mail())
    assert short(answers)[1:] == ["555 5.5.4", "250 2.1.0"]


def test_mail_parameters_not_offered_are_unknown() -> None:
    bare = ServerSettings(hostname=HOSTNAME, dsn=False, smtputf8=False, eight_bit_mime=False)
    for param in ("RET=FULL", "ENVID=x", "SMTPUTF8", "BODY=8BITMIME"):
        assert mail_event(param, settings=bare) == (None, "555 5.5.4")
    _, answers = run(ehlo() + mail() + rcpt("<bob@example.net>", "NOTIFY=NEVER"), settings=bare)
    assert short(answers)[-1] == "555 5.5.4"


def test_auth_parameter_trusted_only_after_authentication() -> None:
    session = ready(tls_active=True)
    session.feed(line(f"AUTH PLAIN {plain('alice', 'pw')}"))
    session.feed(mail("<alice@example.org>", "AUTH=alice+40example.org"))
    assert session.of(MailFrom)[0].auth == "alice@example.org"
    unauthenticated, reply = mail_event("AUTH=alice+40example.org", tls_active=True)
    assert reply == "250 2.1.0"
    assert unauthenticated is not None and unauthenticated.auth == "<>"
    assert mail_event("AUTH=a+ZZ", tls_active=True) == (None, "501 5.5.4")


@pytest.mark.parametrize(
    ("params", "notify", "orcpt"),
    [
        (("NOTIFY=NEVER",), (Notify.NEVER,), None),
        (("NOTIFY=SUCCESS,FAILURE",), (Notify.SUCCESS, Notify.FAILURE), None),
        (("notify=delay",), (Notify.DELAY,), None),
        (
            ("NOTIFY=FAILURE,DELAY,SUCCESS", "ORCPT=rfc822;bob+40example.net"),
            (Notify.FAILURE, Notify.DELAY, Notify.SUCCESS),
            "rfc822;bob@example.net",
        ),
        (("ORCPT=rfc822;a+2Bb+3Dc@example.net",), (), "rfc822;a+b=c@example.net"),
        (("ORCPT=x400;/C+3DGB/S+3DSmith/",), (), "x400;/C=GB/S=Smith/"),
    ],
)
def test_rcpt_dsn_parameters(
    params: tuple[str, ...], notify: tuple[Notify, ...], orcpt: str | None
) -> None:
    event, reply = rcpt_event(*params)
    assert reply == "250 2.1.5"
    assert event == RcptTo(path=Mailbox("bob", "example.net"), notify=notify, orcpt=orcpt)


@pytest.mark.parametrize(
    "params",
    [
        ("NOTIFY=NEVER,SUCCESS",),
        ("NOTIFY=SUCCESS,SUCCESS",),
        ("NOTIFY=ALWAYS",),
        ("NOTIFY=",),
        ("NOTIFY",),
        ("NOTIFY=SUCCESS,",),
        ("ORCPT=rfc822",),
        ("ORCPT=rfc822;",),
        ("ORCPT=;bob@example.net",),
        ("ORCPT=rfc822;bob+4",),
        ("ORCPT=rfc822;" + "b" * 500,),
        ("ORCPT=rfc822;+00",),
        ("ORCPT=rfc(822);bob@example.net",),
        ("NOTIFY=NEVER", "notify=NEVER"),
    ],
)
def test_rcpt_dsn_parameter_errors(params: tuple[str, ...]) -> None:
    assert rcpt_event(*params) == (None, "501 5.5.4")


def test_rcpt_unknown_parameter() -> None:
    assert rcpt_event("SIZE=10") == (None, "555 5.5.4")


def test_utf8_orcpt_kept_as_sent() -> None:
    event, reply = rcpt_event("ORCPT=utf-8;bj\\x{F6}rn@example.net")
    assert reply == "250 2.1.5" and event is not None
    assert event.orcpt == "utf-8;bj\\x{F6}rn@example.net"
    event, _ = rcpt_event(
        "ORCPT=utf-8;björn@example.net", sender=mail("<a@example.org>", "SMTPUTF8")
    )
    assert event is not None and event.orcpt == "utf-8;björn@example.net"


def test_smtputf8_paths() -> None:
    session, answers = run(
        ehlo() + mail("<jörg@bücher.example>", "SMTPUTF8") + rcpt("<用户@例子.广告>")
    )
    assert short(answers) == ["250", "250 2.1.0", "250 2.1.5"]
    assert session.of(MailFrom)[0].reverse_path == Mailbox("jörg", "bücher.example")
    assert session.of(MailFrom)[0].smtputf8
    assert session.of(RcptTo)[0].path == Mailbox("用户", "例子.广告")


def test_non_ascii_paths_need_smtputf8() -> None:
    # RFC 6531 §3.5: 553 with X.6.7 "Non-ASCII addresses not permitted".
    assert short(run(ehlo() + mail("<jörg@bücher.example>"))[1])[-1] == "553 5.6.7"
    assert short(run(ehlo() + mail() + rcpt("<jörg@example.net>"))[1])[-1] == "553 5.6.7"


# -- DATA ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"\r\n",
        b".\r\n",
        b"..\r\n",
        b".leading dot\r\n",
        b"a\r\n.\r\nb\r\n",
        b"Subject: x\r\n\r\n. \r\n.x\r\n",
        b"no final newline",
        "8-bit text without BODY=8BITMIME: ümlaut\r\n".encode(),
        b"NUL \x00 and DEL \x7f are carried as they are\r\n",
        b"x" * 10_000 + b"\r\n",  # over 998: accepted, as Postfix does
    ],
)
def test_data_dot_unstuffing(body: bytes) -> None:
    session = in_transaction()
    assert short(session.feed(data() + stuff(body))) == ["354", "250 2.0.0"]
    expected = body if not body or body.endswith(CRLF) else body + CRLF
    assert session.messages == [expected]


def test_plain_smtp_transaction_after_helo() -> None:
    session, answers = run(helo() + mail() + rcpt() + data() + stuff(b"hi\r\n"))
    assert short(answers) == ["250", "250 2.1.0", "250 2.1.5", "354", "250 2.0.0"]
    assert session.conn.protocol_name() == "SMTP"


def test_receiving_message_tells_the_driver_which_timeout() -> None:
    session = in_transaction()
    assert not session.conn.receiving_message
    session.feed(data(), b"Subject: x\r\n")
    assert session.conn.receiving_message
    session.feed(b"\r\n.\r\n", line("BDAT 10"))
    assert session.conn.receiving_message


def test_message_reader_holds_back_what_may_be_the_end() -> None:
    reader = MessageReader(100)
    buf = bytearray(b"ab\r\n.")
    assert reader.read_dot_stuffed(buf) == (True, False)
    assert buf == b"b\r\n."  # four octets wait: they may begin CRLF.CRLF
    buf += b"\r"
    assert reader.read_dot_stuffed(buf) == (True, False)
    assert reader.read_dot_stuffed(buf) == (False, False)
    assert buf == b"\r\n.\r"
    buf += b"\n"
    assert reader.read_dot_stuffed(buf) == (True, True)
    assert (reader.take(), bytes(buf)) == (b"ab\r\n", b"")


def test_smtputf8_protocol_name() -> None:
    session, _ = run(ehlo() + mail("<jörg@example.org>", "SMTPUTF8"), tls_active=True)
    assert session.conn.protocol_name() == "UTF8SMTPS"


def test_data_one_byte_at_a_time() -> None:
    body = message() + b".\r\n..\r\nend\r\n"
    session = in_transaction()
    wire = data() + stuff(body) + noop()
    session.feed(*(wire[i : i + 1] for i in range(len(wire))))
    assert session.messages == [body]
    assert session.conn.phase is Phase.READY


def test_message_with_data_in_the_same_packet_as_data() -> None:
    session, _ = run(envelope() + data() + stuff(message()) + quit_())
    assert session.messages == [message()]


def test_message_too_big_is_read_and_refused_at_the_end() -> None:
    session = in_transaction(settings=SMALL)
    session.feed(data())
    for _ in range(50):
        session.feed(b"y" * 78 + CRLF)
        # Never more than the limit in memory.
        assert session.conn._message.held <= 1000
    assert short(session.feed(b".\r\n", noop(), rcpt())) == ["552 5.3.4", "250 2.0.0", "503 5.5.1"]
    assert not session.of(MessageData)


def test_message_of_exactly_the_limit_is_accepted() -> None:
    body = b"z" * 998 + CRLF
    session = in_transaction(settings=SMALL)
    assert short(session.feed(data() + stuff(body))) == ["354", "250 2.0.0"]
    session.feed(mail(), rcpt(), data())
    assert short(session.feed(stuff(b"z" * 999 + CRLF))) == ["552 5.3.4"]


def test_binarymime_needs_bdat() -> None:
    binary = ServerSettings(hostname=HOSTNAME, binarymime=True)
    _, answers = run(
        ehlo() + mail("<a@example.org>", "BODY=BINARYMIME") + rcpt() + data(), settings=binary
    )
    assert short(answers)[-1] == "503 5.5.1"


# -- SMTP smuggling ---------------------------------------------------------------------------

SMUGGLED = b"MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nspoofed\r\n"


@pytest.mark.parametrize(
    "fake_end",
    [
        b"\n.\r\n",  # aiosmtpd's test_smtpsmuggling.py
        b"\n.\n",
        b"\r.\r",
        b"\r\n.\n",
        b"\n.\r",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n.\rX",
        b"\r\n\r.\r\n",
        b"\r\n\n.\r\n",
    ],
)
def test_smuggling_end_of_data_look_alikes(fake_end: bytes) -> None:
    session = in_transaction()
    wire = data() + b"From: a@example.org\r\n\r\nTesting" + fake_end + SMUGGLED + b".\r\n" + noop()
    answers = session.feed(wire)
    assert [str(a) for a in answers[1:]] == [
        "550 5.6.11 bare CR or LF in message data (SMTP smuggling defence)",
        "250 2.0.0 OK",
    ]
    assert not session.of(MessageData)
    assert len(session.of(MailFrom)) == 1  # only the real one
    assert Violation(reason="bare CR or LF in message data") in session.events


def test_smuggling_aiosmtpd_case_split_across_packets() -> None:
    session = in_transaction()
    wire = data() + b"Testing\n.\r\nNO SMUGGLING\r\n.\r\n"
    session.feed(*(wire[i : i + 3] for i in range(0, len(wire), 3)))
    assert not session.of(MessageData)
    assert session.conn.phase is Phase.READY


@pytest.mark.parametrize(
    "body",
    [b"\nheader: x\r\n", b"a\rb\r\n", b"a\nb\r\n", b"a\r\n\r", b"trailing\r\r\n", b"\r"],
)
def test_any_bare_cr_or_lf_is_refused(body: bytes) -> None:
    session = in_transaction()
    assert short(session.feed(data(), body + b"\r\n.\r\n")) == ["354", "550 5.6.11"]
    assert not session.of(MessageData)


def test_bare_lf_in_bdat_is_refused_unless_binarymime() -> None:
    session = in_transaction()
    assert short(session.feed(bdat(b"a\nb\r\n", last=True))) == ["550 5.6.11"]
    binary = ServerSettings(hostname=HOSTNAME, binarymime=True)
    binary_session, answers = run(
        ehlo() + mail("<a@example.org>", "BODY=BINARYMIME") + rcpt() + bdat(b"\x00\n\r", last=True),
        settings=binary,
    )
    assert short(answers)[-1] == "250 2.0.0"
    assert binary_session.messages == [b"\x00\n\r"]
    # Binary content is not CRLF text: nothing downstream may take it for that.
    assert not binary_session.of(MessageData)[0].crlf


def test_bare_check_helper() -> None:
    assert not has_bare_cr_or_lf(b"a\r\nb\r\n")
    assert has_bare_cr_or_lf(b"a\nb") and has_bare_cr_or_lf(b"a\rb") and has_bare_cr_or_lf(b"\n\r")


# -- BDAT ---------------------------------------------------------------------------------------


def test_bdat_chunks() -> None:
    session = in_transaction()
    answers = session.feed(bdat(b"first\r\n"), bdat(b""), bdat(b"second\r\n", last=True))
    assert [str(a) for a in answers] == [
        "250 2.0.0 7 octets received",
        "250 2.0.0 0 octets received",
        "250 2.0.0 OK: message accepted",
    ]
    assert session.messages == [b"first\r\nsecond\r\n"]
    assert session.of(MessageData)[0].received_by_bdat


def test_bdat_0_last() -> None:
    session = in_transaction()
    session.feed(bdat(b"x\r\n"), bdat(b"", last=True))
    assert session.messages == [b"x\r\n"]
    session.feed(mail(), rcpt(), line("BDAT 0 last"))
    assert session.messages[-1] == b""


def test_bdat_is_binary_safe_and_never_read_as_commands() -> None:
    chunk = b"QUIT\r\n.\r\nMAIL FROM:<evil@example.com>\r\n\r\n.\r\n"
    session = in_transaction()
    session.feed(*(bytes([b]) for b in bdat(chunk, last=True)))
    assert session.messages == [chunk]
    assert len(session.of(MailFrom)) == 1 and not session.conn.closed


@pytest.mark.parametrize(
    ("before", "expected"),
    [
        (b"", "503 5.5.1"),  # before EHLO
        (ehlo(), "503 5.5.1"),
        (ehlo() + mail(), "554 5.5.1"),
        (helo() + mail() + rcpt(), "503 5.5.1"),  # CHUNKING is offered in EHLO only
    ],
)
def test_bdat_out_of_sequence_still_consumes_the_chunk(before: bytes, expected: str) -> None:
    evil = b"MAIL FROM:<evil@example.com>\r\n"
    session, answers = run(before + bdat(evil, last=True) + noop())
    assert short(answers)[-2:] == [expected, "250 2.0.0"]
    assert all(e.reverse_path != Mailbox("evil", "example.com") for e in session.of(MailFrom))


def test_bdat_not_offered_still_consumes_the_chunk() -> None:
    off = ServerSettings(hostname=HOSTNAME, chunking=False)
    session, answers = run(envelope() + bdat(b"RSET\r\n", last=True) + noop(), settings=off)
    assert short(answers)[-2:] == ["502 5.5.1", "250 2.0.0"]
    assert not session.of(Reset)


def test_data_after_bdat_and_rcpt_after_bdat() -> None:
    session = in_transaction()
    assert short(session.feed(bdat(b"x"), data(), rcpt(), mail())) == [
        "250 2.0.0",
        "503 5.5.1",
        "503 5.5.1",
        "503 5.5.1",
    ]
    assert short(session.feed(rset(), mail(), rcpt(), data())) == [
        "250 2.0.0",
        "250 2.1.0",
        "250 2.1.5",
        "354",
    ]


def test_bdat_too_big_fails_the_transaction_and_discards_pipelined_chunks() -> None:
    session = in_transaction(settings=SMALL)
    answers = session.feed(
        bdat(b"a" * 600), bdat(b"b" * 600), bdat(b"c" * 10), bdat(b"d", last=True), noop()
    )
    assert short(answers) == ["250 2.0.0", "552 5.3.4", "552 5.3.4", "552 5.3.4", "250 2.0.0"]
    assert not session.of(MessageData)
    assert session.conn.phase is Phase.READY
    session.feed(mail(), rcpt(), bdat(b"ok", last=True))
    assert session.messages == [b"ok"]


def test_bdat_huge_declared_size_is_refused_but_read() -> None:
    session = in_transaction(settings=SMALL)
    answers = session.feed(line("BDAT 5000 LAST"))
    for _ in range(5):
        answers += session.feed(b"q" * 1000)
        assert session.conn._message.held == 0
    assert short(answers + session.feed(noop())) == ["552 5.3.4", "250 2.0.0"]


def test_bdat_unreadable_size_closes() -> None:
    session = in_transaction()
    answers = session.feed(line("BDAT ten LAST"), b"0123456789", noop())
    assert short(answers) == ["501 5.5.4", "421 4.5.0"]
    assert session.conn.closed


def test_bdat_bad_keyword_consumes_the_chunk() -> None:
    session = in_transaction()
    answers = session.feed(line("BDAT 6 LASTLY") + b"NOOP\r\n", noop())
    assert short(answers) == ["501 5.5.4", "250 2.0.0"]


def test_rset_after_bdat_chunks() -> None:
    session = in_transaction()
    session.feed(bdat(b"part"), rset(), mail(), rcpt(), bdat(b"whole", last=True))
    assert session.messages == [b"whole"]


# -- pipelining -----------------------------------------------------------------------------------


def test_pipelined_burst_answered_in_order_in_one_flush() -> None:
    session = Session(decide=rejecting())
    wire = envelope("<a@example.net>", "<b@example.net>", "<c@example.net>") + data()
    answers = session.feed(wire)
    assert short(answers) == ["250", "250 2.1.0", "250 2.1.5", "250 2.1.5", "250 2.1.5", "354"]
    assert len(session.flushes) == 1


def test_pipelined_after_end_of_data() -> None:
    session = in_transaction()
    wire = data() + stuff(b"one\r\n") + mail() + rcpt() + data() + stuff(b"two\r\n") + quit_()
    answers = session.feed(wire)
    assert codes(answers) == [354, 250, 250, 250, 354, 250, 221]
    assert session.messages == [b"one\r\n", b"two\r\n"]
    assert len(session.flushes) == 2  # the in_transaction burst, then this one


def test_paused_machine_buffers_and_answers_in_order() -> None:
    session = Session(manual=True)
    session.feed(ehlo() + mail())
    conn = session.conn
    assert isinstance(session.events[-1], MailFrom)
    assert conn.next_event() is PAUSED
    conn.receive_data(rcpt() + noop())
    assert conn.next_event() is PAUSED
    assert conn.data_to_send() == b""
    conn.accept(session.events[-1])
    event = conn.next_event()
    assert isinstance(event, RcptTo)
    conn.reject(event, replies.RECIPIENT_UNKNOWN)
    assert conn.next_event() is NEED_DATA
    assert short(parse_replies(conn.data_to_send())) == ["250 2.1.0", "550 5.1.1", "250 2.0.0"]


def test_pipelined_overflow_while_paused_closes_after_the_buffered_part() -> None:
    settings = ServerSettings(hostname=HOSTNAME, max_pipelined_bytes=64)
    session = Session(settings=settings, manual=True)
    session.feed(ehlo() + mail())
    session.conn.receive_data(noop() * 20)  # 120 octets, 64 are kept
    session.conn.receive_data(noop())  # dropped
    session.decide_pending(lambda e: None)
    session.manual = False
    answers = parse_replies(session.pump())
    assert short(answers) == ["250 2.1.0"] + ["250 2.0.0"] * 10 + ["421 4.7.0"]
    assert session.of(Violation) and session.conn.closed


# -- STARTTLS -----------------------------------------------------------------------------------


def test_starttls_resets_the_session() -> None:
    session = ready(settings=ServerSettings(hostname=HOSTNAME, tls_available=True))
    assert [str(a) for a in session.feed(starttls())] == ["220 2.0.0 Ready to start TLS"]
    assert session.conn.tls_active and session.of(StartTLS)
    assert session.conn.hello_name is None
    assert short(session.feed(mail())) == ["503 5.5.1"]  # EHLO forgotten
    lines = one(session.feed(ehlo())).lines
    assert "STARTTLS" not in lines and "AUTH PLAIN LOGIN" in lines
    assert session.conn.protocol_name() == "ESMTPS"


def test_starttls_command_injection_is_discarded() -> None:
    session = ready()
    answers = session.feed(starttls() + mail("<evil@example.com>") + rcpt())
    assert [str(a) for a in answers] == ["220 2.0.0 Ready to start TLS"]
    assert not session.of(MailFrom)
    assert any("after STARTTLS discarded" in v.reason for v in session.of(Violation))
    assert codes(session.feed(ehlo())) == [250]
    assert not session.of(MailFrom)


def test_plaintext_before_the_handshake_is_discarded() -> None:
    session = Session(auto_tls=False)
    session.feed(ehlo(), starttls())
    conn = session.conn
    assert conn.next_event() is PAUSED
    conn.receive_data(mail())
    assert isinstance(conn.next_event(), Violation)
    assert conn.next_event() is PAUSED
    conn.tls_started()
    assert conn.next_event() is NEED_DATA
    assert conn.data_to_send() == b""


def test_eof_during_the_handshake() -> None:
    session = Session(auto_tls=False)
    session.feed(ehlo(), starttls(), b"")
    assert session.events[-1] == ConnectionClosed(by_peer=True, after="STARTTLS")


@pytest.mark.parametrize(
    ("options", "commands", "expected"),
    [
        ({"settings": TLS_OFF}, ehlo() + starttls(), "502 5.5.1"),
        ({"tls_active": True}, ehlo() + starttls(), "503 5.5.1"),
        ({}, starttls(), "503 5.5.1"),
        ({}, helo() + starttls(), "503 5.5.1"),
        ({}, envelope() + starttls(), "503 5.5.1"),
        ({}, ehlo() + line("STARTTLS now"), "501 5.5.4"),
    ],
)
def test_starttls_refused(options: dict[str, object], commands: bytes, expected: str) -> None:
    session, answers = run(commands, **options)
    assert short(answers)[-1] == expected
    assert not session.of(StartTLS)


def test_tls_started_without_starttls() -> None:
    with pytest.raises(LocalProtocolError):
        Session().conn.tls_started()


# -- AUTH -----------------------------------------------------------------------------------------


def test_auth_plain_initial_response() -> None:
    session = ready(tls_active=True)
    answers = session.feed(line(f"AUTH PLAIN {plain('alice', 'sécret')}"))
    assert [str(a) for a in answers] == ["235 2.7.0 Authentication successful"]
    request = session.of(AuthRequest)[0]
    assert request == AuthRequest(mechanism="PLAIN", username="alice", password="sécret")
    assert "sécret" not in repr(request)
    assert session.conn.authenticated_as == "alice"
    assert session.conn.protocol_name() == "ESMTPSA"


SUBMISSION = ServerSettings(hostname=HOSTNAME, tls_available=True, auth_required=True)


def test_submission_requires_tls_then_auth_before_mail() -> None:
    # RFC 6409 §4.3 and RFC 4954 §6: 530 5.7.0 until the client has authenticated; AUTH
    # itself is offered under TLS only, so a plaintext client is told to start TLS first.
    session = ready(settings=SUBMISSION)
    assert [str(a) for a in session.feed(mail())] == [
        "530 5.7.0 Must issue a STARTTLS command first"
    ]
    session.feed(starttls(), ehlo())
    assert [str(a) for a in session.feed(mail())] == ["530 5.7.0 Authentication required"]
    assert not session.of(MailFrom)
    assert short(session.feed(line(f"AUTH PLAIN {plain('alice', 'pw')}"), mail(), rcpt())) == [
        "235 2.7.0",
        "250 2.1.0",
        "250 2.1.5",
    ]


def test_auth_required_needs_a_mechanism() -> None:
    with pytest.raises(ValueError, match="auth_required"):
        ServerSettings(hostname=HOSTNAME, auth_required=True, auth_mechanisms=())


def test_auth_plain_continuation() -> None:
    session = ready(tls_active=True)
    assert session.feed_raw(line("AUTH PLAIN")) == b"334 \r\n"
    assert short(session.feed(line(plain("alice", "pw", authzid="alice")))) == ["235 2.7.0"]


def test_auth_login() -> None:
    session = ready(tls_active=True)
    assert session.feed_raw(line("auth login")) == b"334 VXNlcm5hbWU6\r\n"
    assert session.feed_raw(line(b64("bob"))) == b"334 UGFzc3dvcmQ6\r\n"
    assert short(session.feed(line(b64("hunter2")))) == ["235 2.7.0"]
    assert session.of(AuthRequest) == [
        AuthRequest(mechanism="LOGIN", username="bob", password="hunter2")
    ]


def test_auth_login_with_initial_username() -> None:
    session = ready(tls_active=True)
    assert session.feed_raw(line(f"AUTH LOGIN {b64('bob')}")) == b"334 UGFzc3dvcmQ6\r\n"
    session.feed(line(b64("pw")))
    assert session.conn.authenticated_as == "bob"


def test_auth_rejected() -> None:
    session = ready(tls_active=True, decide=rejecting(AuthRequest=replies.AUTH_FAILED))
    answers = session.feed(line(f"AUTH PLAIN {plain('alice', 'wrong')}"))
    assert [str(a) for a in answers] == ["535 5.7.8 Authentication credentials invalid"]
    assert session.conn.authenticated_as is None


def test_auth_refused_without_tls() -> None:
    session = ready()
    answers = session.feed(line(f"AUTH PLAIN {plain('alice', 'pw')}"))
    assert short(answers) == ["538 5.7.11"]
    assert not session.of(AuthRequest)


def test_auth_without_tls_when_allowed_and_forgotten_after_starttls() -> None:
    allowed = ServerSettings(hostname=HOSTNAME, tls_available=True, allow_auth_without_tls=True)
    session = ready(settings=allowed)
    assert short(session.feed(line(f"AUTH PLAIN {plain('alice', 'pw')}"))) == ["235 2.7.0"]
    session.feed(starttls())
    assert session.conn.authenticated_as is None


BAD_UTF8_PLAIN = b64(b"x\0y\0\xff")


@pytest.mark.parametrize(
    ("commands", "expected"),
    [
        (line("AUTH CRAM-MD5"), "504 5.5.4"),
        (line("AUTH"), "501 5.5.4"),
        (line("AUTH PLAIN a b"), "501 5.5.4"),
        (line("AUTH PLAIN !!!!"), "501 5.5.2"),
        (line("AUTH PLAIN ="), "501 5.5.2"),  # an empty PLAIN message has no NULs
        (line(f"AUTH PLAIN {b64('alice')}"), "501 5.5.2"),
        (line(f"AUTH PLAIN {BAD_UTF8_PLAIN}"), "501 5.5.2"),
        (line(f"AUTH PLAIN {plain('alice', 'pw', authzid='root')}"), "535 5.7.8"),
        (line("AUTH PLAIN") + line("*"), "501 5.7.0"),
        (line("AUTH LOGIN") + line("*"), "501 5.7.0"),
        (line("AUTH LOGIN") + line("not base64!"), "501 5.5.2"),
        (line("AUTH LOGIN") + line(b64("u")) + line("@@"), "501 5.5.2"),
        (line("AUTH LOGIN") + line(b64("u\0v")), "501 5.5.2"),
        (line("AUTH PLAIN ü"), "501 5.5.2"),
        (line("AUTH PLAIN") + b"A" * 3000 + CRLF, "500 5.5.6"),
        (line("AUTH PLAIN") + b"AAAA\n" + CRLF, "500 5.5.2"),  # the line ends at its CRLF
        (line("AUTH PLAIN") + "ü".encode() + CRLF, "501 5.5.2"),
        (mail() + line("AUTH PLAIN"), "503 5.5.1"),
    ],
)
def test_auth_errors(commands: bytes, expected: str) -> None:
    session = ready(tls_active=True)
    answers = session.feed(commands)
    assert short(answers)[-1] == expected
    assert not session.of(AuthRequest)
    assert short(session.feed(noop())) == ["250 2.0.0"]  # back to commands


def test_auth_sequence_errors() -> None:
    assert short(run(line("AUTH PLAIN"), tls_active=True)[1]) == ["503 5.5.1"]
    assert short(run(helo() + line("AUTH PLAIN"), tls_active=True)[1])[-1] == "503 5.5.1"
    session = ready(tls_active=True)
    session.feed(line(f"AUTH PLAIN {plain('a', 'b')}"))
    assert short(session.feed(line(f"AUTH PLAIN {plain('a', 'b')}"))) == ["503 5.5.1"]
    off = ServerSettings(hostname=HOSTNAME, auth_mechanisms=())
    assert short(run(ehlo() + line("AUTH PLAIN"), settings=off, tls_active=True)[1])[-1] == (
        "502 5.5.1"
    )
    login_only = ServerSettings(hostname=HOSTNAME, auth_mechanisms=("LOGIN",))
    session, answers = run(ehlo() + line("AUTH PLAIN"), settings=login_only, tls_active=True)
    assert "AUTH LOGIN" in answers[0].lines and short(answers)[-1] == "504 5.5.4"


# -- other commands and bad lines ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (b"NOOP", "250 2.0.0"),
        (b"noop anything", "250 2.0.0"),
        (b"VRFY bob", "252 2.1.5"),
        (b"VRFY", "501 5.5.4"),
        (b"HELP", "214 2.0.0"),
        (b"EXPN staff", "502 5.5.1"),
        (b"ETRN example.net", "502 5.5.1"),
        (b"FOO", "500 5.5.1"),
        (b"", "500 5.5.1"),
        (b"MAIL\tFROM:<a@example.org>", "500 5.5.2"),
        (b"NOOP \x00", "500 5.5.2"),
        (b"NOOP \xff\xfe", "500 5.5.2"),
        ("ſTARTTLS".encode(), "500 5.5.1"),  # noqa: RUF001 - must not fold to STARTTLS
    ],
)
def test_simple_commands(command: bytes, expected: str) -> None:
    assert short(run(ehlo() + line(command))[1])[-1] == expected


@pytest.mark.parametrize("wire", [b"QUIT\n", b"QUIT\r\r\n", b"QU\rIT\r\n"])
def test_command_lines_must_end_with_crlf(wire: bytes) -> None:
    session, answers = run(wire)
    assert short(answers) == ["500 5.5.2"]
    assert not session.conn.closed


@pytest.mark.parametrize(
    "chunks",
    [
        [b"MAIL FROM:<a@example.org>\nRCPT TO:<bob@example.net>\r\n"],
        [b"MAIL FROM:<a@example.org>\n", b"RCPT TO:<bob@example.net>\r\n"],
        [b"MAIL FROM:<a@example.org>\nRCPT TO:<bob@example.net>\r", b"\n"],
        [b"NOOP\nNOOP\nNOOP\r\n"],
    ],
)
def test_a_bare_lf_in_a_command_line_refuses_the_whole_line(chunks: list[bytes]) -> None:
    # RFC 5321 §2.3.8: only CRLF ends a line; what follows a bare LF is not a new command.
    session = Session()
    answers = session.feed(ehlo()) and session.feed(*chunks)
    assert short(answers) == ["500 5.5.2"]
    assert not session.of(MailFrom) and not session.of(RcptTo)
    assert short(session.feed(noop())) == ["250 2.0.0"]  # the next line is a command again


def test_an_over_long_line_ends_at_crlf_not_at_a_bare_lf() -> None:
    session = Session()
    session.feed(ehlo())
    answers = session.feed(b"NOOP " + b"x" * 3000 + b"\nRCPT TO:<bob@example.net>\r\n", noop())
    assert short(answers) == ["500 5.5.2", "250 2.0.0"]
    assert not session.of(RcptTo)


@pytest.mark.parametrize("verb", ["GET", "POST", "CONNECT"])
def test_http_requests_are_hung_up_on(verb: str) -> None:
    session, answers = run(line(f"{verb} / HTTP/1.1") + line("Host: mx.example.net"))
    assert short(answers) == ["421 4.7.0"]
    assert session.conn.closed and session.of(Violation)


def test_command_line_too_long() -> None:
    session = Session()
    for _ in range(5):
        assert session.feed(b"NOOP " + b"x" * 1000) == []
        assert len(session.conn._in) <= 2048
    assert short(session.feed(b"x\r\n", noop())) == ["500 5.5.2", "250 2.0.0"]


def test_command_line_at_the_limit() -> None:
    long_noop = b"NOOP " + b"x" * (2048 - 7)
    assert short(run(line(long_noop))[1]) == ["250 2.0.0"]
    assert short(run(line(long_noop + b"x"))[1]) == ["500 5.5.2"]


def test_quit_ignores_what_follows() -> None:
    session, answers = run(quit_() + noop())
    assert short(answers) == ["221 2.0.0"]
    session.conn.receive_data(noop())  # ignored once closed
    assert session.conn.next_event() == ConnectionClosed(by_peer=False, after="QUIT")


# -- limits ----------------------------------------------------------------------------------------


def test_too_many_recipients() -> None:
    settings = ServerSettings(hostname=HOSTNAME, max_recipients=2, max_errors=2)
    session, answers = run(
        envelope("<a@example.net>", "<b@example.net>", "<c@example.net>", "<d@example.net>"),
        settings=settings,
    )
    assert short(answers)[-2:] == ["452 4.5.3", "452 4.5.3"]
    assert not session.conn.closed  # not counted as errors
    assert len(session.of(RcptTo)) == 2


def test_too_many_errors() -> None:
    settings = ServerSettings(hostname=HOSTNAME, max_errors=3)
    session, answers = run(line("FOO"), line("BAR"), line("BAZ"), noop(), settings=settings)
    assert short(answers) == ["500 5.5.1", "500 5.5.1", "500 5.5.1", "421 4.7.0"]
    assert session.conn.closed and session.of(Violation)


def test_rejected_recipients_count_as_errors() -> None:
    settings = ServerSettings(hostname=HOSTNAME, max_errors=3)
    session, answers = run(
        envelope(*(f"<u{i}@example.net>" for i in range(5))),
        settings=settings,
        decide=rejecting(RcptTo=replies.RECIPIENT_UNKNOWN),
    )
    assert short(answers)[-4:] == ["550 5.1.1", "550 5.1.1", "550 5.1.1", "421 4.7.0"]
    assert len(session.of(RcptTo)) == 3


def test_too_many_commands_without_a_transaction() -> None:
    settings = ServerSettings(hostname=HOSTNAME, max_commands_before_transaction=3)
    session, answers = run(ehlo(), noop(), line("VRFY x"), rset(), settings=settings)
    assert short(answers) == ["250", "250 2.0.0", "252 2.1.5", "421 4.7.0"]
    assert session.conn.closed


def test_command_count_restarts_after_a_message() -> None:
    settings = ServerSettings(hostname=HOSTNAME, max_commands_before_transaction=3)
    session, _ = run(envelope() + noop() + data() + stuff(b"x\r\n"), settings=settings)
    assert short(session.feed(noop(), noop(), noop())) == ["250 2.0.0"] * 3
    assert short(session.feed(noop())) == ["421 4.7.0"]


# -- timeouts and the end of the connection --------------------------------------------------------


def test_timeout_when_idle() -> None:
    session = ready()
    session.conn.timeout()
    assert short(parse_replies(session.conn.data_to_send())) == ["421 4.4.2"]
    assert session.conn.next_event() == ConnectionClosed(by_peer=False, after="EHLO")
    session.conn.timeout()
    assert session.conn.data_to_send() == b""


def test_shut_down_mid_transaction() -> None:
    session = in_transaction()
    session.feed(data(), b"Subject: half\r\n")
    session.conn.shut_down()
    assert session.conn.data_to_send() == b"421 4.3.2 Service shutting down\r\n"
    session.pump()
    assert not session.of(MessageData)
    assert session.events[-1] == ConnectionClosed(by_peer=False, after="DATA")
    session.conn.shut_down()
    session.conn.timeout()
    assert session.conn.data_to_send() == b""


def test_timeout_in_data_gives_no_message() -> None:
    session = in_transaction()
    session.feed(data(), b"Subject: half\r\n")
    session.conn.timeout()
    session.pump()
    assert not session.of(MessageData)
    assert session.events[-1] == ConnectionClosed(by_peer=False, after="DATA")


def test_decision_after_timeout_is_ignored() -> None:
    session = Session(manual=True)
    session.feed(envelope() + data() + stuff(b"x\r\n"))
    pending = session.conn.pending
    assert pending is not None and isinstance(pending, MailFrom)
    session.conn.timeout()
    session.conn.accept(pending)
    assert short(parse_replies(session.conn.data_to_send())) == ["421 4.4.2"]


def test_eof_while_paused_comes_after_the_decision() -> None:
    session = Session(manual=True)
    session.feed(envelope() + data() + stuff(b"x\r\n"), b"")
    while session.conn.pending is not None:
        session.decide_pending(lambda e: None)
        session.pump()
    assert session.messages == [b"x\r\n"]
    assert short(parse_replies(b"".join(session.flushes)))[-2:] == ["354", "250 2.0.0"]
    assert session.events[-1] == ConnectionClosed(by_peer=True, after="END-OF-MESSAGE")


def test_reject_after_close_is_ignored() -> None:
    session = Session(manual=True)
    session.feed(ehlo() + mail())
    pending = session.conn.pending
    assert pending is not None
    session.conn.timeout()
    session.conn.reject(pending, SENDER_REJECTED)
    assert short(parse_replies(session.conn.data_to_send())) == ["421 4.4.2"]


def test_eof_mid_data() -> None:
    session = in_transaction()
    session.feed(data(), b"Subject: cut\r\n\r\nhalf a mess", b"")
    assert not session.of(MessageData)
    assert session.events[-1] == ConnectionClosed(by_peer=True, after="DATA")


def test_eof_mid_chunk() -> None:
    session = in_transaction()
    session.feed(line("BDAT 100 LAST") + b"only part", b"")
    assert not session.of(MessageData)
    assert session.events[-1] == ConnectionClosed(by_peer=True, after="BDAT")


def test_eof_after_pipelined_commands_processes_them_first() -> None:
    session, _ = run(envelope() + data() + stuff(b"x\r\n") + quit_()[:-2], b"")
    assert session.messages == [b"x\r\n"]
    assert session.events[-1] == ConnectionClosed(by_peer=True, after="END-OF-MESSAGE")


def test_receive_after_eof_is_misuse() -> None:
    conn = ServerConnection(SETTINGS)
    conn.greeting()
    conn.receive_data(b"")
    conn.receive_data(b"")
    with pytest.raises(LocalProtocolError):
        conn.receive_data(b"NOOP\r\n")


# -- the application's misuse ----------------------------------------------------------------------


def test_decisions_must_answer_the_pending_event() -> None:
    session = Session(manual=True)
    session.feed(ehlo() + mail())
    event = session.conn.pending
    assert isinstance(event, MailFrom)
    other = MailFrom(reverse_path=None)
    with pytest.raises(LocalProtocolError):
        session.conn.accept(other)
    with pytest.raises(LocalProtocolError):
        session.conn.reject(event, Reply(250, "2.0.0", "not a rejection"))
    with pytest.raises(ValueError):
        session.conn.accept(event, "two\rlines")
    assert session.conn.pending is event  # still waiting for a decision
    session.conn.accept(event)
    with pytest.raises(LocalProtocolError):
        session.conn.accept(event)


def test_reject_with_421_closes() -> None:
    session, answers = run(
        envelope() + noop(), decide=rejecting(RcptTo=Reply(421, "4.3.2", "Going down"))
    )
    assert short(answers)[-1] == "421 4.3.2"
    assert session.conn.closed


def test_reply_validation() -> None:
    for bad in [(99, None, "x"), (250, "5.0.0", "x"), (250, "2.0", "x"), (250, None, "a\rb")]:
        with pytest.raises(ValueError):
            Reply(*bad)
    with pytest.raises(ValueError):
        Reply(250, "2.0.0", "x" * 600)
    assert Reply(250, "2.0.0", "a\nb").to_bytes() == b"250-2.0.0 a\r\n250 2.0.0 b\r\n"


def test_settings_validation() -> None:
    for bad in [
        {"hostname": "bad host"},
        {"hostname": HOSTNAME, "max_command_line": 100},
        {"hostname": HOSTNAME, "max_errors": 0},
        {"hostname": HOSTNAME, "auth_mechanisms": ("CRAM-MD5",)},
        {"hostname": HOSTNAME, "banner": "two\nlines"},
    ]:
        with pytest.raises(ValueError):
            ServerSettings(**bad)  # type: ignore[arg-type]


# -- the state table -------------------------------------------------------------------------------

AUTH_ALLOWED = ServerSettings(hostname=HOSTNAME, tls_available=True, allow_auth_without_tls=True)
_TO_PHASE = {
    Phase.INITIAL: b"",
    Phase.READY: ehlo(),
    Phase.MAIL: ehlo() + mail(),
    Phase.RCPT: envelope(),
    Phase.CHUNKING: envelope() + bdat(b"x"),
}
_VERB_LINE = {
    Verb.HELO: helo(),
    Verb.EHLO: ehlo(),
    Verb.MAIL: mail(),
    Verb.RCPT: rcpt(),
    Verb.DATA: data(),
    Verb.BDAT: bdat(b"y"),
    Verb.RSET: rset(),
    Verb.NOOP: noop(),
    Verb.QUIT: quit_(),
    Verb.VRFY: line("VRFY bob"),
    Verb.HELP: line("HELP"),
    Verb.STARTTLS: starttls(),
    Verb.AUTH: line(f"AUTH PLAIN {plain('a', 'b')}"),
}


# The verbs whose success is each outcome.
_VERBS_OF = {
    Transition.HELLO: {Verb.HELO, Verb.EHLO},
    Transition.MAIL_ACCEPTED: {Verb.MAIL},
    Transition.RCPT_ACCEPTED: {Verb.RCPT},
    Transition.CHUNK_TAKEN: {Verb.BDAT},
    Transition.MESSAGE_DONE: {Verb.DATA, Verb.BDAT},
    Transition.RESET: {Verb.RSET},
    Transition.TLS_STARTED: {Verb.STARTTLS},
}


def test_state_table_is_complete() -> None:
    assert set(SEQUENCE) == {(p, v) for p in Phase for v in Verb}
    reachable = {Phase.INITIAL} | set(TRANSITIONS.values())
    assert reachable == set(Phase)
    assert set(_VERBS_OF) == set(Transition)
    # The two tables agree: an outcome has a transition in exactly the phases where one of
    # its verbs may run (a transition for a refused verb is dead; a missing one, a KeyError).
    for phase in Phase:
        for outcome, verbs in _VERBS_OF.items():
            allowed = any(SEQUENCE[(phase, verb)] is None for verb in verbs)
            assert ((phase, outcome) in TRANSITIONS) == allowed, (phase, outcome)


# Bytes that bring each outcome about, from a phase where it is possible.
_OUTCOME_LINE = {
    Transition.HELLO: ehlo(),
    Transition.MAIL_ACCEPTED: mail(),
    Transition.RCPT_ACCEPTED: rcpt(),
    Transition.CHUNK_TAKEN: bdat(b"x"),
    Transition.RESET: rset(),
    Transition.TLS_STARTED: starttls(),
}


@pytest.mark.parametrize(("phase", "transition"), list(TRANSITIONS))
def test_every_transition_is_what_the_session_does(phase: Phase, transition: Transition) -> None:
    session = Session(settings=AUTH_ALLOWED)
    if _TO_PHASE[phase]:
        session.feed(_TO_PHASE[phase])
    assert session.conn.phase is phase
    if transition is Transition.MESSAGE_DONE:
        wire = bdat(b"y", last=True) if phase is Phase.CHUNKING else data() + stuff(b"z\r\n")
    else:
        wire = _OUTCOME_LINE[transition]
    session.feed(wire)
    assert session.conn.phase is TRANSITIONS[(phase, transition)]


@pytest.mark.parametrize("phase", list(Phase))
@pytest.mark.parametrize("verb", list(Verb))
def test_state_table_matches_behaviour(phase: Phase, verb: Verb) -> None:
    session = Session(settings=AUTH_ALLOWED)
    if _TO_PHASE[phase]:
        session.feed(_TO_PHASE[phase])
    assert session.conn.phase is phase
    answers = session.feed(_VERB_LINE[verb])
    expected = SEQUENCE[(phase, verb)]
    if expected is None:
        assert answers and answers[0].code < 500 and answers[0].code != 503, (phase, verb)
    else:
        assert str(answers[0]) == str(expected), (phase, verb)


def test_transitions_follow_the_table() -> None:
    session = Session()
    steps: list[tuple[bytes, Phase]] = [
        (ehlo(), Phase.READY),
        (mail(), Phase.MAIL),
        (rcpt(), Phase.RCPT),
        (rcpt(), Phase.RCPT),
        (bdat(b"x"), Phase.CHUNKING),
        (bdat(b"y", last=True), Phase.READY),
        (mail(), Phase.MAIL),
        (rset(), Phase.READY),
        (mail() + rcpt() + data() + stuff(b"z\r\n"), Phase.READY),
        (starttls(), Phase.INITIAL),
    ]
    for wire, phase in steps:
        session.feed(wire)
        assert session.conn.phase is phase, wire


# -- Received: and loop counting -------------------------------------------------------------------

WHEN = 1_751_371_200.0  # Tue, 1 Jul 2025 12:00:00 +0000


def test_received_header() -> None:
    header = received_header(
        from_name="client.example.org",
        from_addr="192.0.2.1",
        by_name=HOSTNAME,
        protocol="ESMTPS",
        queue_id="4F2A",
        recipient="bob@example.net",
        when=WHEN,
        tls="TLSv1.3 TLS_AES_256_GCM_SHA384",
    )
    assert header == (
        b"Received: from client.example.org ([192.0.2.1])\r\n"
        b"\tby mx.example.net (Waypost) with ESMTPS (TLSv1.3 TLS_AES_256_GCM_SHA384) id 4F2A\r\n"
        b"\tfor <bob@example.net>; Tue, 1 Jul 2025 12:00:00 +0000\r\n"
    )


def test_received_header_without_recipient_ipv6_and_hostile_name() -> None:
    header = received_header(
        from_name="evil)\r\nBcc: x (é",
        from_addr="2001:db8::1",
        by_name=HOSTNAME,
        protocol="UTF8SMTPSA",
        queue_id="1",
        recipient=None,
        when=WHEN,
    )
    assert header == (
        b"Received: from evil___Bcc:_x__? ([IPv6:2001:db8::1])\r\n"
        b"\tby mx.example.net (Waypost) with UTF8SMTPSA id 1;\r\n"
        b"\tTue, 1 Jul 2025 12:00:00 +0000\r\n"
    )
    assert count_received(header + b"\r\nbody") == 1
    with pytest.raises(ValueError):
        received_header(
            from_name="a", from_addr="b", by_name="c", protocol="HTTP", queue_id="d",
            recipient=None, when=WHEN,
        )  # fmt: skip


@pytest.mark.parametrize(
    ("esmtp", "tls", "auth", "utf8", "name"),
    [
        (False, True, True, True, "SMTP"),
        (True, False, False, False, "ESMTP"),
        (True, True, False, False, "ESMTPS"),
        (True, False, True, False, "ESMTPA"),
        (True, True, True, False, "ESMTPSA"),
        (True, False, False, True, "UTF8SMTP"),
        (True, True, True, True, "UTF8SMTPSA"),
    ],
)
def test_protocol_name(esmtp: bool, tls: bool, auth: bool, utf8: bool, name: str) -> None:
    assert protocol_name(esmtp=esmtp, tls=tls, authenticated=auth, smtputf8=utf8) == name


@pytest.mark.parametrize(
    ("content", "count"),
    [
        (b"Received: a\r\nreceived: b\r\nRECEIVED : c\r\nSubject: x\r\n\r\nReceived: body\r\n", 3),
        (b"Subject: x\r\n X-Received: no\r\n\r\n", 0),
        (b"\r\nReceived: only a body\r\n", 0),
        (b"Received: a\r\n\tfolded Received: no\r\n", 1),
        (b"Received: a\nReceived: b\n\nReceived: c\n", 2),
        (b"", 0),
    ],
)
def test_count_received(content: bytes, count: int) -> None:
    assert count_received(content) == count


def test_count_received_does_not_count_a_large_body() -> None:
    # That the body is not even scanned, in time: bench/smtp_server.py.
    content = b"Received: a\r\n\r\n" + b"Received: b\r\n" * 3_000_000  # 39 MB
    assert count_received(content) == 1


# -- property tests --------------------------------------------------------------------------------

_POOL = [
    ehlo(),
    helo(),
    mail(),
    mail("<>", "SIZE=10", "BODY=8BITMIME"),
    mail("<jörg@example.org>", "SMTPUTF8"),
    mail("<bad"),
    rcpt(),
    rcpt("<c@example.net>", "NOTIFY=SUCCESS", "ORCPT=rfc822;c@example.net"),
    rcpt("<>"),
    data(),
    stuff(message()),
    b"text\r\n.\r\n",
    b"\n.\n",
    bdat(b"chunk"),
    bdat(b"end\r\n", last=True),
    line("BDAT 3"),
    line("BDAT x"),
    rset(),
    noop(),
    quit_(),
    starttls(),
    line(f"AUTH PLAIN {plain('a', 'b')}"),
    line("AUTH LOGIN"),
    line(b64("u")),
    line("*"),
    line("VRFY a"),
    line("HELP"),
    line("EXPN x"),
    line("GET /"),
    mail("<a@example.org>", "Y" * 1000),
    rcpt("<" + "é" * 500 + "@example.net>"),
    b"\r\n",
    b"\n",
    b"\r",
    b"\x00\xff",
    b"x" * 3000,
]


def _decisions() -> st.SearchStrategy[Reply | None]:
    return st.sampled_from(
        [None, replies.RECIPIENT_UNKNOWN, replies.TEMPORARY_FAILURE, Reply(421, "4.3.2", "bye")]
    )


def _drive(session: Session, chunks: list[bytes], choose: st.DataObject) -> bytes:
    out = b""
    for chunk in chunks:
        session.conn.receive_data(chunk)
        while True:
            event = session.conn.next_event()
            if event is NEED_DATA or isinstance(event, ConnectionClosed):
                break
            if event is PAUSED:
                pending = session.conn.pending
                if pending is None:
                    session.conn.tls_started()
                    continue
                decision = choose.draw(_decisions())
                if decision is None:
                    session.conn.accept(pending)
                else:
                    session.conn.reject(pending, decision)
        out += session.conn.data_to_send()
    return out


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.one_of(st.binary(max_size=200), st.sampled_from(_POOL)), max_size=30),
    choose=st.data(),
    tls=st.booleans(),
)
def test_fuzz_never_raises_and_replies_are_well_formed(
    chunks: list[bytes], choose: st.DataObject, tls: bool
) -> None:
    settings_ = ServerSettings(
        hostname=HOSTNAME, tls_available=True, max_message_size=2000, max_command_line=600
    )
    session = Session(settings=settings_, tls_active=tls, manual=True)
    out = _drive(session, [*(c for c in chunks if c), b""], choose)
    parse_replies(out)
    assert session.conn.closed


@settings(max_examples=200)
@given(
    commands=st.lists(st.sampled_from(_POOL), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=10),
    choose=st.data(),
)
def test_fuzz_command_interleavings(
    commands: list[bytes], cuts: list[int], choose: st.DataObject
) -> None:
    wire = b"".join(commands)
    points = sorted({c for c in cuts if c < len(wire)} | {0, len(wire)})
    chunks = [wire[a:b] for a, b in itertools.pairwise(points)]
    session = Session(manual=True)
    out = _drive(session, chunks, choose)
    for answer in parse_replies(out):
        assert 200 <= answer.code <= 599


_LINE = st.binary(max_size=120).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_BODY = st.lists(_LINE, max_size=30).map(lambda lines: b"".join(x + CRLF for x in lines))


@settings(max_examples=200)
@given(body=_BODY, cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_message_split_anywhere_gives_the_same_content(body: bytes, cuts: list[int]) -> None:
    wire = data() + stuff(body) + noop()
    points = sorted({c for c in cuts if c < len(wire)} | {0, len(wire)})
    session = in_transaction()
    answers = session.feed(*(wire[a:b] for a, b in itertools.pairwise(points)))
    assert short(answers) == ["354", "250 2.0.0", "250 2.0.0"]
    assert session.messages == [body]


@settings(max_examples=300)
@given(body=_BODY)
def test_dot_stuffing_round_trip(body: bytes) -> None:
    session = in_transaction()
    session.feed(data() + stuff(body))
    assert session.messages == [body]


@settings(max_examples=300)
@given(
    body=_BODY.filter(bool),
    inserts=st.lists(
        st.tuples(
            st.integers(min_value=0), st.sampled_from([b"\r", b"\n", b".\n", b"\n.", b"\r."])
        ),
        min_size=1,
        max_size=4,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=6),
)
def test_bare_cr_or_lf_never_yields_a_message(
    body: bytes, inserts: list[tuple[int, bytes]], cuts: list[int]
) -> None:
    stuffed = bytearray(stuff(body)[:-3])  # without the final ".\r\n"
    for position, insert in inserts:
        at = position % (len(stuffed) + 1)
        stuffed[at:at] = insert
    stuffed_bytes = bytes(stuffed)
    assume(has_bare_cr_or_lf(stuffed_bytes))
    if not stuffed_bytes.endswith(CRLF):
        stuffed_bytes += CRLF
    # The look-alikes must not have built a real CRLF.CRLF before the end.
    assume(b"\r\n.\r\n" not in b"\r\n" + stuffed_bytes)
    wire = data() + stuffed_bytes + b".\r\n" + noop()
    points = sorted({c for c in cuts if c < len(wire)} | {0, len(wire)})
    session = in_transaction()
    answers = session.feed(*(wire[a:b] for a, b in itertools.pairwise(points)))
    assert short(answers) == ["354", "550 5.6.11", "250 2.0.0"]
    assert not session.of(MessageData)


@settings(max_examples=200)
@given(
    body=st.binary(max_size=600).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"\r\n")),
    sizes=st.lists(st.integers(0, 200), max_size=8),
)
def test_bdat_chunking_round_trip(body: bytes, sizes: list[int]) -> None:
    chunks, rest = [], body
    for size in sizes:
        chunks.append(rest[:size])
        rest = rest[size:]
    wire = b"".join(bdat(c) for c in chunks) + bdat(rest, last=True)
    session = in_transaction()
    session.feed(*(wire[i : i + 7] for i in range(0, len(wire), 7)))
    assert session.messages == [body]


def test_a_large_message_arrives_whole() -> None:
    # How fast: bench/smtp_server.py.
    body = (b"x" * 76 + CRLF) * 400_000  # 31 MB
    session = in_transaction()
    wire = data() + stuff(body)
    session.feed(*(wire[i : i + 65536] for i in range(0, len(wire), 65536)))
    assert session.messages == [body]


def test_hello_event_validates() -> None:
    with pytest.raises(ValueError):
        Hello(esmtp=True, name="")
    with pytest.raises(ValueError):
        RcptTo(path=Mailbox("a", "b.example"), notify=(Notify.NEVER, Notify.DELAY))
    with pytest.raises(ValueError):
        AuthRequest(mechanism="CRAM-MD5", username="a", password="b")
    with pytest.raises(ValueError):
        MailFrom(reverse_path=None, body="9BIT")
    with pytest.raises(ValueError):
        MailFrom(reverse_path=None, size=-1)
    with pytest.raises(ValueError):
        SaslExchange("CRAM-MD5")


def test_reply_catalogue_is_consistent() -> None:
    for name, value in vars(replies).items():
        if isinstance(value, Reply):
            assert re.fullmatch(r"[A-Z_]+", name)
            assert len(parse_replies(value.to_bytes(), ehlo_lines=False)) == 1


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b".", b"\r\n."]), max_size=12))
def test_bare_cr_or_lf_is_told_as_counting_would_tell_it(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    crlf = data.count(b"\r\n")
    assert has_bare_cr_or_lf(data) == (data.count(b"\r") != crlf or data.count(b"\n") != crlf)
