"""A gateway's converted message and the outcome of the recipients it answers for are
stored in one transaction: responsibility passes exactly once, never both, never neither."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import new_message

from waypost.clock import ManualClock
from waypost.handoff import Attempt, Conversion, Handoff, Result
from waypost.queue.manager import QueueManager
from waypost.queue.policy import RetryPolicy
from waypost.store import Settlement, SQLiteStore, StoreError


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "mta.db")


def rows(path: str) -> list[tuple[int, str, str, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT message_id, address, next_hop, state FROM recipients ORDER BY id"
        ).fetchall()


def delivered(recipient_id: int) -> Settlement:
    return Settlement(recipient_id=recipient_id, result=Result.DELIVERED, detail="2.0.0 converted")


async def test_hand_over_settles_and_enqueues_together(db_path: str) -> None:
    store = await SQLiteStore.open(db_path, clock=ManualClock(), lifetime=1000.0)
    original = await store.enqueue(
        new_message(("a@gw.example", "b@gw.example"), hop="gateway:mixer")
    )
    a, _b = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/",), hop="x400:PEER")
    new_id = await store.hand_over("w", [delivered(a.recipient_id)], converted)
    assert new_id is not None and new_id != original
    assert rows(db_path) == [
        (original, "a@gw.example", "gateway:mixer", "delivered"),
        (original, "b@gw.example", "gateway:mixer", "leased"),
        (new_id, "/C=GB/ADMD= /PRMD=Acme/S=A/", "x400:PEER", "queued"),
    ]
    assert await store.read_content(new_id) == converted.message.content
    await store.close()


async def test_a_lost_lease_stores_neither(db_path: str) -> None:
    clock = ManualClock()
    store = await SQLiteStore.open(db_path, clock=clock, lifetime=1000.0)
    await store.enqueue(new_message(("a@gw.example", "b@gw.example"), hop="gateway:mixer"))
    a, b = (await store.claim(owner="w1", limit=10, lease_seconds=60)).claims
    await clock.advance(61)
    # Another worker took the recipients after the lease ran out: the late conversion of
    # the first must not be stored, or the message would cross the gateway twice.
    assert len((await store.claim(owner="w2", limit=10, lease_seconds=60)).claims) == 2
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/",), hop="x400:PEER")
    settlements = [delivered(a.recipient_id), delivered(b.recipient_id)]
    assert await store.hand_over("w1", settlements, converted) is None
    assert [state for *_, state in rows(db_path)] == ["leased", "leased"]
    await store.close()


async def test_a_failed_write_stores_neither(db_path: str) -> None:
    store = await SQLiteStore.open(db_path, clock=ManualClock(), lifetime=1000.0)
    await store.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"))
    (a,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    with sqlite3.connect(db_path) as conn:
        # The converted message's recipients cannot be written: the settle must roll back.
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON recipients "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/",), hop="x400:PEER")
    with pytest.raises(StoreError):
        await store.hand_over("w", [delivered(a.recipient_id)], converted)
    assert [state for *_, state in rows(db_path)] == ["leased"]
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    await store.close()


class _Converting:
    """A gateway agent that converts every recipient into one new message for `local`."""

    def __init__(self) -> None:
        self.handoffs: list[Handoff] = []

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        self.handoffs.append(handoff)
        new = new_message(("converted@localhost",))
        conversion = Conversion(
            message=new.message, next_hops=new.next_hops, kind="Internet mail → X.400"
        )
        return [
            Attempt(
                recipient_id=c.recipient_id,
                result=Result.DELIVERED,
                detail="2.0.0 converted",
                passed_on=True,
                conversion=conversion,
            )
            for c in handoff.recipients
        ]


class _Recording:
    def __init__(self) -> None:
        self.addresses: list[str] = []

    async def deliver(self, handoff: Handoff) -> list[Attempt]:
        self.addresses += [c.address for c in handoff.recipients]
        return [
            Attempt(recipient_id=c.recipient_id, result=Result.DELIVERED)
            for c in handoff.recipients
        ]


async def test_the_queue_manager_hands_a_conversion_over_once(db_path: str) -> None:
    clock = ManualClock()
    store = await SQLiteStore.open(db_path, clock=clock, lifetime=1000.0)
    gateway, local = _Converting(), _Recording()
    manager = QueueManager(
        store,
        {"gateway": gateway, "local": local},
        clock=clock,
        policy=RetryPolicy(min_backoff=60, max_backoff=600, max_lifetime=1000),
    )
    await store.enqueue(new_message(("a@gw.example", "b@gw.example"), hop="gateway:mixer"))
    await manager.run_once()
    await manager.drain()
    # One handoff for both recipients, one converted message made of it.
    assert len(gateway.handoffs) == 1
    assert [(address, state) for _, address, _, state in rows(db_path)] == [
        ("converted@localhost", "queued")
    ]
    assert manager.counters["converted"] == 2
    await manager.run_once()
    await manager.drain()
    assert local.addresses == ["converted@localhost"]
    assert rows(db_path) == []
    await store.close()
