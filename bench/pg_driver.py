"""PostgreSQL drivers side by side for the MTA database's work: psycopg 3 (async) against
asyncpg, on a private PostgreSQL cluster of this machine (initdb in a temporary
directory, fsync and synchronous_commit on, stopped by its PID).

Three workloads, each run with both drivers in turns, N operations each:

  enqueue   20 concurrent clients, each inserting one message (1 KiB content) and its
            recipient in one statement, committed: one durable commit per message, as a
            250 needs;
  batched   the same statement, 100 messages per transaction by executemany (which both
            drivers pipeline): the store's group commit;
  claim     claiming 50 due recipients at a time with FOR UPDATE SKIP LOCKED, leasing
            them, then settling them as delivered (two transactions a batch).

Printed per run: operations/s, the client's CPU µs per operation (the driver and our
loop), and the server's CPU µs per operation (every postgres process, from /proc).

    .venv/bin/pip install -e '.[postgresql]'
    .venv/bin/python bench/pg_driver.py [--messages 5000] [--rounds 3] [--commit-delay 0]

Run as root (the cluster runs as the `postgres` user) or as a user who may run initdb.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import PgServer

CONTENT = os.urandom(1024)
CLIENTS = 20
BATCH = 100
CLAIM = 50
TICKS = os.sysconf("SC_CLK_TCK")

SCHEMA = """
DROP TABLE IF EXISTS recipients;
DROP TABLE IF EXISTS messages;
CREATE TABLE messages (
    id bigserial PRIMARY KEY, mts_id text NOT NULL, originator text NOT NULL,
    envelope bytea NOT NULL, content bytea NOT NULL, received_at double precision NOT NULL
);
CREATE TABLE recipients (
    id bigserial PRIMARY KEY, message_id bigint NOT NULL REFERENCES messages (id),
    address text NOT NULL, next_hop text NOT NULL, state text NOT NULL,
    due_at double precision, lease_owner text, lease_until double precision
);
CREATE INDEX recipients_due ON recipients (due_at) WHERE due_at IS NOT NULL;
"""
# One statement a message, its recipient with it: one round trip, and a batch of them is
# one executemany (which both drivers pipeline).
ENQUEUE_SQL = (
    "WITH m AS (INSERT INTO messages (mts_id, originator, envelope, content, received_at) "
    "VALUES ($1, $2, $3, $4, $5) RETURNING id) "
    "INSERT INTO recipients (message_id, address, next_hop, state, due_at) "
    "SELECT id, $6, $7, 'queued', 0.0 FROM m"
)


def enqueue_args(n: int, count: int) -> list[tuple[object, ...]]:
    now = time.time()
    return [(f"m{n}.{i}", "a@b", b"envelope", CONTENT, now, "r@x", "smtp:x") for i in range(count)]


CLAIM_SQL = (
    "UPDATE recipients SET state = 'leased', lease_owner = $1, lease_until = $2, due_at = NULL "
    "WHERE id IN (SELECT id FROM recipients WHERE due_at <= $3 ORDER BY due_at "
    "LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id, message_id"
)
SETTLE_SQL = "UPDATE recipients SET state = 'delivered', lease_owner = NULL WHERE id = ANY($1)"


def psycopg_sql(sql: str) -> str:
    """asyncpg's $1 placeholders as psycopg's %s."""
    for n in range(9, 0, -1):
        sql = sql.replace(f"${n}", "%s")
    return sql


# -- the cluster ----------------------------------------------------------------------


# -- the drivers ------------------------------------------------------------------------


class Connections:
    """The same pool for both drivers: connections taken from a queue and put back, with
    nothing run between (asyncpg's own Pool resets each connection it takes back, a round
    trip a message that would be measured against asyncpg)."""

    conns: list[Any]

    def fill(self, conns: list[Any]) -> None:
        self.conns = conns
        self.free: asyncio.Queue[Any] = asyncio.Queue()
        for conn in conns:
            self.free.put_nowait(conn)

    @contextlib.asynccontextmanager
    async def _conn(self) -> Any:
        conn = await self.free.get()
        try:
            yield conn
        finally:
            self.free.put_nowait(conn)

    async def close(self) -> None:
        for conn in self.conns:
            await conn.close()


class Asyncpg(Connections):
    name = "asyncpg"

    async def open(self, dsn: str, size: int) -> None:
        import asyncpg  # noqa: PLC0415 - an optional package, for this benchmark only

        parts = dict(item.split("=", 1) for item in dsn.split())
        where = {"host": parts["host"], "port": int(parts["port"]), "user": parts["user"]}
        self.fill([await asyncpg.connect(database=parts["dbname"], **where) for _ in range(size)])

    async def execute(self, sql: str) -> None:
        async with self._conn() as conn:
            await conn.execute(sql)

    async def enqueue(self, n: int, count: int) -> None:
        async with self._conn() as conn:
            if count == 1:
                await conn.execute(ENQUEUE_SQL, *enqueue_args(n, 1)[0])
                return
            async with conn.transaction():
                await conn.executemany(ENQUEUE_SQL, enqueue_args(n, count))

    async def claim(self, owner: str) -> int:
        async with self._conn() as conn:
            async with conn.transaction():
                rows = await conn.fetch(CLAIM_SQL, owner, time.time() + 300, time.time(), CLAIM)
            if rows:
                async with conn.transaction():
                    await conn.execute(SETTLE_SQL, [r[0] for r in rows])
        return len(rows)


class Psycopg(Connections):
    name = "psycopg"

    async def open(self, dsn: str, size: int) -> None:
        import psycopg  # noqa: PLC0415 - an optional package, for this benchmark only

        connect = psycopg.AsyncConnection.connect
        self.fill([await connect(dsn, autocommit=True) for _ in range(size)])

    async def execute(self, sql: str) -> None:
        async with self._conn() as conn:
            await conn.execute(sql)
            await conn.commit()

    async def enqueue(self, n: int, count: int) -> None:
        sql = psycopg_sql(ENQUEUE_SQL)
        async with self._conn() as conn:
            if count == 1:
                await conn.execute(sql, enqueue_args(n, 1)[0])
                return
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(sql, enqueue_args(n, count))

    async def claim(self, owner: str) -> int:
        claim, settle = psycopg_sql(CLAIM_SQL), psycopg_sql(SETTLE_SQL)
        async with self._conn() as conn:
            async with conn.transaction():
                cur = await conn.execute(claim, (owner, time.time() + 300, time.time(), CLAIM))
                rows = await cur.fetchall()
            if rows:
                async with conn.transaction():
                    await conn.execute(settle, ([r[0] for r in rows],))
        return len(rows)


# -- the workloads -----------------------------------------------------------------------


async def enqueue_each(driver: Any, messages: int) -> int:
    """CLIENTS tasks, one commit per message."""
    counter = iter(range(messages))

    async def client() -> None:
        for n in counter:
            await driver.enqueue(n, 1)

    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return messages


async def enqueue_batched(driver: Any, messages: int) -> int:
    """One task, BATCH messages per transaction."""
    for start in range(0, messages, BATCH):
        await driver.enqueue(start, min(BATCH, messages - start))
    return messages


async def claim_all(driver: Any, messages: int) -> int:
    """Four workers claiming and settling until nothing is due."""
    done = 0

    async def worker(owner: str) -> None:
        nonlocal done
        while (got := await driver.claim(owner)) > 0:
            done += got

    await asyncio.gather(*(worker(f"node:{i}") for i in range(4)))
    return done


WORKLOADS: dict[str, Callable[[Any, int], Awaitable[int]]] = {
    "enqueue": enqueue_each,
    "batched": enqueue_batched,
    "claim": claim_all,
}


async def run_one(cluster: PgServer, driver: Any, workload: str, messages: int) -> dict[str, float]:
    await driver.open(cluster.dsn(), CLIENTS)
    try:
        if workload != "claim":
            await driver.execute(SCHEMA)
        server0, client0, wall0 = cluster.server_ticks(), time.process_time(), time.monotonic()
        done = await WORKLOADS[workload](driver, messages)
        wall = time.monotonic() - wall0
        client = time.process_time() - client0
        server = (cluster.server_ticks() - server0) / TICKS
    finally:
        await driver.close()
    assert done == messages, (workload, done, messages)
    return {
        "rate": done / wall,
        "client_us": client / done * 1e6,
        "server_us": server / done * 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commit-delay", type=int, default=0, help="µs (PostgreSQL's)")
    args = parser.parse_args()
    cluster = PgServer.initdb(settings={"commit_delay": str(args.commit_delay)})
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        command = [str(cluster.bin / "postgres"), "--version"]
        version = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        print(
            f"{version.strip()}; commit_delay {args.commit_delay} µs; {args.messages} "
            f"messages; {os.cpu_count()} CPUs; {now}"
        )
        for rnd in range(1, args.rounds + 1):
            drivers = [Asyncpg(), Psycopg()] if rnd % 2 else [Psycopg(), Asyncpg()]
            for workload in ("enqueue", "batched"):
                for driver in drivers:
                    # Each enqueue run starts from an empty schema; the claim run that
                    # follows "batched" claims what it enqueued.
                    figures = asyncio.run(run_one(cluster, driver, workload, args.messages))
                    results.setdefault((workload, driver.name), []).append(figures)
                    _print(rnd, workload, driver.name, figures)
                    if workload == "batched":
                        figures = asyncio.run(run_one(cluster, driver, "claim", args.messages))
                        results.setdefault(("claim", driver.name), []).append(figures)
                        _print(rnd, "claim", driver.name, figures)
    finally:
        cluster.remove()
    print("\nMedians:\n\n| workload | driver | ops/s | client CPU µs/op | server CPU µs/op |")
    print("|---|---|---:|---:|---:|")
    for (workload, name), runs in sorted(results.items()):
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {workload} | {name} | {med['rate']:,.0f} | {med['client_us']:.0f} | "
              f"{med['server_us']:.0f} |")  # fmt: skip
    return 0


def _print(rnd: int, workload: str, name: str, figures: dict[str, float]) -> None:
    print(
        f"round {rnd} {workload:<8} {name:<8} {figures['rate']:8,.0f} ops/s  client "
        f"{figures['client_us']:6.0f} µs/op  server {figures['server_us']:6.0f} µs/op"
    )


if __name__ == "__main__":
    raise SystemExit(main())
