"""Hazards of the SMTP server found by a security review, each over a real socket to a running
service: bare LF in a command line, local parts that are no mailbox name, <Postmaster>, a
client trickling its message, one network holding every connection slot."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import free_port, running_service

from waypost import events
from waypost.service import Service


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    port = free_port()
    # The hostname is not a local domain, and only "bob" is a listed mailbox: the
    # postmaster must be reachable all the same.
    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n'
        f'[x400]\nlisten = []\n[smtp]\nlisten = ["127.0.0.1:{port}"]\nrelay_networks = []\n'
        '[local]\nmailboxes = ["bob"]\n[queue]\npoll_interval = 0.1\n',
    )
    yield svc
    await svc.stop()


class Client:
    """A raw SMTP client: what it sends is sent as written, each reply read whole."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        client = cls(*await asyncio.open_connection("127.0.0.1", port))
        assert (await client.reply()).startswith("220 ")
        return client

    async def reply(self) -> str:
        """One reply (its last line), e.g. "250 2.1.5 Ok"."""
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            assert line, "connection closed"
            if line[3:4] != b"-":
                return line.decode().rstrip("\r\n")

    async def command(self, raw: bytes) -> str:
        self.writer.write(raw)
        return await self.reply()

    async def close(self) -> None:
        self.writer.close()


def port_of(svc: Service) -> int:
    assert svc.smtp is not None
    return svc.smtp.bound[0][1]


def queued(svc: Service) -> int:
    with sqlite3.connect(svc.store.path) as conn:
        return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])


async def test_a_bare_lf_refuses_the_whole_command_line(service: Service) -> None:
    # RFC 5321 §2.3.8: what follows a bare LF is no command of its own (one reply, not two).
    client = await Client.connect(port_of(service))
    assert (await client.command(b"EHLO c.example\r\n")).startswith("250 ")
    split = b"MAIL FROM:<a@src.example>\nRCPT TO:<bob@localhost>\r\n"
    assert (await client.command(split)).startswith("500 5.5.2")
    # The next reply answers the NOOP: nothing else was answered in between.
    assert (await client.command(b"NOOP\r\n")).startswith("250 2.0.0")
    assert (await client.command(b"RCPT TO:<bob@localhost>\r\n")).startswith("503 ")
    await client.close()


@pytest.mark.parametrize(
    "recipient", ['"../../x"@localhost', '"a b"@localhost', '"a/b"@localhost', "a/b@localhost"]
)
async def test_a_local_part_that_cannot_be_a_mailbox_is_refused_at_rcpt(
    service: Service, recipient: str
) -> None:
    client = await Client.connect(port_of(service))
    await client.command(b"EHLO c.example\r\n")
    assert (await client.command(b"MAIL FROM:<a@src.example>\r\n")).startswith("250 ")
    reply = await client.command(f"RCPT TO:<{recipient}>\r\n".encode())
    assert reply.startswith("553 5.1.3")
    assert (await client.command(b"DATA\r\n")).startswith("554 ")  # no valid recipients
    await client.close()
    assert queued(service) == 0


async def test_postmaster_without_a_domain_is_accepted_and_delivered(service: Service) -> None:
    # RFC 5321 §4.5.1: <Postmaster> must be accepted, and reaches the local postmaster.
    client = await Client.connect(port_of(service))
    await client.command(b"EHLO c.example\r\n")
    await client.command(b"MAIL FROM:<a@src.example>\r\n")
    assert (await client.command(b"RCPT TO:<Postmaster>\r\n")).startswith("250 ")
    assert (await client.command(b"DATA\r\n")).startswith("354 ")
    assert (await client.command(b"Subject: hi\r\n\r\nhello\r\n.\r\n")).startswith("250 ")
    await client.command(b"QUIT\r\n")
    await client.close()
    maildir = Path(service.config.server.data_dir) / "maildir" / "postmaster" / "new"
    for _ in range(200):
        if maildir.exists() and list(maildir.iterdir()):
            break
        await asyncio.sleep(0.05)
    (delivered,) = list(maildir.iterdir())
    assert b"hello" in delivered.read_bytes()


async def test_postmaster_at_a_local_domain_is_accepted_though_not_listed(
    service: Service,
) -> None:
    client = await Client.connect(port_of(service))
    await client.command(b"EHLO c.example\r\n")
    await client.command(b"MAIL FROM:<a@src.example>\r\n")
    assert (await client.command(b"RCPT TO:<postmaster@localhost>\r\n")).startswith("250 ")
    assert (await client.command(b"RCPT TO:<carol@localhost>\r\n")).startswith("550 5.1.1")
    await client.close()


