"""Queue pipeline cost: claim, deliver to the local X.400 store, settle — in one process.

    .venv/bin/python bench/queue_pipeline.py                   # 3000 messages, 3 rounds
    .venv/bin/python bench/queue_pipeline.py --messages 5000 --rounds 1
    .venv/bin/python bench/queue_pipeline.py --profile out.prof  # cProfile, top functions

Each round starts a Service (fresh data directory, log level warning) with a
local X.400 store, enqueues N messages of 1 KiB (P22 IPMs to one local O/R
address, the same as bench/x400_relay.py sends) and only then starts the
queue manager; the clock runs from there until every message is delivered
(a file fsync'd in the store, its recipient settled). Printed per round:
messages/s and CPU milliseconds (user + system, all threads) per message.
This is the receiving MTA's work after a message was accepted, without the
network or the OSI stack. With `--rate R` the messages are enqueued while the
queue manager runs, R a second (the enqueues' CPU then counts too): small claim
batches, as when a relay hands messages over one by one.

The file system's share is large and unsteady here: on an ext4 without a
journal, creating a file skips every inode of its group deleted in the last
minutes (`recently_deleted`), so each run pays for the files earlier runs
removed (`--keep` leaves them, to remove later). `--dir /dev/shm` (tmpfs:
fsync costs nothing) measures the Python pipeline alone; compare versions in
alternating runs either way.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import resource
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from x400_relay import x400_message

from waypost import events
from waypost.config import load_config
from waypost.message import Message
from waypost.nexthop import LOCAL
from waypost.service import Service
from waypost.store import NewMessage
from waypost.x400.p1_objects import add_trace

DOMAIN_A = "/C=GB/ADMD= /PRMD=A/"

CONFIG = """\
[server]
hostname = "b.example"
data_dir = "{data}"
[log]
level = "warning"
[queue]
poll_interval = 0.05
[smtp]
listen = []
[x400]
listen = []
global_domain = "/C=GB/ADMD= /PRMD=B/"
[local]
x400_store = "{data}/x400"
oraddresses = ["/C=GB/ADMD= /PRMD=B/"]
"""


def message(i: int, domain: str) -> NewMessage:
    """The relay bench's message `i`, as B holds it once received over P1: with A's and
    its own trace element, for local delivery."""
    sent = x400_message(i).message
    envelope = sent.envelope
    envelope = add_trace(add_trace(envelope, DOMAIN_A, time.time()), domain, time.time())
    return NewMessage(message=Message(envelope=envelope, content=sent.content), next_hops=[LOCAL])


async def one_round(work: Path, n: int, rate: float) -> Round:
    data = work / "b"
    config = work / "b.toml"
    config.write_text(CONFIG.format(data=data))
    service = await Service.start(load_config(config))
    try:
        domain = service.config.x400.global_domain
        pending = iter([message(i, domain) for i in range(n)])

        async def producer() -> None:
            for new in pending:
                await service.store.enqueue(new)

        feeders = 16
        each = rate / feeders  # messages/s per feeder

        async def paced() -> None:
            # As a listener hands them over: each enqueued (durably), then the manager woken.
            t0 = time.perf_counter()
            for i, new in enumerate(pending):
                await service.enqueue(new)
                ahead = t0 + (i + 1) / each - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)

        if not rate:
            await asyncio.gather(*(producer() for _ in range(100)))
        threads_before = thread_cpu()
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        service.run_background()
        tasks = [asyncio.create_task(paced()) for _ in range(feeders)] if rate else []
        counters = service.manager.counters
        while counters["delivered"] + counters["failed"] < n:
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - start
        await asyncio.gather(*tasks)
        after = resource.getrusage(resource.RUSAGE_SELF)
        threads_after = thread_cpu()
        if counters["failed"]:
            raise SystemExit(f"{counters['failed']} messages failed")
    finally:
        await service.stop()
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    by_thread: dict[str, float] = {}
    for name, used in threads_after.items():
        by_thread[name] = used - threads_before.get(name, 0.0)
    return Round(seconds=seconds, user=user, system=system, threads=by_thread)


@dataclass(frozen=True)
class Round:
    seconds: float
    user: float
    system: float
    threads: dict[str, float]


def thread_cpu() -> dict[str, float]:
    """CPU seconds (user + system) of each live thread, by kind: the event loop, the
    database writer, the other threads (readers, delivery workers) together."""
    tick = os.sysconf("SC_CLK_TCK")
    kinds: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        used = (int(fields[11]) + int(fields[12])) / tick
        if thread is threading.main_thread():
            kind = "loop"
        elif thread.name == "waypost-writer":
            kind = "writer"
        else:
            kind = "other"
        kinds[kind] = kinds.get(kind, 0.0) + used
    return kinds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--dir",
        help="where the data directories go (default: the temporary directory); "
        "a tmpfs (/dev/shm) takes the file system's cost out and leaves the Python",
    )
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="enqueue at this many messages/s (16 feeders) while the queue manager runs, "
        "as a relay hands them over, instead of all before it starts",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the data directories (removing them slows the next run's file creation)",
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the rounds into FILE")
    args = parser.parse_args()
    events.configure_logging(level="warning")
    profiler = cProfile.Profile() if args.profile else None
    for round_ in range(args.rounds):
        tmp = tempfile.mkdtemp(prefix="waypost-qbench-", dir=args.dir)
        try:
            if profiler is not None:
                profiler.enable()
            result = asyncio.run(one_round(Path(tmp), args.messages, args.rate))
            if profiler is not None:
                profiler.disable()
        finally:
            if not args.keep:
                shutil.rmtree(tmp)
        n = args.messages
        per = {k: v * 1000 / n for k, v in sorted(result.threads.items())}
        print(
            f"round {round_ + 1}: {n} messages in {result.seconds:.2f} s: "
            f"{n / result.seconds:,.0f} msg/s, CPU {(result.user + result.system) * 1000 / n:.3f} "
            f"ms/msg (user {result.user * 1000 / n:.3f}, system {result.system * 1000 / n:.3f}; "
            + ", ".join(f"{k} {v:.3f}" for k, v in per.items())
            + ")",
            flush=True,
        )
    if profiler is not None:
        profiler.dump_stats(args.profile)
        pstats.Stats(args.profile, stream=sys.stdout).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
