"""The MTA database on PostgreSQL, shared by the nodes of a cluster: the group-commit Store
over PgDatabase, and this node's membership (joining, a heartbeat, taking over the leases of
nodes gone silent, handing its own back when it stops)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from waypost import __version__, events
from waypost.clock import Clock
from waypost.store.base import StoreError
from waypost.store.database import Lifetime
from waypost.store.group_commit import DEFAULT_LIFETIMES, GroupCommitStore
from waypost.store.postgresql import cluster
from waypost.store.postgresql.database import PgDatabase, describe
from waypost.store.postgresql.permits import ClusterGate, ClusterPermits


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSettings:
    """This node's name in the cluster (the host's name when empty), how often it says it
    is alive, and how long a silent node has before the others take over its leases."""

    name: str = ""
    heartbeat_interval: float = 5.0
    node_timeout: float = 30.0


class PostgresStore(GroupCommitStore):
    """The Store on PostgreSQL. Open with `await PostgresStore.open(dsn, node=…)`."""

    # Every read crosses the network: in the reader threads, never on the event loop.
    inline_reads = False

    def __init__(
        self,
        dsn: str,
        *,
        clock: Clock | None = None,
        lifetime: Lifetime = DEFAULT_LIFETIMES,
        max_batch: int = 1000,
        node: NodeSettings | None = None,
    ) -> None:
        super().__init__(describe(dsn), clock=clock, lifetime=lifetime, max_batch=max_batch)
        self.dsn = dsn
        self.node = node or NodeSettings()
        self.member = cluster.new_member(self.node.name, __version__)
        self._released = 0
        self._membership: asyncio.Task[None] | None = None
        self._gate: ClusterGate | None = None

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        clock: Clock | None = None,
        lifetime: Lifetime = DEFAULT_LIFETIMES,
        max_batch: int = 1000,
        node: NodeSettings | None = None,
    ) -> PostgresStore:
        store = cls(dsn, clock=clock, lifetime=lifetime, max_batch=max_batch, node=node)
        await store._start()
        try:
            await store._join()
        except StoreError:
            await GroupCommitStore.close(store)
            raise
        store._membership = asyncio.get_running_loop().create_task(store._keep_membership())
        return store

    @property
    def owner(self) -> str | None:
        """The lease owner this node's queue manager claims as: its run."""
        return self.member.run

    def delivery_gate(self, limit: int, reserved: int = 0) -> ClusterGate:
        if self._gate is None:
            self._gate = ClusterGate(ClusterPermits(self.dsn), limit, reserved)
        return self._gate

    def open_database(self, *, create_schema: bool) -> PgDatabase:
        db = PgDatabase.connect(self.dsn, create_schema=create_schema)
        found, now = db.migrated
        if found != now:
            events.emit(events.STORE_MIGRATED, path=self.path, old=found, new=now)
        return db

    async def _join(self) -> None:
        now, member, timeout = self.clock.now(), self.member, self.node.node_timeout
        joined: cluster.Joined = await self._submit(
            lambda db: cluster.join(db, member, now, timeout), isolated=True
        )
        self._released = joined.released
        events.emit(
            events.NODE_JOINED,
            node=member.name,
            run=member.run,
            path=self.path,
            nodes=joined.running,
        )

    async def release_leases(self) -> int:
        # Joining handed back the leases of this node's previous run; the other nodes'
        # leases are theirs, alive or (after node_timeout) taken over.
        released, self._released = self._released, 0
        return released

    async def _keep_membership(self) -> None:
        """Heartbeat, and take over the nodes gone silent, every heartbeat_interval."""
        while True:
            await asyncio.sleep(self.node.heartbeat_interval)
            try:
                await self.beat()
            except StoreError:
                # The writer has emitted store-write-failed; the next beat tries again.
                continue

    async def beat(self) -> None:
        """One heartbeat and one look for silent nodes (the membership task's round)."""
        member, timeout = self.member, self.node.node_timeout
        now = self.clock.now()
        alive: bool = await self._submit(lambda db: cluster.heartbeat(db, member), durable=False)
        if not alive:
            events.emit(
                events.NODE_DECLARED_LOST,
                node=member.name,
                run=member.run,
                silent=round(timeout),
            )
        taken: list[cluster.TakenOver] = await self._submit(
            lambda db: cluster.take_over(db, member, now, timeout), isolated=True
        )
        for lost in taken:
            events.emit(
                events.NODE_LOST,
                node=lost.name,
                run=lost.run,
                silent=round(lost.silent),
                by=member.name,
                count=lost.count,
            )

    async def status(self) -> list[cluster.NodeStatus]:
        return await self._read(cluster.status)

    async def close(self) -> None:
        if self._closed:
            return
        if self._membership is not None:
            self._membership.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._membership
        if self._gate is not None:
            await self._gate.close()  # its permits go back to the cluster
        member, now = self.member, self.clock.now()
        try:
            count: int = await self._submit(lambda db: cluster.leave(db, member, now))
        except StoreError:
            count = -1
        else:
            events.emit(events.NODE_LEFT, node=member.name, run=member.run, count=count)
        await super().close()
