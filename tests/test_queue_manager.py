"""The queue manager against the real SQLite store, with a manual clock driving time."""

from __future__ import annotations

import asyncio
import io
import logging
import sqlite3
from pathlib import Path

import pytest
from helpers import new_message

from waypost import events
from waypost.clock import ManualClock
from waypost.delivery.error import ErrorDeliverer
from waypost.delivery.local import LocalDeliverer
from waypost.delivery.maildir import MaildirStore
from waypost.handoff import Attempt, Handoff, Result
from waypost.message import Notify, ObjectKind, Recipient
from waypost.nexthop import LOCAL, parse_next_hop
from waypost.queue.manager import QueueManager, QueueSettings
from waypost.queue.policy import RetryPolicy
from waypost.store import Database, NewMessage, SQLiteStore

POLICY = RetryPolicy(min_backoff=300, max_backoff=4000, max_lifetime=20000)


class Scripted:
    """A delivery agent that answers from a script and remembers what it was given."""

    def __init__(self, result: Result = Result.DEFERRED, detail: str = "4.4.1 no answer") -> None:
        self.result = result
        self.detail = detail
        self.transfers: list[Handoff] = []

    async def deliver(self, transfer: Handoff) -> list[Attempt]:
        self.transfers.append(transfer)
        return [
            Attempt(recipient_id=c.recipient_id, result=self.result, detail=self.detail)
            for c in transfer.recipients
        ]


class Exploding:
    async def deliver(self, transfer: Handoff) -> list[Attempt]:
        raise RuntimeError("bug in a delivery agent")


async def make(
    tmp_path: Path, deliverers: dict[str, object], clock: ManualClock
) -> tuple[SQLiteStore, QueueManager]:
    store = await SQLiteStore.open(
        str(tmp_path / "mta.db"), clock=clock, lifetime=POLICY.max_lifetime
    )
    manager = QueueManager(
        store,
        deliverers,
        clock=clock,
        policy=POLICY,  # type: ignore[arg-type]
        settings=QueueSettings(batch_size=50),
    )
    return store, manager


async def pass_once(manager: QueueManager) -> int:
    claimed = await manager.run_once()
    await manager.drain()
    return claimed


def rows(tmp_path: Path) -> list[tuple[str, str, int, float | None, str | None]]:
    db = Database.open(str(tmp_path / "mta.db"))
    out = [(r.address, r.state, r.attempts, r.due_at, r.report) for r in db.queue_rows()]
    db.close()
    return out


async def test_local_recipients_land_in_their_maildir(tmp_path: Path) -> None:
    clock = ManualClock()
    maildirs = MaildirStore(tmp_path / "maildir", hostname="test")
    store, manager = await make(tmp_path, {"local": LocalDeliverer(maildirs)}, clock)
    await store.enqueue(
        new_message(("bob@localhost", "carol@localhost"), body=b"Subject: x\r\n\r\nhi\r\n")
    )
    assert await pass_once(manager) == 2
    for user in ("bob", "carol"):
        (delivered,) = list((tmp_path / "maildir" / user / "new").iterdir())
        text = delivered.read_bytes()
        assert text.startswith(b"Return-Path: <alice@example.org>\nDelivered-To: " + user.encode())
        assert text.endswith(b"Subject: x\n\nhi\n")
        assert list((tmp_path / "maildir" / user / "tmp").iterdir()) == []
    # Delivered and no report asked: the message is gone from the queue.
    assert rows(tmp_path) == []
    await store.close()


async def test_unknown_mailbox_fails_and_owes_a_report(tmp_path: Path) -> None:
    clock = ManualClock()
    maildirs = MaildirStore(tmp_path / "maildir", mailboxes=frozenset({"bob"}))
    store, manager = await make(tmp_path, {"local": LocalDeliverer(maildirs)}, clock)
    await store.enqueue(new_message(("bob@localhost", "nobody@localhost")))
    await pass_once(manager)
    assert rows(tmp_path) == [
        ("bob@localhost", "delivered", 1, None, None),
        ("nobody@localhost", "failed", 1, None, "non-delivery"),
    ]
    await store.close()


