"""The MTA database's own cost per message, SQLite against PostgreSQL, in one process: what
the queue asks of the store for each relayed message (a durable enqueue, its share of a
claim, a read of its content, its settlement), with the concurrency of a busy relay.

    .venv/bin/python bench/store_ops.py [--messages 3000] [--rounds 3] [--producers 20]
                                        [--commit-delay 0] [--max-batch 1000]

PostgreSQL runs on a private server (initdb in a temporary directory, fsync and
synchronous_commit on). Printed per round: messages/s of the whole cycle and CPU µs per
message of this process (all its threads) and of the PostgreSQL server. `--max-batch 1`
commits every operation on its own (no group commit of ours); `--commit-delay` sets the
server's commit_delay (µs, with commit_siblings = 1), PostgreSQL's own group commit.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import PgServer

from waypost.handoff import Claim, Result
from waypost.message import Envelope, Message, Recipient, new_mts_id
from waypost.nexthop import parse_next_hop
from waypost.store import NewMessage, Settlement
from waypost.store.group_commit import GroupCommitStore
from waypost.store.postgresql.store import NodeSettings, PostgresStore
from waypost.store.sqlite import SQLiteStore

BODY = b"Subject: bench\r\n\r\n" + b"x" * (1024 - 18)
HOP = parse_next_hop("smtp:[127.0.0.1]:2526")


def message(i: int) -> NewMessage:
    envelope = Envelope(
        mts_id=new_mts_id("bench.example"),
        originator="sender@bench.example",
        recipients=[Recipient(address=f"user{i % 1000}@remote.example")],
    )
    return NewMessage(message=Message(envelope=envelope, content=BODY), next_hops=[HOP])


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def cycle(store: GroupCommitStore, messages: int, producers: int) -> None:
    """Enqueue from `producers` tasks while a worker claims, reads and settles, as the
    queue manager does (each message settled on its own, as its delivery ends)."""
    done = 0
    per = messages // producers

    async def produce(p: int) -> None:
        for k in range(per):
            await store.enqueue(message(p * per + k))

    async def deliver(claim: Claim) -> None:
        nonlocal done
        if claim.content is None:  # (PostgreSQL's claim reads small messages along)
            await store.read_content(claim.message_id, size_hint=claim.size)
        outcome = Settlement(recipient_id=claim.recipient_id, result=Result.DELIVERED)
        await store.settle("bench", [outcome])
        done += 1

    async def work() -> None:
        tasks: set[asyncio.Task[None]] = set()
        while done < per * producers:
            batch = await store.claim(owner="bench", limit=256, lease_seconds=300)
            for c in batch.claims:
                task = asyncio.create_task(deliver(c))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            if not batch.claims:
                await asyncio.sleep(0.005)
        await asyncio.gather(*tasks)

    await asyncio.gather(work(), *(produce(p) for p in range(producers)))


async def one(kind: str, args: argparse.Namespace, pg: PgServer, n: int) -> tuple[float, ...]:
    if kind == "sqlite":
        path = str(Path(tempfile.mkdtemp(prefix="waypost-bench-store-")) / "mta.db")
        store: GroupCommitStore = await SQLiteStore.open(path, max_batch=args.max_batch)
    else:
        dsn = pg.create_database(f"ops{n}")
        store = await PostgresStore.open(
            dsn, max_batch=args.max_batch, node=NodeSettings(name="bench")
        )
    c0, s0, t0 = cpu(), pg.server_ticks(), time.perf_counter()
    await cycle(store, args.messages, args.producers)
    elapsed = time.perf_counter() - t0
    c1, s1 = cpu(), pg.server_ticks()
    await store.close()
    server = (s1 - s0) / 100 if kind == "postgresql" else 0.0
    return args.messages / elapsed, (c1 - c0) / args.messages * 1e6, server / args.messages * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--producers", type=int, default=20)
    parser.add_argument("--max-batch", type=int, default=1000)
    parser.add_argument("--commit-delay", type=int, default=0)
    parser.add_argument("--kinds", default="sqlite,postgresql")
    args = parser.parse_args()
    settings = {"commit_delay": str(args.commit_delay), "commit_siblings": "1"}
    pg = PgServer.initdb(settings=settings)
    results: dict[str, list[tuple[float, ...]]] = {}
    kinds = args.kinds.split(",")
    try:
        for n in range(args.rounds):
            for kind in kinds[n % 2 :] + kinds[: n % 2]:
                rate, client, server = asyncio.run(one(kind, args, pg, n))
                results.setdefault(kind, []).append((rate, client, server))
                print(f"round {n + 1} {kind:<10} {rate:>7.0f} msg/s  this process "
                      f"{client:>5.0f} µs  server {server:>5.0f} µs", flush=True)  # fmt: skip
    finally:
        pg.remove()
    for kind, rows in results.items():
        rate, client, server = (statistics.median(r[i] for r in rows) for i in range(3))
        print(f"median {kind:<10} {rate:>7.0f} msg/s  this process {client:>5.0f} µs  "
              f"server {server:>5.0f} µs")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
