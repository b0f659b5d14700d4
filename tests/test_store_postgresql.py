"""What the PostgreSQL MTA database does beyond the conformance suite: several nodes on one
queue (claims that never overlap, heartbeats, a silent node's leases taken over, a stopping
node's handed back), its schema's versions, and a database server that restarts."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest
from helpers import new_message
from pg_server import PgServer
from store_backends import Backend

from waypost.clock import ManualClock
from waypost.handoff import Result
from waypost.store import ReportOwed, Settlement, StoreError
from waypost.store.postgresql.database import PgDatabase
from waypost.store.postgresql.permits import ClusterGate, ClusterPermits
from waypost.store.postgresql.schema import SCHEMA_VERSION
from waypost.store.postgresql.store import NodeSettings, PostgresStore


@pytest.fixture
def pg(pg_dsn: str) -> Backend:
    return Backend("postgresql", pg_dsn)


def event_names_of(records: list[logging.LogRecord]) -> list[str]:
    return [r.waypost_event.name for r in records if hasattr(r, "waypost_event")]


def event_names(caplog: pytest.LogCaptureFixture) -> list[str]:
    return event_names_of(caplog.records)


async def test_nodes_claiming_together_never_take_the_same_recipient(pg: Backend) -> None:
    clock = ManualClock()
    nodes = [await pg.open(clock, node=f"n{i}") for i in range(3)]
    await asyncio.gather(*(nodes[0].enqueue(new_message((f"u{i}@localhost",))) for i in range(300)))
    batches = await asyncio.gather(
        *(node.claim(owner=f"w{i}", limit=40, lease_seconds=60) for _ in range(4)
          for i, node in enumerate(nodes))
    )  # fmt: skip
    claimed = [c.recipient_id for batch in batches for c in batch.claims]
    assert len(claimed) == len(set(claimed)) == 300
    for node in nodes:
        await node.close()


async def test_a_node_that_stops_hands_its_leases_back_at_once(pg: Backend) -> None:
    clock = ManualClock()
    first = await pg.open(clock, node="a")
    other = await pg.open(clock, node="b")
    assert isinstance(first, PostgresStore)
    await first.enqueue(new_message(("x@localhost", "y@localhost")))
    assert len((await first.claim(owner=first.owner, limit=10, lease_seconds=600)).claims) == 2
    await first.close()
    # Not after the lease's 600 s: now.
    again = (await other.claim(owner="b-run", limit=10, lease_seconds=60)).claims
    assert len(again) == 2
    assert {c.previous_owner for c in again} == {None}
    await other.close()


async def test_a_silent_nodes_leases_are_taken_over_after_the_timeout(
    pg: Backend, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = ManualClock()
    dead = await pg.open(clock, node="dead", node_timeout=1.0)
    alive = await pg.open(clock, node="alive", node_timeout=1.0)
    assert isinstance(dead, PostgresStore) and isinstance(alive, PostgresStore)
    await dead.enqueue(new_message(("x@localhost", "y@localhost")))
    claims = (await dead.claim(owner=dead.owner, limit=10, lease_seconds=3600)).claims
    assert len(claims) == 2
    # The node dies without a word: its heartbeat stops (its membership task is gone and
    # it never leaves).
    assert dead._membership is not None
    dead._membership.cancel()
    await alive.beat()
    assert pg.states() == dict.fromkeys((c.recipient_id for c in claims), "leased")
    await asyncio.sleep(1.2)  # the database server's clock decides who is silent
    await alive.beat()
    assert set(pg.states().values()) == {"queued"}
    lost = [r for r in caplog.records if "node-lost" in event_names_of([r])]
    assert len(lost) == 1
    assert lost[0].waypost_fields["node"] == "dead"
    assert lost[0].waypost_fields["count"] == 2 and lost[0].waypost_fields["by"] == "alive"
    # Taken once: another round finds nothing more to take.
    await alive.beat()
    assert event_names(caplog).count("node-lost") == 1
    # The dead node's late outcome counts for nothing; the survivor delivers.
    late = [Settlement(recipient_id=c.recipient_id, result=Result.DELIVERED) for c in claims]
    assert await dead.settle(dead.owner, late) == 0
    taken = (await alive.claim(owner=alive.owner, limit=10, lease_seconds=60)).claims
    assert sorted(c.recipient_id for c in taken) == sorted(c.recipient_id for c in claims)
    # The dead node, were it only stalled, learns it was declared lost and joins again.
    await dead.beat()
    assert "node-declared-lost" in event_names(caplog)
    status = {s.name: s for s in await alive.status()}
    assert status["dead"].state == "running" and status["alive"].leases == 2
    await dead.close()
    await alive.close()


async def test_a_node_name_in_use_by_a_live_node_is_refused(pg: Backend) -> None:
    first = await pg.open(node="same")
    # The same host, and the running process is alive: a second node of that name would
    # hand back the first one's leases.
    with pytest.raises(StoreError, match="running already"):
        await PostgresStore.open(pg.where, node=NodeSettings(name="same"))
    await first.close()
    # Once it stopped, the name is free.
    again = await pg.open(node="same")
    await again.close()


async def test_a_restarted_node_hands_back_its_previous_runs_leases(pg: Backend) -> None:
    clock = ManualClock()
    store = await pg.open(clock, node="n")
    assert isinstance(store, PostgresStore)
    await store.enqueue(new_message(("x@localhost",)))
    await store.claim(owner=store.owner, limit=10, lease_seconds=3600)
    other = await pg.open(clock, node="other")
    await other.claim(owner=other.owner, limit=10, lease_seconds=3600)
    # The process is killed; its row says running, with a pid that no longer exists.
    pg.sql("UPDATE nodes SET pid = 999999999 WHERE name = 'n'")
    assert store._membership is not None
    store._membership.cancel()
    restarted = await pg.open(clock, node="n")
    assert await restarted.release_leases() == 1
    assert set(pg.states().values()) == {"queued"}
    await restarted.close()
    await other.close()


def test_a_database_newer_than_this_waypost_is_refused(pg: Backend) -> None:
    PgDatabase.connect(pg.where).close()
    pg.sql("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    with pytest.raises(StoreError, match="newer than this Waypost"):
        PgDatabase.connect(pg.where)


async def test_nodes_starting_together_create_the_schema_once(pg: Backend) -> None:
    stores = await asyncio.gather(*(pg.open(node=f"n{i}") for i in range(4)))
    assert pg.sql("SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    for store in stores:
        await store.close()


async def test_the_store_reconnects_after_the_database_server_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    server = PgServer.initdb()
    try:
        store = await PostgresStore.open(
            server.create_database("mta"),
            clock=ManualClock(),
            node=NodeSettings(name="n", heartbeat_interval=3600),
        )
        first = await store.enqueue(new_message())
        server.stop()
        with pytest.raises(StoreError):
            await store.enqueue(new_message())
        server.start()
        second = await store.enqueue(new_message())
        assert second > first
        assert "store-reconnected" in event_names(caplog)
        claims = (await store.claim(owner=store.owner, limit=10, lease_seconds=60)).claims
        assert sorted(c.message_id for c in claims) == [first, second]
        await store.close()
    finally:
        server.remove()


async def test_the_limit_per_next_hop_holds_across_nodes(pg: Backend) -> None:
    nodes = [await pg.open(node=f"n{i}") for i in range(2)]
    gates = [node.delivery_gate(2) for node in nodes]
    running: dict[str, int] = {"smtp:[a]:25": 0, "smtp:[b]:25": 0}
    most: dict[str, int] = dict.fromkeys(running, 0)

    async def deliver(gate: ClusterGate, hop: str) -> None:
        async with gate.slot(hop):
            running[hop] += 1
            most[hop] = max(most[hop], running[hop])
            await asyncio.sleep(0.05)
            running[hop] -= 1

    await asyncio.gather(*(deliver(gates[i % 2], hop) for i in range(8) for hop in running))
    # Eight deliveries per hop from two nodes, never more than two at once for either.
    assert most == dict.fromkeys(running, 2)
    for node in nodes:
        await node.close()


async def test_the_cluster_keeps_a_hops_reserved_slot_for_urgent_deliveries(pg: Backend) -> None:
    nodes = [await pg.open(node=f"n{i}") for i in range(2)]
    gates = [node.delivery_gate(3, reserved=1) for node in nodes]
    hop = "x400:PEER"
    release = asyncio.Event()
    busy: list[str] = []

    async def deliver(gate: ClusterGate, name: str, *, urgent: bool) -> None:
        async with gate.slot(hop, urgent=urgent):
            busy.append(name)
            await release.wait()

    # Two normal deliveries, one from each node, take the two slots others may use.
    normal = [asyncio.create_task(deliver(g, f"n{i}", urgent=False)) for i, g in enumerate(gates)]
    while len(busy) < 2:
        await asyncio.sleep(0.01)
    late = asyncio.create_task(deliver(gates[0], "late", urgent=False))
    await asyncio.sleep(0.3)
    assert "late" not in busy  # the third slot is not for it …
    urgent = asyncio.create_task(deliver(gates[1], "urgent", urgent=True))
    while "urgent" not in busy:  # … but for the urgent one, on either node
        await asyncio.sleep(0.01)
    assert "late" not in busy
    release.set()
    await asyncio.gather(*normal, urgent, late)
    assert busy[-1] == "late"
    for node in nodes:
        await node.close()


async def test_a_dead_nodes_permits_go_back_to_the_cluster(pg: Backend) -> None:
    hop = "x400:PEER"
    holder, waiter = ClusterPermits(pg.where), ClusterPermits(pg.where)
    assert await holder.try_acquire(hop, 1) is not None
    assert await waiter.try_acquire(hop, 1) is None  # the one permit is taken
    holder.close()  # the node's connection ends, as when its process dies
    assert await waiter.try_acquire(hop, 1) is not None
    waiter.close()


async def test_a_permit_takes_one_lock(pg: Backend) -> None:
    permits = ClusterPermits(pg.where)
    for count in (1, 2, 3):
        assert await permits.try_acquire("smtp:[a]:25", 10) is not None
        held = pg.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        assert held == [(count,)]
    permits.close()


def _settle_in(db: PgDatabase, owner: str, recipient_id: int) -> None:
    db.settle(owner, [Settlement(recipient_id=recipient_id, result=Result.DELIVERED)], 2.0)


def test_two_nodes_settling_a_messages_last_recipients_remove_it(pg: Backend) -> None:
    """Each node settles one of a message's two recipients at the same moment: whichever
    commits second must see both final and remove the message."""
    first, second = PgDatabase.connect(pg.where), PgDatabase.connect(pg.where)
    with first.transaction():
        first.enqueue(new_message(("a@localhost", "b@localhost")), 1.0, 1000.0)
        (a,) = first.claim(1.0, "node-a", 1, 60).claims
        (b,) = first.claim(1.0, "node-b", 1, 60).claims
    first.conn.execute("BEGIN")
    _settle_in(first, "node-a", a.recipient_id)  # holds the message's row until it commits

    def other_node() -> None:
        with second.transaction():
            _settle_in(second, "node-b", b.recipient_id)

    thread = threading.Thread(target=other_node)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive()  # waiting for the message's row
    first.conn.execute("COMMIT")
    thread.join(10)
    assert pg.sql("SELECT count(*) FROM messages") == [(0,)]
    assert pg.sql("SELECT count(*) FROM recipients") == [(0,)]
    first.close()
    second.close()


def test_a_report_two_nodes_owe_is_sent_once(pg: Backend) -> None:
    db = PgDatabase.connect(pg.where)
    with db.transaction():
        mid = db.enqueue(new_message(("a@localhost",)), 1.0, 1000.0)
        (a,) = db.claim(1.0, "w", 1, 60).claims
        failed = Settlement(
            recipient_id=a.recipient_id,
            result=Result.FAILED,
            detail="5.1.1 unknown",
            report=ReportOwed.NON_DELIVERY,
        )
        db.settle("w", [failed], 2.0)
    # Both nodes' report generators read the same report owed, and both make it.
    assert len(db.reports_owed(10)) == 1
    reports = [new_message(("alice@example.org",), hop="smtp:") for _ in range(2)]
    answers = []
    for report in reports:
        with db.transaction():
            answers.append(db.complete_reports(mid, [a.recipient_id], report, 3.0, 1000.0))
    assert answers[0] is not None and answers[1] is None
    assert pg.sql("SELECT count(*) FROM messages") == [(1,)]  # the one report
    db.close()