async def test_no_report_for_a_report(tmp_path: Path) -> None:
    clock = ManualClock()
    store, manager = await make(tmp_path, {"local": Scripted(Result.FAILED, "5.1.1 x")}, clock)
    await store.enqueue(new_message(("bob@localhost",), originator=""))
    await pass_once(manager)
    assert rows(tmp_path) == []  # failed, nothing owed, so the message is finished
    await store.close()


async def test_a_failing_x400_report_is_discarded_with_an_event(tmp_path: Path) -> None:
    clock = ManualClock()
    agent = Scripted(Result.FAILED, "5.4.4 no route to the destination")
    store, manager = await make(tmp_path, {"x400": agent}, clock)
    destination = "/C=GB/ADMD= /PRMD=GONE/S=Smith/"
    await store.enqueue(
        new_message(
            (destination,), originator="", hop="x400:GONE-MTA", object_kind=ObjectKind.REPORT
        )
    )
    terminal = io.StringIO()
    events.configure_logging(level="INFO", stream=terminal)
    try:
        await pass_once(manager)
    finally:
        events.configure_logging(level="WARNING", stream=io.StringIO())
    assert rows(tmp_path) == []  # failed, and no report is ever made on a report
    (line,) = [x for x in terminal.getvalue().splitlines() if " 1822 x400: " in x]
    assert f"for {destination} discarded: 5.4.4 no route to the destination" in line


async def test_notify_success_owes_a_delivery_report(tmp_path: Path) -> None:
    clock = ManualClock()
    store, manager = await make(tmp_path, {"local": Scripted(Result.DELIVERED, "2.0.0")}, clock)
    new = new_message(("bob@localhost",))
    envelope = new.message.envelope
    recipient = Recipient(address="bob@localhost", notify=[Notify.SUCCESS])
    message = type(new.message)(
        envelope=type(envelope)(**{**_fields(envelope), "recipients": [recipient]}),
        content=new.message.content,
    )
    await store.enqueue(NewMessage(message=message, next_hops=[LOCAL]))
    await pass_once(manager)
    assert rows(tmp_path) == [("bob@localhost", "delivered", 1, None, "delivery")]
    await store.close()


def _fields(struct: object) -> dict[str, object]:
    return {f: getattr(struct, f) for f in struct.__struct_fields__}  # type: ignore[attr-defined]


