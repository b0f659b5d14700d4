"""The submission listeners ([[smtp.listener]], RFC 6409 and RFC 8314) in process, over real
sockets with smtplib: TLS then AUTH before MAIL, relay for authenticated users only, implicit
TLS on the submissions port, and port 25's policy unchanged beside them."""

from __future__ import annotations

import asyncio
import smtplib
import sqlite3
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from certs import self_signed
from helpers import free_port, running_service

from waypost.config import ConfigError, check_config_file, load_config
from waypost.service import Service
from waypost.smtp.auth import hash_password

USER, PASSWORD = "carol", "S3cret-Pass-ph4se"
MESSAGE = b"Subject: submitted\r\n\r\nhello\r\n"


@pytest.fixture
async def service(tmp_path: Path) -> AsyncIterator[Service]:
    cert, key = self_signed(tmp_path)
    users = tmp_path / "users"
    users.write_text(f"{USER}:{hash_password(PASSWORD)}\n")
    # 127.0.0.1 is in relay_networks (the default): it relays on port 25, not on submission.
    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "mx.test"\ndata_dir = "data"\n[x400]\nlisten = []\n'
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f'tls_cert = "{cert}"\ntls_key = "{key}"\nauth_users = "{users}"\n'
        f'[[smtp.listener]]\naddress = "127.0.0.1:{free_port()}"\nmode = "submission"\n'
        f'[[smtp.listener]]\naddress = "127.0.0.1:{free_port()}"\nmode = "submissions"\n'
        'max_connections_per_client = 3\n[[route]]\nmatch = "*"\nnext_hop = "smtp:[127.0.0.1]:9"\n',
        background=False,
    )
    yield svc
    await svc.stop()


def ports(svc: Service) -> tuple[int, int, int]:
    """(port 25's, submission's, submissions') ports."""
    assert svc.smtp is not None
    submission, submissions = svc.smtp_listeners
    return svc.smtp.bound[0][1], submission.bound[0][1], submissions.bound[0][1]


def no_verify() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def queued(svc: Service) -> list[int]:
    with sqlite3.connect(svc.store.path) as conn:
        return [int(r[0]) for r in conn.execute("SELECT id FROM messages ORDER BY id")]


def submission_dialogue(port: int) -> list[tuple[int, bytes]]:
    """MAIL before STARTTLS, MAIL before AUTH, a wrong password, then the right one."""
    answers = []
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        assert not client.has_extn("auth")  # AUTH only under TLS
        answers.append(client.mail("a@src.example"))
        client.starttls(context=no_verify())
        client.ehlo("client.test")
        assert client.has_extn("auth")
        answers.append(client.mail("a@src.example"))
        try:
            client.login(USER, "Wr0ng-Guess")
        except smtplib.SMTPAuthenticationError as exc:
            answers.append((exc.smtp_code, exc.smtp_error))
        client.login(USER, PASSWORD)
        client.sendmail("a@src.example", ["x@elsewhere.example"], MESSAGE)
    return answers


async def test_submission_requires_tls_then_auth_and_relays_for_the_user(service: Service) -> None:
    _, submission, _ = ports(service)
    answers = await asyncio.to_thread(submission_dialogue, submission)
    assert [(code, text[:5]) for code, text in answers] == [
        (530, b"5.7.0"),  # Must issue a STARTTLS command first
        (530, b"5.7.0"),  # Authentication required
        (535, b"5.7.8"),
    ]
    assert b"STARTTLS" in answers[0][1] and b"Authentication required" in answers[1][1]
    assert len(queued(service)) == 1


def submissions_send(port: int) -> tuple[str | None, dict[str, tuple[int, bytes]]]:
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=10, context=no_verify()) as client:
        client.ehlo("client.test")
        assert not client.has_extn("starttls")
        version = client.sock.version() if isinstance(client.sock, ssl.SSLSocket) else None
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.sendmail("a@src.example", ["x@elsewhere.example"], MESSAGE)
        assert refused.value.smtp_code == 530
        client.login(USER, PASSWORD)
        return version, client.sendmail("a@src.example", ["x@elsewhere.example"], MESSAGE)


async def test_submissions_is_implicit_tls_with_auth_required(service: Service) -> None:
    _, _, submissions = ports(service)
    version, refused = await asyncio.to_thread(submissions_send, submissions)
    assert version in ("TLSv1.2", "TLSv1.3") and refused == {}
    assert len(queued(service)) == 1


def plaintext_on_the_tls_port(port: int) -> bytes:
    import socket  # noqa: PLC0415

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"EHLO client.test\r\n")
        try:
            return sock.recv(1000)
        except ConnectionError:
            return b""


async def test_submissions_says_nothing_in_plaintext(service: Service) -> None:
    _, _, submissions = ports(service)
    answer = await asyncio.to_thread(plaintext_on_the_tls_port, submissions)
    assert not answer.startswith(b"220") and not answer.startswith(b"250")


def relay_without_auth(port: int) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        return client.sendmail("a@src.example", ["x@elsewhere.example"], MESSAGE)


async def test_port_25_policy_is_unchanged(service: Service) -> None:
    # relay_networks still relays without AUTH on smtp.listen, and MAIL needs no AUTH there.
    port25, _, _ = ports(service)
    assert await asyncio.to_thread(relay_without_auth, port25) == {}
    assert len(queued(service)) == 1


def test_a_submission_listener_without_tls_or_users_is_a_config_error(tmp_path: Path) -> None:
    config = tmp_path / "waypost.toml"
    config.write_text(
        '[smtp]\nlisten = []\n[[smtp.listener]]\naddress = "127.0.0.1:5587"\n'
        '[[smtp.listener]]\naddress = "127.0.0.1:5587"\nmode = "smtp"\n'
    )
    with pytest.raises(ConfigError):
        load_config(config)
    text = "\n".join(str(problem) for problem in check_config_file(config))
    assert "smtp.listener[0].mode: submission needs smtp.tls_cert and smtp.tls_key" in text
    assert "smtp.listener[0].mode: submission needs smtp.auth_users" in text
    assert "smtp.listener[1].address: '127.0.0.1:5587' is also smtp.listener[0].address" in text
