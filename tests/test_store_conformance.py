"""What every MTA database must do, run against each (SQLite, PostgreSQL): durable enqueue,
group commit, claims and leases, outcomes, reports owed, hand-overs that pass
responsibility exactly once, and bad objects quarantined while the rest flows."""

from __future__ import annotations

import asyncio
import dataclasses

import msgspec
import pytest
from helpers import new_message
from store_backends import Backend

from waypost.clock import ManualClock
from waypost.handoff import Attempt, Conversion, Handoff, Result
from waypost.message import Priority, decode_envelope
from waypost.queue.manager import QueueManager
from waypost.queue.policy import RetryPolicy
from waypost.store import BadContentError, ReportOwed, Settlement, StoreError
from waypost.store.base import Lifetimes
from waypost.store.database import HandOver


def rows(backend: Backend) -> list[tuple[int, str, str, str]]:
    return backend.sql("SELECT message_id, address, next_hop, state FROM recipients ORDER BY id")


def delivered(recipient_id: int) -> Settlement:
    return Settlement(recipient_id=recipient_id, result=Result.DELIVERED, detail="2.0.0 converted")


async def test_enqueue_is_durable_and_readable_from_another_connection(backend: Backend) -> None:
    store = await backend.open()
    new = new_message(("a@localhost", "b@localhost"))
    message_id = await store.enqueue(new)
    # Another connection (another process would do the same) sees it at once.
    ((blob, size),) = backend.sql("SELECT envelope, size FROM messages WHERE id = ?", (message_id,))
    rows = backend.sql(
        "SELECT address, next_hop, state FROM recipients WHERE message_id = ? ORDER BY rcpt_index",
        (message_id,),
    )
    assert decode_envelope(blob) == new.message.envelope
    assert size == len(new.message.content)
    assert rows == [("a@localhost", "local", "queued"), ("b@localhost", "local", "queued")]
    assert await store.read_content(message_id) == new.message.content
    await store.close()


async def test_concurrent_enqueues_share_commits(backend: Backend) -> None:
    store = await backend.open()
    ids = await asyncio.gather(*(store.enqueue(new_message()) for _ in range(500)))
    assert len(set(ids)) == 500
    # Group commit: far fewer transactions than enqueues.
    assert store.commits < 100
    assert backend.sql("SELECT count(*) FROM messages") == [(500,)]
    await store.close()


