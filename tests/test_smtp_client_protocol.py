"""The sans-I/O SMTP client, byte for byte against scripted server replies."""

from __future__ import annotations

import re

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from waypost.handoff import Result
from waypost.message import Envelope, Notify, Recipient, Ret
from waypost.smtp.client_protocol import (
    NEED_DATA,
    ClientConnection,
    ClientState,
    Closed,
    CloseReason,
    Event,
    LocalProtocolError,
    Ready,
    RecipientOutcome,
    TLSReady,
    TLSRefused,
    TransactionDone,
)
from waypost.smtp.client_wire import (
    ReceivedReply,
    ReplyError,
    ReplyReader,
    dot_stuff,
    make_reply,
    parse_ehlo,
    split_orcpt,
)

FULL = (
    "PIPELINING",
    "SIZE 10000",
    "8BITMIME",
    "SMTPUTF8",
    "DSN",
    "STARTTLS",
    "ENHANCEDSTATUSCODES",
)
CONTENT = b"Subject: hi\r\n\r\nhello\r\n"


def reply(code: int, *lines: str) -> bytes:
    """Server reply bytes: `reply(250, "a", "b")` is `250-a CRLF 250 b CRLF`."""
    lines = lines or ("",)
    return b"".join(
        f"{code}{' ' if i == len(lines) - 1 else '-'}{line}\r\n".encode()
        for i, line in enumerate(lines)
    )