async def test_backoff_doubles_with_age_then_expires(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = ManualClock()
    agent = Scripted()
    store, manager = await make(tmp_path, {"smtp": agent}, clock)
    start = clock.now()
    await store.enqueue(new_message(("x@remote.example",), hop="smtp:[192.0.2.1]:25"))
    waits = []
    caplog.set_level(logging.INFO, logger="waypost")
    while True:
        await pass_once(manager)
        ((_, state, _, due, report),) = rows(tmp_path)
        if state != "deferred":
            break
        assert due is not None
        waits.append(round(due - clock.now()))
        await clock.advance(due - clock.now())
    # Interval = the message's age, clamped to [300, 4000]: it doubles, then stays at the maximum,
    # and the last one is cut short by the expiry (20000 s).
    assert waits[:5] == [300, 300, 600, 1200, 2400]
    assert waits[5:-1] == [4000] * len(waits[5:-1])
    assert clock.now() - start == pytest.approx(20000)
    assert state == "failed" and report == "non-delivery"
    assert any(
        getattr(r, "waypost_event", None) and r.waypost_event.name == "recipient-expired"
        for r in caplog.records
    )
    await store.close()


async def test_a_failing_agent_costs_a_deferral_not_the_loop(tmp_path: Path) -> None:
    clock = ManualClock()
    good = Scripted(Result.DELIVERED, "2.0.0 ok")
    store, manager = await make(tmp_path, {"smtp": Exploding(), "local": good}, clock)
    await store.enqueue(new_message(("x@remote.example",), hop="smtp:[192.0.2.1]:25"))
    await store.enqueue(new_message(("bob@localhost",)))
    assert await pass_once(manager) == 2
    assert rows(tmp_path) == [("x@remote.example", "deferred", 1, clock.now() + 300, None)]
    assert len(good.transfers) == 1
    await store.close()


async def test_transport_without_agent_waits_in_the_queue(tmp_path: Path) -> None:
    clock = ManualClock()
    store, manager = await make(tmp_path, {}, clock)
    await store.enqueue(new_message(("x@remote.example",), hop="x400:PEER"))
    await pass_once(manager)
    ((_, state, attempts, _, _),) = rows(tmp_path)
    assert (state, attempts) == ("deferred", 1)
    await store.close()


async def test_one_transfer_per_message_and_hop(tmp_path: Path) -> None:
    clock = ManualClock()
    agent = Scripted(Result.DELIVERED, "2.0.0")
    store, manager = await make(tmp_path, {"smtp": agent}, clock)
    new = new_message(("a@r.example", "b@r.example", "c@r.example"))
    await store.enqueue(
        NewMessage(
            message=new.message,
            next_hops=[parse_next_hop(h) for h in ("smtp:[h1]:25", "smtp:[h1]:25", "smtp:[h2]:25")],
        )
    )
    await pass_once(manager)
    by_hop = sorted((str(t.next_hop), [c.address for c in t.recipients]) for t in agent.transfers)
    assert by_hop == [
        ("smtp:[h1]:25", ["a@r.example", "b@r.example"]),
        ("smtp:[h2]:25", ["c@r.example"]),
    ]
    assert all(t.content == new.message.content for t in agent.transfers)
    await store.close()


async def test_truncated_content_quarantines_the_message_only(tmp_path: Path) -> None:
    clock = ManualClock()
    agent = Scripted(Result.DELIVERED, "2.0.0")
    store, manager = await make(tmp_path, {"local": agent}, clock)
    bad = await store.enqueue(new_message(("a@localhost",)))
    await store.enqueue(new_message(("b@localhost",)))
    with sqlite3.connect(tmp_path / "mta.db") as conn:
        conn.execute("UPDATE content SET data = x'00' WHERE message_id = ?", (bad,))
    await pass_once(manager)
    assert [c.address for t in agent.transfers for c in t.recipients] == ["b@localhost"]
    assert rows(tmp_path) == [("a@localhost", "quarantined", 0, None, None)]
    await store.close()


class Slow:
    """An agent that takes a while, recording how many transfers per hop were in flight."""

    def __init__(self) -> None:
        self.in_flight: dict[str, int] = {}
        self.most: dict[str, int] = {}

    async def deliver(self, transfer: Handoff) -> list[Attempt]:
        hop = str(transfer.next_hop)
        self.in_flight[hop] = self.in_flight.get(hop, 0) + 1
        self.most[hop] = max(self.most.get(hop, 0), self.in_flight[hop])
        await asyncio.sleep(0.02)
        self.in_flight[hop] -= 1
        return [
            Attempt(recipient_id=c.recipient_id, result=Result.DELIVERED, detail="2.0.0")
            for c in transfer.recipients
        ]


async def test_per_destination_and_total_concurrency(tmp_path: Path) -> None:
    clock = ManualClock()
    agent = Slow()
    store = await SQLiteStore.open(str(tmp_path / "mta.db"), clock=clock, lifetime=1000)
    manager = QueueManager(
        store,
        {"smtp": agent},
        clock=clock,
        policy=POLICY,
        settings=QueueSettings(batch_size=100, delivery_concurrency=5, destination_concurrency=2),
    )
    for i in range(12):
        hop = "smtp:[h1]:25" if i % 2 else "smtp:[h2]:25"
        await store.enqueue(new_message((f"u{i}@r.example",), hop=hop))
    assert await pass_once(manager) == 12
    assert agent.most == {"smtp:[h1]:25": 2, "smtp:[h2]:25": 2}
    assert rows(tmp_path) == []
    await store.close()


async def test_error_transport_fails_at_once_with_the_route_text(tmp_path: Path) -> None:
    clock = ManualClock()
    store, manager = await make(tmp_path, {"error": ErrorDeliverer()}, clock)
    await store.enqueue(new_message(("x@closed.example",), hop="error:domain closed"))
    await pass_once(manager)
    assert rows(tmp_path) == [("x@closed.example", "failed", 1, None, "non-delivery")]
    db = Database.open(str(tmp_path / "mta.db"))
    (row,) = list(db.queue_rows())
    db.close()
    assert row.last_error == "5.4.4 domain closed"
    await store.close()


class Unreachable:
    """An agent for a hop that cannot be reached until `up`; counts its tries."""

    def __init__(self, *, final: bool = False, retry_after: float | None = None) -> None:
        self.up = False
        self.tries = 0
        self.final = final
        self.retry_after = retry_after
        self.flushed = 0

    def flush(self) -> None:
        self.flushed += 1

    async def deliver(self, transfer: Handoff) -> list[Attempt]:
        self.tries += 1
        if self.up:
            result, detail, hop_failure = Result.DELIVERED, "2.0.0 ok", False
        elif self.final:
            result, detail, hop_failure = Result.FAILED, f"5.4.1 try {self.tries} failed", True
        else:
            result, detail, hop_failure = Result.DEFERRED, f"4.4.1 try {self.tries} failed", True
        return [
            Attempt(
                recipient_id=c.recipient_id,
                result=result,
                detail=detail,
                hop_failure=hop_failure,
                retry_after=self.retry_after,
            )
            for c in transfer.recipients
        ]


async def test_a_hop_down_is_probed_once_per_back_off_and_shows_the_latest_error(
    tmp_path: Path,
) -> None:
    clock = ManualClock()
    agent = Unreachable()
    store, manager = await make(tmp_path, {"smtp": agent}, clock)
    hop = "smtp:[192.0.2.1]:25"
    for _ in range(5):
        await store.enqueue(new_message(("x@remote.example",), hop=hop))
    await pass_once(manager)
    assert agent.tries == 1
    assert sorted(attempts for _, _, attempts, _, _ in rows(tmp_path)) == [0, 0, 0, 0, 1]
    # A new message for the hop is held at once, with the current error.
    await store.enqueue(new_message(("y@remote.example",), hop=hop))
    await pass_once(manager)
    assert agent.tries == 1
    await clock.advance(300)
    await pass_once(manager)
    assert agent.tries == 2  # the probe
    # What is held from now on shows the probe's error: the latest.
    await store.enqueue(new_message(("z@remote.example",), hop=hop))
    await pass_once(manager)
    assert agent.tries == 2
    db = Database.open(str(tmp_path / "mta.db"))
    (error,) = [r.last_error for r in db.queue_rows() if r.address == "z@remote.example"]
    db.close()
    assert error is not None
    assert error.startswith(f"4.4.1 delivery temporarily suspended: {hop} unreachable since ")
    assert ": try 2 failed; next attempt at " in error
    # The hop comes back: the next probe reaches it and all it held goes at once.
    agent.up = True
    due = await store.next_due()
    assert due is not None
    await clock.advance(due - clock.now())
    while await pass_once(manager):
        pass
    assert rows(tmp_path) == []
    assert agent.tries == 2 + 7
    await store.close()


async def test_a_hop_the_agent_fails_for_good_fails_what_it_holds(tmp_path: Path) -> None:
    clock = ManualClock()
    store, manager = await make(tmp_path, {"x400": Unreachable(final=True)}, clock)
    for _ in range(3):
        await store.enqueue(new_message(("/C=GB/ADMD= /PRMD=B/S=Jones/",), hop="x400:B-MTA"))
    await pass_once(manager)
    assert [(state, attempts) for _, state, attempts, _, _ in rows(tmp_path)] == [
        ("failed", 1),
        ("failed", 0),
        ("failed", 0),
    ]
    await store.close()


async def test_flush_forgets_the_hops_down_and_makes_deferred_work_due(tmp_path: Path) -> None:
    clock = ManualClock()
    agent = Unreachable(retry_after=600)
    store, manager = await make(tmp_path, {"x400": agent}, clock)
    for _ in range(3):
        await store.enqueue(new_message(("/C=GB/ADMD= /PRMD=B/S=Jones/",), hop="x400:B-MTA"))
    await pass_once(manager)
    assert (agent.tries, await pass_once(manager)) == (1, 0)  # nothing due for 600 s
    agent.up = True
    assert await manager.flush() == 3
    assert agent.flushed == 1
    await pass_once(manager)
    assert rows(tmp_path) == []
    await store.close()