async def test_claim_leases_and_lease_expiry_brings_work_back(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    await store.enqueue(new_message(("a@localhost",)))
    first = await store.claim(owner="w1", limit=10, lease_seconds=60)
    assert len(first.claims) == 1
    assert backend.states() == {first.claims[0].recipient_id: "leased"}
    # Leased work is not handed out twice while the lease holds.
    assert (await store.claim(owner="w2", limit=10, lease_seconds=60)).claims == []
    await clock.advance(61)
    again = await store.claim(owner="w2", limit=10, lease_seconds=60)
    assert [c.recipient_id for c in again.claims] == [first.claims[0].recipient_id]
    assert again.claims[0].lease_was_expired
    assert again.claims[0].previous_owner == "w1"
    # The first worker's late outcome no longer counts: the lease is w2's.
    late = Settlement(recipient_id=first.claims[0].recipient_id, result=Result.DELIVERED)
    assert await store.settle("w1", [late]) == 0
    assert backend.states() == {first.claims[0].recipient_id: "leased"}
    await store.close()


async def test_settle_records_outcomes_and_removes_finished_messages(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    message_id = await store.enqueue(new_message(("a@localhost", "b@localhost", "c@localhost")))
    batch = await store.claim(owner="w", limit=10, lease_seconds=60)
    a, b, c = batch.claims
    settled = await store.settle(
        "w",
        [
            Settlement(recipient_id=a.recipient_id, result=Result.DELIVERED),
            Settlement(
                recipient_id=b.recipient_id,
                result=Result.DEFERRED,
                detail="4.4.1 no answer",
                next_attempt=clock.now() + 300,
            ),
            Settlement(
                recipient_id=c.recipient_id,
                result=Result.FAILED,
                detail="5.1.1 unknown",
                report=ReportOwed.NON_DELIVERY,
            ),
        ],
    )
    assert settled == 3
    db = backend.database()
    rows = {r.recipient_id: r for r in db.queue_rows()}
    assert rows[a.recipient_id].state == "delivered"
    assert rows[b.recipient_id].state == "deferred"
    assert rows[b.recipient_id].attempts == 1
    assert rows[b.recipient_id].due_at == clock.now() + 300
    assert rows[c.recipient_id].report == "non-delivery"
    # Not due yet; then due.
    assert (await store.claim(owner="w", limit=10, lease_seconds=60)).claims == []
    await clock.advance(300)
    (retry,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    assert retry.recipient_id == b.recipient_id and retry.attempts == 1
    await store.settle("w", [Settlement(recipient_id=b.recipient_id, result=Result.DELIVERED)])
    # c still owes a report, so the message stays.
    assert db.conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 1
    db.conn.execute("UPDATE recipients SET report = NULL WHERE id = ?", (c.recipient_id,))
    assert db.remove_if_finished(message_id)
    for table in ("messages", "content", "recipients"):
        assert db.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0
    db.close()
    await store.close()


async def test_a_bad_object_is_quarantined_and_the_rest_flows(backend: Backend) -> None:
    store = await backend.open()
    good = [await store.enqueue(new_message((f"u{i}@localhost",))) for i in range(5)]
    bad = good[2]
    # The founding bug: an index into the envelope that points nowhere.
    backend.sql("UPDATE recipients SET rcpt_index = 7 WHERE message_id = ?", (bad,))
    backend.sql("UPDATE messages SET envelope = ? WHERE id = ?", (b"\x00\xff", good[4]))
    batch = await store.claim(owner="w", limit=10, lease_seconds=60)
    assert sorted(c.message_id for c in batch.claims) == [good[0], good[1], good[3]]
    reasons = {(q.kind, q.object_id): q.reason for q in batch.quarantined}
    assert any("out of range" in r for r in reasons.values())
    assert ("message", good[4]) in reasons
    kinds = backend.sql("SELECT kind, object_id FROM quarantine ORDER BY id")
    assert ("message", good[4]) in kinds
    assert backend.sql("SELECT state FROM recipients WHERE message_id = ?", (bad,)) == [
        ("quarantined",)
    ]
    # Quarantined objects are not handed out again.
    assert (await store.claim(owner="w", limit=10, lease_seconds=60)).claims == []
    await store.close()


async def test_recipient_of_a_missing_message_is_moved_out(backend: Backend) -> None:
    store = await backend.open()
    keep = await store.enqueue(new_message())
    gone = await store.enqueue(new_message())
    backend.sql("DELETE FROM messages WHERE id = ?", (gone,))
    batch = await store.claim(owner="w", limit=10, lease_seconds=60)
    assert [c.message_id for c in batch.claims] == [keep]
    assert [q.kind for q in batch.quarantined] == ["recipient"]
    assert backend.sql("SELECT count(*) FROM recipients WHERE message_id = ?", (gone,)) == [(0,)]
    ((row,),) = backend.sql("SELECT row FROM quarantine WHERE kind = 'recipient'")
    assert f'"message_id": {gone}' in row
    await store.close()


async def test_truncated_content_is_detected(backend: Backend) -> None:
    store = await backend.open()
    message_id = await store.enqueue(new_message())
    backend.sql("UPDATE content SET data = substr(data, 1, 3) WHERE message_id = ?", (message_id,))
    with pytest.raises(BadContentError, match="bytes"):
        await store.read_content(message_id)
    await store.close()


async def test_write_failure_answers_every_caller_with_an_error(backend: Backend) -> None:
    store = await backend.open()
    await store.enqueue(new_message())
    # Make the database refuse writes the way a failing disk does.
    backend.refuse_inserts("messages")
    results = await asyncio.gather(
        *(store.enqueue(new_message()) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, StoreError) for r in results)
    # The writer survives and carries on once the fault is gone.
    backend.allow_inserts("messages")
    assert await store.enqueue(new_message()) > 0
    await store.close()


async def test_deferred_delivery_time_is_respected(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    await store.enqueue(new_message(deferred_delivery=clock.now() + 600))
    assert (await store.claim(owner="w", limit=10, lease_seconds=60)).claims == []
    await clock.advance(600)
    assert len((await store.claim(owner="w", limit=10, lease_seconds=60)).claims) == 1
    await store.close()


async def test_hand_over_settles_and_enqueues_together(backend: Backend) -> None:
    store = await backend.open()
    original = await store.enqueue(
        new_message(("a@gw.example", "b@gw.example"), hop="gateway:mixer")
    )
    a, _b = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/",), hop="x400:PEER")
    new_id = await store.hand_over("w", [delivered(a.recipient_id)], converted)
    assert new_id is not None and new_id != original
    assert rows(backend) == [
        (original, "a@gw.example", "gateway:mixer", "delivered"),
        (original, "b@gw.example", "gateway:mixer", "leased"),
        (new_id, "/C=GB/ADMD= /PRMD=Acme/S=A/", "x400:PEER", "queued"),
    ]
    assert await store.read_content(new_id) == converted.message.content
    await store.close()


async def test_a_lost_lease_stores_neither(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    await store.enqueue(new_message(("a@gw.example", "b@gw.example"), hop="gateway:mixer"))
    a, b = (await store.claim(owner="w1", limit=10, lease_seconds=60)).claims
    await clock.advance(61)
    # Another worker took the recipients after the lease ran out: the late conversion of
    # the first must not be stored, or the message would cross the gateway twice.
    assert len((await store.claim(owner="w2", limit=10, lease_seconds=60)).claims) == 2
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/",), hop="x400:PEER")
    settlements = [delivered(a.recipient_id), delivered(b.recipient_id)]
    assert await store.hand_over("w1", settlements, converted) is None
    assert [state for *_, state in rows(backend)] == ["leased", "leased"]
    await store.close()


async def test_a_failed_write_stores_neither(backend: Backend) -> None:
    store = await backend.open()
    await store.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"))
    (a,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    # The converted message's recipients cannot be written: the settle must roll back.
    backend.refuse_inserts("recipients")
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/",), hop="x400:PEER")
    with pytest.raises(StoreError):
        await store.hand_over("w", [delivered(a.recipient_id)], converted)
    assert [state for *_, state in rows(backend)] == ["leased"]
    assert backend.sql("SELECT count(*) FROM messages") == [(1,)]
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


async def test_the_queue_manager_hands_a_conversion_over_once(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
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
    # The original only, and on PostgreSQL not even that: its claim read the content along.
    assert reads == (0 if backend.name == "postgresql" else 1)
    assert rows(backend) == []
    await store.close()


async def test_hand_over_leased_leases_the_new_recipients_to_the_owner(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
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
    assert [state for *_, state in rows(backend)] == ["leased", "leased"]
    # Nobody else claims them while the lease runs; when it runs out, the queue does.
    assert (await store.claim(owner="other", limit=10, lease_seconds=60)).claims == []
    await clock.advance(61)
    again = (await store.claim(owner="other", limit=10, lease_seconds=60)).claims
    assert sorted(c.recipient_id for c in again) == sorted(c.recipient_id for c in claims)
    await store.close()


async def test_a_deferred_conversion_is_handed_over_unleased(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
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
    assert [state for *_, state in rows(backend)][-1] == "queued"
    await store.close()


async def test_a_lost_lease_hands_over_nothing_leased(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    await store.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"))
    (a,) = (await store.claim(owner="w1", limit=10, lease_seconds=60)).claims
    await clock.advance(61)
    assert len((await store.claim(owner="w2", limit=10, lease_seconds=60)).claims) == 1
    converted = new_message(("b@x.example",), hop="x400:PEER")
    assert await store.hand_over_leased("w1", [delivered(a.recipient_id)], converted, 60) is None
    assert [state for *_, state in rows(backend)] == ["leased"]
    await store.close()


async def test_the_claims_handed_over_are_what_a_claim_of_the_rows_reads(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    await store.enqueue(new_message(("a@gw.example", "c@gw.example"), hop="gateway:mixer"))
    a, _c = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    converted = new_message(("/C=GB/ADMD= /PRMD=Acme/S=A/", "b@x.example"), hop="x400:PEER")
    handed = await store.hand_over_leased("w", [delivered(a.recipient_id)], converted, 60)
    assert handed is not None
    # The other recipient of the original is still leased: the original stays.
    assert [state for *_, state in rows(backend)] == ["delivered", "leased", "leased", "leased"]
    await clock.advance(61)
    read = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    again = {claim.recipient_id: claim for claim in read}
    for claim in handed[1]:
        expired = again[claim.recipient_id]
        assert dataclasses.replace(expired, lease_was_expired=False, previous_owner=None) == claim
    await store.close()


async def test_hand_overs_made_together_are_each_all_or_nothing(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    for address in ("a@gw.example", "b@gw.example", "c@gw.example"):
        await store.enqueue(new_message((address,), hop="gateway:mixer"))
    a, b, c = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    # b's lease is lost to another worker; the other two still hold theirs.
    backend.sql("UPDATE recipients SET lease_owner = 'other' WHERE id = ?", (b.recipient_id,))
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
    assert [(address, state) for _, address, _, state in rows(backend)] == [
        ("b@gw.example", "leased"),
        ("/C=GB/ADMD= /PRMD=Acme/S=A/", "leased"),
        ("/C=GB/ADMD= /PRMD=Acme/S=C/", "leased"),
    ]
    await store.close()


def test_two_hand_overs_answering_for_one_recipient_store_only_the_first(backend: Backend) -> None:
    db = backend.database()
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
    assert [address for _, address, _, _ in rows(backend)] == ["/C=GB/ADMD= /PRMD=Acme/S=A/"]
    db.close()


async def test_reports_owed_are_listed_and_completed_with_their_report(backend: Backend) -> None:
    store = await backend.open()
    original = await store.enqueue(new_message(("a@localhost", "b@localhost")))
    a, b = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    await store.settle(
        "w",
        [
            Settlement(
                recipient_id=a.recipient_id,
                result=Result.FAILED,
                detail="5.1.1 unknown",
                report=ReportOwed.NON_DELIVERY,
            ),
            Settlement(recipient_id=b.recipient_id, result=Result.DELIVERED),
        ],
    )
    (owed,) = await store.reports_owed(100)
    assert owed.message_id == original and owed.problem is None
    assert owed.envelope is not None and owed.envelope.recipients[0].address == "a@localhost"
    assert [(r.recipient_id, r.address, r.report, r.detail) for r in owed.recipients] == [
        (a.recipient_id, "a@localhost", "non-delivery", "5.1.1 unknown")
    ]
    assert (await store.queue_summary()).reports_owed == 1
    report = new_message(("alice@example.org",), hop="smtp:")
    report_id = await store.complete_reports(original, [a.recipient_id], report)
    assert report_id is not None and report_id != original
    assert await store.reports_owed(100) == []
    # The original is finished and gone; the report waits for its delivery.
    assert rows(backend) == [(report_id, "alice@example.org", "smtp:", "queued")]
    await store.close()


async def test_quarantine_message_sets_it_aside_with_a_copy(backend: Backend) -> None:
    store = await backend.open()
    keep = await store.enqueue(new_message())
    bad = await store.enqueue(new_message(("x@localhost", "y@localhost")))
    await store.quarantine_message(bad, "operator says so")
    assert backend.sql("SELECT state FROM messages WHERE id = ?", (bad,)) == [("quarantined",)]
    assert backend.sql(
        "SELECT DISTINCT state, due_at FROM recipients WHERE message_id = ?", (bad,)
    ) == [("quarantined", None)]
    ((kind, reason, data),) = backend.sql("SELECT kind, reason, data FROM quarantine")
    assert (kind, reason) == ("message", "operator says so")
    assert decode_envelope(bytes(data)).recipients[1].address == "y@localhost"
    claims = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    assert [c.message_id for c in claims] == [keep]
    await store.close()


async def test_next_due_and_make_due_by_next_hop(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    assert await store.next_due() is None
    await store.enqueue(new_message(("a@x.example",), hop="smtp:[a.example]"))
    await store.enqueue(new_message(("b@y.example",), hop="smtp:[b.example]"))
    assert await store.next_due() == clock.now()
    claims = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    # Leased: due again when the lease runs out.
    assert await store.next_due() == clock.now() + 60
    await store.settle(
        "w",
        [
            Settlement(
                recipient_id=c.recipient_id,
                result=Result.DEFERRED,
                detail="4.4.1 no answer",
                next_attempt=clock.now() + 900,
            )
            for c in claims
        ],
    )
    assert await store.next_due() == clock.now() + 900
    assert await store.make_due(next_hop="smtp:[a.example]:25") == 1
    assert await store.next_due() == clock.now()
    (due,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    assert due.address == "a@x.example" and due.attempts == 1
    assert await store.make_due() == 1
    (other,) = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    assert other.address == "b@y.example"
    await store.close()


async def test_queue_summary_and_counts(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    first = await store.enqueue(new_message(("a@x.example", "b@x.example"), hop="smtp:[x]"))
    await clock.advance(10)
    await store.enqueue(new_message(("c@localhost",), body=b"x" * 100))
    (claim,) = [
        c
        for c in (await store.claim(owner="w", limit=1, lease_seconds=60)).claims
        if c.message_id == first
    ]
    summary = await store.queue_summary()
    assert summary.messages == 2 and summary.reports_owed == 0
    by_key = {(h.next_hop, h.state): h for h in summary.hops}
    assert sorted(by_key) == [
        ("local", "queued"),
        ("smtp:[x]:25", "leased"),
        ("smtp:[x]:25", "queued"),
    ]
    assert by_key["local", "queued"].octets == 100
    assert by_key["smtp:[x]:25", "queued"].oldest == clock.now() - 10
    assert claim.address == "a@x.example"
    assert await store.counts() == (2, 3)
    await store.close()


async def test_settling_twice_counts_once(backend: Backend) -> None:
    store = await backend.open()
    await store.enqueue(new_message(("a@localhost", "b@localhost")))
    a, _b = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    outcome = Settlement(recipient_id=a.recipient_id, result=Result.DELIVERED)
    assert await store.settle("w", [outcome, outcome]) == 2  # both answered…
    assert await store.settle("w", [outcome]) == 0  # …but the lease is gone now
    assert backend.states()[a.recipient_id] == "delivered"
    await store.close()


# -- priority (X.411 §8.2.1.1.1.8; ICAO Doc 9880 Part II: SS urgent, GG/KK non-urgent) ------


async def test_claims_take_urgent_then_normal_then_non_urgent(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    order = [Priority.NON_URGENT, Priority.NORMAL, Priority.URGENT, Priority.NORMAL]
    ids = [await store.enqueue(new_message((f"{p.name}@localhost",), priority=p)) for p in order]
    await clock.advance(1)
    claimed = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    # Urgent first, then normal in the order they came due, then non-urgent.
    assert [c.message_id for c in claimed] == [ids[2], ids[1], ids[3], ids[0]]
    assert backend.sql("SELECT rank FROM recipients ORDER BY message_id") == [
        (2,),
        (1,),
        (0,),
        (1,),
    ]
    await store.close()


async def test_a_claim_of_a_few_takes_the_urgent_ones_past_a_backlog(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    for _ in range(30):
        await store.enqueue(new_message(("n@localhost",)))
    await clock.advance(10)  # the backlog has waited longer
    urgent = await store.enqueue(new_message(("u@localhost",), priority=Priority.URGENT))
    first = (await store.claim(owner="w", limit=2, lease_seconds=60)).claims
    assert first[0].message_id == urgent
    assert first[1].envelope.priority is Priority.NORMAL
    await store.close()


async def test_an_urgent_only_claim_leaves_the_rest(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock)
    await store.enqueue(new_message(("n@localhost",)))
    await clock.advance(5)
    assert await store.next_due(urgent_only=True) is None
    assert (await store.claim(owner="w", limit=10, lease_seconds=60, urgent_only=True)).claims == []
    await clock.advance(5)
    urgent = await store.enqueue(
        new_message(("u@localhost",), priority=Priority.URGENT, deferred_delivery=clock.now() + 30)
    )
    assert await store.next_due(urgent_only=True) == clock.now() + 30
    assert await store.next_due() == clock.now() - 10  # the normal one, due already
    await clock.advance(30)
    claimed = (await store.claim(owner="w", limit=10, lease_seconds=60, urgent_only=True)).claims
    assert [c.message_id for c in claimed] == [urgent]
    assert len((await store.claim(owner="w", limit=10, lease_seconds=60)).claims) == 1
    await store.close()


async def test_each_priority_has_its_own_lifetime(backend: Backend) -> None:
    clock = ManualClock()
    lifetimes = Lifetimes(urgent=100.0, normal=700.0, non_urgent=1000.0)
    store = await backend.open(clock, lifetime=lifetimes)
    for priority in (Priority.URGENT, Priority.NORMAL, Priority.NON_URGENT):
        await store.enqueue(new_message(("a@localhost",), priority=priority))
    now = clock.now()
    expiry = [e - now for (e,) in backend.sql("SELECT expires_at FROM messages ORDER BY id")]
    assert expiry == [100.0, 700.0, 1000.0]
    claims = (await store.claim(owner="w", limit=10, lease_seconds=60)).claims
    assert sorted(c.expires_at - now for c in claims) == [100.0, 700.0, 1000.0]
    await store.close()


async def test_a_converted_message_keeps_its_priority_rank(backend: Backend) -> None:
    clock = ManualClock()
    store = await backend.open(clock, lifetime=Lifetimes(urgent=50.0))
    await store.enqueue(new_message(("a@gw.example",), hop="gateway:mixer"))
    (claim,) = (await store.claim(owner="w", limit=1, lease_seconds=60)).claims
    converted = new_message(("b@localhost",), priority=Priority.URGENT)
    handed = await store.hand_over_leased("w", [delivered(claim.recipient_id)], converted, 60)
    assert handed is not None
    new_id, (leased,) = handed
    assert leased.expires_at == clock.now() + 50.0
    assert backend.sql("SELECT rank FROM recipients WHERE message_id = ?", (new_id,)) == [(0,)]
    await store.close()
