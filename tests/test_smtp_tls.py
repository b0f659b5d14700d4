"""The SMTP server's TLS offers AEAD cipher suites only (no CBC: testssl's LUCKY13 finding),
over a real STARTTLS handshake."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from certs import self_signed
from helpers import free_port, make_message, running_service
from test_delivery_smtp import transfer

from waypost import events
from waypost.delivery.smtp import ClientSettings, SmtpDeliverer, TlsPolicy
from waypost.handoff import Result
from waypost.service import Service

# The CBC suites a default OpenSSL 3 server offers with TLS 1.2 (the SHA-1 ones are gone).
CBC_SUITES = "ECDHE-RSA-AES128-SHA256:ECDHE-RSA-AES256-SHA384:AES128-SHA256:AES256-SHA256"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    cert, key = self_signed(tmp_path)
    port = free_port()
    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n[x400]\nlisten = []\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\ntls_cert = "{cert}"\ntls_key = "{key}"\n',
        background=False,
    )
    yield svc
    await svc.stop()


def port_of(svc: Service) -> int:
    assert svc.smtp is not None
    return svc.smtp.bound[0][1]


def starttls(port: int, context: ssl.SSLContext) -> ssl.SSLSocket:
    """EHLO, STARTTLS and the handshake with `context`, on a blocking socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    stream = sock.makefile("rb")
    assert stream.readline().startswith(b"220 ")
    sock.sendall(b"EHLO client.example\r\n")
    while not stream.readline().startswith(b"250 "):
        pass
    sock.sendall(b"STARTTLS\r\n")
    assert stream.readline().startswith(b"220 ")
    try:
        return context.wrap_socket(sock, server_hostname="mx.test")
    except BaseException:
        sock.close()
        raise


def client_context(ciphers: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    if ciphers is not None:
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites cannot be narrowed
        context.set_ciphers(ciphers)
    return context


async def test_a_client_offering_only_cbc_suites_cannot_handshake(service: Service) -> None:
    with pytest.raises((ssl.SSLError, ConnectionError)):
        tls = await asyncio.to_thread(starttls, port_of(service), client_context(CBC_SUITES))
        tls.close()


async def test_tls12_negotiates_an_aead_suite(service: Service) -> None:
    context = client_context("ALL")  # everything this client can do; the server chooses
    tls = await asyncio.to_thread(starttls, port_of(service), context)
    try:
        name, version, _ = tls.cipher() or ("", "", 0)
        assert version == "TLSv1.2"
        assert "GCM" in name or "CHACHA20" in name
        assert name.startswith("ECDHE-")
    finally:
        tls.close()


async def test_tls13_still_works(service: Service) -> None:
    tls = await asyncio.to_thread(starttls, port_of(service), client_context())
    try:
        assert tls.version() == "TLSv1.3"
    finally:
        tls.close()


async def test_openssl_s_client_with_a_cbc_cipher_is_refused(service: Service) -> None:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    port = port_of(service)

    def s_client(cipher: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-starttls", "smtp"),
                *("-tls1_2", "-cipher", cipher),
            ],
            input="QUIT\r\n",
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    refused = await asyncio.to_thread(s_client, CBC_SUITES)
    assert refused.returncode != 0 and "Cipher is (NONE)" in refused.stdout
    accepted = await asyncio.to_thread(s_client, "ECDHE-RSA-AES128-GCM-SHA256")
    assert accepted.returncode == 0, accepted.stderr
    assert "ECDHE-RSA-AES128-GCM-SHA256" in accepted.stdout


def cbc_only_next_hop(
    tmp_path: Path, handshakes: list[str], received: list[bytes]
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A next hop whose STARTTLS offers CBC suites only; in clear text it takes the mail."""
    cert, key = self_signed(tmp_path, "cbc.test")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    server_context.maximum_version = ssl.TLSVersion.TLSv1_2
    server_context.set_ciphers(CBC_SUITES)

    async def reply(writer: asyncio.StreamWriter, line: bytes) -> None:
        writer.write(line)
        await writer.drain()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reply(writer, b"220 cbc.test ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                await reply(writer, b"250-cbc.test\r\n250 STARTTLS\r\n")
            elif verb == b"STAR":
                await reply(writer, b"220 2.0.0 go ahead\r\n")
                try:
                    await writer.start_tls(server_context)
                    handshakes.append("done")
                except (ssl.SSLError, ConnectionError) as exc:
                    handshakes.append(str(exc))
                break
            elif verb == b"DATA":
                await reply(writer, b"354 go on\r\n")
                body = b""
                while (chunk := await reader.readline()) not in (b".\r\n", b""):
                    body += chunk
                received.append(body)
                await reply(writer, b"250 2.0.0 queued as CLEAR1\r\n")
            elif verb == b"QUIT":
                await reply(writer, b"221 bye\r\n")
                break
            else:
                await reply(writer, b"250 ok\r\n")
        writer.close()

    return serve


async def test_opportunistic_tls_that_fails_goes_on_in_clear_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Opportunistic TLS with a next hop offering CBC suites only: the handshake fails, the
    host is connected to again without STARTTLS and takes the mail (event 1713)."""
    caplog.set_level(logging.WARNING, logger="waypost")
    handshakes: list[str] = []
    received: list[bytes] = []
    server = await asyncio.start_server(
        cbc_only_next_hop(tmp_path, handshakes, received), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", tls=TlsPolicy.OPPORTUNISTIC))
    try:
        handoff = transfer(f"smtp:[127.0.0.1]:{port}", make_message(("bob@b.example",)))
        attempts = await agent.deliver(handoff)
    finally:
        await agent.close()
        server.close()
        await server.wait_closed()
    assert [a.result for a in attempts] == [Result.DELIVERED], attempts
    assert len(received) == 1
    assert handshakes and handshakes[0] != "done"
    fallbacks = [
        r for r in caplog.records if getattr(r, "waypost_event", None) is events.SMTP_TLS_FALLBACK
    ]
    assert len(fallbacks) == 1


async def test_the_smtp_client_does_not_accept_a_cbc_suite(tmp_path: Path) -> None:
    """A next hop whose TLS offers CBC suites only: the handshake fails (and is reported)."""
    handshakes: list[str] = []
    cbc_only_server = cbc_only_next_hop(tmp_path, handshakes, [])
    server = await asyncio.start_server(cbc_only_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", tls=TlsPolicy.REQUIRED))
    try:
        handoff = transfer(f"smtp:[127.0.0.1]:{port}", make_message(("bob@b.example",)))
        attempts = await agent.deliver(handoff)
    finally:
        await agent.close()
        server.close()
        await server.wait_closed()
    assert [a.result for a in attempts] == [Result.DEFERRED]
    assert attempts[0].detail.startswith("4.7.5 TLS handshake")
    assert handshakes and handshakes[0] != "done"
