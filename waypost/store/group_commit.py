"""The Store over a Database, with one writer thread doing group commit.

Every write operation is queued to the writer, which runs all that are
waiting in one transaction and one commit, then answers each caller. A caller
is answered only once its operation is durable. SQLite and PostgreSQL both
work this way (store.sqlite, store.postgresql); they differ in how a Database
is opened and in what they do beside it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from waypost import events
from waypost.clock import Clock, SystemClock
from waypost.handoff import Claim
from waypost.store import quarantine
from waypost.store.base import (
    ClaimBatch,
    Lifetimes,
    NewMessage,
    OwedReport,
    QueueSummary,
    Settlement,
    StoreError,
)
from waypost.store.database import Database, HandOver, Lifetime
from waypost.store.listing import queue_summary

T = TypeVar("T")

# An operation run by the writer inside the shared transaction. Enqueues are
# validated before they are queued, so a failure here is the database's
# (disk full, I/O error), and the whole batch is answered with an error.
Operation = Callable[[Database], Any]


@dataclass(slots=True)
class _Pending:
    operation: Operation
    future: asyncio.Future[Any]
    isolated: bool
    # False for an operation whose loss in a power cut costs nothing (a claim: leases
    # lost are queued again): a batch of only such operations commits without fsync.
    durable: bool = True
    result: Any = None
    error: BaseException | None = field(default=None)


_STOP = object()


class _Gathered(Generic[T]):
    """Requests gathered into one writer operation until the writer takes them."""

    __slots__ = ("_items", "_lock", "future")

    def __init__(self, items: Sequence[T]) -> None:
        self._lock = threading.Lock()
        self._items: list[T] | None = list(items)
        self.future: asyncio.Future[Any]

    def add(self, items: Sequence[T]) -> int | None:
        """Join (on the event loop): the position of the first of `items` among all those
        gathered, or None once the writer has taken them."""
        with self._lock:
            if self._items is None:
                return None
            position = len(self._items)
            self._items.extend(items)
            return position

    def take(self) -> list[T]:
        """The requests, once (in the writer); later callers start a new batch."""
        with self._lock:
            items, self._items = self._items, None
        return items or []


# Content up to this size is read on the event loop's thread (see read_content).
INLINE_READ_LIMIT = 256 * 1024
DEFAULT_LIFETIMES = Lifetimes()


class GroupCommitStore:
    """The Store over the Databases `open_database` opens. Open with `await cls.open(…)`."""

    # Small content read on the event loop's own connection (SQLite: a local read of
    # microseconds); PostgreSQL reads over the network, in the reader threads.
    inline_reads = True

    def __init__(
        self,
        path: str,
        *,
        clock: Clock | None = None,
        lifetime: Lifetime = DEFAULT_LIFETIMES,
        max_batch: int = 1000,
    ) -> None:
        self.path = path
        self.clock: Clock = clock or SystemClock()
        # One lifetime, or one by priority (Lifetimes).
        self.lifetime: Lifetime = lifetime
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Pending | object] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: threading.Thread | None = None
        self._reader = ThreadPoolExecutor(max_workers=2, thread_name_prefix="waypost-read")
        self._local = threading.local()
        self._readers: list[Database] = []
        self._inline: Database | None = None
        self._closed = False
        self._settling: dict[str, _Gathered[Settlement]] = {}
        self._handing_over: _Gathered[HandOver] | None = None
        self.commits = 0
        self.operations = 0
        # Told of each enqueue's time to durability, and of each commit's operations (in
        # the writer thread): the metrics' histograms.
        self.on_enqueued: Callable[[float], None] | None = None
        self.on_commit: Callable[[int, float], None] | None = None

    @property
    def owner(self) -> str | None:
        """The lease owner the queue manager must claim as; None: one of its own."""
        return None

    def delivery_gate(self, limit: int, reserved: int = 0) -> Any:
        """A gate holding the limit of deliveries per next hop across every node sharing
        this database (queue.manager.HopGate), `reserved` of them for urgent messages;
        None: one node, whose own limit suffices."""
        return None

    def open_database(self, *, create_schema: bool) -> Database:
        """A new connection to the database (the writer's creates the schema)."""
        raise NotImplementedError

    async def _start(self) -> None:
        """Start the writer; returns once it has opened the database."""
        store = self
        store._loop = asyncio.get_running_loop()
        ready: asyncio.Future[Database] = store._loop.create_future()
        store._writer = threading.Thread(
            target=store._run_writer, args=(ready,), name="waypost-writer", daemon=True
        )
        store._writer.start()
        await ready

    # -- the Store interface --------------------------------------------------

    async def enqueue(self, new: NewMessage) -> int:
        now, lifetime = self.clock.now(), self.lifetime
        started = time.perf_counter()
        result: int = await self._submit(lambda db: db.enqueue(new, now, lifetime))
        if self.on_enqueued is not None:
            self.on_enqueued(time.perf_counter() - started)
        return result

    async def claim(
        self, *, owner: str, limit: int, lease_seconds: float, urgent_only: bool = False
    ) -> ClaimBatch:
        now = self.clock.now()
        batch: ClaimBatch = await self._submit(
            lambda db: db.claim(now, owner, limit, lease_seconds, urgent_only=urgent_only),
            isolated=True,
            durable=False,
        )
        for bad in batch.quarantined:
            events.emit(
                events.OBJECT_QUARANTINED, kind=bad.kind, object_id=bad.object_id, reason=bad.reason
            )
        return batch

    async def settle(self, owner: str, outcomes: Sequence[Settlement]) -> int:
        # Outcomes that arrive while an earlier settle still waits for the writer join
        # it: one operation (a few statements) for all of them, not one per caller.
        # (Shielded: a caller that gives up must not cancel the others' answer.)
        batch = self._settling.get(owner)
        if batch is not None and batch.add(outcomes) is not None:
            future = batch.future
        else:
            batch = _Gathered(outcomes)
            now = self.clock.now()
            take = batch.take
            future = batch.future = self._submit(
                lambda db: db.settle_ids(owner, take(), now), isolated=True
            )
            self._settling[owner] = batch
        settled: set[int] = await asyncio.shield(future)
        return sum(1 for o in outcomes if o.recipient_id in settled)

    async def hand_over(
        self, owner: str, outcomes: Sequence[Settlement], new: NewMessage
    ) -> int | None:
        now, lifetime = self.clock.now(), self.lifetime
        result: int | None = await self._submit(
            lambda db: db.hand_over(owner, outcomes, new, now, lifetime), isolated=True
        )
        return result

    async def hand_over_leased(
        self, owner: str, outcomes: Sequence[Settlement], new: NewMessage, lease_seconds: float
    ) -> tuple[int, list[Claim]] | None:
        # As settle: hand-overs that arrive while an earlier one waits for the writer
        # join it, one operation for all (Database.hand_over_many), each all or nothing.
        hand_over = HandOver(owner, outcomes, new, lease_seconds)
        batch = self._handing_over
        position = None if batch is None else batch.add([hand_over])
        if batch is None or position is None:
            batch = _Gathered([hand_over])
            position = 0
            now, lifetime = self.clock.now(), self.lifetime
            take = batch.take
            batch.future = self._submit(
                lambda db: db.hand_over_many(take(), now, lifetime), isolated=True
            )
            self._handing_over = batch
        answers: list[tuple[int, list[Claim]] | None] = await asyncio.shield(batch.future)
        return answers[position]

    async def read_content(self, message_id: int, *, size_hint: int | None = None) -> bytes:
        if self.inline_reads and size_hint is not None and size_hint <= INLINE_READ_LIMIT:
            # A small blob by primary key takes microseconds: reading it on the event
            # loop costs less than handing it to a reader thread and back.
            db = self._inline_db()
            try:
                return db.read_content(message_id)
            except db.errors as exc:
                raise db.translate(exc) from None
        return await self._read(lambda db: db.read_content(message_id))

    def _inline_db(self) -> Database:
        if self._inline is None:
            self._inline = self.open_database(create_schema=False)
        return self._inline

    async def quarantine_message(self, message_id: int, reason: str) -> None:
        now = self.clock.now()
        done = await self._submit(
            lambda db: quarantine.quarantine_message(db.conn, message_id, reason, now),
            isolated=True,
        )
        if done:
            events.emit(
                events.OBJECT_QUARANTINED, kind="message", object_id=message_id, reason=reason
            )

    async def reports_owed(self, limit: int) -> list[OwedReport]:
        return await self._read(lambda db: db.reports_owed(limit))

    async def complete_reports(
        self, message_id: int, recipient_ids: Sequence[int], report: NewMessage | None
    ) -> int | None:
        now, lifetime = self.clock.now(), self.lifetime
        report_id: int | None = await self._submit(
            lambda db: db.complete_reports(message_id, recipient_ids, report, now, lifetime),
            isolated=True,
        )
        return report_id

    async def next_due(self, *, urgent_only: bool = False) -> float | None:
        if not self.inline_reads:
            return await self._read(lambda db: db.next_due(urgent_only=urgent_only))
        # A row from an index per rank: cheaper on the event loop's thread than a thread
        # hop (a WAL reader never waits for the writer).
        db = self._inline_db()
        try:
            return db.next_due(urgent_only=urgent_only)
        except db.errors as exc:
            raise db.translate(exc) from None

    async def make_due(self, *, next_hop: str | None = None) -> int:
        now = self.clock.now()
        count: int = await self._submit(lambda db: db.make_due(now, next_hop), isolated=True)
        return count

    async def release_leases(self) -> int:
        now = self.clock.now()
        count: int = await self._submit(lambda db: db.release_leases(now), isolated=True)
        return count

    async def counts(self) -> tuple[int, int]:
        return await self._read(lambda db: db.counts())

    async def queue_summary(self) -> QueueSummary:
        return await self._read(queue_summary)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        if self._writer is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._writer.join)
        self._reader.shutdown(wait=True)
        for db in self._readers:
            db.close()
        if self._inline is not None:
            self._inline.close()

    # -- the writer -------------------------------------------------------------

    def _submit(
        self, operation: Operation, *, isolated: bool = False, durable: bool = True
    ) -> asyncio.Future[Any]:
        if self._closed:
            raise StoreError("the MTA database is closed")
        assert self._loop is not None
        future = self._loop.create_future()
        self._queue.put(_Pending(operation, future, isolated, durable))
        return future

    def _run_writer(self, ready: asyncio.Future[Database]) -> None:
        assert self._loop is not None
        loop = self._loop
        try:
            db = self.open_database(create_schema=True)
        except StoreError as exc:
            error = exc
            loop.call_soon_threadsafe(ready.set_exception, error)
            return
        loop.call_soon_threadsafe(ready.set_result, db)
        try:
            while True:
                first = self._queue.get()
                if first is _STOP:
                    return
                batch = [first]
                stop = False
                while len(batch) < self.max_batch:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                    batch.append(item)
                pending = [p for p in batch if isinstance(p, _Pending)]
                db = self._usable(db, pending)
                self._commit(db, pending)
                loop.call_soon_threadsafe(_answer, pending)
                if stop:
                    return
        finally:
            db.close()

    def _usable(self, db: Database, pending: list[_Pending]) -> Database:
        """The writer's connection, opened again when the last one was lost (a database
        server restarted or failed over); while that fails, the batch fails with it and the
        callers answer their peers with a temporary error."""
        if db.healthy():
            return db
        try:
            fresh = self.open_database(create_schema=False)
        except StoreError as exc:
            for item in pending:
                item.error = exc
            return db
        db.close()
        events.emit(events.STORE_RECONNECTED, path=self.path)
        return fresh

    def _commit(self, db: Database, pending: list[_Pending]) -> None:
        if any(item.error is not None for item in pending):
            return
        conn = db.conn
        # Only claims: their leases need not survive a power cut (a lost lease is queued
        # again), so this commit need not wait for the disk; the next durable commit syncs
        # the log up to and including it. Everything else commits durably.
        durable = any(item.durable for item in pending)
        started = time.perf_counter()
        # An operation alone in its transaction needs no savepoint: the transaction is one
        # (two statements fewer: round trips, on PostgreSQL).
        alone = len(pending) == 1
        try:
            db.begin(durable=durable)
            for item in pending:
                if item.isolated and alone:
                    try:
                        item.result = item.operation(db)
                    except Exception as exc:
                        if isinstance(exc, db.errors) and not db.healthy():
                            raise  # the connection failed, not the operation
                        db.abandon(durable=durable)
                        item.error = db.translate(exc) if isinstance(exc, db.errors) else exc
                        return
                elif item.isolated:
                    # Operations that may fail on their own run in a savepoint,
                    # so one failure does not undo the others in the batch.
                    conn.execute("SAVEPOINT op")
                    try:
                        item.result = item.operation(db)
                    except Exception as exc:
                        conn.execute("ROLLBACK TO op")
                        item.error = db.translate(exc) if isinstance(exc, db.errors) else exc
                    conn.execute("RELEASE op")
                else:
                    item.result = item.operation(db)
            db.commit(durable=durable)
            self.commits += 1
            self.operations += len(pending)
            if self.on_commit is not None:
                self.on_commit(len(pending), time.perf_counter() - started)
        except Exception as exc:
            db.abandon(durable=durable)
            error = db.translate(exc) if isinstance(exc, db.errors) else StoreError(repr(exc))
            events.emit(events.STORE_WRITE_FAILED, error=str(error), count=len(pending))
            for item in pending:
                item.result = None
                item.error = error

    # -- readers ------------------------------------------------------------------

    def _reader_db(self) -> Database:
        db: Database | None = getattr(self._local, "db", None)
        if db is not None and not db.healthy():
            db.close()
            db = None
        if db is None:
            db = self.open_database(create_schema=False)
            self._local.db = db
            self._readers.append(db)
        return db

    async def _read(self, operation: Callable[[Database], T]) -> T:
        def run() -> T:
            db = self._reader_db()
            try:
                return operation(db)
            except db.errors as exc:
                raise db.translate(exc) from None

        return await asyncio.get_running_loop().run_in_executor(self._reader, run)


def _answer(pending: list[_Pending]) -> None:
    for item in pending:
        if item.future.done():
            continue
        if item.error is not None:
            item.future.set_exception(item.error)
        else:
            item.future.set_result(item.result)
