"""X.400 relay throughput: two Waypost processes, A -> B over P1, and the same over SMTP.

    .venv/bin/python bench/x400_relay.py                        # 5000 messages, 1/4/16 assocs
    .venv/bin/python bench/x400_relay.py --messages 2000 --associations 4 --no-smtp
    .venv/bin/python bench/x400_relay.py --profile DIR          # py-spy --gil of A and B

Each run starts from fresh data directories: N messages of 1 KiB (P22 IPMs to
one O/R address of B, or RFC 822 messages to one mailbox of B's local domain)
are enqueued into A's MTA database before A starts; then B and A are started
as separate `waypost serve` processes (log level warning: no per-message
events). The clock starts when A's listener answers (its queue manager starts
with it) and stops when B's local store (the X.400 store, or the Maildir) holds
all N messages. Printed per run: messages/s end to end, and CPU seconds (user
+ system) of A and B per 1,000 messages. A relays over P1 in 1988 mode with
passwords, `threshold = 1` and `max_associations` = each of --associations;
the SMTP run relays to B's SMTP listener through an `smtp:` route (no TLS).
The queue allows --concurrency deliveries per next hop. --profile writes
py-spy's collapsed stacks (`--gil`: the thread holding the GIL, a CPU view)
of A and B for each run into DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from waypost.message import ContentType, Envelope, Message, Recipient
from waypost.nexthop import parse_next_hop
from waypost.store import NewMessage, SQLiteStore
from waypost.x400.ipm import build_ipm

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
ORIGINATOR = "/C=GB/ADMD= /PRMD=A/S=Sender/"
RECIPIENT = "/C=GB/ADMD= /PRMD=B/S=Jones/"
MAIL_RECIPIENT = "jones@b.example"
SIZE = 1024
TIMEOUT = 600.0


@dataclass(frozen=True)
class Result:
    name: str
    messages: int
    seconds: float
    cpu_a: float
    cpu_b: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def per_1000(self, cpu: float) -> float:
        return cpu * 1000 / self.messages


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def x400_message(i: int) -> NewMessage:
    text = "x" * 800
    content = build_ipm(
        originator=ORIGINATOR,
        recipients=[RECIPIENT],
        subject=f"bench {i}",
        text=text,
        ipm_id=f"bench-{i}",
    )
    # Pad the IPM's text so that the P22 content is 1 KiB.
    content = build_ipm(
        originator=ORIGINATOR,
        recipients=[RECIPIENT],
        subject=f"bench {i}",
        text=text + "x" * max(0, SIZE - len(content)),
        ipm_id=f"bench-{i}",
    )
    envelope = Envelope(
        mts_id=f"/C=GB/ADMD= /PRMD=A/;bench-{i}",
        originator=ORIGINATOR,
        recipients=[Recipient(address=RECIPIENT, originally_specified_number=1)],
        content_type=ContentType.P22,
    )
    return NewMessage(
        message=Message(envelope=envelope, content=content),
        next_hops=[parse_next_hop("x400:B-MTA")],
    )


def smtp_message(i: int, hop: str) -> NewMessage:
    head = f"From: sender@a.example\r\nTo: {MAIL_RECIPIENT}\r\nSubject: bench {i}\r\n\r\n".encode()
    content = head + b"x" * (SIZE - len(head) - 2) + b"\r\n"
    envelope = Envelope(
        mts_id=f"<bench-{i}@a.example>",
        originator="sender@a.example",
        recipients=[Recipient(address=MAIL_RECIPIENT)],
    )
    return NewMessage(
        message=Message(envelope=envelope, content=content), next_hops=[parse_next_hop(hop)]
    )


async def enqueue(path: str, messages: list[NewMessage]) -> None:
    store = await SQLiteStore.open(path)
    pending = iter(messages)

    async def producer() -> None:
        for new in pending:
            await store.enqueue(new)

    await asyncio.gather(*(producer() for _ in range(100)))
    await store.close()


@dataclass(frozen=True)
class Ports:
    a_x400: int
    b_x400: int
    b_smtp: int


def config_b(data: Path, ports: Ports) -> str:
    return f"""\
