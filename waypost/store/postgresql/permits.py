"""Delivery permits shared by the nodes of a cluster: at most `limit` deliveries to one next
hop at a time, cluster-wide, as PostgreSQL session advisory locks — slot i of a hop is the
lock (hash of the hop, i). A node holds the permits on a connection of its own; if the node
dies, its connection does and the server frees its permits at once (keepalives notice a dead
machine within a minute).

The queue manager asks through `ClusterGate`, which keeps the permits it took while it has
work for the hop, so that a steady flow costs no round trip per message."""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import psycopg

from waypost.store.postgresql.connection import PgConnection

# How long a permit no delivery uses is kept before it goes back to the cluster, and how
# often a node without one asks again.
LINGER = 1.0
RETRY = (0.02, 0.5)


def hop_key(hop: str) -> int:
    """The advisory lock class of a next hop: its CRC-32 as a signed 32-bit integer."""
    value = zlib.crc32(hop.encode("utf-8", "surrogateescape"))
    return value - (1 << 32) if value >= 1 << 31 else value


class ClusterPermits:
    """This node's permits, on one connection, used from one thread."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn: PgConnection | None = None
        self._slots: dict[str, list[int]] = defaultdict(list)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="waypost-permits")

    def _connection(self) -> PgConnection:
        if self._conn is None or not self._conn.healthy:
            if self._conn is not None:
                # The server freed every lock of the lost session: these are gone too.
                self._slots.clear()
                self._conn.close()
            self._conn = PgConnection.connect(self.dsn, application_name="waypost permits")
        return self._conn

    def _try(self, hop: str, limit: int) -> int | None:
        held = self._slots[hop]
        free = [slot for slot in range(limit) if slot not in held]
        if not free:
            return None
        # One round trip for all the slots: the scan hands its rows one at a time to the
        # filter, and LIMIT 1 stops it at the first lock taken, so no other is taken (no
        # sort or aggregate stands between them; a test counts the locks held).
        row = (
            self._connection()
            .execute(
                "SELECT s FROM unnest(?::int[]) AS s WHERE pg_try_advisory_lock(?, s) LIMIT 1",
                (free, hop_key(hop)),
            )
            .fetchone()
        )
        if row is None:
            return None
        slot = int(row[0])
        held.append(slot)
        return slot

    def _give_back(self, hop: str, slots: list[int]) -> None:
        held = self._slots[hop]
        conn = self._connection()
        for slot in slots:
            if slot in held:
                held.remove(slot)
                conn.execute("SELECT pg_advisory_unlock(?, ?)", (hop_key(hop), slot))

    async def try_acquire(self, hop: str, limit: int) -> int | None:
        """One more permit for `hop` among its slots 0 … limit - 1, if one is free
        cluster-wide: its slot; None if none is."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._try, hop, limit)
        except psycopg.Error:
            return None  # the database is away: no permit now; asked again later

    async def give_back(self, hop: str, slots: list[int]) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(psycopg.Error):
            await loop.run_in_executor(self._thread, self._give_back, hop, slots)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()  # frees every permit held


class ClusterGate:
    """At most `limit` deliveries per next hop across the cluster: a delivery needs one of
    this node's permits for the hop, and the node takes permits from the cluster (up to the
    limit in all) while it has deliveries waiting, giving back those it has not used for
    LINGER seconds. The last `reserved` slots of a hop are urgent messages' alone: other
    deliveries use and ask for permits below them only."""

    def __init__(self, permits: ClusterPermits, limit: int, reserved: int = 0) -> None:
        self.permits = permits
        self.limit = limit
        self.reserved = reserved
        # The permits held and unused, by slot; and how many are in use.
        self._free: dict[str, list[int]] = defaultdict(list)
        self._busy: dict[str, int] = defaultdict(int)
        self._idle_since: dict[str, float] = {}
        self._freed: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._asking: set[tuple[str, bool]] = set()
        self._reaper: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def slot(self, hop: str, *, urgent: bool = False) -> AsyncIterator[None]:
        slot = await self._acquire(hop, self.limit if urgent else self.limit - self.reserved)
        try:
            yield
        finally:
            self._release(hop, slot)

    async def _acquire(self, hop: str, cap: int) -> int:
        """A permit below `cap` for this delivery: its slot."""
        wait = RETRY[0]
        while True:
            free = self._free[hop]
            usable = [slot for slot in free if slot < cap]
            if usable:
                slot = min(usable)
                free.remove(slot)
                self._busy[hop] += 1
                if not free:
                    self._idle_since.pop(hop, None)  # every permit in use again
                return slot
            # One waiter of each kind at a time asks the cluster; the others wait for
            # what it gets.
            asking = (hop, cap == self.limit)
            if self._busy[hop] + len(free) < self.limit and asking not in self._asking:
                self._asking.add(asking)
                try:
                    got = await self.permits.try_acquire(hop, cap)
                finally:
                    self._asking.discard(asking)
                if got is not None:
                    free.append(got)
                    self._freed[hop].set()
                    continue
            freed = self._freed[hop]
            freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), wait)
            wait = min(wait * 2, RETRY[1])

    def _release(self, hop: str, slot: int) -> None:
        self._busy[hop] -= 1
        self._free[hop].append(slot)
        self._idle_since.setdefault(hop, time.monotonic())
        self._freed[hop].set()
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """Give back, every LINGER, the permits not used since the last round."""
        while any(self._free.values()) or any(self._busy.values()):
            await asyncio.sleep(LINGER)
            now = time.monotonic()
            for hop in list(self._free):
                spare = self._free[hop]
                since = self._idle_since.get(hop)
                if spare and since is not None and now - since >= LINGER:
                    self._free[hop] = []
                    self._idle_since.pop(hop, None)
                    await self.permits.give_back(hop, spare)
                elif not spare:
                    self._idle_since.pop(hop, None)
        self._reaper = None

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await asyncio.get_running_loop().run_in_executor(None, self.permits.close)
