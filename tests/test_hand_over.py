"""A gateway's converted message and the outcome of the recipients it answers for are
stored in one transaction: responsibility passes exactly once, never both, never neither."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from pathlib import Path

import msgspec
import pytest
from helpers import new_message

from waypost.clock import ManualClock
from waypost.handoff import Attempt, Conversion, Handoff, Result
from waypost.queue.manager import QueueManager
from waypost.queue.policy import RetryPolicy
from waypost.store import Settlement, SQLiteStore, StoreError
from waypost.store.database import Database, HandOver


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
    reads = 0
    read_content = store.read_content

    async def counted_read(message_id: int, *, size_hint: int | None = None) -> bytes:
        nonlocal reads
        reads += 1
        return await read_content(message_id, size_hint=size_hint)

    store.read_content = counted_read  # type: ignore[method-assign]
    await manager.run_once()
    await manager.drain()
    # One handoff for both recipients, one converted message made of it, delivered in the
    # same pass from memory: its recipients were leased in the hand-over's transaction, so
    # it is neither claimed nor read back.
    assert len(gateway.handoffs) == 1
    assert manager.counters["converted"] == 2
    assert local.addresses == ["converted@localhost"]
    assert reads == 1  # the original only
    assert rows(db_path) == []
    await store.close()


async def test_hand_over_leased_leases_the_new_recipients_to_the_owner(db_path: str) -> None:
    clock = ManualClock()
    store = await SQLiteStore.open(db_path, clock=clock, lifetime=1000.0)
    await store.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"))
    (a,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/", "b@x.example"), hop="x400:PEER")
    handed = await store.hand_over_leased("w", [delivered(a.recipient_id)], converted, 60)
    assert handed is not None
    new_id, claims = handed
    assert [(c.message_id, c.address, c.next_hop, c.rcpt_index) for c in claims] == [
        (new_id, "/C=GB/ADMD= /PRMD=Acme/S=A/", "x400:PEER", 0),
        (new_id, "b@x.example", "x400:PEER", 1),
    ]
    assert claims[0].envelope == converted.message.envelope
    # The original is settled (and gone, every recipient final); the new one is leased.
    assert [state for *_, state in rows(db_path)] == ["leased", "leased"]
    # Nobody else claims them while the lease runs; when it runs out, the queue does.
    assert (await store.claim(owner="other", limit=10, lease_seconds=60)).claims == []
    await clock.advance(61)
    again = (await store.claim(owner="other", limit=10, lease_seconds=60)).claims
    assert sorted(c.recipient_id for c in again) == sorted(c.recipient_id for c in claims)
    await store.close()


async def test_a_deferred_conversion_is_handed_over_unleased(db_path: str) -> None:
    clock = ManualClock()
    store = await SQLiteStore.open(db_path, clock=clock, lifetime=1000.0)
    await store.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"))
    (a,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    converted = new_message(("b@x.example",), hop="x400:PEER")
    later = msgspec.structs.replace(
        converted.message,
        envelope=msgspec.structs.replace(
            converted.message.envelope, deferred_delivery=clock.now() + 500
        ),
    )
    handed = await store.hand_over_leased(
        "w", [delivered(a.recipient_id)], dataclasses.replace(converted, message=later), 60
    )
    assert handed is not None and handed[1] == []
    assert [state for *_, state in rows(db_path)][-1] == "queued"
    await store.close()


async def test_a_lost_lease_hands_over_nothing_leased(db_path: str) -> None:
    clock = ManualClock()
    store = await SQLiteStore.open(db_path, clock=clock, lifetime=1000.0)
    await store.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"))
    (a,) = (await store.claim(owner="w1", limit=10, lease_seconds=60)).claims
    await clock.advance(61)
    assert len((await store.claim(owner="w2", limit=10, lease_seconds=60)).claims) == 1
    converted = new_message(("b@x.example",), hop="x400:PEER")
    assert await store.hand_over_leased("w1", [delivered(a.recipient_id)], converted, 60) is None
    assert [state for *_, state in rows(db_path)] == ["leased"]
    await store.close()


async def test_the_claims_handed_over_are_what_a_claim_of_the_rows_reads(db_path: str) -> None:
    clock = ManualClock()
    store = await SQLiteStore.open(db_path, clock=clock, lifetime=1000.0)
    await store.enqueue(new_message(("a@gw.example", "c@gw.example"), hop="gateway:mixer"))
    a, _c = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/", "b@x.example"), hop="x400:PEER")
    handed = await store.hand_over_leased("w", [delivered(a.recipient_id)], converted, 60)
    assert handed is not None
    # The other recipient of the original is still leased: the original stays.
    assert [state for *_, state in rows(db_path)] == ["delivered", "leased", "leased", "leased"]
    await clock.advance(61)
    read = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    again = {claim.recipient_id: claim for claim in read}
    for claim in handed[1]:
        expired = again[claim.recipient_id]
        assert dataclasses.replace(expired, lease_was_expired=False, previous_owner=None) == claim
    await store.close()


async def test_hand_overs_made_together_are_each_all_or_nothing(db_path: str) -> None:
    clock = ManualClock()
    store = await SQLiteStore.open(db_path, clock=clock, lifetime=1000.0)
    for address in ("a@gw.example", "b@gw.example", "c@gw.example"):
        await store.enqueue(new_message((address,), hop="gateway:mixer"))
    a, b, c = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    # b's lease is lost to another worker; the other two still hold theirs.
    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE recipients SET lease_owner = 'other' WHERE id = ?", (b.recipient_id,))
    converted = [
        new_message((f"/C=GB/ADMD= /PRMD=Acme/S={name}/",), hop="x400:PEER") for name in "ABC"
    ]
    handed = await asyncio.gather(
        *(
            store.hand_over_leased("w", [delivered(claim.recipient_id)], new, 60)
            for claim, new in zip((a, b, c), converted, strict=True)
        )
    )
    assert handed[1] is None
    assert handed[0] is not None and handed[2] is not None
    assert [claim.address for _, claims in (handed[0], handed[2]) for claim in claims] == [
        "/C=GB/ADMD= /PRMD=Acme/S=A/",
        "/C=GB/ADMD= /PRMD=Acme/S=C/",
    ]
    # a's and c's originals are settled and gone; b's stays with its new owner.
    assert [(address, state) for _, address, _, state in rows(db_path)] == [
        ("b@gw.example", "leased"),
        ("/C=GB/ADMD= /PRMD=Acme/S=A/", "leased"),
        ("/C=GB/ADMD= /PRMD=Acme/S=C/", "leased"),
    ]
    await store.close()


def test_two_hand_overs_answering_for_one_recipient_store_only_the_first(db_path: str) -> None:
    db = Database.open(db_path)
    with db.transaction():
        db.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"), 0.0, 1000.0)
        (a,) = db.claim(0.0, "w", 10, 60).claims
    first, second = (
        HandOver("w", [delivered(a.recipient_id)], new_message((address,), hop="x400:PEER"), 60)
        for address in ("/C=GB/ADMD= /PRMD=Acme/S=A/", "/C=GB/ADMD= /PRMD=Acme/S=B/")
    )
    with db.transaction():
        answers = db.hand_over_many([first, second], 1.0, 1000.0)
    assert answers[0] is not None and answers[1] is None
    assert [address for _, address, _, _ in rows(db_path)] == ["/C=GB/ADMD= /PRMD=Acme/S=A/"]
    db.close()
