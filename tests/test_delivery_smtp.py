"""The SMTP delivery agent against real SMTP servers in process: Waypost to Waypost,
connection reuse, MX order, TLS policy, per-recipient outcomes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from certs import self_signed
from helpers import free_port, make_message, running_service

from waypost.delivery.smtp import ClientSettings, SmtpDeliverer, SmtpHostError, TlsPolicy
from waypost.handoff import Claim, Handoff, Result
from waypost.message import Message
from waypost.nexthop import NextHop, parse_next_hop
from waypost.service import Service


async def start(tmp_path: Path, name: str, extra: str = "") -> Service:
    return await running_service(
        tmp_path,
        f'[server]\nhostname = "{name}.test"\ndata_dir = "{name}"\n'
        f'[x400]\nlisten = []\n[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f"[queue]\npoll_interval = 0.1\nmin_backoff = 1\nmax_backoff = 2\n" + extra,
        name=name,
    )


def smtp_port(svc: Service) -> int:
    assert svc.smtp is not None
    return svc.smtp.bound[0][1]


async def wait_for_files(directory: Path, n: int) -> list[Path]:
    for _ in range(200):
        files = list(directory.glob("*/new/*"))
        if len(files) >= n:
            return files
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {n} files in {directory}")


@pytest.fixture
async def receiver(tmp_path: Path) -> AsyncIterator[Service]:
    svc = await start(
        tmp_path, "b", '[local]\ndomains = ["b.example"]\nmailboxes = ["bob", "carol"]\n'
    )
    yield svc
    await svc.stop()


async def test_waypost_relays_to_waypost(tmp_path: Path, receiver: Service) -> None:
    sender = await start(
        tmp_path,
        "a",
        f'[[route]]\nmatch = "b.example"\nnext_hop = "smtp:[127.0.0.1]:{smtp_port(receiver)}"\n',
    )
    try:
        for i in range(5):
            await sender.submit(
                make_message(
                    ("bob@b.example", "carol@b.example"), body=b"Subject: %d\r\n\r\nx\r\n" % i
                )
            )
        files = await wait_for_files(Path(receiver.config.server.data_dir) / "maildir", 10)
        text = files[0].read_bytes()
        # Two hops of trace: a.test's submission is not SMTP, b.test received it over SMTP.
        assert b"by b.test (Waypost) with ESMTP" in text
        assert b"from a.test" in text
    finally:
        await sender.stop()


async def test_per_recipient_outcomes_and_connection_reuse(
    tmp_path: Path, receiver: Service
) -> None:
    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", tls=TlsPolicy.NONE))
    hop = f"smtp:[127.0.0.1]:{smtp_port(receiver)}"
    try:
        for _ in range(3):
            message = make_message(("bob@b.example", "nobody@b.example", "carol@b.example"))
            attempts = await agent.deliver(transfer(hop, message))
            assert [a.result for a in attempts] == [
                Result.DELIVERED,
                Result.FAILED,
                Result.DELIVERED,
            ]
            assert attempts[1].detail.startswith("550 5.1.1")
        # One connection carried all three transactions.
        assert sum(len(v) for v in agent._idle.values()) == 1
        (session,) = [s for v in agent._idle.values() for s in v]
        assert session.messages == 3
    finally:
        await agent.close()


def transfer(hop: str, message: Message) -> Handoff:
    claims = [
        Claim(
            recipient_id=i + 1,
            message_id=1,
            rcpt_index=i,
            address=r.address,
            next_hop=hop,
            attempts=0,
            received_at=0,
            expires_at=1e12,
            size=len(message.content),
            envelope=message.envelope,
        )
        for i, r in enumerate(message.envelope.recipients)
    ]
    return Handoff(
        next_hop=parse_next_hop(hop),
        message_id=1,
        envelope=message.envelope,
        content=message.content,
        recipients=claims,
    )


async def test_mx_hosts_are_tried_in_order(receiver: Service) -> None:
    dead = free_port()  # nothing listens here
    tried: list[NextHop] = []

    async def mx(hop: NextHop) -> list[tuple[str, int]]:
        tried.append(hop)
        return [("127.0.0.1", dead), ("127.0.0.1", smtp_port(receiver))]

    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", tls=TlsPolicy.NONE), mx=mx)
    try:
        attempts = await agent.deliver(transfer("smtp:b.example", make_message(("bob@b.example",))))
        assert [a.result for a in attempts] == [Result.DELIVERED]
        assert tried[0].destination == "b.example"
    finally:
        await agent.close()


async def test_mx_lookup_failure_defers_and_nxdomain_fails() -> None:
    async def temporary(hop: NextHop) -> list[tuple[str, int]]:
        raise SmtpHostError("4.4.3 MX lookup of x failed: timeout")

    async def nxdomain(hop: NextHop) -> list[tuple[str, int]]:
        raise SmtpHostError("5.1.2 domain x does not exist", Result.FAILED)

    for resolver, result in ((temporary, Result.DEFERRED), (nxdomain, Result.FAILED)):
        agent = SmtpDeliverer(ClientSettings(helo_name="a.test"), mx=resolver)
        attempts = await agent.deliver(transfer("smtp:x.example", make_message(("u@x.example",))))
        assert [a.result for a in attempts] == [result]


async def test_unreachable_host_defers_with_the_reason() -> None:
    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", connect_timeout=2))
    attempts = await agent.deliver(
        transfer(f"smtp:[127.0.0.1]:{free_port()}", make_message(("u@x.example",)))
    )
    assert attempts[0].result is Result.DEFERRED
    assert attempts[0].detail.startswith("4.4.1 connect to 127.0.0.1:")


async def test_tls_required_but_not_offered_defers(receiver: Service) -> None:
    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", tls=TlsPolicy.REQUIRED))
    attempts = await agent.deliver(
        transfer(f"smtp:[127.0.0.1]:{smtp_port(receiver)}", make_message(("bob@b.example",)))
    )
    assert attempts[0].result is Result.DEFERRED
    assert attempts[0].detail.startswith("4.7.4")


@pytest.mark.interop
async def test_opportunistic_starttls_to_waypost(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path, "b.test")
    port = free_port()
    svc = await running_service(
        tmp_path,
        f'[server]\nhostname = "tls.test"\ndata_dir = "tls"\n'
        "[x400]\nlisten = []\n"
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
        f'[local]\ndomains = ["b.example"]\n',
        name="tls",
    )
    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", tls=TlsPolicy.REQUIRED))
    try:
        attempts = await agent.deliver(
            transfer(f"smtp:[127.0.0.1]:{port}", make_message(("bob@b.example",)))
        )
        assert [a.result for a in attempts] == [Result.DELIVERED], attempts
        (delivered,) = await wait_for_files(Path(svc.config.server.data_dir) / "maildir", 1)
        assert b"with ESMTPS (TLSv1." in delivered.read_bytes()
    finally:
        await agent.close()
        await svc.stop()
