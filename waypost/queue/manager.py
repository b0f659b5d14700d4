"""The queue manager: leases due recipients, hands them to delivery agents by next hop,
and records each outcome — with back-off, expiry and the reports owed.

One failing delivery never stops the loop: an agent that raises costs that
attempt a deferral and an event, nothing more. A next hop that cannot be reached at all
costs one try per probe, not one per message (queue/destinations.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import os
import socket
from collections import defaultdict
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from waypost import events
from waypost.arrival import Arrival, Source
from waypost.clock import Clock
from waypost.handoff import (
    Attempt,
    Claim,
    Conversion,
    Deliverer,
    Handoff,
    ReportKind,
    Result,
    all_attempts,
    should_report,
)
from waypost.intake import record_queued
from waypost.message import Envelope, ObjectKind, Priority
from waypost.nexthop import NextHop, Transport, parse_next_hop
from waypost.queue.destinations import Admission, Destinations, iso
from waypost.queue.policy import RetryPolicy
from waypost.queue.slots import Slots, reserved_slots
from waypost.store.base import (
    BadContentError,
    NewMessage,
    ReportOwed,
    Settlement,
    Store,
    StoreError,
)

_HOP_CACHE = 10_000  # parsed next hops kept; past it the cache starts again


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueSettings:
    """How hard and how often the queue manager works."""

    batch_size: int = 256
    lease_seconds: float = 300.0
    poll_interval: float = 1.0
    delivery_concurrency: int = 20
    destination_concurrency: int = 10
    # The share of slots (in all, and per next hop) kept for urgent messages.
    urgent_share: float = 0.1


# How a converted message arrives, for its first tracking record.
_GATEWAY = Arrival(source=Source.GATEWAY, peer="mixer")


class HopGate(Protocol):
    """Admits deliveries to a next hop, up to its limit of concurrent ones, a share of them
    kept for urgent messages."""

    def slot(self, hop: str, *, urgent: bool = False) -> AbstractAsyncContextManager[object]: ...


class LocalGate:
    """The limit held on this node alone: slots per next hop."""

    def __init__(self, limit: int, urgent_share: float = 0.0) -> None:
        self.limit = limit
        self.reserved = reserved_slots(limit, urgent_share)
        self._per_hop: dict[str, Slots] = {}

    def slot(self, hop: str, *, urgent: bool = False) -> AbstractAsyncContextManager[object]:
        slots = self._per_hop.get(hop)
        if slots is None:
            slots = self._per_hop[hop] = Slots(self.limit, self.reserved)
        return slots.slot(urgent=urgent)


@dataclass(order=True)
class _Job:
    """One message's claimed recipients for one next hop, waiting for a delivery slot:
    ordered by priority (Priority.rank), then as claimed."""

    rank: int
    seq: int
    hop: str = field(compare=False)
    claims: list[Claim] = field(compare=False)
    probe: bool = field(compare=False)


def worker_id() -> str:
    """A lease owner name unique to this process run."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


