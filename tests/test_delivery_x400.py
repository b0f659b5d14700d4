"""The x400 delivery agent's connector parameters, over real sockets: the association pool
(max_associations, threshold), open retries and transfer retries, and the timeouts."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from helpers import free_port, new_message, running_service

from waypost import events
from waypost.clock import ManualClock
from waypost.config import Config, X400Config, X400PeerConfig
from waypost.delivery.x400 import X400Deliverer
from waypost.handoff import Attempt, Claim, Handoff, Result
from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.nexthop import parse_next_hop
from waypost.osi.stack import (
    NEED_DATA,
    Accept,
    Association,
    Mode,
    OpenRequest,
    Role,
)
from waypost.queue.manager import QueueManager
from waypost.queue.policy import RetryPolicy
from waypost.service import Service
from waypost.setup.x400 import x400_settings
from waypost.store import Database, SQLiteStore
from waypost.x400.ipm import build_ipm
from waypost.x400.p1_bind import MTABind, encode_bind

ORIGINATOR = "/C=GB/ADMD= /PRMD=A/S=Smith/"
JONES = "/C=GB/ADMD= /PRMD=B/S=Jones/"
MIN_BACKOFF = 30.0  # the queue's own back-off: the x400 intervals below are far shorter


async def start(tmp_path: Path, name: str, x400_port: int, extra: str, queue: str = "") -> Service:
    # No report generator: a failed recipient keeps its row (and its owed report) to be seen.
    return await running_service(
        tmp_path,
        f'[server]\nhostname = "{name}.test"\ndata_dir = "{name}"\n'
        f"[queue]\npoll_interval = 0.05\nmin_backoff = {MIN_BACKOFF}\nmax_backoff = 60\n{queue}"
        f'[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n[local]\nx400_store = "{name}-x400"\n'
        f'oraddresses = ["/C=GB/ADMD= /PRMD={name.upper()}/"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "{name.upper()}-MTA"\n' + extra,
        name=name,
        reports=False,
    )


def a_config(b_address: str, parameters: str) -> str:
    return (
        '[[route]]\nmatch = "/C=GB/ADMD= /PRMD=B/"\nnext_hop = "x400:B-MTA"\n'
        f'[[x400.peer]]\nname = "B-MTA"\naddress = "{b_address}"\n'
        'our_name = "A-MTA"\nour_password = "secret-a"\npeer_password = "secret-b"\n' + parameters
    )


B_CONFIG = (
    '[[x400.peer]]\nname = "A-MTA"\naddress = "127.0.0.1:1"\n'
    'peer_password = "secret-a"\nour_password = "secret-b"\n'
)


@asynccontextmanager
async def pair(
    tmp_path: Path, parameters: str, queue: str
) -> AsyncIterator[tuple[Service, Service]]:
    b_port = free_port()
    b = await start(tmp_path, "b", b_port, B_CONFIG)
    a = await start(tmp_path, "a", free_port(), a_config(f"127.0.0.1:{b_port}", parameters), queue)
    try:
        yield a, b
    finally:
        await a.stop()
        await b.stop()


def message(n: int) -> Message:
    content = build_ipm(
        originator=ORIGINATOR, recipients=[JONES], subject=f"#{n}", text="Hi", ipm_id=f"ipm-{n}"
    )
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;local-{n}",
        originator=ORIGINATOR,
        recipients=[Recipient(address=JONES, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    return Message(envelope=envelope, content=content)


Row = tuple[str, str | None, int, float | None, float]


def rows(path: str) -> list[Row]:
    with sqlite3.connect(path) as conn:
        return list(
            conn.execute("SELECT state, last_error, attempts, due_at, updated_at FROM recipients")
        )


async def until(check: Callable[[], Awaitable[bool]], what: str, tries: int = 400) -> None:
    for _ in range(tries):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never happened: {what}")


async def delivered_at(b: Service) -> int:
    return len(list(Path(b.config.local.x400_store).glob("*/new/*.p1")))


def opened(caplog: pytest.LogCaptureFixture, direction: str) -> int:
    return sum(
        1
        for r in caplog.records
        if getattr(r, "waypost_event", None) is events.X400_ASSOCIATION_OPENED
        and r.waypost_fields["direction"] == direction
    )


@pytest.mark.parametrize("max_associations", [4, 16])
async def test_low_threshold_opens_up_to_max_associations(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, max_associations: int
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    parameters = f"max_associations = {max_associations}\nthreshold = 1\n"
    # Every slot for this normal mail: none kept for urgent messages.
    queue = "delivery_concurrency = 64\ndestination_concurrency = 16\nurgent_share = 0\n"
    async with pair(tmp_path, parameters, queue) as (a, b):
        total = 80
        await asyncio.gather(*(a.submit(message(n)) for n in range(total)))

        async def all_there() -> bool:
            return await delivered_at(b) == total

        await until(all_there, f"{total} messages at B")
        assert opened(caplog, "Outbound") == max_associations
        assert opened(caplog, "Inbound") == max_associations
        assert await asyncio.to_thread(rows, a.store.path) == []


async def test_high_threshold_keeps_one_association_for_many_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    parameters = "max_associations = 4\nthreshold = 50\n"
    queue = "delivery_concurrency = 64\ndestination_concurrency = 16\n"
    async with pair(tmp_path, parameters, queue) as (a, b):
        total = 40
        await asyncio.gather(*(a.submit(message(n)) for n in range(total)))

        async def all_there() -> bool:
            return await delivered_at(b) == total

        await until(all_there, f"{total} messages at B")
        assert opened(caplog, "Outbound") == 1
        assert opened(caplog, "Inbound") == 1


async def test_idle_association_is_released_after_its_lifetime_and_reopened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    async with pair(tmp_path, "association_lifetime = 0.2\n", "") as (a, b):
        await a.submit(message(1))
        await until(lambda: _equals(delivered_at(b), 1), "the first message at B")
        assert a.x400_deliverer is not None
        pool = a.x400_deliverer._pools["B-MTA"]
        await until(lambda: _true(pool.opened == 0), "the idle association released")
        await a.submit(message(2))
        await until(lambda: _equals(delivered_at(b), 2), "the second message at B")
        assert opened(caplog, "Outbound") == 2


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _true(value: bool) -> bool:
    return value


async def test_peer_not_listening_is_retried_after_open_interval_then_failed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    parameters = "open_interval = 0.3\nmax_open_retries = 2\n"
    a = await start(tmp_path, "a", free_port(), a_config(f"127.0.0.1:{free_port()}", parameters))
    try:
        await a.submit(message(1))

        async def deferred_once() -> bool:
            found = await asyncio.to_thread(rows, a.store.path)
            return bool(found) and found[0][0] == "deferred" and found[0][2] >= 1

        await until(deferred_once, "a first deferral")
        ((state, error, _, due_at, updated_at),) = await asyncio.to_thread(rows, a.store.path)
        assert state == "deferred" and error is not None and "connect to" in error
        # Retried after the open interval, not after the queue's back-off.
        assert due_at is not None and due_at - updated_at < MIN_BACKOFF / 2

        async def failed() -> bool:
            found = await asyncio.to_thread(rows, a.store.path)
            return bool(found) and found[0][0] == "failed"

        await until(failed, "the recipient failed")
        ((state, error, attempts, _, _),) = await asyncio.to_thread(rows, a.store.path)
        assert error is not None
        assert error.startswith("5.4.1 could not open an association to B-MTA after 3 attempts")
        assert attempts == 3
        failures = [
            r
            for r in caplog.records
            if getattr(r, "waypost_event", None) is events.RECIPIENT_FAILED
        ]
        assert len(failures) == 1
        # The peer went down once: one event, not one per failed open.
        downs = [
            r
            for r in caplog.records
            if getattr(r, "waypost_event", None) is events.DESTINATION_DOWN
        ]
        assert len(downs) == 1
    finally:
        await a.stop()


@asynccontextmanager
async def fake_peer(
    handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP listener run by `handler`; yields its address and a connection count."""
    connections = [0]

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        try:
            await handler(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"127.0.0.1:{port}", connections
    finally:
        server.close()
        await server.wait_closed()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Reads everything and says nothing."""
    while await reader.read(65536):
        pass


async def binds_but_never_confirms(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Accepts the MTA-bind as B-MTA, then takes transfers without ever confirming one."""
    assoc = Association(role=Role.RESPONDER, mode=Mode.NORMAL_1988)
    while data := await reader.read(65536):
        assoc.receive_data(data)
        while (event := assoc.next_event()) is not NEED_DATA:
            if isinstance(event, OpenRequest):
                result = encode_bind(MTABind(name="B-MTA", password="secret-b"))
                writer.write(assoc.send(Accept(bind_result=result)))
        writer.write(assoc.data_to_send())


async def test_peer_that_never_answers_hits_answer_timeout_and_is_deferred(
    tmp_path: Path,
) -> None:
    parameters = "answer_timeout = 0.2\nopen_interval = 600\n"
    async with fake_peer(silent) as (address, connections):
        a = await start(tmp_path, "a", free_port(), a_config(address, parameters))
        try:
            await a.submit(message(1))

            async def deferred() -> bool:
                found = await asyncio.to_thread(rows, a.store.path)
                return bool(found) and found[0][0] == "deferred"

            await until(deferred, "the recipient deferred")
            ((_, error, attempts, due_at, updated_at),) = await asyncio.to_thread(
                rows, a.store.path
            )
            assert error is not None and "no answer within 0.2 s" in error
            assert attempts == 1
            # Kept for the next open interval (600 s), not the queue's back-off (30 s).
            assert due_at is not None and due_at - updated_at > MIN_BACKOFF
            assert connections[0] == 1
        finally:
            await a.stop()


async def test_unconfirmed_transfer_waits_transfer_interval_then_open_interval(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    parameters = (
        "answer_timeout = 0.2\ntransfer_interval = 0.1\nopen_interval = 600\n"
        "max_transfer_retries = 2\n"
    )
    async with fake_peer(binds_but_never_confirms) as (address, connections):
        a = await start(tmp_path, "a", free_port(), a_config(address, parameters))
        try:
            await a.submit(message(1))

            async def tried_three_times() -> bool:
                found = await asyncio.to_thread(rows, a.store.path)
                return bool(found) and found[0][2] >= 3

            await until(tried_three_times, "three transfer attempts")
            ((state, error, attempts, due_at, updated_at),) = await asyncio.to_thread(
                rows, a.store.path
            )
            assert state == "deferred" and attempts == 3
            assert error is not None and "no answer within 0.2 s" in error
            # After max_transfer_retries (2) retries, the message waits for the open interval.
            assert due_at is not None and due_at - updated_at > MIN_BACKOFF
            # Each failed transfer dropped its association: one open per attempt.
            assert connections[0] == 3
            assert opened(caplog, "Outbound") == 3
        finally:
            await a.stop()


def transfer(n: int) -> Handoff:
    sent = message(n)
    claim = Claim(
        recipient_id=n,
        message_id=n,
        rcpt_index=0,
        address=JONES,
        next_hop="x400:B-MTA",
        attempts=0,
        received_at=0.0,
        expires_at=1e12,
        size=len(sent.content),
        envelope=sent.envelope,
    )
    return Handoff(
        next_hop=parse_next_hop("x400:B-MTA"),
        message_id=n,
        envelope=sent.envelope,
        content=sent.content,
        recipients=[claim],
    )


def deliverer_for(*peers: X400PeerConfig) -> X400Deliverer:
    """The x400 delivery agent alone, for `peers` configured as in a file."""
    return X400Deliverer(x400_settings(Config(x400=X400Config(listen=(), peer=peers))))


async def test_concurrent_transfers_to_a_dead_peer_cost_one_failed_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="waypost")
    peer = X400PeerConfig(
        name="B-MTA", address=f"127.0.0.1:{free_port()}", max_associations=4, threshold=1
    )
    deliverer = deliverer_for(peer)
    try:
        results = await asyncio.gather(*(deliverer.deliver(transfer(n)) for n in range(10)))
        attempts = [a for batch in results for a in batch]
        assert len(attempts) == 10
        assert all(a.result is Result.DEFERRED for a in attempts)
        # All wait for the next open, not for the queue's back-off.
        assert all(a.retry_after is not None and a.retry_after > 300 for a in attempts)
        assert all("connect to" in a.detail for a in attempts)
        # The peer's failure, not the messages': only the transfer whose open failed is
        # charged an attempt; the others say since when the peer is unreachable.
        assert all(a.hop_failure for a in attempts)
        (charged,) = [a for a in attempts if a.attempted]
        assert not charged.detail.startswith("B-MTA unreachable since")
        held = [a for a in attempts if not a.attempted]
        assert len(held) == 9
        assert all(a.detail.startswith("B-MTA unreachable since ") for a in held)
        assert all("; next open at " in a.detail for a in held)
        # Reporting the peer down is the queue manager's, once: the agent alone says nothing.
        failed = [
            r
            for r in caplog.records
            if getattr(r, "waypost_event", None) is events.X400_TRANSFER_FAILED
        ]
        assert failed == []
        assert deliverer._pools["B-MTA"].failed_opens == 1
    finally:
        await deliverer.close()


class AsksToWait:
    """A delivery agent that defers every recipient for its own interval."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    async def deliver(self, transfer: Handoff) -> list[Attempt]:
        return [
            Attempt(
                recipient_id=c.recipient_id,
                result=Result.DEFERRED,
                detail="no association",
                retry_after=self.seconds,
            )
            for c in transfer.recipients
        ]


@pytest.mark.parametrize(
    ("retry_after", "lifetime", "expected"), [(7.0, 100.0, 7.0), (7.0, 5.0, 5.0)]
)
async def test_queue_manager_honours_retry_after_clamped_to_expiry(
    tmp_path: Path, retry_after: float, lifetime: float, expected: float
) -> None:
    clock = ManualClock()
    path = str(tmp_path / "mta.db")
    store = await SQLiteStore.open(path, clock=clock, lifetime=lifetime)
    policy = RetryPolicy(min_backoff=300, max_backoff=4000, max_lifetime=lifetime)
    manager = QueueManager(store, {"x400": AsksToWait(retry_after)}, clock=clock, policy=policy)
    try:
        await store.enqueue(new_message(hop="x400:B-MTA"))
        assert await manager.run_once() == 1
        await manager.drain()
    finally:
        await store.close()
    db = Database.open(path)
    try:
        (row,) = list(db.queue_rows())
    finally:
        db.close()
    assert row.state == "deferred" and row.due_at == clock.now() + expected