[server]
hostname = "b.example"
data_dir = "{data}"
[log]
level = "warning"
[queue]
poll_interval = 0.05
[smtp]
listen = ["127.0.0.1:{ports.b_smtp}"]
[local]
domains = ["b.example"]
oraddresses = ["/C=GB/ADMD= /PRMD=B/"]
[x400]
listen = ["127.0.0.1:{ports.b_x400}"]
mta_name = "B-MTA"
global_domain = "/C=GB/ADMD= /PRMD=B/"
[[x400.peer]]
name = "A-MTA"
address = "127.0.0.1:{ports.a_x400}"
peer_password = "secret-a"
our_password = "secret-b"
"""


def config_a(data: Path, ports: Ports, associations: int, concurrency: int) -> str:
    return f"""\
[server]
hostname = "a.example"
data_dir = "{data}"
[log]
level = "warning"
[queue]
poll_interval = 0.05
delivery_concurrency = {max(64, concurrency * 2)}
destination_concurrency = {concurrency}
[smtp]
listen = []
[smtp_client]
tls = "none"
[local]
domains = ["a.example"]
[x400]
listen = ["127.0.0.1:{ports.a_x400}"]
mta_name = "A-MTA"
global_domain = "/C=GB/ADMD= /PRMD=A/"
[[x400.peer]]
name = "B-MTA"
address = "127.0.0.1:{ports.b_x400}"
mode = "1988"
our_password = "secret-a"
peer_password = "secret-b"
max_associations = {associations}
threshold = 1
[[route]]
match = "/C=GB/ADMD= /PRMD=B/"
next_hop = "x400:B-MTA"
"""


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a Waypost process exited with {proc.returncode}")
        with socket.socket() as s, contextlib.suppress(OSError):
            s.settimeout(0.2)
            s.connect(("127.0.0.1", port))
            return
        time.sleep(0.002)
    raise SystemExit(f"nothing listens on port {port} after {timeout:g} s")


def serve(config: Path, log: Path, prefix: Sequence[str] = ()) -> subprocess.Popen[bytes]:
    """`waypost serve` with this configuration (under `prefix`, such as valgrind's)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [*prefix, PYTHON, "-m", "waypost.cli.main", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )


def cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def delivered(root: Path) -> int:
    total = 0
    with contextlib.suppress(OSError):
        for box in os.scandir(root):
            with contextlib.suppress(OSError):
                total += sum(1 for _ in os.scandir(os.path.join(box.path, "new")))
    return total


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def profile(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    if not Path(spy).exists():
        print("py-spy not found: no profile", file=sys.stderr)
        return None
    return subprocess.Popen(
        [
            spy,
            "record",
            "--pid",
            str(pid),
            "--gil",
            "--rate",
            "200",
            "--format",
            "raw",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def measure(
    run_dir: Path,
    ports: Ports,
    target: Path,
    n: int,
    label: str,
    profile_dir: str | None,
    timeout: float = TIMEOUT,
) -> tuple[float, float, float]:
    """Start B, then A (configured in run_dir as b.toml and a.toml); (seconds, CPU of A, CPU
    of B) from A's listener answering to `target` holding n messages. With `profile_dir`,
    py-spy records both. The logs' warnings are pointed out."""
    b = serve(run_dir / "b.toml", run_dir / "b.log")
    spies: list[subprocess.Popen[bytes]] = []
    a: subprocess.Popen[bytes] | None = None
    try:
        wait_port(ports.b_x400, b)
        wait_port(ports.b_smtp, b)
        b_proc = psutil.Process(b.pid)
        if profile_dir:
            spy = profile(b.pid, Path(profile_dir) / f"{label}-b.txt")
            spies += [spy] if spy else []
        a = serve(run_dir / "a.toml", run_dir / "a.log")
        a_proc = psutil.Process(a.pid)
        wait_port(ports.a_x400, a)
        t0 = time.perf_counter()
        a0, b0 = cpu(a_proc), cpu(b_proc)
        if profile_dir:
            spy = profile(a.pid, Path(profile_dir) / f"{label}-a.txt")
            spies += [spy] if spy else []
        while (count := delivered(target)) < n:
            if time.perf_counter() - t0 > timeout:
                raise SystemExit(f"{label}: only {count} of {n} messages at B after {timeout:g} s")
            if a.poll() is not None or b.poll() is not None:
                raise SystemExit(f"{label}: a Waypost process exited; logs in {run_dir}")
            time.sleep(0.05)  # listing a directory of thousands costs: not too often
        t1 = time.perf_counter()
        a1, b1 = cpu(a_proc), cpu(b_proc)
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        if a is not None:
            stop(a)
        stop(b)
    for log in ("a.log", "b.log"):
        text = (run_dir / log).read_text(errors="replace")
        if " WARNING " in text or " ERROR " in text or "Traceback" in text:
            print(f"  ({label}: {log} has warnings or errors: {run_dir / log})", file=sys.stderr)
    return t1 - t0, a1 - a0, b1 - b0


def run(
    work: Path, name: str, round_: int, n: int, associations: int, args: argparse.Namespace
) -> Result:
    run_dir = work / f"{name}.{round_}"
    a_data, b_data = run_dir / "a", run_dir / "b"
    for d in (a_data, b_data):
        d.mkdir(parents=True, mode=0o700)
    ports = Ports(a_x400=free_port(), b_x400=free_port(), b_smtp=free_port())
    (run_dir / "a.toml").write_text(config_a(a_data, ports, associations, args.concurrency))
    (run_dir / "b.toml").write_text(config_b(b_data, ports))
    if name == "smtp":
        hop = f"smtp:[127.0.0.1]:{ports.b_smtp}"
        messages = [smtp_message(i, hop) for i in range(n)]
        target = b_data / "maildir"
    else:
        messages = [x400_message(i) for i in range(n)]
        target = b_data / "x400store"
    asyncio.run(enqueue(str(a_data / "mta.db"), messages))

    seconds, cpu_a, cpu_b = measure(run_dir, ports, target, n, f"{name}.{round_}", args.profile)
    return Result(name=name, messages=n, seconds=seconds, cpu_a=cpu_a, cpu_b=cpu_b)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--associations", default="1,4,16", help="comma-separated")
    parser.add_argument("--concurrency", type=int, default=32, help="deliveries per next hop")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--no-smtp", action="store_true", help="skip the SMTP comparison")
    parser.add_argument("--profile", metavar="DIR", help="py-spy raw profiles of A and B here")
    parser.add_argument("--dir", help="work directory (default: a fresh temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    work = Path(args.dir or tempfile.mkdtemp(prefix="waypost-x400-relay."))
    work.mkdir(parents=True, exist_ok=True)
    names = [f"x400-{int(k)}" for k in args.associations.split(",")]
    if not args.no_smtp:
        names.append("smtp")
    print(
        f"{args.messages} messages of {SIZE} B, A -> B; {os.cpu_count()} CPUs; "
        f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}; Python {sys.version.split()[0]}"
    )
    print(
        f"{'run':<10} {'assocs':>6} {'seconds':>8} {'msgs/s':>8} "
        f"{'CPU s/1000 A':>12} {'B':>6} {'A+B':>6}"
    )
    results: dict[str, list[Result]] = {name: [] for name in names}
    try:
        for r in range(args.rounds):
            for name in names:
                k = int(name.partition("-")[2] or 1)
                res = run(work, name, r, args.messages, k, args)
                results[name].append(res)
                assocs = str(k) if name != "smtp" else "-"
                print(
                    f"{name:<10} {assocs:>6} {res.seconds:>8.2f} {res.rate:>8,.0f} "
                    f"{res.per_1000(res.cpu_a):>12.2f} {res.per_1000(res.cpu_b):>6.2f} "
                    f"{res.per_1000(res.cpu_a + res.cpu_b):>6.2f}",
                    flush=True,
                )
    finally:
        if args.keep or args.dir:
            print(f"work directory: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    best = {name: max(rs, key=lambda x: x.rate) for name, rs in results.items()}
    base = best.get("smtp")
    if base is not None:
        print("\nbest of rounds, relative to SMTP:")
        for name, res in best.items():
            cpu_ratio = (res.cpu_a + res.cpu_b) / (base.cpu_a + base.cpu_b)
            print(
                f"  {name:<10} rate x{res.rate / base.rate:.2f}  CPU per message x{cpu_ratio:.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
