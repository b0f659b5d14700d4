"""A next hop that cannot be reached costs one try per probe, not one per message, and one
event per change of state; a flush tries it at once. Real store, real sockets, real peers."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from helpers import free_port, new_message, running_service

from waypost import events
from waypost.clock import ManualClock
from waypost.config import Config, X400Config, X400PeerConfig
from waypost.delivery.smtp import ClientSettings, SmtpDeliverer, TlsPolicy
from waypost.delivery.x400 import X400Deliverer
from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.nexthop import parse_next_hop
from waypost.queue.manager import QueueManager, QueueSettings
from waypost.queue.policy import RetryPolicy
from waypost.setup.x400 import x400_settings
from waypost.store import NewMessage, SQLiteStore
from waypost.x400.ipm import build_ipm

POLICY = RetryPolicy(min_backoff=300, max_backoff=4000, max_lifetime=5 * 86400)
MESSAGES = 1000


@asynccontextmanager
async def logged() -> AsyncIterator[io.StringIO]:
    """Every event from INFO up, as the text lines an operator would read."""
    terminal = io.StringIO()
    events.configure_logging(level="INFO", stream=terminal)
    try:
        yield terminal
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())


async def every_pass(manager: QueueManager) -> None:
    """Claim and deliver until nothing is due on the manager's clock."""
    while await manager.run_once():
        await manager.drain()
    await manager.drain()


async def next_cycle(clock: ManualClock, store: SQLiteStore) -> None:
    due = await store.next_due()
    assert due is not None
    await clock.advance(max(0.0, due - clock.now()))


def rows(path: str) -> list[tuple[str, int, str | None]]:
    with sqlite3.connect(path) as conn:
        return list(conn.execute("SELECT state, attempts, last_error FROM recipients"))


def ids(lines: list[str], event: events.EventDefinition) -> list[str]:
    return [x for x in lines if f" {event.id} {event.category.value}: " in x]


async def test_a_dead_smtp_hop_with_a_thousand_messages(tmp_path: Path) -> None:
    port = free_port()
    accepted = [0]

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted[0] += 1  # a host that takes the connection and drops it before a greeting
        writer.close()

    dead = await asyncio.start_server(hang_up, "127.0.0.1", port)
    clock = ManualClock()
    store = await SQLiteStore.open(
        str(tmp_path / "mta.db"), clock=clock, lifetime=POLICY.max_lifetime
    )
    agent = SmtpDeliverer(ClientSettings(helo_name="a.test", tls=TlsPolicy.NONE))
    settings = QueueSettings(batch_size=256)
    manager = QueueManager(store, {"smtp": agent}, clock=clock, policy=POLICY, settings=settings)
    hop = f"smtp:[127.0.0.1]:{port}"
    await asyncio.gather(
        *(store.enqueue(new_message(("x@remote.example",), hop=hop)) for _ in range(MESSAGES))
    )
    receiver = None
    try:
        async with logged() as log:
            # Cycle 1: the hop is tried by the deliveries already under way when the first
            # failure arrives (at most destination_concurrency); everything else is held.
            await every_pass(manager)
            lines = log.getvalue().splitlines()
            assert 1 <= accepted[0] <= settings.destination_concurrency
            (down,) = ids(lines, events.DESTINATION_DOWN)
            assert f"Next hop {hop} is unreachable: 4.4.2 127.0.0.1:{port}" in down
            # The down event and the deferral of the message that found the hop down.
            assert len(lines) == 2, lines
            state = rows(store.path)
            assert len(state) == MESSAGES and {s for s, _, _ in state} == {"deferred"}
            tried = [a for _, a, _ in state if a]
            assert len(tried) == accepted[0]  # only a message that was tried is charged
            held = [e for _, a, e in state if not a]
            assert all(
                e and e.startswith(f"4.4.2 delivery temporarily suspended: {hop} unreachable")
                for e in held
            )
            # Cycles 2 and 3: one probe each, and not a line of log.
            for _ in range(2):
                before, seen = accepted[0], len(log.getvalue().splitlines())
                await next_cycle(clock, store)
                await every_pass(manager)
                assert accepted[0] - before == 1
                assert log.getvalue().splitlines()[seen:] == []
            assert len(rows(store.path)) == MESSAGES
            # The hop comes up: the next probe reaches it and everything goes.
            dead.close()
            await dead.wait_closed()
            receiver = await running_service(
                tmp_path,
                f'[server]\nhostname = "b.test"\ndata_dir = "{tmp_path / "b"}"\n'
                f'[smtp]\nlisten = ["127.0.0.1:{port}"]\n[x400]\nlisten = []\n'
                '[local]\ndomains = ["remote.example"]\n',
                name="b",
                background=False,
            )
            await next_cycle(clock, store)
            await every_pass(manager)
            lines = log.getvalue().splitlines()
            (up,) = ids(lines, events.DESTINATION_UP)
            assert f"Next hop {hop} is reachable again" in up
            assert len(ids(lines, events.DESTINATION_DOWN)) == 1
            assert len(ids(lines, events.RECIPIENT_DEFERRED)) == 1
        assert rows(store.path) == []  # all delivered (and nothing owed)
        assert await receiver.store.counts() == (MESSAGES, MESSAGES)
    finally:
        dead.close()
        await agent.close()
        await store.close()
        if receiver is not None:
            await receiver.stop()


