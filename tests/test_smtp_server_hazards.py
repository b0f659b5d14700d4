"""Hazards of the SMTP server found by a security review, each over a real socket to a running
service: bare LF in a command line, local parts that are no mailbox name, <Postmaster>."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import free_port, running_service

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