# -- a client trickling its message (slow-loris in DATA) --------------------------------------


async def slow_service(tmp_path: Path, limits: str) -> Service:
    port = free_port()
    return await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n[x400]\nlisten = []\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\n{limits}',
        name="slow",
        background=False,
    )


async def trickle(port: int, piece: bytes, pause: float, *, bdat: bool = False) -> tuple[str, int]:
    """Open a transaction, then send the message (by DATA, or one BDAT chunk) `piece` by
    `piece` until the server answers; (its reply, the octets sent). Gives up (reply "")
    after 30 seconds."""
    client = await Client.connect(port)
    await client.command(b"EHLO c.example\r\n")
    await client.command(b"MAIL FROM:<a@src.example>\r\n")
    await client.command(b"RCPT TO:<bob@localhost>\r\n")
    if bdat:
        client.writer.write(b"BDAT 1000000 LAST\r\n")
    else:
        assert (await client.command(b"DATA\r\n")).startswith("354 ")
    sent = 0
    reply = ""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30
    read = asyncio.ensure_future(client.reply())
    try:
        while loop.time() < give_up:
            done, _ = await asyncio.wait({read}, timeout=pause)
            if done:
                reply = read.result()
                break
            client.writer.write(piece)
            sent += len(piece)
    except (ConnectionError, AssertionError, TimeoutError):
        pass
    finally:
        read.cancel()
        await client.close()
    return reply, sent


def transfer_events(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [
        r.waypost_fields
        for r in caplog.records
        if getattr(r, "waypost_event", None) is events.SMTP_TRANSFER_TOO_SLOW
    ]


@pytest.mark.parametrize("bdat", [False, True], ids=["DATA", "BDAT"])
async def test_a_message_trickled_under_the_minimum_rate_is_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bdat: bool
) -> None:
    # Each octet comes well within data_timeout, which therefore never fires; the rate
    # bound (data_timeout plus a second per 1000 octets) does.
    svc = await slow_service(tmp_path, "data_timeout = 1\nmin_data_rate = 1000\n")
    try:
        reply, sent = await trickle(port_of(svc), b"x", 0.05, bdat=bdat)
        assert reply.startswith("421 4.4.2 Message transfer too slow"), (reply, sent)
        assert queued(svc) == 0
        (event,) = transfer_events(caplog)
        assert event["client"] == "127.0.0.1"
    finally:
        await svc.stop()


async def test_a_message_transfer_past_its_deadline_is_cut(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Steady data, no minimum rate: the deadline for the whole transfer still holds.
    svc = await slow_service(tmp_path, "data_timeout = 30\nmin_data_rate = 0\ndata_deadline = 1\n")
    try:
        reply, _ = await trickle(port_of(svc), b"Subject: steady\r\n", 0.05)
        assert reply.startswith("421 4.4.2 Message transfer too slow")
        assert queued(svc) == 0
        assert transfer_events(caplog)
    finally:
        await svc.stop()


async def test_a_prompt_message_is_unaffected_by_the_bounds(tmp_path: Path) -> None:
    svc = await slow_service(tmp_path, "data_timeout = 1\nmin_data_rate = 1000\n")
    try:
        client = await Client.connect(port_of(svc))
        await client.command(b"EHLO c.example\r\n")
        await client.command(b"MAIL FROM:<a@src.example>\r\n")
        await client.command(b"RCPT TO:<bob@localhost>\r\n")
        await client.command(b"DATA\r\n")
        body = b"Subject: big\r\n\r\n" + b"y" * 70 + b"\r\n"
        assert (await client.command(body * 2000 + b".\r\n")).startswith("250 ")
        await client.close()
        assert queued(svc) == 1
    finally:
        await svc.stop()


async def test_one_network_cannot_hold_every_connection_slot(tmp_path: Path) -> None:
    svc = await slow_service(
        tmp_path,
        "max_connections = 10\nmax_connections_per_client = 5\nmax_connections_per_network = 2\n",
    )
    port = port_of(svc)

    async def greet(source: str) -> tuple[bytes, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        return await asyncio.wait_for(reader.readline(), 10), writer

    try:
        held = [await greet(source) for source in ("127.0.0.2", "127.0.0.3")]
        assert all(line.startswith(b"220 ") for line, _ in held)
        refused, w_refused = await greet("127.0.0.4")  # the same /24, a new address
        assert refused.startswith(b"421 4.7.0") and b"127.0.0.0/24" in refused
        other, w_other = await greet("127.0.1.2")  # another network still gets in
        assert other.startswith(b"220 ")
        for _, writer in [*held, (refused, w_refused), (other, w_other)]:
            writer.close()
    finally:
        await svc.stop()
