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

    def _try(self, hop: str, limit: int) -> bool:
        held = self._slots[hop]
        free = [slot for slot in range(limit) if slot not in held]
        if not free:
            return False
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
            return False
        held.append(int(row[0]))
        return True

    def _give_back(self, hop: str, count: int) -> None:
        held = self._slots[hop]
        conn = self._connection()
        for _ in range(min(count, len(held))):
            slot = held.pop()
            conn.execute("SELECT pg_advisory_unlock(?, ?)", (hop_key(hop), slot))

    async def try_acquire(self, hop: str, limit: int) -> bool:
        """One more permit for `hop`, if fewer than `limit` are held cluster-wide."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, self._try, hop, limit)
        except psycopg.Error:
            return False  # the database is away: no permit now; asked again later

    async def give_back(self, hop: str, count: int) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(psycopg.Error):
            await loop.run_in_executor(self._thread, self._give_back, hop, count)

    def close(self) -> None:
        self._thread.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()  # frees every permit held


class ClusterGate:
    """At most `limit` deliveries per next hop across the cluster: a delivery needs one of
    this node's permits for the hop, and the node takes permits from the cluster (up to the
    limit in all) while it has deliveries waiting, giving back those it has not used for
    LINGER seconds."""

    def __init__(self, permits: ClusterPermits, limit: int) -> None:
        self.permits = permits
        self.limit = limit
        self._held: dict[str, int] = defaultdict(int)
        self._busy: dict[str, int] = defaultdict(int)
        self._idle_since: dict[str, float] = {}
        self._freed: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self._asking: set[str] = set()
        self._reaper: asyncio.Task[None] | None = None

    @contextlib.asynccontextmanager
    async def slot(self, hop: str) -> AsyncIterator[None]:
        await self._acquire(hop)
        try:
            yield
        finally:
            self._release(hop)

    async def _acquire(self, hop: str) -> None:
        wait = RETRY[0]
        while True:
            if self._busy[hop] < self._held[hop]:
                self._busy[hop] += 1
                if self._busy[hop] == self._held[hop]:
                    self._idle_since.pop(hop, None)  # every permit in use again
                return
            # One waiter at a time asks the cluster; the others wait for what it gets.
            if self._held[hop] < self.limit and hop not in self._asking:
                self._asking.add(hop)
                try:
                    got = await self.permits.try_acquire(hop, self.limit)
                finally:
                    self._asking.discard(hop)
                if got:
                    self._held[hop] += 1
                    self._freed[hop].set()
                    continue
            freed = self._freed[hop]
            freed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(freed.wait(), wait)
            wait = min(wait * 2, RETRY[1])

    def _release(self, hop: str) -> None:
        self._busy[hop] -= 1
        if self._busy[hop] < self._held[hop]:
            self._idle_since.setdefault(hop, time.monotonic())
        self._freed[hop].set()
        if self._reaper is None:
            self._reaper = asyncio.get_running_loop().create_task(self._reap())

    async def _reap(self) -> None:
        """Give back, every LINGER, the permits not used since the last round."""
        while any(self._held.values()):
            await asyncio.sleep(LINGER)
            now = time.monotonic()
            for hop in list(self._held):
                spare = self._held[hop] - self._busy[hop]
                since = self._idle_since.get(hop)
                if spare > 0 and since is not None and now - since >= LINGER:
                    self._held[hop] -= spare
                    self._idle_since.pop(hop, None)
                    await self.permits.give_back(hop, spare)
                elif spare <= 0:
                    self._idle_since.pop(hop, None)
        self._reaper = None

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        await asyncio.get_running_loop().run_in_executor(None, self.permits.close)
