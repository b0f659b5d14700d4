"""Helpers for bench/smtp_relay.sh: configuration, the sink watcher, CPU times, the report.

Only the standard library; run with the project's interpreter. Subcommands:

  waypost-config   write the Waypost configuration for a run
  watch-sink       read `smtp-sink -c` counters on stdin; note when N messages arrived
  wait-port        wait until something listens on 127.0.0.1:PORT
  cpu              CPU seconds (user + system) of a process, or of a process tree
  run-source       run smtp-source; note its start, end and CPU seconds
  machine-cpu      CPU seconds the whole machine has been busy
  record           append one run's figures to the results file and print them
  summary          print the tables per round, the medians and the ratio
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def waypost_config(args: argparse.Namespace) -> int:
    text = f"""\
# Written by bench/smtp_relay.sh for one run; see docs/benchmarks.md.
[server]
hostname = "waypost-bench.localdomain"
data_dir = "{args.data_dir}"

[log]
# "warning": no per-message INFO events.
level = "{args.log_level}"

[queue]
poll_interval = 0.05

[smtp]
listen = ["127.0.0.1:{args.port}"]

[smtp_client]
# As Postfix's smtp_tls_security_level = none (smtp-sink offers no STARTTLS anyway).
tls = "none"

[x400]
listen = []
{_observing(args.observe, args.metrics_port)}
[[route]]
match = "*"
next_hop = "smtp:[127.0.0.1]:{args.sink_port}"
"""
    Path(args.out).write_text(text)
    return 0


def _observing(mode: str, metrics_port: int) -> str:
    """`default`: the defaults (tracking on, metrics off); `off`: neither; `on`: both."""
    if mode == "default":
        return ""
    if mode == "off":
        return "\n[tracking]\nenabled = false\n"
    return (
        "\n[tracking]\nenabled = true\n"
        f'\n[metrics]\nenabled = true\nlisten = "127.0.0.1:{metrics_port}"\n'
    )


COUNTERS = re.compile(rb"mesg=(\d+)[\r\n]")


def watch_sink(args: argparse.Namespace) -> int:
    """Read the sink's counters until EOF; write the time the count was first reached.

    Keeps reading after that, so the sink never writes into a closed pipe, and
    at EOF writes the final count to OUT.final (more than asked: duplicates).
    """
    done = False
    last = 0
    tail = b""
    while True:
        chunk = os.read(0, 65536)
        if not chunk:
            break
        now = time.time()
        data = tail + chunk
        found = COUNTERS.findall(data)
        if found:
            last = int(found[-1])
        tail = data[-32:]
        if not done and last >= args.count:
            Path(args.out + ".tmp").write_text(f"{now:.6f} {last}\n")
            os.replace(args.out + ".tmp", args.out)
            done = True
    Path(args.out + ".final").write_text(f"{last}\n")
    return 0


def wait_port(args: argparse.Namespace) -> int:
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.5)
            try:
                s.connect(("127.0.0.1", args.port))
                return 0
            except OSError:
                time.sleep(0.05)
    print(f"nothing listens on 127.0.0.1:{args.port} after {args.timeout}s", file=sys.stderr)
    return 1


def _stat(pid: int) -> tuple[int, int, int] | None:
    """(ppid, own ticks, reaped children's ticks) from /proc/PID/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
    ppid = int(fields[1])
    own = int(fields[11]) + int(fields[12])
    children = int(fields[13]) + int(fields[14])
    return ppid, own, children


def cpu(args: argparse.Namespace) -> int:
    """Own CPU of PID; with --tree also that of every live descendant and of reaped ones."""
    root = _stat(args.pid)
    if root is None:
        print(f"no process {args.pid}", file=sys.stderr)
        return 1
    ticks = root[1]
    if args.tree:
        ticks += root[2]
        parents: dict[int, tuple[int, int, int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                st = _stat(int(entry))
                if st is not None:
                    parents[int(entry)] = st
        wanted = {args.pid}
        grew = True
        while grew:
            grew = False
            for pid, (ppid, _, _) in parents.items():
                if ppid in wanted and pid not in wanted:
                    wanted.add(pid)
                    grew = True
        for pid in wanted - {args.pid}:
            _, own, children = parents[pid]
            ticks += own + children
    print(f"{ticks / TICKS:.2f}")
    return 0


def run_source(args: argparse.Namespace) -> int:
    """Run the load generator; write its start and end times and its CPU seconds."""
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    t0 = time.time()
    child = subprocess.Popen(cmd)

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    rc = child.wait()
    t1 = time.time()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    Path(args.out).write_text(f"{t0:.6f} {t1:.6f} {usage.ru_utime + usage.ru_stime:.2f}\n")
    return rc


def machine_cpu(_args: argparse.Namespace) -> int:
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    print(f"{(user + nice + system + irq + softirq + steal) / TICKS:.2f}")
    return 0


FIELDS = ("round", "mta", "messages", "elapsed", "accept", "cpu", "others")


def record(args: argparse.Namespace) -> int:
    elapsed = args.t_sink - args.t0
    accept = args.t_source - args.t0
    cpu_s = args.cpu_after - args.cpu_before
    # CPU the machine spent on anything but this MTA and the two test tools
    # (other users' work, plus interrupt time no process is charged for).
    others = max(0.0, args.machine_after - args.machine_before - cpu_s - args.tools_cpu)
    with open(args.results, "a") as f:
        f.write(
            f"{args.round}\t{args.mta}\t{args.messages}\t{elapsed:.3f}\t{accept:.3f}"
            f"\t{cpu_s:.2f}\t{others:.2f}\n"
        )
    rate = args.messages / elapsed
    per_k = cpu_s / args.messages * 1000
    print(
        f"round {args.round} {args.mta:<8} {elapsed:7.2f} s  {rate:7.0f} msg/s end to end  "
        f"(accepted in {accept:.2f} s, {args.messages / accept:.0f} msg/s)  "
        f"{per_k:5.2f} CPU s per 1,000 messages; other CPU on the machine {others:.1f} s"
    )
    return 0


def _rows(path: str) -> list[dict[str, float | str]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        values = line.split("\t")
        row: dict[str, float | str] = dict(zip(FIELDS, values, strict=True))
        for key in ("round", "messages", "elapsed", "accept", "cpu", "others"):
            row[key] = float(row[key])
        rows.append(row)
    return rows


def _figures(row: dict[str, float | str]) -> tuple[float, float, float, float]:
    n, elapsed, accept, cpu_s = (float(row[k]) for k in ("messages", "elapsed", "accept", "cpu"))
    return elapsed, n / elapsed, n / accept, cpu_s / n * 1000


def summary(args: argparse.Namespace) -> int:
    rows = _rows(args.results)
    header = (
        "| MTA | elapsed (s) | msg/s end to end | msg/s accepted | CPU s per 1,000 msgs "
        "| other CPU (s) |\n|---|---:|---:|---:|---:|---:|"
    )
    rounds = sorted({int(r["round"]) for r in rows})
    for rnd in rounds:
        print(f"\nRound {rnd}:\n\n{header}")
        for row in rows:
            if int(row["round"]) == rnd:
                e, rate, acc, per_k = _figures(row)
                print(
                    f"| {row['mta']} | {e:.2f} | {rate:,.0f} | {acc:,.0f} | {per_k:.2f} "
                    f"| {float(row['others']):.1f} |"
                )
    medians: dict[str, tuple[float, ...]] = {}
    print(f"\nMedians over {len(rounds)} round(s):\n\n{header}")
    for mta in sorted({r["mta"] for r in rows}, key=lambda m: (m == "Postfix", m)):
        figs = [_figures(r) for r in rows if r["mta"] == mta]
        if not figs:
            continue
        med = tuple(statistics.median(f[i] for f in figs) for i in range(4))
        medians[mta] = med
        others = statistics.median(float(r["others"]) for r in rows if r["mta"] == mta)
        print(
            f"| {mta} | {med[0]:.2f} | {med[1]:,.0f} | {med[2]:,.0f} | {med[3]:.2f} "
            f"| {others:.1f} |"
        )
    if "Waypost" in medians and "Postfix" in medians:
        w, p = medians["Waypost"], medians["Postfix"]
        print(
            f"\nWaypost / Postfix, messages/s end to end (medians): {w[1] / p[1]:.2f}x; "
            f"CPU per message: {w[3] / p[3]:.2f}x"
        )
    if "Waypost-observed" in medians and "Waypost-plain" in medians:
        on, off = medians["Waypost-observed"], medians["Waypost-plain"]
        print(
            f"\nTracking and metrics on / off, CPU per message (medians): {on[3] / off[3]:.3f}x; "
            f"messages/s end to end: {on[1] / off[1]:.3f}x"
        )
        ratios = _paired(rows, "Waypost-observed", "Waypost-plain")
        if ratios:
            shown = ", ".join(f"{r:.3f}" for r in ratios)
            print(f"Per round, CPU per message on / off: {shown}")
    return 0


def _paired(rows: list[dict[str, str]], a: str, b: str) -> list[float]:
    """CPU per message of `a` over `b` in each round that ran both."""
    by_round: dict[tuple[str, str], float] = {
        (r["round"], r["mta"]): _figures(r)[3] for r in rows if r["mta"] in (a, b)
    }
    rounds = sorted({rnd for rnd, _ in by_round}, key=int)
    return [
        by_round[(n, a)] / by_round[(n, b)]
        for n in rounds
        if (n, a) in by_round and (n, b) in by_round
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("waypost-config")
    p.add_argument("--data-dir", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--sink-port", type=int, required=True)
    p.add_argument("--log-level", default="warning")
    p.add_argument("--observe", choices=("default", "off", "on"), default="default")
    p.add_argument("--metrics-port", type=int, default=12529)
    p.add_argument("--out", required=True)
    p.set_defaults(run=waypost_config)

    p = sub.add_parser("watch-sink")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.set_defaults(run=watch_sink)

    p = sub.add_parser("wait-port")
    p.add_argument("port", type=int)
    p.add_argument("--timeout", type=float, default=30.0)
    p.set_defaults(run=wait_port)

    p = sub.add_parser("cpu")
    p.add_argument("pid", type=int)
    p.add_argument("--tree", action="store_true")
    p.set_defaults(run=cpu)

    p = sub.add_parser("run-source")
    p.add_argument("--out", required=True)
    p.add_argument("cmd", nargs=argparse.REMAINDER)
    p.set_defaults(run=run_source)

    p = sub.add_parser("machine-cpu")
    p.set_defaults(run=machine_cpu)

    p = sub.add_parser("record")
    p.add_argument("--results", required=True)
    p.add_argument("--round", type=int, required=True)
    p.add_argument("--mta", required=True)
    p.add_argument("--messages", type=int, required=True)
    p.add_argument("--t0", type=float, required=True)
    p.add_argument("--t-source", type=float, required=True)
    p.add_argument("--t-sink", type=float, required=True)
    p.add_argument("--cpu-before", type=float, required=True)
    p.add_argument("--cpu-after", type=float, required=True)
    p.add_argument("--machine-before", type=float, required=True)
    p.add_argument("--machine-after", type=float, required=True)
    p.add_argument("--tools-cpu", type=float, required=True)
    p.set_defaults(run=record)

    p = sub.add_parser("summary")
    p.add_argument("results")
    p.set_defaults(run=summary)

    args = parser.parse_args()
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
