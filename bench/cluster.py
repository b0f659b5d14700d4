"""Waypost as one node on SQLite, one node on PostgreSQL and two nodes on PostgreSQL, side
by side on one machine: messages/s end to end and CPU per message, Waypost's and the
database server's.

    smtp-source (one per node) --SMTP--> node(s) --SMTP--> smtp-sink

    .venv/bin/python bench/cluster.py [--messages 6000] [--rounds 3] [--sessions 10]
                                      [--setups sqlite,pg1,pg2] [--size 1024]

Every run starts its nodes on a fresh database (a new PostgreSQL database on one private
server started for the whole benchmark: initdb in a temporary directory, fsync and
synchronous_commit on) and a fresh smtp-sink; the setups take turns within each round, in
an order that rotates, so that the machine's drift falls on all of them. A run ends when
the sink has counted every message and the queue is empty. Printed per run, then the
medians: seconds, messages/s, Waypost's CPU µs per message (all its nodes), PostgreSQL's
(the postmaster and every backend), and the machine's busy CPU µs per message (everything:
smtp-source and smtp-sink too).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pg_server import PgServer, free_port

TICKS = os.sysconf("SC_CLK_TCK")
COUNTERS = re.compile(rb"mesg=(\d+)[\r\n]")
SETUPS = {"sqlite": (1, "sqlite"), "pg1": (1, "postgresql"), "pg2": (2, "postgresql")}


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / TICKS


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its descendants alive now, their reaped children too."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(f) for f in fields[11:15])
        todo += children.get(current, [])
    return total / TICKS


class Sink:
    """`smtp-sink -c`: its counter read from its output as it goes."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        user = ["-u", "postfix"] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            ["smtp-sink", *user, "-c", f"127.0.0.1:{self.port}", "1024"],
            stdout=subprocess.PIPE,
            stderr=(directory / "sink.err").open("wb"),
        )
        self.count = 0
        self.reached: dict[int, float] = {}
        threading.Thread(target=self._read, daemon=True).start()
        wait_port(self.port)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        tail = b""
        while chunk := os.read(self.proc.stdout.fileno(), 65536):
            data = tail + chunk
            found = COUNTERS.findall(data)
            if found:
                self.count = int(found[-1])
            tail = data[-32:]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def wait_port(port: int, timeout: float = 30.0) -> None:
    import socket  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def node_config(data: Path, port: int, sink: int, backend: str, dsn: str, name: str) -> str:
    store = (
        f'[store]\nbackend = "postgresql"\ndsn = "{dsn}"\n[cluster]\nnode = "{name}"\n'
        if backend == "postgresql"
        else ""
    )
    return (
        f'[server]\nhostname = "{name}.bench.test"\ndata_dir = "{data}"\n'
        '[log]\nlevel = "warning"\n'
        "[queue]\npoll_interval = 0.05\n"
        f'[smtp]\nlisten = ["127.0.0.1:{port}"]\n[x400]\nlisten = []\n'
        '[smtp_client]\ntls = "none"\n'
        f'[[route]]\nmatch = "*"\nnext_hop = "smtp:[127.0.0.1]:{sink}"\n' + store
    )


@dataclass
class Run:
    setup: str
    seconds: float
    rate: float
    waypost_us: float
    postgres_us: float
    machine_us: float


def queue_empty(pg: PgServer | None, dsn: str, data: list[Path]) -> bool:
    if pg is not None:
        return pg.psql("SELECT count(*) FROM recipients", dsn.split("dbname=")[1]) == "0"
    import sqlite3  # noqa: PLC0415

    for directory in data:
        with sqlite3.connect(f"file:{directory / 'mta.db'}?mode=ro", uri=True) as conn:
            if conn.execute("SELECT count(*) FROM recipients").fetchone()[0]:
                return False
    return True


