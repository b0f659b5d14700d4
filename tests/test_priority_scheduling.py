"""Urgent messages first: delivery slots with a share kept for urgent work, and the queue
manager serving a backlog's urgent message before the rest (X.411 priority; ICAO Doc 9880
Part II: SS messages travel urgent)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from helpers import new_message

from waypost.amhs.addressing import load_register
from waypost.amhs.aftn import AFTNMessage
from waypost.amhs.convert import GatewaySettings, aftn_to_amhs
from waypost.amhs.priority import PriorityIndicator
from waypost.clock import SystemClock
from waypost.handoff import Attempt, Handoff, Result
from waypost.message import Priority
from waypost.nexthop import parse_next_hop
from waypost.queue.manager import LocalGate, QueueManager, QueueSettings
from waypost.queue.policy import RetryPolicy
from waypost.queue.slots import Slots, reserved_slots
from waypost.store import NewMessage, SQLiteStore

HOP = "smtp:[peer.example]:25"
GATEWAY = GatewaySettings(
    register=load_register(
        "prefix,scheme,country,admd,prmd\nBA,XF,XX,ICAO,AFTNLAND-1\nBB,XF,XX,ICAO,AFTNLAND-2\n"
    ),
    aftn_address="BAAAYFYX",
    global_domain="/C=XX/ADMD=ICAO/PRMD=AFTNLAND-1/",
)


def test_the_reserved_share_is_rounded_and_never_every_slot() -> None:
    assert [reserved_slots(n, 0.1) for n in (1, 2, 4, 5, 10, 20, 25)] == [0, 0, 0, 0, 1, 2, 2]
    assert reserved_slots(2, 0.5) == 1
    assert reserved_slots(1, 0.5) == 0
    assert reserved_slots(20, 0.0) == 0


async def test_others_leave_the_reserved_slots_to_urgent_work() -> None:
    slots = Slots(4, reserved=1)
    for _ in range(3):
        await slots.acquire(urgent=False)
    assert not slots.free_for(urgent=False) and slots.free_for(urgent=True)
    waiter = asyncio.create_task(slots.acquire(urgent=False))
    await asyncio.sleep(0)
    assert not waiter.done()  # the fourth slot is not for it
    await asyncio.wait_for(slots.acquire(urgent=True), 1)  # … but it is for urgent work
    assert slots.in_use == 4
    slots.release()  # the urgent one ends: its slot stays kept
    await asyncio.sleep(0)
    assert not waiter.done()
    slots.release()  # one of the others ends: the waiter takes its place
    await asyncio.wait_for(waiter, 1)
    assert slots.in_use == 3


async def test_waiters_are_served_urgent_first() -> None:
    slots = Slots(1)
    await slots.acquire(urgent=False)
    served: list[str] = []

    async def wait(name: str, urgent: bool) -> None:
        async with slots.slot(urgent=urgent):
            served.append(name)
            await asyncio.sleep(0)

    tasks = [asyncio.create_task(wait(n, n.startswith("u"))) for n in ("n1", "n2", "u1", "u2")]
    await asyncio.sleep(0)
    slots.release()
    await asyncio.gather(*tasks)
    assert served == ["u1", "u2", "n1", "n2"]
    assert slots.in_use == 0


async def test_a_cancelled_waiter_passes_its_slot_on() -> None:
    slots = Slots(1)
    await slots.acquire(urgent=False)
    first = asyncio.create_task(slots.acquire(urgent=False))
    second = asyncio.create_task(slots.acquire(urgent=False))
    await asyncio.sleep(0)
    first.cancel()
    slots.release()
    await asyncio.wait_for(second, 1)
    assert first.cancelled() and slots.in_use == 1


async def test_a_hop_gate_keeps_a_slot_for_urgent_deliveries() -> None:
    gate = LocalGate(10, urgent_share=0.1)
    held = [gate.slot(HOP) for _ in range(9)]
    for slot in held:
        await slot.__aenter__()
    blocked = asyncio.create_task(gate.slot(HOP).__aenter__())
    await asyncio.sleep(0)
    assert not blocked.done()
    urgent = gate.slot(HOP, urgent=True)
    await asyncio.wait_for(urgent.__aenter__(), 1)
    blocked.cancel()
    await urgent.__aexit__(None, None, None)
    for slot in held:
        await slot.__aexit__(None, None, None)


class Recording:
    """An agent that takes a moment per message and records the order it delivered them in."""

    def __init__(self) -> None:
        self.order: list[Priority] = []
        self.started = asyncio.Event()

    async def deliver(self, transfer: Handoff) -> list[Attempt]:
        self.started.set()
        await asyncio.sleep(0.01)
        self.order.append(transfer.envelope.priority)
        return [
            Attempt(recipient_id=c.recipient_id, result=Result.DELIVERED, detail="2.0.0 ok")
            for c in transfer.recipients
        ]


async def test_an_ss_message_overtakes_a_backlog_of_ten_thousand(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "mta.db"), lifetime=86400)
    backlog = 10_000
    for start in range(0, backlog, 500):
        await asyncio.gather(
            *(store.enqueue(new_message(("n@peer.example",), hop=HOP)) for _ in range(500))
        )
        del start
    agent = Recording()
    manager = QueueManager(
        store,
        {"smtp": agent},
        clock=SystemClock(),
        policy=RetryPolicy(min_backoff=60, max_backoff=600, max_lifetime=86400),
        settings=QueueSettings(batch_size=256, delivery_concurrency=20, destination_concurrency=10),
    )
    runner = asyncio.create_task(manager.run())
    # The backlog is flowing: a batch claimed, every slot for normal mail busy.
    await asyncio.wait_for(agent.started.wait(), 10)
    while len(agent.order) < 50:
        await asyncio.sleep(0.005)
    # An AFTN SS message as the AFTN/AMHS gateway makes it: an AMHS message, urgent.
    ss = AFTNMessage(
        priority=PriorityIndicator.SS,
        addressees=("BBBBZQZX",),
        filing_time="041030",
        originator="BAAAFTAA",
        text="DISTRESS",
        transmission_id="BAA001",
    )
    converted = aftn_to_amhs(ss, GATEWAY, 0.0).message
    assert converted is not None and converted.envelope.priority is Priority.URGENT
    before = len(agent.order)
    await store.enqueue(NewMessage(message=converted, next_hops=[parse_next_hop(HOP)]))
    manager.wake()  # as the intake does for each message it queues
    while Priority.URGENT not in agent.order:
        await asyncio.sleep(0.005)
    position = agent.order.index(Priority.URGENT)
    await manager.stop()
    runner.cancel()
    await store.close()
    # Delivered ahead of the 256 claimed and waiting, and of the 9,700 still queued: only
    # what was in flight when it came (the 9 normal deliveries the hop allows) and those
    # that finished while it was stored and claimed (10 ms each) go before it. Without
    # priorities it would come after the batch claimed before it: position 256 or more.
    assert before <= position < before + 100, (before, position)
