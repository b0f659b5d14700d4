"""The SMTP server's limits, each configured small and hit over real sockets."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Callable

import pytest
from interop_helpers import RawSmtp, Waypost, wait_for

pytestmark = pytest.mark.interop


def greeted(port: int) -> RawSmtp:
    raw = RawSmtp(port)
    code, text = raw.reply()
    assert code == 220, (code, text)
    return raw


def test_declared_size_over_the_limit_is_refused_at_mail(
    make_waypost: Callable[..., Waypost],
) -> None:
    wp = make_waypost(settings={"smtp": {"max_message_size": 2048}})
    with greeted(wp.port) as raw:
        code, text = raw.command("EHLO client.test")
        assert "SIZE 2048" in text.splitlines()
        code, text = raw.command("MAIL FROM:<alice@localhost> SIZE=100000")
        assert code == 552 and text.startswith("5.3.4"), (code, text)
        code, _ = raw.command("RCPT TO:<bob@localhost>")
        assert code == 503, "MAIL was refused: no transaction"
        assert raw.command("MAIL FROM:<alice@localhost> SIZE=1000")[0] == 250
        assert raw.command("QUIT")[0] == 221
    assert "-- 0 recipients" in wp.queue_list()


def test_actual_size_over_the_limit_is_refused_after_data(
    make_waypost: Callable[..., Waypost],
) -> None:
    wp = make_waypost(settings={"smtp": {"max_message_size": 2048}})
    big = b"Subject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 130  # about 10 kB
    with greeted(wp.port) as raw:
        raw.command("EHLO client.test")
        assert raw.command("MAIL FROM:<alice@localhost>")[0] == 250  # no SIZE declared
        assert raw.command("RCPT TO:<bob@localhost>")[0] == 250
        assert raw.command("DATA")[0] == 354
        raw.send(big + b".\r\n")
        code, text = raw.reply()
        assert code == 552 and text.startswith("5.3.4"), (code, text)
        # The session goes on, and a small message still gets through.
        assert raw.command("MAIL FROM:<alice@localhost>")[0] == 250
        assert raw.command("RCPT TO:<carol@localhost>")[0] == 250
        assert raw.command("DATA")[0] == 354
        raw.send(b"Subject: small\r\n\r\nok\r\n.\r\n")
        assert raw.reply()[0] == 250
        assert raw.command("QUIT")[0] == 221
    wait_for(lambda: wp.maildir("carol"), 10, "the small message")
    wp.wait_queue_empty()
    assert wp.maildir("bob") == []
    assert len(wp.events(1700)) == 1


def test_too_many_recipients_get_452(make_waypost: Callable[..., Waypost]) -> None:
    wp = make_waypost(settings={"smtp": {"max_recipients": 3}})
    with greeted(wp.port) as raw:
        raw.command("EHLO client.test")
        assert raw.command("MAIL FROM:<alice@localhost>")[0] == 250
        for user in ("u1", "u2", "u3"):
            assert raw.command(f"RCPT TO:<{user}@localhost>")[0] == 250
        code, text = raw.command("RCPT TO:<u4@localhost>")
        assert code == 452 and text.startswith("4.5.3"), (code, text)
        assert raw.command("DATA")[0] == 354
        raw.send(b"Subject: three\r\n\r\nfor three\r\n.\r\n")
        assert raw.reply()[0] == 250
        assert raw.command("QUIT")[0] == 221
    for user in ("u1", "u2", "u3"):
        wait_for(lambda u=user: wp.maildir(u), 10, f"delivery to {user}")
    assert wp.maildir("u4") == []
    wp.wait_queue_empty()


def test_connections_per_client_limit(make_waypost: Callable[..., Waypost]) -> None:
    wp = make_waypost(settings={"smtp": {"max_connections_per_client": 2}})
    # Waypost's readiness probe may take a moment to be released: wait for the two slots.
    first = greeted(wp.port)
    second = wait_for(lambda: _greeted_or_none(wp.port), 5, "a second connection slot")
    try:
        with RawSmtp(wp.port) as third:
            code, text = third.reply()
            assert code == 421 and text.startswith("4.7.0"), (code, text)
            assert third.closed_by_peer(), "the refused connection is closed"
        # The first two are still served.
        assert first.command("NOOP")[0] == 250
        assert second.command("NOOP")[0] == 250
        (line,) = wp.wait_event(1702)
        assert "127.0.0.1" in line
    finally:
        first.close()
        second.close()
    # Slots are given back when connections close.
    wait_for(lambda: _greeted_or_none(wp.port), 5, "a slot after the others closed").close()


def _greeted_or_none(port: int) -> RawSmtp | None:
    raw = RawSmtp(port)
    if raw.reply()[0] == 220:
        return raw
    raw.close()
    return None


def test_junk_commands_before_a_transaction_end_the_session(
    make_waypost: Callable[..., Waypost],
) -> None:
    wp = make_waypost(settings={"smtp": {"max_commands_before_transaction": 5}})
    with greeted(wp.port) as raw:
        replies = [raw.command("EHLO client.test")[0]]
        replies += [raw.command("NOOP")[0] for _ in range(4)]
        assert replies == [250] * 5
        code, text = raw.command("NOOP")
        assert code == 421 and text.startswith("4.7.0"), (code, text)
        assert raw.closed_by_peer()
    assert wp.events(1703)
    # Each session counts afresh, HELO included: five are answered, the sixth ends it.
    with greeted(wp.port) as raw:
        for _ in range(5):
            assert raw.command("NOOP")[0] == 250
        assert raw.command("HELO client.test")[0] == 421


def test_idle_session_times_out_while_others_carry_on(
    make_waypost: Callable[..., Waypost],
) -> None:
    wp = make_waypost(settings={"smtp": {"idle_timeout": 1}})
    busy_result: list[object] = []

    def busy_client() -> None:
        # Active for longer than the idle timeout, never idle for as long as it.
        try:
            with smtplib.SMTP("127.0.0.1", wp.port, timeout=10) as client:
                client.ehlo("busy.test")
                for _ in range(4):
                    time.sleep(0.4)
                    assert client.noop()[0] == 250
                busy_result.append(
                    client.sendmail(
                        "alice@localhost", ["bob@localhost"], "Subject: busy\r\n\r\nx\r\n"
                    )
                )
        except Exception as exc:
            busy_result.append(exc)

    with greeted(wp.port) as idle:
        started = time.monotonic()
        busy = threading.Thread(target=busy_client)
        busy.start()
        code, text = idle.reply()
        elapsed = time.monotonic() - started
        assert code == 421 and text.startswith("4.4.2"), (code, text)
        assert idle.closed_by_peer()
        busy.join(timeout=15)
    assert 0.8 <= elapsed <= 3.0, elapsed
    assert busy_result == [{}], busy_result
    (line,) = wp.wait_event(1704)
    assert "127.0.0.1" in line
    wait_for(lambda: wp.maildir("bob"), 10, "the busy client's message")


def test_overlong_command_line_is_refused_and_the_session_goes_on(
    make_waypost: Callable[..., Waypost],
) -> None:
    wp = make_waypost()
    with greeted(wp.port) as raw:
        raw.command("EHLO client.test")
        code, text = raw.command("MAIL FROM:<" + "a" * 4980 + "@localhost>")
        assert code == 500 and text.startswith("5.5.2"), (code, text)
        assert raw.command("NOOP")[0] == 250
        assert raw.command("MAIL FROM:<alice@localhost>")[0] == 250, "no transaction was open"
        assert raw.command("RCPT TO:<bob@localhost>")[0] == 250
        assert raw.command("DATA")[0] == 354
        raw.send(b"Subject: after a long line\r\n\r\nstill here\r\n.\r\n")
        assert raw.reply()[0] == 250
        assert raw.command("QUIT")[0] == 221
    wait_for(lambda: wp.maildir("bob"), 10, "the message after the long line")
