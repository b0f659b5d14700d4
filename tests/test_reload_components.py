"""What a reload swaps in each component, in one process over real sockets: the X.400 delivery
agent leaves a peer's old associations for its new address, the SMTP delivery agent closes
connections cached under old settings; and which keys wait for a restart."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from helpers import free_port, make_message, running_service

from waypost.config import Config, SmtpConfig, StoreConfig
from waypost.delivery.smtp import ClientSettings, SmtpDeliverer, TlsPolicy
from waypost.handoff import Claim, Handoff, Result
from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.nexthop import parse_next_hop
from waypost.service import Service
from waypost.setup.reload import changed_keys, keep_restart_only
from waypost.x400.ipm import build_ipm

SMITH = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"


async def until(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    for _ in range(600):
        result = check()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


def peer_b(tmp_path: Path, name: str, port: int) -> Awaitable[Service]:
    """An adjacent MTA taking /PRMD=B/ into its local X.400 store."""
    return running_service(
        tmp_path,
        f'[server]\nhostname = "{name}.test"\ndata_dir = "{tmp_path / name}"\n'
        "[smtp]\nlisten = []\n"
        f'[local]\nx400_store = "{tmp_path / name}-x400"\noraddresses = ["/C=GB/ADMD= /PRMD=B/"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{port}"]\nmta_name = "B-MTA"\n'
        '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:1"\npeer_password = "secret-a"\n',
        name=name,
    )


def a_toml(tmp_path: Path, b_port: int) -> str:
    return (
        f'[server]\nhostname = "a.test"\ndata_dir = "{tmp_path / "a"}"\n'
        "[queue]\npoll_interval = 0.05\n[smtp]\nlisten = []\n[x400]\nlisten = []\n"
        'mta_name = "A-MTA"\n'
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=B/"\nnext_hop = "x400:B-MTA"\n'
        f'[[x400.peer]]\nname = "B-MTA"\naddress = "127.0.0.1:{b_port}"\n'
        'our_password = "secret-a"\nassociation_lifetime = 600\n'
    )


def p1_message(n: int) -> Message:
    content = build_ipm(
        originator=SMITH, recipients=[JONES], subject=f"#{n}", text="Hi", ipm_id=f"ipm-{n}"
    )
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;reload-{n}",
        originator=SMITH,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    return Message(envelope=envelope, content=content)


def stored(tmp_path: Path, name: str) -> int:
    return len(list((tmp_path / f"{name}-x400").glob("*/new/*.p1")))


async def test_a_peers_new_address_is_used_though_an_association_to_the_old_is_idle(
    tmp_path: Path,
) -> None:
    port1, port2 = free_port(), free_port()
    b1 = await peer_b(tmp_path, "b1", port1)
    b2 = await peer_b(tmp_path, "b2", port2)
    a = await running_service(tmp_path, a_toml(tmp_path, port1), name="a")
    try:
        await a.submit(p1_message(1))
        await until(lambda: stored(tmp_path, "b1") == 1, "the first message at b1")
        # The association to b1 stays open and idle (association_lifetime 600 s).
        assert len(b1.x400.sessions) == 1  # type: ignore[union-attr]
        (tmp_path / "a.toml").write_text(a_toml(tmp_path, port2))
        assert a.reload()
        await a.submit(p1_message(2))
        await until(lambda: stored(tmp_path, "b2") == 1, "the second message at b2")
        assert stored(tmp_path, "b1") == 1
        # The old peer's idle association was released.
        await until(lambda: not b1.x400.sessions, "b1's association released")  # type: ignore[union-attr]
    finally:
        await a.stop()
        await b1.stop()
        await b2.stop()


async def test_smtp_connections_cached_under_old_settings_are_closed(tmp_path: Path) -> None:
    port = free_port()
    target = await running_service(
        tmp_path,
        f'[server]\ndata_dir = "{tmp_path / "t"}"\n[x400]\nlisten = []\n'
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\n',
        name="t",
        background=False,
    )
    settings = ClientSettings(helo_name="a.test", tls=TlsPolicy.NONE, connection_cache_time=600)
    deliverer = SmtpDeliverer(settings)
    message = make_message(("bob@localhost",))
    hop = f"smtp:[127.0.0.1]:{port}"
    claim = Claim(
        recipient_id=1,
        message_id=1,
        rcpt_index=0,
        address="bob@localhost",
        next_hop=hop,
        attempts=0,
        received_at=0.0,
        expires_at=1e12,
        size=len(message.content),
        envelope=message.envelope,
    )
    handoff = Handoff(
        message_id=1,
        next_hop=parse_next_hop(hop),
        envelope=message.envelope,
        content=message.content,
        recipients=[claim],
    )
    try:
        (attempt,) = await deliverer.deliver(handoff)
        assert attempt.result is Result.DELIVERED
        assert len(target.smtp.sessions) == 1  # type: ignore[union-attr]  # cached, idle
        deliverer.reconfigure(ClientSettings(helo_name="renamed.test", tls=TlsPolicy.NONE))
        await until(lambda: not target.smtp.sessions, "the cached connection closed")  # type: ignore[union-attr]
        (attempt,) = await deliverer.deliver(handoff)  # a new connection, new settings
        assert attempt.result is Result.DELIVERED
    finally:
        await deliverer.close()
        await target.stop()


def test_restart_only_keys_keep_their_old_value() -> None:
    old = Config()
    new = Config(
        smtp=SmtpConfig(listen=("127.0.0.1:2600",), max_recipients=7),
        store=StoreConfig(path="/elsewhere/mta.db"),
    )
    effective, pending = keep_restart_only(old, new)
    assert [(p.key, p.old, p.new) for p in pending] == [
        ("store.path", '""', '"/elsewhere/mta.db"'),
        ("smtp.listen", '["127.0.0.1:2525"]', '["127.0.0.1:2600"]'),
    ]
    assert effective.smtp.listen == old.smtp.listen
    assert effective.store == old.store
    assert effective.smtp.max_recipients == 7
    assert changed_keys(old, effective) == ["smtp.max_recipients"]