def drain(client: ClientConnection) -> list[Event]:
    events: list[Event] = []
    while (event := client.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def connect(*keywords: str, **kwargs: bool) -> ClientConnection:
    """A client past the greeting and EHLO, offering `keywords`."""
    client = ClientConnection(local_hostname="client.example", **kwargs)
    assert client.data_to_send() == b""
    client.receive_data(reply(220, "mx.example.org ESMTP"))
    assert client.data_to_send() == b"EHLO client.example\r\n"
    client.receive_data(reply(250, "mx.example.org greets client.example", *keywords))
    [ready] = drain(client)
    assert isinstance(ready, Ready)
    assert client.state is ClientState.READY
    return client


def envelope(
    *recipients: str | Recipient, originator: str = "alice@example.org", **kw: object
) -> Envelope:
    rcpts = [r if isinstance(r, Recipient) else Recipient(address=r) for r in recipients]
    return Envelope(mts_id="m1@test", originator=originator, recipients=rcpts, **kw)  # type: ignore[arg-type]


def done(client: ClientConnection) -> TransactionDone:
    events = drain(client)
    assert len(events) == 1, events
    assert isinstance(events[0], TransactionDone)
    return events[0]


def results(event: TransactionDone) -> list[tuple[int, Result, str]]:
    return [(o.index, o.result, o.detail) for o in event.outcomes]


# --- replies and capabilities ----------------------------------------------------


def test_reply_parsing_multi_line_and_enhanced_code() -> None:
    reader = ReplyReader()
    reader.feed(b"550-5.1.1 <bob@example.org>: user\r\n550 5.1.1 unknown\r\n250 ok\r\n")
    first = reader.next_reply()
    assert first == ReceivedReply(
        code=550, lines=("5.1.1 <bob@example.org>: user", "5.1.1 unknown"), enhanced="5.1.1"
    )
    assert str(first) == "550 5.1.1 <bob@example.org>: user unknown"
    assert first.status == "5.1.1"
    second = reader.next_reply()
    assert second is not None and str(second) == "250 ok" and second.status == "2.0.0"
    assert reader.next_reply() is None


def test_reply_split_anywhere_and_bare_code() -> None:
    reader = ReplyReader()
    data = b"250-first\r\n250\r\n"
    for byte in data[:-1]:
        reader.feed(bytes([byte]))
        assert reader.next_reply() is None
    reader.feed(data[-1:])
    assert reader.next_reply() == ReceivedReply(code=250, lines=("first", ""))


def test_enhanced_code_of_another_class_is_not_taken() -> None:
    assert make_reply(550, ("4.2.2 mailbox full",)).enhanced is None
    assert make_reply(452, ("4.5.3 too many recipients",)).enhanced == "4.5.3"


@pytest.mark.parametrize(
    "data",
    [
        b"hello\r\n",
        b"25 ok\r\n",
        b"2500ok\r\n",
        b"150 what\r\n",
        b"650 no\r\n",
        b"250-a\r\n251 b\r\n",
        b"250 a\rb\r\n",
        b"\xff\xfe\r\n",
        b"2" * 3000,
    ],
)
def test_garbage_replies_raise_reply_error(data: bytes) -> None:
    reader = ReplyReader()
    reader.feed(data)
    with pytest.raises(ReplyError):
        reader.next_reply()


def test_reply_line_and_count_limits() -> None:
    reader = ReplyReader(max_line=20, max_lines=3)
    reader.feed(b"250 " + b"x" * 14 + b"\r\n")  # exactly 20 octets
    assert reader.next_reply() is not None
    reader.feed(b"250 " + b"x" * 15 + b"\r\n")
    with pytest.raises(ReplyError, match="longer"):
        reader.next_reply()
    reader = ReplyReader(max_lines=3)
    reader.feed(b"250-a\r\n250-b\r\n250 c\r\n")
    assert reader.next_reply() is not None
    reader.feed(b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n")
    with pytest.raises(ReplyError, match="lines"):
        reader.next_reply()


def test_control_characters_and_bad_utf8_are_made_printable() -> None:
    reader = ReplyReader()
    reader.feed(b"550 5.7.1 bad\x1b[31m \xff\r\n")
    rejected = reader.next_reply()
    assert rejected is not None
    assert str(rejected) == "550 5.7.1 bad?[31m \ufffd"


def test_capabilities_parsing() -> None:
    caps = parse_ehlo(
        make_reply(
            250,
            (
                "mx.example.org Hello",
                "pipelining",
                "SIZE   35882577",
                "8BITMIME",
                "AUTH=LOGIN",
                "AUTH PLAIN  login CRAM-MD5",
                "ENHANCEDSTATUSCODES",
                "DSN",
                "SMTPUTF8",
                "CHUNKING",
                "BINARYMIME",
                "STARTTLS",
                "X-EXPS GSSAPI",
                "not/a keyword",
                "",
            ),
        )
    )
    assert caps.esmtp and caps.pipelining and caps.eightbitmime and caps.dsn
    assert caps.smtputf8 and caps.chunking and caps.binarymime and caps.starttls
    assert caps.enhanced_status_codes
    assert caps.size == 35882577
    assert caps.auth == {"LOGIN", "PLAIN", "CRAM-MD5"}
    assert "X-EXPS" in caps.keywords and "NOT/A" not in caps.keywords


@pytest.mark.parametrize(
    ("line", "size"), [("SIZE", 0), ("SIZE 0", 0), ("SIZE big", 0), ("SIZE 1000", 1000)]
)
def test_size_without_a_limit(line: str, size: int) -> None:
    assert parse_ehlo(make_reply(250, ("mx", line))).size == size
    assert parse_ehlo(make_reply(250, ("mx",))).size is None


def test_split_orcpt() -> None:
    assert split_orcpt("rfc822;bob@example.org") == ("rfc822", "bob@example.org")
    assert split_orcpt("bob@example.org") == ("rfc822", "bob@example.org")
    assert split_orcpt("x400;/C=GB;ADMD= /S=Smith/") == ("x400", "/C=GB;ADMD= /S=Smith/")


# --- opening the session -----------------------------------------------------------


@pytest.mark.parametrize("code", [554, 421, 450])
def test_greeting_refused(code: int) -> None:
    client = ClientConnection(local_hostname="client.example")
    client.receive_data(reply(code, "5.7.1 go away" if code == 554 else "busy"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.REFUSED
    assert closed.reply is not None and closed.reply.code == code
    assert client.state is ClientState.CLOSED
    # A polite QUIT, except after 421 when the server is already going away.
    assert client.data_to_send() == (b"" if code == 421 else b"QUIT\r\n")
    with pytest.raises(LocalProtocolError):
        client.send_message(envelope("bob@example.org"), CONTENT)


def test_multi_line_greeting() -> None:
    client = ClientConnection(local_hostname="client.example")
    client.receive_data(reply(220, "mx.example.org ESMTP", "welcome"))
    assert client.data_to_send() == b"EHLO client.example\r\n"


def test_ehlo_refused_falls_back_to_helo() -> None:
    client = ClientConnection(local_hostname="client.example")
    client.receive_data(reply(220, "mx ready"))
    assert client.data_to_send() == b"EHLO client.example\r\n"
    client.receive_data(reply(502, "5.5.1 command not implemented"))
    assert client.data_to_send() == b"HELO client.example\r\n"
    assert drain(client) == []
    client.receive_data(reply(250, "mx"))
    [ready] = drain(client)
    assert isinstance(ready, Ready)
    assert not ready.capabilities.esmtp and not ready.capabilities.pipelining
    assert str(ready.greeting) == "220 mx ready"


def test_helo_refused_closes() -> None:
    client = ClientConnection(local_hostname="client.example")
    client.receive_data(reply(220, "mx") + reply(500, "what") + reply(550, "no"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.REFUSED
    assert client.data_to_send() == b"EHLO client.example\r\nHELO client.example\r\nQUIT\r\n"


def test_ehlo_temporary_failure_closes() -> None:
    client = ClientConnection(local_hostname="client.example")
    client.receive_data(reply(220, "mx") + reply(451, "4.3.0 later"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.REFUSED


def test_non_220_positive_greeting_is_a_protocol_error() -> None:
    client = ClientConnection(local_hostname="client.example")
    client.receive_data(reply(250, "hi"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.PROTOCOL_ERROR


def test_bad_local_hostname() -> None:
    with pytest.raises(ValueError):
        ClientConnection(local_hostname="a b")
    with pytest.raises(ValueError):
        ClientConnection(local_hostname="x\r\nRCPT TO:<e@vil>")


# --- STARTTLS --------------------------------------------------------------------


def test_starttls_forgets_capabilities_and_says_ehlo_again() -> None:
    client = connect(*FULL)
    client.start_tls()
    assert client.data_to_send() == b"STARTTLS\r\n"
    client.receive_data(reply(220, "2.0.0 go ahead"))
    [tls] = drain(client)
    assert isinstance(tls, TLSReady)
    assert client.state is ClientState.TLS_HANDSHAKE
    with pytest.raises(LocalProtocolError):
        client.send_message(envelope("bob@example.org"), CONTENT)
    client.tls_started()
    assert client.capabilities.esmtp is False  # forgotten (RFC 3207 §4.2)
    assert client.data_to_send() == b"EHLO client.example\r\n"
    client.receive_data(reply(250, "mx", "PIPELINING", "AUTH PLAIN"))
    [ready] = drain(client)
    assert isinstance(ready, Ready) and ready.tls
    assert ready.capabilities.auth == {"PLAIN"} and not ready.capabilities.starttls
    with pytest.raises(LocalProtocolError):
        client.start_tls()


def test_data_after_220_to_starttls_is_an_injection() -> None:
    client = connect(*FULL)
    client.start_tls()
    client.receive_data(reply(220, "go ahead") + reply(250, "injected"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.PROTOCOL_ERROR


def test_clear_text_during_the_handshake_is_refused() -> None:
    client = connect(*FULL)
    client.start_tls()
    client.receive_data(reply(220, "go ahead"))
    drain(client)
    client.receive_data(reply(250, "injected"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.PROTOCOL_ERROR


def test_starttls_refused_goes_on_in_clear_text() -> None:
    client = connect(*FULL)
    client.start_tls()
    client.data_to_send()
    client.receive_data(reply(454, "4.7.0 TLS not available"))
    [refused] = drain(client)
    assert isinstance(refused, TLSRefused) and refused.reply.code == 454
    assert client.state is ClientState.READY and client.capabilities.dsn


def test_starttls_not_offered() -> None:
    client = connect("PIPELINING")
    with pytest.raises(LocalProtocolError):
        client.start_tls()


# --- transactions ------------------------------------------------------------------


def test_pipelined_transaction_with_mixed_recipients() -> None:
    client = connect(*FULL)
    env = envelope("a@example.net", "b@example.net", "c@example.net", "d@example.net")
    client.send_message(env, CONTENT)
    assert client.data_to_send() == (
        b"MAIL FROM:<alice@example.org> SIZE=22\r\n"
        b"RCPT TO:<a@example.net>\r\n"
        b"RCPT TO:<b@example.net>\r\n"
        b"RCPT TO:<c@example.net>\r\n"
        b"RCPT TO:<d@example.net>\r\n"
        b"DATA\r\n"
    )
    client.receive_data(
        reply(250, "2.1.0 ok")
        + reply(250, "2.1.5 ok")
        + reply(450, "4.2.1 <b@example.net>: try later")
        + reply(550, "5.1.1 <c@example.net>: user", "5.1.1 unknown")
        + reply(251, "2.1.5 will forward")
    )
    assert drain(client) == []
    assert client.data_to_send() == b""
    client.receive_data(reply(354, "go ahead"))
    assert client.data_to_send() == CONTENT + b".\r\n"
    assert client.waiting_for == "the end of data"
    client.receive_data(reply(250, "2.0.0 queued as 42"))
    event = done(client)
    assert results(event) == [
        (0, Result.DELIVERED, "250 2.0.0 queued as 42"),
        (1, Result.DEFERRED, "450 4.2.1 <b@example.net>: try later"),
        (2, Result.FAILED, "550 5.1.1 <c@example.net>: user unknown"),
        (3, Result.DELIVERED, "250 2.0.0 queued as 42"),
    ]
    assert [o.status for o in event.outcomes] == ["2.0.0", "4.2.1", "5.1.1", "2.0.0"]
    assert all(o.remote for o in event.outcomes)
    assert not event.dsn_unsupported
    assert client.state is ClientState.READY


def test_pipelined_all_recipients_refused_and_data_refused() -> None:
    client = connect(*FULL)
    client.send_message(envelope("a@example.net", "b@example.net"), CONTENT)
    client.data_to_send()
    client.receive_data(
        reply(250, "ok")
        + reply(550, "5.1.1 no a")
        + reply(451, "4.3.0 no b")
        + reply(554, "5.5.1 no valid recipients")
    )
    event = done(client)
    assert results(event) == [
        (0, Result.FAILED, "550 5.1.1 no a"),
        (1, Result.DEFERRED, "451 4.3.0 no b"),
    ]
    assert client.data_to_send() == b""
    # The next transaction starts with RSET, in the same pipelined group.
    client.send_message(envelope("c@example.net"), CONTENT)
    assert client.data_to_send().startswith(b"RSET\r\nMAIL FROM:")


def test_pipelined_all_recipients_refused_but_data_accepted() -> None:
    # RFC 2920 §3.1: a server that says 354 anyway gets a lone "." and no message.
    client = connect(*FULL)
    client.send_message(envelope("a@example.net", "b@example.net"), CONTENT)
    client.data_to_send()
    client.receive_data(
        reply(250, "ok") + reply(550, "no a") + reply(550, "no b") + reply(354, "go")
    )
    assert client.data_to_send() == b".\r\n"
    assert drain(client) == []
    client.receive_data(reply(554, "5.5.1 no valid recipients"))
    event = done(client)
    assert results(event) == [(0, Result.FAILED, "550 no a"), (1, Result.FAILED, "550 no b")]
    assert [o.status for o in event.outcomes] == ["5.0.0", "5.0.0"]


def test_pipelined_mail_refused_outcomes_come_from_mail_reply() -> None:
    client = connect(*FULL)
    client.send_message(envelope("a@example.net", "b@example.net"), CONTENT)
    client.data_to_send()
    client.receive_data(
        reply(452, "4.3.1 insufficient storage")
        + reply(503, "5.5.1 need MAIL")
        + reply(503, "5.5.1 need MAIL")
        + reply(503, "5.5.1 need MAIL")
    )
    event = done(client)
    assert results(event) == [
        (0, Result.DEFERRED, "452 4.3.1 insufficient storage"),
        (1, Result.DEFERRED, "452 4.3.1 insufficient storage"),
    ]


def test_non_pipelined_one_command_at_a_time() -> None:
    client = connect("SIZE", "8BITMIME")
    client.send_message(envelope("a@example.net", "b@example.net", "c@example.net"), CONTENT)
    assert client.data_to_send() == b"MAIL FROM:<alice@example.org> SIZE=22\r\n"
    client.receive_data(reply(250, "ok"))
    assert client.data_to_send() == b"RCPT TO:<a@example.net>\r\n"
    client.receive_data(reply(550, "no such user"))
    assert client.data_to_send() == b"RCPT TO:<b@example.net>\r\n"
    client.receive_data(reply(250, "ok"))
    assert client.data_to_send() == b"RCPT TO:<c@example.net>\r\n"
    client.receive_data(reply(452, "too many recipients"))
    assert client.data_to_send() == b"DATA\r\n"
    client.receive_data(reply(354, "go"))
    assert client.data_to_send() == CONTENT + b".\r\n"
    client.receive_data(reply(250, "queued"))
    assert results(done(client)) == [
        (0, Result.FAILED, "550 no such user"),
        (1, Result.DELIVERED, "250 queued"),
        (2, Result.DEFERRED, "452 too many recipients"),
    ]


def test_non_pipelined_all_refused_sends_no_data_and_rsets_before_the_next() -> None:
    client = connect()
    client.send_message(envelope("a@example.net"), CONTENT)
    assert client.data_to_send() == b"MAIL FROM:<alice@example.org>\r\n"
    client.receive_data(reply(250, "ok"))
    assert client.data_to_send() == b"RCPT TO:<a@example.net>\r\n"
    client.receive_data(reply(550, "no"))
    assert results(done(client)) == [(0, Result.FAILED, "550 no")]
    assert client.data_to_send() == b""
    client.send_message(envelope("b@example.net"), CONTENT)
    assert client.data_to_send() == b"RSET\r\n"
    client.receive_data(reply(250, "reset"))
    assert client.data_to_send() == b"MAIL FROM:<alice@example.org>\r\n"


def test_non_pipelined_mail_refused() -> None:
    client = connect()
    client.send_message(envelope("a@example.net", "b@example.net"), CONTENT)
    client.data_to_send()
    client.receive_data(reply(553, "5.1.8 bad sender domain"))
    assert client.data_to_send() == b""
    event = done(client)
    assert [o.result for o in event.outcomes] == [Result.FAILED, Result.FAILED]
    assert {o.status for o in event.outcomes} == {"5.1.8"}


@pytest.mark.parametrize(("code", "result"), [(451, Result.DEFERRED), (554, Result.FAILED)])
def test_end_of_data_refused(code: int, result: Result) -> None:
    client = connect(*FULL)
    client.send_message(envelope("a@example.net", "b@example.net"), CONTENT)
    client.data_to_send()
    client.receive_data(reply(250, "ok") + reply(250, "ok") + reply(250, "ok") + reply(354, "go"))
    client.data_to_send()
    client.receive_data(reply(code, "rejected"))
    assert [(o.result, o.detail) for o in done(client).outcomes] == [
        (result, f"{code} rejected")
    ] * 2


def test_data_command_refused() -> None:
    client = connect()
    client.send_message(envelope("a@example.net"), CONTENT)
    client.receive_data(reply(250, "ok") + reply(250, "ok") + reply(451, "4.3.0 not now"))
    assert client.data_to_send() == (
        b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<a@example.net>\r\nDATA\r\n"
    )
    assert results(done(client)) == [(0, Result.DEFERRED, "451 4.3.0 not now")]


def test_two_transactions_on_one_connection_then_quit() -> None:
    client = connect(*FULL)
    for n in range(2):
        client.send_message(envelope(f"r{n}@example.net"), CONTENT)
        assert client.data_to_send().startswith(b"MAIL FROM:")  # no RSET after a success
        client.receive_data(reply(250, "ok") + reply(250, "ok") + reply(354, "go"))
        assert client.data_to_send() == CONTENT + b".\r\n"
        client.receive_data(reply(250, f"queued {n}"))
        assert results(done(client)) == [(0, Result.DELIVERED, f"250 queued {n}")]
    client.quit()
    assert client.data_to_send() == b"QUIT\r\n"
    client.receive_data(reply(221, "2.0.0 bye"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.QUIT
    client.receive_data(b"")  # EOF after Closed is nothing new
    assert drain(client) == []


def test_bytes_after_the_reply_to_quit() -> None:
    client = connect(*FULL)
    client.quit()
    client.receive_data(reply(221, "bye") + b"garbage")
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.PROTOCOL_ERROR


def test_eof_after_quit_is_a_clean_close() -> None:
    client = connect(*FULL)
    client.quit()
    client.receive_data(b"")
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.QUIT


def test_selected_recipients_keep_their_indexes() -> None:
    client = connect(*FULL)
    env = envelope("a@example.net", "b@example.net", "c@example.net")
    client.send_message(env, CONTENT, [env.recipients[2], env.recipients[0]])
    assert b"RCPT TO:<c@example.net>\r\nRCPT TO:<a@example.net>\r\n" in client.data_to_send()
    client.receive_data(reply(250, "ok") + reply(550, "no c") + reply(250, "ok") + reply(354, "go"))
    client.data_to_send()
    client.receive_data(reply(250, "done"))
    assert results(done(client)) == [
        (0, Result.FAILED, "550 no c"),
        (1, Result.DELIVERED, "250 done"),
    ]


# --- parameters --------------------------------------------------------------------


def dsn_envelope() -> Envelope:
    return envelope(
        Recipient(
            address="a@example.net",
            notify=[Notify.FAILURE, Notify.SUCCESS],
            orcpt="rfc822;A+x@example.net",
        ),
        Recipient(address="b@example.net", notify=[Notify.NEVER]),
        Recipient(address="c@example.net"),
        ret=Ret.HDRS,
        envid="id=1 2",
    )


def test_dsn_parameters_when_dsn_is_offered() -> None:
    client = connect(*FULL)
    client.send_message(dsn_envelope(), CONTENT)
    assert client.data_to_send() == (
        b"MAIL FROM:<alice@example.org> SIZE=22 RET=HDRS ENVID=id+3D1+202\r\n"
        b"RCPT TO:<a@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;A+2Bx@example.net\r\n"
        b"RCPT TO:<b@example.net> NOTIFY=NEVER\r\n"
        b"RCPT TO:<c@example.net>\r\n"
        b"DATA\r\n"
    )


def test_no_dsn_parameters_without_dsn_and_the_caller_is_told() -> None:
    client = connect("PIPELINING")
    client.send_message(dsn_envelope(), CONTENT)
    assert client.data_to_send() == (
        b"MAIL FROM:<alice@example.org>\r\n"
        b"RCPT TO:<a@example.net>\r\n"
        b"RCPT TO:<b@example.net>\r\n"
        b"RCPT TO:<c@example.net>\r\n"
        b"DATA\r\n"
    )
    client.receive_data(reply(250, "ok") * 4 + reply(354, "go"))
    client.data_to_send()
    client.receive_data(reply(250, "ok"))
    assert done(client).dsn_unsupported


def test_dsn_unsupported_only_when_something_was_asked() -> None:
    client = connect("PIPELINING")
    client.send_message(envelope("a@example.net"), CONTENT)
    client.receive_data(reply(250, "ok") * 2 + reply(354, "go"))
    client.receive_data(reply(250, "ok"))
    assert not done(client).dsn_unsupported


def test_over_long_envid_and_orcpt_are_not_sent() -> None:
    client = connect(*FULL)
    env = envelope(Recipient(address="a@example.net", orcpt="rfc822;" + "x" * 600), envid="e" * 101)
    client.send_message(env, CONTENT)
    assert b"ENVID" not in client.data_to_send().split(b"\r\n")[0]


def test_size_over_the_server_limit_fails_without_sending() -> None:
    client = connect("PIPELINING", "SIZE 10")
    client.send_message(envelope("a@example.net", "b@example.net"), CONTENT)
    assert client.data_to_send() == b""
    event = done(client)
    assert [(o.result, o.status, o.remote) for o in event.outcomes] == [
        (Result.FAILED, "5.3.4", False)
    ] * 2
    assert "exceeds the size limit 10" in event.outcomes[0].detail
    assert client.state is ClientState.READY


def test_eight_bit_content_gets_body_8bitmime() -> None:
    client = connect(*FULL)
    client.send_message(envelope("a@example.net"), b"Subject: caf\xc3\xa9\r\n\r\nx\r\n")
    assert client.data_to_send().startswith(
        b"MAIL FROM:<alice@example.org> SIZE=21 BODY=8BITMIME\r\n"
    )
    client = connect("PIPELINING")
    client.send_message(envelope("a@example.net"), b"x\xff\r\n")
    assert client.data_to_send().startswith(b"MAIL FROM:<alice@example.org>\r\n")


def test_declared_8bitmime_body() -> None:
    client = connect("8BITMIME")
    client.send_message(envelope("a@example.net", body="8BITMIME"), CONTENT)
    assert client.data_to_send() == b"MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"


def test_smtputf8() -> None:
    env = envelope("jörg@example.net", originator="", smtputf8=True)
    client = connect(*FULL)
    client.send_message(env, CONTENT)
    assert client.data_to_send().startswith(
        b"MAIL FROM:<> SIZE=22 SMTPUTF8\r\nRCPT TO:<j\xc3\xb6rg@example.net>\r\n"
    )
    client = connect("PIPELINING")
    client.send_message(envelope("jörg@example.net", "bob@example.net", smtputf8=True), CONTENT)
    # Only the recipient that needs SMTPUTF8 fails; the ASCII one goes.
    assert (
        client.data_to_send()
        == b"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.net>\r\nDATA\r\n"
    )
    client.receive_data(reply(250, "ok") * 2 + reply(354, "go"))
    client.receive_data(reply(250, "ok"))
    event = done(client)
    assert [(o.result, o.status) for o in event.outcomes] == [
        (Result.FAILED, "5.6.7"),
        (Result.DELIVERED, "2.0.0"),
    ]


def test_utf8_headers_need_smtputf8() -> None:
    client = connect("PIPELINING", "8BITMIME")
    client.send_message(envelope("a@example.net", smtputf8=True), "Subject: é\r\n\r\n".encode())
    assert client.data_to_send() == b""
    assert done(client).outcomes[0].status == "5.6.7"


def test_control_characters_in_addresses_are_refused_here() -> None:
    client = connect(*FULL)
    client.send_message(envelope("a@example.net\r\nRCPT TO:<evil@x>", "b@example.net"), CONTENT)
    sent = client.data_to_send()
    assert b"evil" not in sent and b"RCPT TO:<b@example.net>" in sent
    client = connect(*FULL)
    client.send_message(envelope("a@example.net", originator="x>\r\nDATA"), CONTENT)
    assert client.data_to_send() == b""
    assert done(client).outcomes[0].status == "5.1.7"


def test_chunking() -> None:
    client = connect(*FULL, "CHUNKING", prefer_chunking=True)
    client.send_message(envelope("a@example.net"), b".dot\nline")
    assert client.data_to_send() == (
        b"MAIL FROM:<alice@example.org> SIZE=10\r\n"
        b"RCPT TO:<a@example.net>\r\n"
        b"BDAT 10 LAST\r\n.dot\r\nline"
    )
    client.receive_data(reply(250, "ok") * 2 + reply(250, "2.0.0 queued"))
    assert results(done(client)) == [(0, Result.DELIVERED, "250 2.0.0 queued")]


def test_binarymime_needs_chunking() -> None:
    binary = b"\x00\r\x01\n"
    client = connect(*FULL, "CHUNKING", "BINARYMIME")
    client.send_message(envelope("a@example.net", body="BINARYMIME"), binary)
    assert client.data_to_send() == (
        b"MAIL FROM:<alice@example.org> SIZE=4 BODY=BINARYMIME\r\n"
        b"RCPT TO:<a@example.net>\r\n"
        b"BDAT 4 LAST\r\n" + binary
    )
    client = connect(*FULL)
    client.send_message(envelope("a@example.net", body="BINARYMIME"), binary)
    assert done(client).outcomes[0].status == "5.6.3"


def test_dot_stuffing_and_newline_normalisation() -> None:
    assert dot_stuff(b".a\r\n..b\r\nc.\r\n.\r\n") == b"..a\r\n...b\r\nc.\r\n..\r\n.\r\n"
    assert dot_stuff(b"a\nb\rc") == b"a\r\nb\r\nc\r\n.\r\n"
    assert dot_stuff(b"") == b".\r\n"
    assert dot_stuff(b"QUFB\r\nQUFB\r\n") == b"QUFB\r\nQUFB\r\n.\r\n"  # nothing to stuff
    # No way to smuggle an end of data through bare LFs.
    assert dot_stuff(b"a\n.\nMAIL FROM:<x>\n") == b"a\r\n..\r\nMAIL FROM:<x>\r\n.\r\n"
    client = connect(*FULL)
    client.send_message(envelope("a@example.net"), b".hidden\r\nbody")
    client.receive_data(reply(250, "ok") * 2 + reply(354, "go"))
    assert client.data_to_send().endswith(b"DATA\r\n..hidden\r\nbody\r\n.\r\n")
    client = connect(*FULL)  # bare LFs in the content: normalised, then stuffed
    client.send_message(envelope("a@example.net"), b"a\n.\nb")
    client.receive_data(reply(250, "ok") * 2 + reply(354, "go"))
    assert client.data_to_send().endswith(b"DATA\r\na\r\n..\r\nb\r\n.\r\n")


def test_content_marked_crlf_clean_is_stuffed_without_a_scan_for_line_ends() -> None:
    # Envelope.crlf says, where the content was made, that no line end is bare: it is
    # trusted, so only the SMTP server (which refuses bare CR and LF) and the gateway's
    # writer set it. Here it is set on content that breaks it, to show no scan is made:
    # only the stuffing, the final CRLF and the terminator are added.
    client = connect(*FULL)
    marked = msgspec.structs.replace(envelope("a@example.net"), crlf=True)
    client.send_message(marked, b".a\r\nb\nc")
    client.receive_data(reply(250, "ok") * 2 + reply(354, "go"))
    assert client.data_to_send().endswith(b"DATA\r\n..a\r\nb\nc\r\n.\r\n")


def dot_unstuff(payload: bytes) -> bytes:
    """The message a DATA payload carries (the inverse of dot_stuff on CRLF text)."""
    if payload != b".\r\n" and not payload.endswith(b"\r\n.\r\n"):
        raise ValueError("no end-of-data terminator")
    body = payload[:-3]
    if body.startswith(b"."):
        body = body[1:]
    return body.replace(b"\r\n..", b"\r\n.")


@given(st.lists(st.binary().map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")), max_size=20))
def test_dot_stuffing_round_trips(lines: list[bytes]) -> None:
    body = b"".join(line + b"\r\n" for line in lines)
    payload = dot_stuff(body)
    assert b"\r\n.\r\n" not in b"\r\n" + payload[:-3]
    assert dot_unstuff(payload) == body


# --- the connection going wrong ----------------------------------------------------


def pipelined_in_flight() -> ClientConnection:
    client = connect(*FULL)
    client.send_message(envelope("a@example.net", "b@example.net", "c@example.net"), CONTENT)
    client.data_to_send()
    return client


@pytest.mark.parametrize("how", ["lost", "eof", "timeout"])
def test_lost_while_waiting_for_rcpt_replies(how: str) -> None:
    client = pipelined_in_flight()
    client.receive_data(reply(250, "ok") + reply(550, "5.1.1 no a"))
    if how == "lost":
        client.connection_lost()
    elif how == "eof":
        client.receive_data(b"")
    else:
        client.timeout()
    transaction, closed = drain(client)
    assert isinstance(transaction, TransactionDone) and isinstance(closed, Closed)
    assert (
        closed.reason
        is {"lost": CloseReason.LOST, "eof": CloseReason.LOST, "timeout": CloseReason.TIMEOUT}[how]
    )
    word = "timeout" if how == "timeout" else "connection lost"
    assert results(transaction) == [
        (0, Result.FAILED, "550 5.1.1 no a"),
        (1, Result.DEFERRED, f"4.4.2 {word} after RCPT TO"),
        (2, Result.DEFERRED, f"4.4.2 {word} after RCPT TO"),
    ]
    assert client.state is ClientState.CLOSED


def test_lost_before_the_mail_reply_and_after_data() -> None:
    client = pipelined_in_flight()
    client.connection_lost()
    transaction, _ = drain(client)
    assert isinstance(transaction, TransactionDone)
    assert {o.detail for o in transaction.outcomes} == {"4.4.2 connection lost after MAIL FROM"}

    client = pipelined_in_flight()
    client.receive_data(reply(250, "ok") * 4)
    client.connection_lost()
    transaction, _ = drain(client)
    assert isinstance(transaction, TransactionDone)
    assert {o.detail for o in transaction.outcomes} == {"4.4.2 connection lost after DATA"}


def test_lost_after_the_end_of_data_defers_and_says_it_may_have_been_delivered() -> None:
    client = pipelined_in_flight()
    client.receive_data(reply(250, "ok") * 4 + reply(354, "go"))
    client.data_to_send()
    client.connection_lost()
    transaction, closed = drain(client)
    assert isinstance(transaction, TransactionDone) and isinstance(closed, Closed)
    assert all(o.result is Result.DEFERRED and o.status == "4.4.2" for o in transaction.outcomes)
    assert "may have been accepted" in transaction.outcomes[0].detail
    assert transaction.outcomes[0].detail.startswith("4.4.2 connection lost after the end of data")


def test_lost_while_idle_or_in_the_greeting() -> None:
    client = connect(*FULL)
    client.connection_lost()
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.LOST
    client = ClientConnection(local_hostname="c")
    assert client.waiting_for == "the greeting"
    client.timeout()
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.TIMEOUT


def test_service_closing_in_the_middle_defers_with_the_421() -> None:
    client = pipelined_in_flight()
    client.receive_data(reply(250, "ok") + reply(550, "no a") + reply(421, "4.3.2 shutting down"))
    transaction, closed = drain(client)
    assert isinstance(transaction, TransactionDone)
    assert results(transaction) == [
        (0, Result.FAILED, "550 no a"),
        (1, Result.DEFERRED, "421 4.3.2 shutting down"),
        (2, Result.DEFERRED, "421 4.3.2 shutting down"),
    ]
    assert isinstance(closed, Closed) and closed.reason is CloseReason.REFUSED
    assert client.data_to_send() == b""


def test_unsolicited_421_while_idle() -> None:
    client = connect(*FULL)
    client.receive_data(reply(421, "idle timeout"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.REFUSED


@pytest.mark.parametrize(
    "garbage",
    [b"HTTP/1.1 400 Bad Request\r\n", b"250-ok\r\n251 ok\r\n", b"354 go\r\n", b"x" * 5000],
)
def test_garbage_mid_transaction_defers_everyone_in_flight(garbage: bytes) -> None:
    client = pipelined_in_flight()
    client.receive_data(reply(250, "ok") + reply(250, "ok") + garbage)
    transaction, closed = drain(client)
    assert isinstance(transaction, TransactionDone) and isinstance(closed, Closed)
    assert closed.reason is CloseReason.PROTOCOL_ERROR
    assert [o.result for o in transaction.outcomes] == [Result.DEFERRED] * 3
    assert all(o.status == "4.5.0" for o in transaction.outcomes)


def test_unsolicited_reply_while_idle_is_a_protocol_error() -> None:
    client = connect(*FULL)
    client.receive_data(reply(250, "surprise"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and closed.reason is CloseReason.PROTOCOL_ERROR


def test_rset_refused_ends_the_session() -> None:
    client = connect()
    client.send_message(envelope("a@example.net"), CONTENT)
    client.receive_data(reply(250, "ok") + reply(550, "no"))
    done(client)
    client.data_to_send()
    client.send_message(envelope("b@example.net"), CONTENT)
    assert client.data_to_send() == b"RSET\r\n"
    client.receive_data(reply(500, "what?"))
    transaction, closed = drain(client)
    assert isinstance(transaction, TransactionDone) and isinstance(closed, Closed)
    assert closed.reason is CloseReason.PROTOCOL_ERROR
    assert transaction.outcomes[0].result is Result.DEFERRED


def test_starttls_after_a_failed_transaction_resets_first() -> None:
    client = connect("STARTTLS")
    client.send_message(envelope("a@example.net"), CONTENT)
    client.receive_data(reply(250, "ok") + reply(550, "no"))
    done(client)
    client.data_to_send()
    client.start_tls()
    assert client.data_to_send() == b"RSET\r\n"
    client.receive_data(reply(250, "ok"))
    assert client.data_to_send() == b"STARTTLS\r\n"
    client.receive_data(reply(220, "go"))
    assert isinstance(drain(client)[0], TLSReady)


@pytest.mark.parametrize(("position", "wrong"), [(1, 354), (2, 250)])
def test_wrong_kind_of_reply_is_a_protocol_error(position: int, wrong: int) -> None:
    # 354 to RCPT; 250 (not 354) to DATA.
    client = connect()
    client.send_message(envelope("a@example.net"), CONTENT)
    replies = [reply(250, "ok"), reply(250, "ok"), reply(354, "go")]
    replies[position] = reply(wrong, "odd")
    for data in replies[: position + 1]:
        client.receive_data(data)
    transaction, closed = drain(client)
    assert isinstance(transaction, TransactionDone) and isinstance(closed, Closed)
    assert closed.reason is CloseReason.PROTOCOL_ERROR
    assert transaction.outcomes[0].result is Result.DEFERRED


def test_waiting_for_names_the_reply_awaited() -> None:
    client = connect()
    assert client.waiting_for is None
    client.send_message(envelope("a@example.net"), CONTENT)
    assert client.waiting_for == "MAIL FROM"
    client.receive_data(reply(250, "ok"))
    assert client.waiting_for == "RCPT TO"
    client.receive_data(reply(250, "ok"))
    assert client.waiting_for == "DATA"


@given(st.binary(max_size=300))
def test_reply_reader_fuzz(data: bytes) -> None:
    reader = ReplyReader(max_line=64, max_lines=4)
    reader.feed(data)
    try:
        while (parsed := reader.next_reply()) is not None:
            assert 200 <= parsed.code <= 599 and 1 <= len(parsed.lines) <= 4
            assert all(c.isprintable() for line in parsed.lines for c in line)
    except ReplyError:
        pass


def test_methods_in_the_wrong_state() -> None:
    client = ClientConnection(local_hostname="c")
    for call in (client.quit, client.start_tls, client.tls_started):
        with pytest.raises(LocalProtocolError):
            call()
    client = connect(*FULL)
    with pytest.raises(LocalProtocolError):
        client.send_message(envelope("a@example.net"), CONTENT, [])
    client.send_message(envelope("a@example.net"), CONTENT)
    with pytest.raises(LocalProtocolError):
        client.send_message(envelope("a@example.net"), CONTENT)


def test_outcome_validates() -> None:
    with pytest.raises(ValueError):
        RecipientOutcome(index=0, result=Result.DELIVERED, status="5.0.0", detail="x")
    with pytest.raises(ValueError):
        RecipientOutcome(index=-1, result=Result.FAILED, status="5.0.0", detail="x")


# --- fuzzing -------------------------------------------------------------------------

_REPLY_LINES = st.sampled_from(
    [
        b"220 hi\r\n",
        b"250 ok\r\n",
        b"250-",
        b"354 go\r\n",
        b"421 bye\r\n",
        b"450 later\r\n",
        b"550 5.1.1 no\r\n",
        b"221 bye\r\n",
        b"502 no\r\n",
        b"\r\n",
        b"\n",
        b"25",
        b"\xff",
    ]
)


@settings(max_examples=500)
@given(
    st.lists(st.binary(max_size=40) | _REPLY_LINES, max_size=30),
    st.booleans(),
    st.sampled_from(["none", "lost", "timeout"]),
    st.lists(st.sampled_from(["send", "tls", "quit"]), min_size=1, max_size=4),
)
def test_random_reply_streams_never_raise(
    chunks: list[bytes], opened: bool, end: str, actions: list[str]
) -> None:
    """Whatever the server sends, no exception, at most one Closed, and every
    recipient of every transaction started gets exactly one outcome once closed."""
    client = ClientConnection(local_hostname="client.example", max_reply_line=100)
    if opened:
        chunks = [reply(220, "mx"), reply(250, "mx", "PIPELINING", "DSN", "STARTTLS"), *chunks]
    todo = list(actions)
    started = 0
    outcomes: list[RecipientOutcome] = []
    closed = 0

    def act() -> None:
        nonlocal started
        action = todo.pop(0) if todo else "quit"
        if action == "tls" and client.capabilities.starttls and not client.tls:
            client.start_tls()
        elif action == "quit":
            client.quit()
        else:
            started += 1
            client.send_message(envelope("a@example.net", "b@example.net"), CONTENT)

    def pump() -> None:
        nonlocal closed
        while events := drain(client):
            for event in events:
                if isinstance(event, TransactionDone):
                    assert sorted(o.index for o in event.outcomes) == [0, 1]
                    outcomes.extend(event.outcomes)
                elif isinstance(event, Closed):
                    closed += 1
                elif isinstance(event, TLSReady):
                    client.tls_started()
                if client.state is ClientState.READY and not isinstance(event, TLSReady):
                    act()

    for chunk in chunks:
        client.receive_data(chunk)
        pump()
        client.data_to_send()
    if end == "lost":
        client.connection_lost()
    elif end == "timeout":
        client.timeout()
    pump()
    assert closed <= 1
    if client.state is ClientState.CLOSED:
        assert len(outcomes) == 2 * started


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"\r\n."]), max_size=10))
def test_dot_stuffed_data_reads_back_as_the_content(pieces: list[bytes]) -> None:
    # RFC 5321 §4.5.2: the receiver drops one leading dot of each line and stops at
    # CRLF.CRLF; what it reads is the content with its line ends made CRLF.
    content = b"".join(pieces)
    data = dot_stuff(content)
    assert data.endswith(b"\r\n.\r\n") or data == b".\r\n"
    body = data[: -len(b".\r\n")]
    assert b"\r\n.\r\n" not in b"\r\n" + body[:-2] + b"\r\n" or body == b""
    lines = body.split(b"\r\n")
    read = b"\r\n".join(line[1:] if line.startswith(b".") else line for line in lines)
    expected = re.sub(rb"\r\n|\r|\n", b"\r\n", content)
    if expected and not expected.endswith(b"\r\n"):
        expected += b"\r\n"
    assert read == expected


def test_the_trace_shows_each_line_and_the_content_as_its_size() -> None:
    client = connect("PIPELINING", "SIZE 10000")
    client.trace = []
    client.send_message(envelope("a@example.net"), CONTENT)
    client.data_to_send()
    client.receive_data(reply(250, "2.1.0 ok") + reply(250, "2.1.5 ok") + reply(354, "go"))
    client.data_to_send()
    client.receive_data(reply(250, "2.0.0 Ok: queued as 4F2A", "second line"))
    done(client)
    assert client.trace == [
        (">", "MAIL FROM:<alice@example.org> SIZE=22"),
        (">", "RCPT TO:<a@example.net>"),
        (">", "DATA"),
        ("<", "250 2.1.0 ok"),
        ("<", "250 2.1.5 ok"),
        ("<", "354 go"),
        (">", f"(content, {len(CONTENT) + 3} octets)"),
        ("<", "250-2.0.0 Ok: queued as 4F2A"),
        ("<", "250 second line"),
    ]


# --- LMTP (RFC 2033) ---------------------------------------------------------------


def lmtp_connect(*keywords: str) -> ClientConnection:
    client = ClientConnection(local_hostname="client.example", lmtp=True)
    client.receive_data(reply(220, "store.example LMTP ready"))
    assert client.data_to_send() == b"LHLO client.example\r\n"
    client.receive_data(reply(250, "store.example", *keywords))
    [ready] = drain(client)
    assert isinstance(ready, Ready)
    return client


def test_lmtp_gives_each_recipient_its_own_reply_after_the_data() -> None:
    client = lmtp_connect("PIPELINING", "ENHANCEDSTATUSCODES", "8BITMIME", "CHUNKING")
    client.send_message(envelope("a@x", "b@x", "c@x", "d@x"), CONTENT)
    sent = client.data_to_send()
    assert sent.startswith(b"MAIL FROM:<alice@example.org>")
    assert sent.endswith(b"DATA\r\n")  # never BDAT, though CHUNKING is offered
    client.receive_data(
        reply(250, "2.1.0 ok")
        + reply(250, "2.1.5 ok")
        + reply(550, "5.1.1 <b@x> no such user")
        + reply(250, "2.1.5 ok")
        + reply(250, "2.1.5 ok")
        + reply(354, "go ahead")
    )
    assert client.data_to_send() == CONTENT + b".\r\n"
    assert drain(client) == []
    # One reply per accepted recipient, in RCPT order: a, c, d.
    client.receive_data(reply(250, "2.0.0 <a@x> saved"))
    assert drain(client) == []
    client.receive_data(reply(452, "4.2.2 <c@x> mailbox full") + reply(250, "2.0.0 <d@x> saved"))
    event = done(client)
    assert results(event) == [
        (0, Result.DELIVERED, "250 2.0.0 <a@x> saved"),
        (1, Result.FAILED, "550 5.1.1 <b@x> no such user"),
        (2, Result.DEFERRED, "452 4.2.2 <c@x> mailbox full"),
        (3, Result.DELIVERED, "250 2.0.0 <d@x> saved"),
    ]
    # The session goes on: the next transaction needs no RSET.
    client.send_message(envelope("e@x"), CONTENT)
    assert client.data_to_send().startswith(b"MAIL FROM:")


def test_lmtp_connection_lost_between_recipient_replies() -> None:
    client = lmtp_connect("PIPELINING")
    client.send_message(envelope("a@x", "b@x"), CONTENT)
    client.data_to_send()
    client.receive_data(reply(250) + reply(250) + reply(250) + reply(354))
    client.data_to_send()
    client.receive_data(reply(250, "2.0.0 <a@x> saved"))
    client.receive_data(b"")
    event, closed = drain(client)
    assert isinstance(event, TransactionDone)
    assert results(event)[0][1] is Result.DELIVERED
    index, result, detail = results(event)[1]
    assert (index, result) == (1, Result.DEFERRED)
    assert "may be delivered twice" in detail
    assert isinstance(closed, Closed)


def test_lmtp_refused_lhlo_has_no_helo_fallback() -> None:
    client = ClientConnection(local_hostname="client.example", lmtp=True)
    client.receive_data(reply(220, "store.example"))
    client.data_to_send()
    client.receive_data(reply(500, "5.5.1 what is LHLO"))
    [closed] = drain(client)
    assert isinstance(closed, Closed) and "LHLO refused" in closed.detail
    assert client.data_to_send() == b"QUIT\r\n"
