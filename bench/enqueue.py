"""Durable enqueues per second into the SQLite MTA database, with group commit and without.

    .venv/bin/python bench/enqueue.py                 # 1, 10, 100 producers
    .venv/bin/python bench/enqueue.py --rss 1000000   # memory as the queue grows to 1M

"Without" is the same store with batches of one: one transaction, one fsync,
per message — what a naive durable queue does. Each enqueue returns only
once its message is durable (synchronous=FULL) in both cases.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time

import psutil

from waypost.message import Envelope, Message, Recipient, new_mts_id
from waypost.nexthop import parse_next_hop
from waypost.store import NewMessage, SQLiteStore

BODY = b"Subject: bench\r\n\r\n" + b"x" * (1024 - 18)


def message(i: int) -> NewMessage:
    envelope = Envelope(
        mts_id=new_mts_id("bench.example"),
        originator="sender@bench.example",
        recipients=[Recipient(address=f"user{i % 1000}@remote.example")],
    )
    return NewMessage(
        message=Message(envelope=envelope, content=BODY),
        next_hops=[parse_next_hop("smtp:[127.0.0.1]:2526")],
    )


async def run(path: str, producers: int, total: int, max_batch: int) -> tuple[float, int]:
    store = await SQLiteStore.open(path, max_batch=max_batch)
    per = total // producers

    async def produce(p: int) -> None:
        for k in range(per):
            await store.enqueue(message(p * per + k))

    start = time.perf_counter()
    await asyncio.gather(*(produce(p) for p in range(producers)))
    elapsed = time.perf_counter() - start
    commits = store.commits
    await store.close()
    return per * producers / elapsed, commits


def throughput(workdir: str, producers_list: list[int], seconds_target: float) -> None:
    print(
        f"{'producers':>9} {'group commit/s':>15} {'fsync each/s':>13} {'ratio':>6} "
        f"{'msgs/commit':>11}"
    )
    for producers in producers_list:
        results = []
        for max_batch in (1000, 1):
            path = os.path.join(workdir, f"bench-{producers}-{max_batch}.db")
            # Size each run to last a few seconds at the expected rate.
            total = producers * max(
                20, int(seconds_target * (25000 if max_batch > 1 else 2500) / producers)
            )
            if max_batch == 1:
                total = producers * max(5, int(seconds_target * 2500 / producers))
            rate, commits = asyncio.run(run(path, producers, total, max_batch))
            results.append((rate, total / max(commits, 1)))
            os.remove(path)
        (grouped, per_commit), (single, _) = results
        print(
            f"{producers:>9} {grouped:>15,.0f} {single:>13,.0f} {grouped / single:>5.1f}x "
            f"{per_commit:>11.1f}"
        )


async def grow(path: str, target: int) -> None:
    store = await SQLiteStore.open(path)
    proc = psutil.Process()
    checkpoints = sorted({c for c in (10_000, 100_000, 1_000_000, target) if c <= target})
    done = 0
    start = time.perf_counter()
    print(f"{'queued':>10} {'RSS MiB':>8} {'db MiB':>8} {'enqueue/s':>10} {'claim ms':>9}")
    for checkpoint in checkpoints:
        while done < checkpoint:
            n = min(5000, checkpoint - done)
            await asyncio.gather(*(store.enqueue(message(done + i)) for i in range(n)))
            done += n
        rate = done / (time.perf_counter() - start)
        # Claiming from a big queue must not read the whole queue.
        t = time.perf_counter()
        batch = await store.claim(owner="bench", limit=256, lease_seconds=1)
        claim_ms = (time.perf_counter() - t) * 1000
        assert len(batch.claims) == 256
        db_size = sum(os.path.getsize(path + s) for s in ("", "-wal") if os.path.exists(path + s))
        print(
            f"{done:>10,} {proc.memory_info().rss / 2**20:>8.1f} {db_size / 2**20:>8.0f} "
            f"{rate:>10,.0f} {claim_ms:>9.1f}"
        )
    await store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--producers", default="1,10,100")
    parser.add_argument("--seconds", type=float, default=3.0, help="rough length of each run")
    parser.add_argument("--rss", type=int, metavar="N", help="grow a queue to N messages")
    parser.add_argument("--dir", default=None, help="where to put the databases")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="waypost-bench-", dir=args.dir)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M')} · {os.cpu_count()} CPUs · Python "
        f"{sys.version.split()[0]} · 1 KiB messages · SQLite WAL synchronous=FULL · {workdir}"
    )
    try:
        if args.rss:
            asyncio.run(grow(os.path.join(workdir, "grow.db"), args.rss))
        else:
            throughput(workdir, [int(p) for p in args.producers.split(",")], args.seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