def run_once(setup: str, args: argparse.Namespace, pg: PgServer, work: Path, n: int) -> Run:
    nodes, backend = SETUPS[setup]
    root = work / f"{setup}-{n}"
    root.mkdir()
    dsn = pg.create_database(f"bench_{setup}_{n}") if backend == "postgresql" else ""
    sink = Sink(root)
    procs, ports, data = [], [], []
    try:
        for i in range(nodes):
            port = free_port()
            directory = root / f"node{i}"
            directory.mkdir()
            config = directory / "waypost.toml"
            config.write_text(
                node_config(directory / "data", port, sink.port, backend, dsn, f"n{i}")
            )
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)],
                    stdout=subprocess.DEVNULL,
                    stderr=(directory / "serve.err").open("wb"),
                    env={**os.environ, "WAYPOST_CONFIG": ""},
                )
            )
            ports.append(port)
            data.append(directory / "data")
        for port in ports:
            wait_port(port)
        time.sleep(0.5)  # the nodes settle (joins, first heartbeats)
        cpu0 = sum(tree_cpu(p.pid) for p in procs)
        pg0, busy0, t0 = pg.server_ticks() / TICKS, machine_busy(), time.monotonic()
        per_node = args.messages // nodes
        sources = [
            subprocess.Popen(
                [
                    "smtp-source",
                    "-s",
                    str(args.sessions),
                    "-m",
                    str(per_node),
                    "-l",
                    str(args.size),
                    "-f",
                    "sender@bench.test",
                    "-t",
                    "rcpt@remote.test",
                    f"127.0.0.1:{port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for port in ports
        ]
        total = per_node * nodes
        deadline = time.monotonic() + 600
        while sink.count < total:
            if time.monotonic() > deadline:
                raise SystemExit(f"{setup}: the sink counted {sink.count} of {total}")
            time.sleep(0.01)
        t1 = time.monotonic()
        for source in sources:
            source.wait(timeout=60)
        while not queue_empty(pg if backend == "postgresql" else None, dsn, data):
            time.sleep(0.05)
        cpu1 = sum(tree_cpu(p.pid) for p in procs)
        pg1, busy1 = pg.server_ticks() / TICKS, machine_busy()
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)
        sink.stop()
    seconds = t1 - t0
    pg_cpu = (pg1 - pg0) if backend == "postgresql" else 0.0
    return Run(
        setup=setup,
        seconds=seconds,
        rate=total / seconds,
        waypost_us=(cpu1 - cpu0) / total * 1e6,
        postgres_us=pg_cpu / total * 1e6,
        machine_us=(busy1 - busy0) / total * 1e6,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sessions", type=int, default=10, help="per smtp-source")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--setups", default="sqlite,pg1,pg2")
    args = parser.parse_args()
    for tool in ("smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install postfix)")
    setups = args.setups.split(",")
    work = Path(tempfile.mkdtemp(prefix="waypost-bench-cluster-"))
    pg = PgServer.initdb()
    runs: list[Run] = []
    print(f"{'round':>5} {'setup':<7} {'s':>6} {'msg/s':>7} {'waypost µs':>11} "
          f"{'postgres µs':>12} {'machine µs':>11}")  # fmt: skip
    try:
        for n in range(args.rounds):
            order = setups[n % len(setups) :] + setups[: n % len(setups)]
            for setup in order:
                run = run_once(setup, args, pg, work, n)
                runs.append(run)
                print(
                    f"{n + 1:>5} {setup:<7} {run.seconds:>6.2f} {run.rate:>7.0f} "
                    f"{run.waypost_us:>11.0f} {run.postgres_us:>12.0f} {run.machine_us:>11.0f}",
                    flush=True,
                )
    finally:
        pg.remove()
        shutil.rmtree(work, ignore_errors=True)
    print("\nmedians:")
    base = statistics.median(r.rate for r in runs if r.setup == setups[0])
    for setup in setups:
        mine = [r for r in runs if r.setup == setup]
        rate = statistics.median(r.rate for r in mine)
        print(
            f"  {setup:<7} {rate:>7.0f} msg/s ({rate / base:.2f} of {setups[0]}), Waypost "
            f"{statistics.median(r.waypost_us for r in mine):.0f} µs, PostgreSQL "
            f"{statistics.median(r.postgres_us for r in mine):.0f} µs, machine "
            f"{statistics.median(r.machine_us for r in mine):.0f} µs a message"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
