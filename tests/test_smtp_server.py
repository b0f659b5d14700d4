"""The SMTP server driver in process, on the real store: durable 250, 451 on failure, relay."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import free_port, running_service

from waypost.message import decode_envelope
from waypost.service import Service


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    port = free_port()
    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        f'[x400]\nlisten = []\n[smtp]\nlisten = ["127.0.0.1:{port}"]\nrelay_networks = []\n'
        f"[queue]\npoll_interval = 0.1\n"
        f'[[route]]\nmatch = "routed.example"\nnext_hop = "smtp:[127.0.0.1]:9"\n',
    )
    yield svc
    await svc.stop()


def port_of(svc: Service) -> int:
    assert svc.smtp is not None
    return svc.smtp.bound[0][1]


def send(port: int, sender: str, rcpts: list[str], body: bytes) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail(sender, rcpts, body)


def count(svc: Service, table: str) -> int:
    with sqlite3.connect(svc.store.path) as conn:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def test_250_only_once_durable_and_delivered_locally(service: Service) -> None:
    port = port_of(service)
    refused = await asyncio.to_thread(
        send, port, "a@src.example", ["bob@localhost"], b"Subject: x\r\n\r\nhi\r\n"
    )
    assert refused == {}
    maildir = Path(service.config.server.data_dir) / "maildir" / "bob" / "new"
    for _ in range(100):
        if maildir.exists() and list(maildir.iterdir()):
            break
        await asyncio.sleep(0.05)
    (delivered,) = list(maildir.iterdir())
    assert b"by mx.test (Waypost) with ESMTP" in delivered.read_bytes()


async def test_mail_received_is_stored_marked_free_of_bare_line_ends(service: Service) -> None:
    # The server refused bare CR and LF as it read the data, so the envelope says so and
    # the SMTP client relays the content without scanning it again (Envelope.crlf).
    port = port_of(service)
    body = b"Subject: x\r\n\r\n.dot\r\nhi\r\n"
    await asyncio.to_thread(send, port, "a@src.example", ["c@routed.example"], body)
    with sqlite3.connect(service.store.path) as conn:
        (blob,) = conn.execute("SELECT envelope FROM messages").fetchone()
    assert decode_envelope(blob).crlf


async def test_store_failure_after_data_is_451_and_nothing_leaks(service: Service) -> None:
    port = port_of(service)
    with sqlite3.connect(service.store.path) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON messages "
            "BEGIN SELECT RAISE(ABORT, 'disk I/O error: secret internals'); END"
        )
    with pytest.raises(smtplib.SMTPDataError) as failure:
        await asyncio.to_thread(send, port, "a@src.example", ["bob@localhost"], b"x\r\n")
    assert failure.value.smtp_code == 451
    assert failure.value.smtp_error.startswith(b"4.3.0")
    assert b"secret" not in failure.value.smtp_error and b"disk" not in failure.value.smtp_error
    assert count(service, "messages") == 0
    # The server carries on once the fault is gone.
    with sqlite3.connect(service.store.path) as conn:
        conn.execute("DROP TRIGGER refuse")
    refused = await asyncio.to_thread(send, port, "a@src.example", ["bob@localhost"], b"x\r\n")
    assert refused == {}


async def test_relay_policy_with_no_trusted_networks(service: Service) -> None:
    port = port_of(service)
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        await asyncio.to_thread(send, port, "a@src.example", ["x@elsewhere.example"], b"x\r\n")
    code, text = refused.value.recipients["x@elsewhere.example"]
    assert (code, text[:5]) == (554, b"5.7.1")
    # Local and explicitly routed domains are accepted from anyone.
    ok = await asyncio.to_thread(
        send, port, "a@src.example", ["bob@localhost", "y@routed.example"], b"x\r\n"
    )
    assert ok == {}
    assert count(service, "messages") == 1


async def test_stopping_says_421_to_an_idle_session(service: Service) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(service))
    assert (await reader.readline()).startswith(b"220 ")
    writer.write(b"EHLO client.example\r\n")
    while not (await reader.readline()).startswith(b"250 "):
        pass
    assert service.smtp is not None
    await service.smtp.close()
    assert await reader.read() == b"421 4.3.2 Service shutting down\r\n"
    writer.close()


async def test_loop_detection(service: Service) -> None:
    port = port_of(service)
    body = b"".join(
        b"Received: from hop%d by x; Mon, 1 Jan 2024 00:00:00 +0000\r\n" % i for i in range(55)
    )
    with pytest.raises(smtplib.SMTPDataError) as failure:
        await asyncio.to_thread(send, port, "a@src.example", ["bob@localhost"], body + b"\r\nx\r\n")
    assert failure.value.smtp_code == 554 and failure.value.smtp_error.startswith(b"5.4.6")
    assert count(service, "messages") == 0


async def test_many_concurrent_sessions_each_get_their_message_stored(service: Service) -> None:
    port = port_of(service)

    def one(i: int) -> dict[str, tuple[int, bytes]]:
        return send(port, f"s{i}@src.example", [f"u{i}@localhost"], b"Subject: %d\r\n\r\nx\r\n" % i)

    results = await asyncio.gather(*(asyncio.to_thread(one, i) for i in range(20)))
    assert all(r == {} for r in results)
    maildir = Path(service.config.server.data_dir) / "maildir"
    for _ in range(100):
        if sum(1 for _ in maildir.glob("u*/new/*")) == 20:
            break
        await asyncio.sleep(0.05)
    assert sum(1 for _ in maildir.glob("u*/new/*")) == 20


async def test_data_timeout_closes_a_stalled_transfer(tmp_path: Path) -> None:
    port = free_port()
    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        "[x400]\nlisten = []\n"
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\ndata_timeout = 0.5\nidle_timeout = 30\n',
        name="t",
        background=False,
    )
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await reader.readline()
        writer.write(b"EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\n")
        replies = b""
        while b"354" not in replies:
            replies += await reader.read(1000)
        writer.write(b"Subject: slow\r\n\r\nhalf a mess")
        start = asyncio.get_running_loop().time()
        rest = await asyncio.wait_for(reader.read(1000), 10)
        assert rest.startswith(b"421 4.4.2")
        assert asyncio.get_running_loop().time() - start < 5  # the DATA timer, not the idle one
        assert await reader.read(1000) == b""  # closed
        assert count(svc, "messages") == 0
    finally:
        await svc.stop()


async def test_listens_on_ipv6_loopback(tmp_path: Path) -> None:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
            port = probe.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    svc = await running_service(
        tmp_path,
        "[x400]\nlisten = []\n"
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n[smtp]\nlisten = ["[::1]:{port}"]\n',
        name="v6",
        background=False,
    )
    try:
        assert await asyncio.to_thread(send6, port) == {}
        assert count(svc, "messages") == 1
    finally:
        await svc.stop()


def send6(port: int) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("::1", port, timeout=10) as client:
        return client.sendmail("a@x.example", ["bob@localhost"], b"x\r\n")