B_CONFIG = (
    '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:1"\n'
    'peer_password = "secret-a"\nour_password = "secret-b"\n'
)


def x400_message(n: int) -> NewMessage:
    smith, jones = "/C=GB/ADMD= /PRMD=A/S=Smith/", "/C=GB/ADMD= /PRMD=B/S=Jones/"
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;local-{n}",
        originator=smith,
        recipients=[Recipient(address=jones, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    content = build_ipm(
        originator=smith, recipients=[jones], subject=f"#{n}", text="Hi", ipm_id=f"ipm-{n}"
    )
    message = Message(envelope=envelope, content=content)
    return NewMessage(message=message, next_hops=[parse_next_hop("x400:B-MTA")])


async def test_a_flush_opens_to_a_restarted_x400_peer_at_once(tmp_path: Path) -> None:
    b_port = free_port()
    clock = ManualClock()
    store = await SQLiteStore.open(
        str(tmp_path / "mta.db"), clock=clock, lifetime=POLICY.max_lifetime
    )
    peer = X400PeerConfig(
        name="B-MTA",
        address=f"127.0.0.1:{b_port}",
        our_name="A-MTA",
        our_password="secret-a",
        peer_password="secret-b",
        open_interval=600,
    )
    config = Config(x400=X400Config(listen=(), peer=(peer,), mta_name="A-MTA"))
    agent = X400Deliverer(x400_settings(config))
    manager = QueueManager(store, {"x400": agent}, clock=clock, policy=POLICY)
    b = None
    try:
        async with logged() as log:
            for n in range(3):
                await store.enqueue(x400_message(n))
            await every_pass(manager)  # B is not there: its open is refused
            assert agent._pools["B-MTA"].failed_opens == 1
            state = rows(store.path)
            # One open failed, charged to the one transfer that made it.
            assert sorted(a for _, a, _ in state) == [0, 0, 1]
            # The operator's `queue retry` makes them due; still in the open interval, they
            # are held without a try (and without a charge), with the current error.
            await store.make_due()
            await store.enqueue(x400_message(3))
            await every_pass(manager)
            assert agent._pools["B-MTA"].failed_opens == 1
            state = rows(store.path)
            assert sorted(a for _, a, _ in state) == [0, 0, 0, 1]
            for _, attempts, error in state:
                assert error is not None and f"127.0.0.1:{b_port}" in error
                if not attempts:
                    assert error.startswith("delivery temporarily suspended: x400:B-MTA ")
            # B starts; a flush tries now: no waiting for the open interval (600 s).
            b = await running_service(
                tmp_path,
                f'[server]\nhostname = "b.test"\ndata_dir = "{tmp_path / "b"}"\n'
                f'[smtp]\nlisten = []\n[local]\noraddresses = ["/C=GB/ADMD= /PRMD=B/"]\n'
                f'[x400]\nlisten = ["127.0.0.1:{b_port}"]\nmta_name = "B-MTA"\n' + B_CONFIG,
                name="b",
                background=False,
            )
            assert await manager.flush() == 4
            await every_pass(manager)
            assert rows(store.path) == []
            assert await b.store.counts() == (4, 4)
            assert len(ids(log.getvalue().splitlines(), events.DESTINATION_DOWN)) == 1
    finally:
        await agent.close()
        await store.close()
        if b is not None:
            await b.stop()
