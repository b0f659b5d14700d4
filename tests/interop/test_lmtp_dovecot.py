"""LMTP delivery (RFC 2033) into a real Dovecot LMTP server started by the test: local
mailboxes go to the message store over TCP or its UNIX socket, each recipient gets its own
outcome from Dovecot's replies after the data, and an unknown mailbox is reported to the
sender. Two nodes on one PostgreSQL queue deliver into the same store, each message once."""

from __future__ import annotations

import smtplib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from dovecot_server import DovecotLmtp, installed
from interop_helpers import Waypost, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

pytestmark = pytest.mark.interop


@pytest.fixture
def dovecot() -> Iterator[DovecotLmtp]:
    if not installed():
        pytest.skip("Dovecot's LMTP server is not installed (dovecot-core, dovecot-lmtpd)")
    server = DovecotLmtp(users=("ann", "bob", "postmaster"))
    try:
        yield server
    finally:
        server.stop()


def local_store(hop: str) -> dict[str, dict[str, object]]:
    return {"local": {"domains": ["store.test"], "lmtp": hop}}


def send(port: int, sender: str, recipients: list[str], subject: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, recipients, f"Subject: {subject}\r\n\r\nbody of {subject}\r\n")


def test_lmtp_delivers_each_recipient_by_its_own_reply(
    make_waypost: Callable[..., Waypost], dovecot: DovecotLmtp
) -> None:
    wp = make_waypost(settings=local_store(f"lmtp:[127.0.0.1]:{dovecot.port}"))
    # zed has no mailbox in the store: Dovecot refuses it at RCPT, the others are saved.
    send(wp.port, "ann@store.test", ["ann@store.test", "zed@store.test", "bob@store.test"], "one")
    wait_for(lambda: dovecot.messages("ann") and dovecot.messages("bob"), 20, "both mailboxes")
    (saved,) = dovecot.messages("bob")
    assert b"body of one" in saved and b"Received: from" in saved
    # The failure's report goes back to the sender, ann: into her store mailbox too.
    wait_for(lambda: len(dovecot.messages("ann")) == 2, 20, "the report to ann")
    report = dovecot.messages("ann")[1]
    assert b"multipart/report" in report and b"zed@store.test" in report
    assert b"5.1.1" in report
    wait_for(lambda: "0 recipients" in wp.queue_list(), 20, "an empty queue")
    route = wp.cli("route", "bob@store.test")
    assert f"lmtp:[127.0.0.1]:{dovecot.port}" in route.stdout
    assert "delivered into the message store by LMTP" in route.stdout


def test_lmtp_over_the_stores_unix_socket(
    make_waypost: Callable[..., Waypost], dovecot: DovecotLmtp
) -> None:
    wp = make_waypost(settings=local_store(f"lmtp:unix:{dovecot.socket}"))
    for i in range(20):
        send(wp.port, "sender@example.org", ["bob@store.test"], f"m{i}")
    wait_for(lambda: len(dovecot.messages("bob")) == 20, 30, "20 messages for bob")
    # (Dovecot stores messages with bare LF line ends.)
    subjects = sorted(
        m.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].strip() for m in dovecot.messages("bob")
    )
    assert subjects == sorted(f"m{i}".encode() for i in range(20))