class QueueManager:
    """Runs until stopped; `run_once` does one pass for tests driven by a manual clock."""

    def __init__(
        self,
        store: Store,
        deliverers: Mapping[str, Deliverer],
        *,
        clock: Clock,
        policy: RetryPolicy,
        settings: QueueSettings | None = None,
        owner: str | None = None,
        on_report_owed: Callable[[], None] | None = None,
        gate: HopGate | None = None,
    ) -> None:
        self.store = store
        self.deliverers = dict(deliverers)
        self.clock = clock
        self.policy = policy
        self.settings = settings or QueueSettings()
        self.owner = owner or worker_id()
        self.on_report_owed = on_report_owed
        self._wake = asyncio.Event()
        self._stopping = False
        concurrency = self.settings.delivery_concurrency
        self._slots = Slots(concurrency, reserved_slots(concurrency, self.settings.urgent_share))
        # Claimed work waiting for a slot, the most urgent first.
        self._jobs: list[_Job] = []
        self._waiting = 0  # recipients in those jobs
        self._seq = 0
        # The claim asked for only urgent work (the jobs waiting were a batch already):
        # wake when they fall to half a batch.
        self._jobs_full = False
        # At most destination_concurrency deliveries per next hop: on this node, or
        # (a cluster's gate) across every node.
        self.gate: HopGate = gate or LocalGate(
            self.settings.destination_concurrency, self.settings.urgent_share
        )
        self._hops: dict[str, NextHop] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.counters: dict[str, int] = defaultdict(int)
        self.destinations = Destinations(policy)

    def wake(self) -> None:
        """New work was enqueued: look now rather than at the next poll."""
        self._wake.set()

    async def flush(self) -> int:
        """Try all deferred work now (Postfix's `postqueue -f`): forget which next hops are
        down, let each delivery agent that keeps a back-off of its own forget it (its
        `flush()`, such as an X.400 peer's open interval), and make every deferred
        recipient due. Returns how many recipients were made due."""
        self.forget_back_offs()
        return await self.store.make_due()

    def forget_back_offs(self) -> int:
        """What is due is tried now, whatever its next hop's state: after `waypost queue
        retry`, which made the chosen recipients due in the database (SIGUSR1). Returns how
        many next hops were down."""
        hops = self.destinations.forget()
        for deliverer in self.deliverers.values():
            flush = getattr(deliverer, "flush", None)
            if callable(flush):
                flush()
        self.wake()
        return hops

    async def run(self) -> None:
        while not self._stopping:
            # Cleared before the claim: work enqueued from here on wakes the wait below.
            self._wake.clear()
            asked = self._room()
            try:
                claimed = await self.run_once()
            except StoreError as exc:
                # A full disk or a failing write: the store has said why (1202).
                events.emit(events.QUEUE_STORE_UNAVAILABLE, action="claim work", error=str(exc))
                claimed = 0
            except Exception as exc:
                # Whatever went wrong, the queue manager carries on: the work it
                # could not claim stays due, and leases it took expire.
                events.emit(events.UNEXPECTED_ERROR, component="queue manager", error=repr(exc))
                claimed = 0
            if claimed >= asked:
                continue  # as many as asked for: more may be due now
            # Fewer: everything due was taken, so wait for new work (or the next due time)
            # rather than claiming again at once for nothing.
            await self._idle()

    def _room(self) -> int:
        """How many recipients the next claim asks for: a batch less the jobs waiting; a
        whole batch of urgent ones only, when a batch is waiting already."""
        room = self.settings.batch_size - self._waiting
        return room if room > 0 else self.settings.batch_size

    async def stop(self) -> None:
        """Stop claiming and let the deliveries in flight finish."""
        self._stopping = True
        self._wake.set()
        # Claimed work not yet started stays leased: released when the MTA starts again
        # (or, in a cluster, when this node leaves), delivered then.
        self._jobs.clear()
        self._waiting = 0
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def run_once(self) -> int:
        """Claim one batch of due work and start delivering it, the most urgent first;
        returns how many were claimed. While a batch waits for delivery slots already,
        only urgent work is claimed, to go before it."""
        urgent_only = self._waiting >= self.settings.batch_size
        self._jobs_full = urgent_only
        batch = await self.store.claim(
            owner=self.owner,
            limit=self._room(),
            lease_seconds=self.settings.lease_seconds,
            urgent_only=urgent_only,
        )
        self.counters["quarantined"] += len(batch.quarantined)
        groups: dict[tuple[str, int], list[Claim]] = defaultdict(list)
        for claim in batch.claims:
            if claim.lease_was_expired:
                events.emit(
                    events.LEASE_EXPIRED,
                    recipient_id=claim.recipient_id,
                    message_id=claim.message_id,
                    owner=claim.previous_owner,
                )
            groups[(claim.next_hop, claim.message_id)].append(claim)
        now = self.clock.now()
        held: list[Settlement] = []
        starts: list[tuple[str, list[Claim], bool]] = []
        for (hop, _), claims in groups.items():
            admission = self.destinations.admit(hop, now)
            if admission is Admission.HOLD:
                held += self._held(hop, claims)
            else:
                starts.append((hop, claims, admission is Admission.PROBE))
        if held:
            # Recorded before any delivery of this batch starts: a hop found up again makes
            # its deferred recipients due after these are deferred, never before.
            await self._record(held)
        for hop, claims, probe in starts:
            self._seq += 1
            rank = claims[0].envelope.priority.rank
            heapq.heappush(self._jobs, _Job(rank, self._seq, hop, claims, probe))
            self._waiting += len(claims)
        self._start_jobs()
        return len(batch.claims) + len(batch.quarantined)

    def _start_jobs(self) -> None:
        """Start the waiting jobs, the most urgent first, while there are slots for them:
        the reserved share only for urgent ones."""
        while self._jobs and not self._stopping:
            job = self._jobs[0]
            if not self._slots.free_for(urgent=job.rank == 0):
                return  # the most urgent cannot start: neither can any other
            heapq.heappop(self._jobs)
            self._waiting -= len(job.claims)
            self._slots.take()
            task = asyncio.create_task(self._transfer(job.hop, job.claims, probe=job.probe))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for the deliveries in flight and those waiting for a slot (for tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _idle(self) -> None:
        timeout = self.settings.poll_interval
        with contextlib.suppress(StoreError):
            # While a batch waits for slots, only urgent work is claimed, so only its due
            # time matters (the rest is due already, most likely).
            due = await self.store.next_due(urgent_only=self._jobs_full)
            if due is not None:
                timeout = max(0.0, min(timeout, due - self.clock.now()))
        if self._wake.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _transfer(self, hop: str, claims: list[Claim], *, probe: bool = False) -> None:
        try:
            await self._send(hop, claims, probe=probe)
        finally:
            self._slots.release()
            self._start_jobs()
            if not self._tasks - {asyncio.current_task()}:
                self._wake.set()
            elif self._jobs_full and 2 * self._waiting <= self.settings.batch_size:
                self._jobs_full = False
                self._wake.set()  # room for more than urgent work: claim again

    async def _send(
        self, hop: str, claims: list[Claim], *, probe: bool = False, content: bytes | None = None
    ) -> None:
        """Deliver one message's claimed recipients for one hop and record the outcomes; a
        gateway's converted message is handed over and delivered in turn, within the same
        delivery slot. `content`: the message's content when it is in hand already."""
        urgent = claims[0].envelope.priority is Priority.URGENT
        try:
            async with self.gate.slot(hop, urgent=urgent):
                handed: list[tuple[Conversion, list[Settlement]]] = []
                if not probe and self.destinations.down(hop) is not None:
                    # The hop went down while this waited for its turn: held like the rest.
                    outcomes = self._held(hop, claims)
                else:
                    outcomes, handed = await self._attempt(hop, claims, content)
            await self._record(outcomes)
        finally:
            if probe:
                self.destinations.probe_done(hop)
        for conversion, settlements in handed:
            leased = await self._hand_over(claims[0].message_id, conversion, settlements)
            if leased:
                await self._send_converted(leased, conversion.message.content)

    async def _send_converted(self, claims: list[Claim], content: bytes) -> None:
        """A converted message, its recipients leased to this worker by the hand-over,
        delivered at once from memory rather than claimed and read back; a hop that is down
        holds them as run_once would."""
        groups: dict[str, list[Claim]] = defaultdict(list)
        for claim in claims:
            groups[claim.next_hop].append(claim)
        for hop, group in groups.items():
            admission = self.destinations.admit(hop, self.clock.now())
            if admission is Admission.HOLD:
                await self._record(self._held(hop, group))
                continue
            await self._send(hop, group, probe=admission is Admission.PROBE, content=content)

    async def _record(self, outcomes: list[Settlement]) -> None:
        if not outcomes:
            return
        try:
            await self.store.settle(self.owner, outcomes)
        except StoreError as exc:
            # The outcomes are lost but the leases are not: they expire and the
            # recipients are tried again (at-least-once).
            events.emit(events.QUEUE_STORE_UNAVAILABLE, action="record outcomes", error=str(exc))
            return
        if self.on_report_owed and any(o.report for o in outcomes):
            self.on_report_owed()

    async def _hand_over(
        self, message_id: int, conversion: Conversion, outcomes: list[Settlement]
    ) -> list[Claim] | None:
        """A gateway's converted message enqueued with the outcomes of the recipients it
        answers for, in one transaction (Store.hand_over_leased); returns its recipients,
        leased to this worker, when they are due now."""
        new = NewMessage(message=conversion.message, next_hops=conversion.next_hops)
        # Delivered at once unless stopping, or bound for a gateway again: that is left to
        # the queue, so that a message does not go round the gateway within one task.
        at_once = not self._stopping and all(
            hop.transport is not Transport.GATEWAY for hop in conversion.next_hops
        )
        try:
            if at_once:
                handed = await self.store.hand_over_leased(
                    self.owner, outcomes, new, self.settings.lease_seconds
                )
            else:
                stored = await self.store.hand_over(self.owner, outcomes, new)
                handed = None if stored is None else (stored, [])
        except StoreError as exc:
            # Neither is stored: the leases expire and the recipients are converted again.
            events.emit(events.QUEUE_STORE_UNAVAILABLE, action="hand over", error=str(exc))
            return None
        if handed is None:
            return None  # the leases were lost: whoever holds them now converts them
        new_id, leased = handed
        self.counters["converted"] += len(outcomes)
        events.emit(
            events.GATEWAY_CONVERTED,
            conversion=conversion.kind,
            recipients=len(outcomes),
            message_id=message_id,
            new_message_id=new_id,
            new_mts_id=conversion.message.envelope.mts_id,
        )
        record_queued(new_id, new, _GATEWAY)
        if not leased:
            self.wake()  # not leased (deferred, or left to the queue): claimed when due
        if self.on_report_owed and any(o.report for o in outcomes):
            self.on_report_owed()
        return leased

    def _held(self, hop: str, claims: list[Claim]) -> list[Settlement]:
        """Recipients for a hop that is down, deferred without a try (or failed, when the
        agent fails the hop's recipients for good) until the hop's probe time; nothing is
        logged for each, and their count of attempts stays as it was."""
        down = self.destinations.down(hop)
        assert down is not None
        result = Result.FAILED if down.final else Result.DEFERRED
        detail = self.destinations.held_detail(hop, down)
        self.counters["held"] += len(claims)
        return [
            self._outcome(
                c,
                Attempt(recipient_id=c.recipient_id, result=result, detail=detail, attempted=False),
                hop,
                not_before=down.probe_at,
                quiet=True,
            )
            for c in claims
        ]

    async def _attempt(
        self, hop: str, claims: list[Claim], content: bytes | None = None
    ) -> tuple[list[Settlement], list[tuple[Conversion, list[Settlement]]]]:
        """The outcomes to settle, and apart from them those a gateway's conversion
        answers for (each with its converted message)."""
        now = self.clock.now()
        first = claims[0]
        attempts: list[Attempt]
        quiet = False
        if all(c.expires_at > now for c in claims):  # the usual case: none expired
            attempts, quiet = await self._deliver(
                hop, first.message_id, first.envelope, claims, content
            )
        else:
            live = [c for c in claims if c.expires_at > now]
            attempts = [
                Attempt(recipient_id=c.recipient_id, result=Result.DEFERRED, detail=_last_error(c))
                for c in claims
                if c.expires_at <= now
            ]
            if live:
                tried, quiet = await self._deliver(
                    hop, first.message_id, first.envelope, live, content
                )
                attempts += tried
        if len(claims) == 1 and len(attempts) == 1 and attempts[0].conversion is None:
            return [self._outcome(first, attempts[0], hop, quiet=quiet)], []
        by_id = {c.recipient_id: c for c in claims}
        outcomes: list[Settlement] = []
        handed: dict[int, tuple[Conversion, list[Settlement]]] = {}
        for attempt in attempts:
            outcome = self._outcome(by_id[attempt.recipient_id], attempt, hop, quiet=quiet)
            conversion = attempt.conversion
            if conversion is None or outcome.result is not Result.DELIVERED:
                outcomes.append(outcome)
            else:
                handed.setdefault(id(conversion), (conversion, []))[1].append(outcome)
        return outcomes, list(handed.values())

    async def _note_hop(self, hop: str, attempts: list[Attempt]) -> bool:
        """What an agent's answer says of its next hop: down (one event when it was up),
        or reached (up again, when it was down). True when the recipients' deferrals need
        no event of their own: a hop already down failed again."""
        failure = next((a for a in attempts if a.hop_failure), None)
        if failure is None:
            if attempts:
                await self._hop_reached(hop)
            return False
        if not self.destinations.failed(hop, failure, self.clock.now()):
            return True
        down = self.destinations.down(hop)
        assert down is not None
        events.emit(
            events.DESTINATION_DOWN,
            next_hop=hop,
            error=down.error,
            probe_at=iso(down.probe_at),
        )
        return False

    async def _hop_reached(self, hop: str) -> None:
        """A delivery reached the hop: when it was down, it is up, and what it held is due."""
        down = self.destinations.reached(hop)
        if down is None:
            return
        try:
            count = await self.store.make_due(next_hop=hop)
        except StoreError as exc:
            # They stay deferred until their own next attempt: late, not lost.
            events.emit(events.QUEUE_STORE_UNAVAILABLE, action="make work due", error=str(exc))
            count = 0
        events.emit(events.DESTINATION_UP, next_hop=hop, since=iso(down.since), count=count)

    async def _deliver(
        self,
        hop_text: str,
        message_id: int,
        envelope: Envelope,
        claims: list[Claim],
        content: bytes | None = None,
    ) -> tuple[list[Attempt], bool]:
        """The agent's answer for each recipient, and whether their deferrals go unlogged
        (`_note_hop`). `content`: the message's, when it is in hand (else it is read)."""
        try:
            hop = self._next_hop(hop_text)
        except ValueError as exc:
            detail = f"4.3.5 bad next hop {hop_text}: {exc}"
            return all_attempts(claims, Result.DEFERRED, detail), False
        deliverer = self.deliverers.get(hop.transport)
        if deliverer is None:
            detail = (
                f"4.3.5 no delivery agent for transport {hop.transport.value!r} (next hop {hop})"
            )
            return all_attempts(claims, Result.DEFERRED, detail), False
        if content is None:
            content = claims[0].content  # read along by the claim, when it was
        if content is None:
            try:
                content = await self.store.read_content(message_id, size_hint=claims[0].size)
            except BadContentError as exc:
                await self.store.quarantine_message(message_id, str(exc))
                return [], False
            except StoreError as exc:
                # The database is away for a moment (a failover, a lost connection): try
                # again later; the store has said why.
                events.emit(events.QUEUE_STORE_UNAVAILABLE, action="read a message", error=str(exc))
                detail = "4.3.0 the MTA database is unavailable; tried again later"
                return [_deferred(c, detail) for c in claims], False
        try:
            attempts = await deliverer.deliver(
                Handoff(
                    next_hop=hop,
                    message_id=message_id,
                    envelope=envelope,
                    content=content,
                    recipients=claims,
                )
            )
        except Exception as exc:
            events.emit(
                events.UNEXPECTED_ERROR, component=f"{hop.transport} delivery", error=repr(exc)
            )
            return [
                _deferred(c, "4.3.0 internal error in the delivery agent") for c in claims
            ], False
        quiet = await self._note_hop(hop_text, attempts)
        if len(attempts) == len(claims) and all(
            a.recipient_id == c.recipient_id for a, c in zip(attempts, claims, strict=True)
        ):
            return attempts, quiet  # one answer per recipient, in order: the usual case
        asked = {c.recipient_id for c in claims}
        attempts = [a for a in attempts if a.recipient_id in asked]
        answered = {a.recipient_id for a in attempts}
        attempts += [
            _deferred(c, "4.3.0 the delivery agent gave no answer for this recipient")
            for c in claims
            if c.recipient_id not in answered
        ]
        return attempts, quiet

    def _next_hop(self, text: str) -> NextHop:
        """The stored hop text parsed once, then kept (a queue has few distinct hops)."""
        hop = self._hops.get(text)
        if hop is None:
            if len(self._hops) >= _HOP_CACHE:
                self._hops.clear()
            hop = self._hops[text] = parse_next_hop(text)
        return hop

    def _outcome(
        self,
        claim: Claim,
        attempt: Attempt,
        hop: str,
        *,
        quiet: bool = False,
        not_before: float | None = None,
    ) -> Settlement:
        """The settlement of one attempt, with its event. `quiet` leaves a deferral unlogged
        (its hop's state says it all); `not_before` is the earliest next attempt."""
        now = self.clock.now()
        recipient = claim.envelope.recipients[claim.rcpt_index]
        if attempt.result is Result.DELIVERED:
            self.counters["delivered"] += 1
            if events.enabled(events.DELIVERED):  # (an INFO event: mostly filtered out)
                events.emit(
                    events.DELIVERED,
                    message_id=claim.message_id,
                    recipient=claim.address,
                    next_hop=hop,
                    mts_id=claim.envelope.mts_id,
                    size=claim.size,
                    detail=attempt.detail,
                    remote_mta=attempt.remote_mta or "",
                )
            report = None
            if not attempt.passed_on and should_report(
                claim.envelope, recipient, ReportKind.SUCCESS
            ):
                final = self._next_hop(hop).final  # parsed already, to deliver it
                report = ReportOwed.DELIVERY if final else ReportOwed.RELAYED
            return Settlement(
                recipient_id=claim.recipient_id,
                result=Result.DELIVERED,
                detail=attempt.detail,
                report=report,
            )
        if attempt.result is Result.DEFERRED and now < claim.expires_at:
            self.counters["deferred"] += 1
            next_attempt = self._next_attempt(claim, attempt, now)
            if not_before is not None:
                next_attempt = max(next_attempt, not_before)
            next_attempt = min(next_attempt, claim.expires_at)
            if not quiet:
                events.emit(
                    events.RECIPIENT_DEFERRED,
                    message_id=claim.message_id,
                    recipient=claim.address,
                    next_attempt=iso(next_attempt),
                    attempts=claim.attempts + 1,
                    error=attempt.detail,
                    next_hop=hop,
                    mts_id=claim.envelope.mts_id,
                )
            return Settlement(
                recipient_id=claim.recipient_id,
                result=Result.DEFERRED,
                detail=attempt.detail,
                next_attempt=next_attempt,
                attempted=attempt.attempted,
            )
        self.counters["failed"] += 1
        if attempt.result is Result.DEFERRED:
            detail = f"4.4.7 expired in the queue; last error: {attempt.detail}"
            events.emit(
                events.RECIPIENT_EXPIRED,
                message_id=claim.message_id,
                recipient=claim.address,
                attempts=claim.attempts,
                error=attempt.detail,
                next_hop=hop,
                mts_id=claim.envelope.mts_id,
            )
        else:
            detail = attempt.detail
            events.emit(
                events.RECIPIENT_FAILED,
                message_id=claim.message_id,
                recipient=claim.address,
                error=detail,
                next_hop=hop,
                mts_id=claim.envelope.mts_id,
            )
        if claim.envelope.object_kind is ObjectKind.REPORT:
            # A report that cannot go on is dropped: reports are never reported on (X.411).
            events.emit(
                events.X400_REPORT_DISCARDED,
                mts_id=claim.envelope.mts_id,
                destination=claim.address,
                reason=detail,
            )
        wanted = should_report(claim.envelope, recipient, ReportKind.FAILURE)
        report = ReportOwed.NON_DELIVERY if wanted else None
        return Settlement(
            recipient_id=claim.recipient_id,
            result=Result.FAILED,
            detail=detail,
            report=report,
            attempted=attempt.attempted,
        )

    def _next_attempt(self, claim: Claim, attempt: Attempt, now: float) -> float:
        """The agent's own wait when it asked for one, else the back-off by age."""
        if attempt.retry_after is not None:
            return now + max(0.0, attempt.retry_after)
        return self.policy.next_attempt(now=now, received_at=claim.received_at)


def _deferred(claim: Claim, detail: str) -> Attempt:
    return Attempt(recipient_id=claim.recipient_id, result=Result.DEFERRED, detail=detail)


def _last_error(claim: Claim) -> str:
    return claim.last_error or "no delivery attempt succeeded before the message expired"
