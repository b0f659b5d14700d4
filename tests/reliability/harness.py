"""Shared helpers for the reliability tests and bench/soak.py: `waypost serve` subprocesses
that are SIGKILLed and restarted under load, an smtp-sink, and delivery accounting.

The topology of a kill-under-load run (`run_kill_under_load`):

    smtplib (numbered) + smtp-source --SMTP--> M --SMTP--> smtp-sink (-d DIR)
    S (X.400, numbered) --------------P1-----> M --P1----> R (local X.400 store)

M (the middle MTA) is killed with SIGKILL at random moments and restarted; R and the
smtp-sink are killed once each too. At the end every acknowledged message (250 to our
SMTP client; event 1500 "delivered" in S for X.400, i.e. the RTSE transfer to M was
confirmed) must be at its sink. Duplicates are counted: at-least-once is acceptable.
Processes are stopped by their PID, never by name.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parent.parent
if str(TESTS) not in sys.path:  # for bench/soak.py
    sys.path.insert(0, str(TESTS))

from helpers import free_port  # noqa: E402

from waypost.message import ContentType, Envelope, Message, Recipient  # noqa: E402
from waypost.nexthop import parse_next_hop  # noqa: E402
from waypost.store import Database, NewMessage  # noqa: E402
from waypost.x400.ipm import build_ipm, summarize_ipm  # noqa: E402
from waypost.x400.p1_envelope import P1Message, decode_mts_apdu  # noqa: E402
from waypost.x400.p1_objects import add_trace  # noqa: E402

SMTP_SINK = "/usr/sbin/smtp-sink"
SMTP_SOURCE = "/usr/sbin/smtp-source"
SMTP_DOMAIN = "remote.example"
S_DOMAIN = "/C=GB/ADMD= /PRMD=S/"
R_DOMAIN = "/C=GB/ADMD= /PRMD=R/"
X400_ORIGINATOR = "/C=GB/ADMD= /PRMD=S/S=Smith/"
X400_RECIPIENT = "/C=GB/ADMD= /PRMD=R/S=Jones/"
DELIVERED = 1500  # event: message delivered to a recipient via a next hop


def tool(path: str) -> str | None:
    """The tool's path, or None when it is not installed."""
    return path if os.access(path, os.X_OK) else shutil.which(path)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


# --- processes -------------------------------------------------------------------------


class Serve:
    """One `waypost serve -c ROOT/waypost.toml` subprocess: start, SIGKILL, restart."""

    def __init__(self, root: Path, name: str, config: str, wait_port: int) -> None:
        self.root = root
        self.name = name
        root.mkdir(parents=True, exist_ok=True)
        self.config = root / "waypost.toml"
        self.config.write_text(config)
        self.wait_port = wait_port
        self.log_path = root / "serve.stderr"
        self.events_path = root / "data" / "events.jsonl"
        self.db_path = root / "data" / "mta.db"
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.starts = 0

    def start(self, timeout: float = 30.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, f"{self.name} is running"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(self.config)],
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, "WAYPOST_CONFIG": ""},
            )
        self.starts += 1
        deadline = time.monotonic() + timeout
        while not listening(self.wait_port):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name}: serve exited with {self.proc.returncode}:\n{self.stderr()}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: serve did not listen in time")
            time.sleep(0.02)

    def kill(self) -> None:
        """SIGKILL by PID; the pid file is left behind, as after a crash."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1

    def stop(self) -> int | None:
        """SIGTERM (SIGKILL after 20 s); the exit code, None when it was not running."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
            return None

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def events(self, event_id: int) -> list[dict[str, Any]]:
        if not self.events_path.exists():
            return []
        found = []
        for line in self.events_path.read_text(errors="replace").splitlines():
            try:
                doc = json.loads(line)
            except ValueError:
                continue  # the last line of a killed process may be cut
            if doc.get("id") == event_id:
                found.append(doc)
        return found

    def queued(self, next_hop: str = "") -> int:
        """Recipients still in the queue, for next hops starting with `next_hop` (read
        directly, read-only)."""
        if not self.db_path.exists():
            return 0
        try:
            conn = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=5)
            try:
                query = "SELECT count(*) FROM recipients WHERE next_hop LIKE ? || '%'"
                return int(conn.execute(query, (next_hop,)).fetchone()[0])
            finally:
                conn.close()
        except sqlite3.Error:
            return -1  # being recovered; not empty for our purposes


class Sink:
    """`smtp-sink -d DIR/%M. 127.0.0.1:PORT 100`: one file per transaction; SIGKILL, restart."""

    def __init__(self, directory: Path, binary: str, *, delay: int = 0) -> None:
        self.binary = binary
        # Seconds smtp-sink waits before it answers DATA (its -w): deliveries that last.
        self.delay = delay
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        user = ["-u", pwd.getpwuid(os.getuid()).pw_name] if os.geteuid() == 0 else []
        with (self.dir.parent / "sink.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    *user,
                    *(["-w", str(self.delay)] if self.delay else []),
                    "-d",
                    f"{self.dir}/%M.",
                    f"127.0.0.1:{self.port}",
                    "100",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        wait_for(lambda: listening(self.port), 10, "smtp-sink to listen")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.kills += 1

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def message_ids(self) -> collections.Counter[str]:
        """Message-ID values of every whole message dumped (a cut dump has no Message-ID)."""
        found: collections.Counter[str] = collections.Counter()
        for path in self.dir.iterdir():
            data = path.read_bytes()
            if not data.endswith(b"\n\n"):
                continue  # smtp-sink was killed while writing it: not acknowledged
            for line in data.split(b"\n"):
                if line.lower().startswith(b"message-id:"):
                    found[line.split(b":", 1)[1].strip().decode(errors="replace")] += 1
                    break
                if line in (b"", b"\r"):
                    break  # the end of the message's header
        return found


# --- configurations --------------------------------------------------------------------

COMMON = (
    "[queue]\npoll_interval = 0.1\nmin_backoff = 0.5\nmax_backoff = 1\n"
    "[store]\nlease_seconds = 30\n"
    "[smtp_client]\nconnect_timeout = 2\ncommand_timeout = 5\ndata_timeout = 5\n"
    "connection_cache_time = 1\n"
    '[log]\njson_file = "data/events.jsonl"\n'
)
PEER_TIMERS = (
    "open_interval = 0.5\ntransfer_interval = 0.5\nconnect_timeout = 2\nanswer_timeout = 5\n"
    "max_open_retries = 100000\nmax_transfer_retries = 1000\nrecovery_timeout = 5\n"
    "checkpoint_size = 1\nwindow_size = 3\nassociation_lifetime = 2\n"
)


def m_config(smtp_port: int, x400_port: int, r_port: int, sink_port: int) -> str:
    return (
        f'[server]\nhostname = "m.test"\ndata_dir = "data"\n{COMMON}'
        f'[smtp]\nlisten = ["127.0.0.1:{smtp_port}"]\n'
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "M-MTA"\n'
        'global_domain = "/C=GB/ADMD= /PRMD=M/"\n'
        '[[x400.peer]]\nname = "S-MTA"\naddress = "127.0.0.1:1"\n'
        'peer_password = "secret-s"\nour_password = "secret-m"\n' + PEER_TIMERS + "\n"
        f'[[x400.peer]]\nname = "R-MTA"\naddress = "127.0.0.1:{r_port}"\n'
        'our_password = "secret-m"\npeer_password = "secret-r"\n' + PEER_TIMERS + "\n"
        f'[[route]]\nmatch = "{SMTP_DOMAIN}"\nnext_hop = "smtp:[127.0.0.1]:{sink_port}"\n'
        f'[[route]]\nmatch = "{R_DOMAIN}"\nnext_hop = "x400:R-MTA"\n'
    )


def s_config(x400_port: int, m_port: int) -> str:
    return (
        f'[server]\nhostname = "s.test"\ndata_dir = "data"\n{COMMON}'
        "[smtp]\nlisten = []\n"
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "S-MTA"\n'
        f'global_domain = "{S_DOMAIN}"\n'
        f'[[x400.peer]]\nname = "M-MTA"\naddress = "127.0.0.1:{m_port}"\n'
        'our_password = "secret-s"\npeer_password = "secret-m"\n' + PEER_TIMERS + "\n"
        f'[[route]]\nmatch = "{R_DOMAIN}"\nnext_hop = "x400:M-MTA"\n'
    )


def r_config(x400_port: int) -> str:
    return (
        f'[server]\nhostname = "r.test"\ndata_dir = "data"\n{COMMON}'
        f'[local]\noraddresses = ["{R_DOMAIN}"]\n'
        "[smtp]\nlisten = []\n"
        f'[x400]\nlisten = ["127.0.0.1:{x400_port}"]\nmta_name = "R-MTA"\n'
        'global_domain = "/C=GB/ADMD= /PRMD=R/"\n'
        '[[x400.peer]]\nname = "M-MTA"\naddress = "127.0.0.1:1"\n'
        'peer_password = "secret-m"\nour_password = "secret-r"\n' + PEER_TIMERS
    )


# --- load ------------------------------------------------------------------------------


@dataclass
class Tally:
    """What one channel (smtp or x400) sent, had acknowledged, and what reached the sink."""

    sent: int = 0
    acked: set[str] = field(default_factory=set)
    delivered: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def duplicated(self) -> int:
        return sum(n - 1 for n in self.delivered.values() if n > 1)

    @property
    def lost(self) -> list[str]:
        return sorted(self.acked - set(self.delivered))


def smtp_message(key: str) -> str:
    return (
        f"From: load@client.test\r\nTo: x@{SMTP_DOMAIN}\r\nSubject: {key}\r\n"
        f"Message-ID: <{key}@client.test>\r\n\r\nBody of {key}.\r\n" + "filler line\r\n" * 20
    )


class SmtpSender(threading.Thread):
    """Sends `count` numbered messages, one connection reused; records each 250. With
    several `ports` (a cluster's nodes) a refused attempt moves to the next one, as a client
    with several MX hosts; `name` keeps the keys of several senders apart."""

    def __init__(
        self,
        ports: int | list[int],
        count: int,
        tally: Tally,
        pace: float,
        *,
        name: str = "",
        first: int = 0,
    ) -> None:
        super().__init__(daemon=True)
        self.ports = [ports] if isinstance(ports, int) else ports
        self.at = first
        self.name = name
        self.count = count
        self.tally = tally
        self.pace = pace
        self.failures = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        client: smtplib.SMTP | None = None
        for i in range(self.count):
            key = f"smtp-{self.name}{i:06d}"
            with self.lock:
                self.tally.sent += 1
            for _attempt in range(400):  # retry a message refused while its MTA was down
                try:
                    if client is None:
                        port = self.ports[self.at % len(self.ports)]
                        client = smtplib.SMTP("127.0.0.1", port, timeout=10)
                        client.ehlo("client.test")
                    refused = client.sendmail(
                        "load@client.test", [f"x@{SMTP_DOMAIN}"], smtp_message(key)
                    )
                    if refused == {}:
                        with self.lock:
                            self.tally.acked.add(f"<{key}@client.test>")
                    break
                except (OSError, smtplib.SMTPException):
                    self.failures += 1
                    if client is not None:
                        with contextlib.suppress(OSError):
                            client.close()
                    client = None
                    self.at += 1
                    time.sleep(0.05 if len(self.ports) > 1 else 0.1)
            time.sleep(self.pace)
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()


def x400_message(i: int) -> tuple[str, NewMessage]:
    subject = f"x400-{i:06d}"
    content = build_ipm(
        originator=X400_ORIGINATOR,
        recipients=[X400_RECIPIENT],
        subject=subject,
        text=f"Body of {subject}.\n" + "filler line\n" * 100,
        ipm_id=subject,
    )
    envelope = Envelope(
        mts_id=f"{S_DOMAIN};{subject}",
        originator=X400_ORIGINATOR,
        recipients=[Recipient(address=X400_RECIPIENT, originally_specified_number=1)],
        content_type=ContentType.P22,
        arrival=time.time(),
    )
    envelope = add_trace(envelope, S_DOMAIN, envelope.arrival)
    return subject, NewMessage(
        message=Message(envelope=envelope, content=content),
        next_hops=[parse_next_hop("x400:M-MTA")],
    )


class X400Submitter(threading.Thread):
    """Enqueues numbered X.400 messages into S's database in small batches, as
    `waypost submit` does, while S runs; maps S's message ids to subjects."""

    def __init__(
        self, s: Serve, count: int, tally: Tally, batch: int, pace: float, first: int = 0
    ) -> None:
        super().__init__(daemon=True)
        self.s = s
        self.count = count
        self.tally = tally
        self.batch = batch
        self.pace = pace
        self.first = first  # the first message's number (several senders, one sink)
        self.subjects: dict[int, str] = {}
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            db = Database.open(str(self.s.db_path))
            try:
                for start in range(0, self.count, self.batch):
                    with db.transaction():
                        for i in range(start, min(start + self.batch, self.count)):
                            subject, new = x400_message(self.first + i)
                            self.subjects[db.enqueue(new, time.time(), 3600)] = subject
                    self.tally.sent = len(self.subjects)
                    time.sleep(self.pace)
            finally:
                db.close()
        except BaseException as exc:
            self.error = exc

    def acknowledged(self) -> set[str]:
        """Subjects S logged as delivered to M (the RTSE transfer was confirmed)."""
        return {
            self.subjects[int(e["fields"]["message_id"])]
            for e in self.s.events(DELIVERED)
            if int(e["fields"]["message_id"]) in self.subjects
        }


class SmtpSource(threading.Thread):
    """Background load: smtp-source runs of `per_run` messages until stopped."""

    def __init__(self, binary: str, port: int, per_run: int) -> None:
        super().__init__(daemon=True)
        self.binary = binary
        self.port = port
        self.per_run = per_run
        self.halt = threading.Event()
        self.runs = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def run(self) -> None:
        while not self.halt.is_set():
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    *("-s", "2", "-m", str(self.per_run), "-l", "2048"),
                    *("-f", "bulk@src.example", "-t", f"bulk@{SMTP_DOMAIN}"),
                    f"127.0.0.1:{self.port}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.runs += 1
            self.halt.wait(0.2)

    def stop(self) -> None:
        self.halt.set()
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
        self.join(timeout=30)


def x400_delivered(store: Path) -> collections.Counter[str]:
    """Subjects of the messages in R's local X.400 store."""
    found: collections.Counter[str] = collections.Counter()
    for path in store.glob("*/new/*"):
        apdu = decode_mts_apdu(path.read_bytes())
        if isinstance(apdu, P1Message):
            subject = summarize_ipm(apdu.content).subject
            found[str(subject)] += 1
    return found


# --- the run ---------------------------------------------------------------------------


@dataclass
class Result:
    smtp: Tally
    x400: Tally
    kills: dict[str, int]
    mid_flow_kills: dict[str, int]
    under_load_kills: int
    client_retries: int
    bulk_runs: int
    seconds: float
    notes: list[str] = field(default_factory=list)

    def table(self) -> str:
        kills = ", ".join(f"{k} {n}" for k, n in self.kills.items())
        mid = ", ".join(f"{k} {n}" for k, n in self.mid_flow_kills.items())
        rows = [
            f"kills: {kills}; of M: {self.under_load_kills} while clients sent; "
            f"with messages for the victim in M's queue: {mid}; "
            f"smtp-source runs {self.bulk_runs}; {self.seconds:.1f} s",
        ]
        return "\n".join(rows + tally_rows(self.smtp, self.x400) + self.notes)


def tally_rows(smtp: Tally, x400: Tally) -> list[str]:
    """The accounting of both channels, as a table's lines."""
    rows = [f"{'channel':<8}{'sent':>8}{'acked':>8}{'delivered':>11}{'duplicated':>12}{'lost':>6}"]
    for name, t in (("smtp", smtp), ("x400", x400)):
        rows.append(
            f"{name:<8}{t.sent:>8}{len(t.acked):>8}{len(set(t.delivered)):>11}"
            f"{t.duplicated:>12}{len(t.lost):>6}"
        )
    return rows


def run_kill_under_load(
    root: Path,
    *,
    seed: int,
    smtp_messages: int,
    x400_messages: int,
    m_kills: int,
    r_kills: int = 1,
    sink_kills: int = 1,
    kill_gap: tuple[float, float] = (1.0, 3.0),
    x400_batch: int = 5,
    bulk: bool = True,
    drain_timeout: float = 60.0,
) -> Result:
    """The whole run. The load is paced to last as long as the kill plan (gaps drawn from
    `kill_gap`, seeded), so that every kill lands while messages are flowing."""
    sink_binary = tool(SMTP_SINK)
    assert sink_binary, f"{SMTP_SINK} is not installed"
    began = time.monotonic()
    rng = random.Random(seed)
    sink = Sink(root / "sink", sink_binary)
    m_smtp, m_x400, r_x400, s_x400 = free_port(), free_port(), free_port(), free_port()
    r = Serve(root / "r", "R", r_config(r_x400), r_x400)
    m = Serve(root / "m", "M", m_config(m_smtp, m_x400, r_x400, sink.port), m_smtp)
    s = Serve(root / "s", "S", s_config(s_x400, m_x400), s_x400)
    smtp, x400 = Tally(), Tally()
    source_binary = tool(SMTP_SOURCE) if bulk else None
    bulk_load = SmtpSource(source_binary, m_smtp, 20) if source_binary else None
    mid_flow = {"M": 0, "R": 0, "sink": 0}
    under_load = 0
    processes: list[Serve] = [r, m, s]
    # The kill plan: M m_kills times, R and the sink in between, in a seeded order.
    plan = ["M"] * m_kills + ["R"] * r_kills + ["sink"] * sink_kills
    rng.shuffle(plan)
    gaps = [rng.uniform(*kill_gap) for _ in plan]
    downtimes = [rng.uniform(0.0, 0.5) for _ in plan]
    # A restart of M takes about a second; the load ends a little after the last kill.
    span = sum(gaps) + sum(downtimes) + 1.0 * len(plan) + 1.0
    try:
        sink.start()
        for proc in processes:
            proc.start()
        sender = SmtpSender(m_smtp, smtp_messages, smtp, span / max(smtp_messages, 1))
        batches = max(1, -(-x400_messages // x400_batch))
        submitter = X400Submitter(s, x400_messages, x400, x400_batch, span / batches)
        sender.start()
        submitter.start()
        if bulk_load is not None:
            bulk_load.start()
        for victim, gap, downtime in zip(plan, gaps, downtimes, strict=True):
            time.sleep(gap)
            # Aim at a moment when M holds accepted messages not yet relayed (to the
            # victim's side): it relays fast and its queue is often empty. Give up after 1 s.
            hop = {"M": "", "R": "x400:", "sink": "smtp:"}[victim]
            aim = time.monotonic() + 1.0
            while m.queued(hop) == 0 and time.monotonic() < aim:
                time.sleep(0.002)
            if m.queued(hop) != 0:
                mid_flow[victim] += 1
            if victim == "M":
                if sender.is_alive() or submitter.is_alive():
                    under_load += 1
                m.kill()
                time.sleep(downtime)
                m.start()
            elif victim == "R":
                r.kill()
                time.sleep(downtime)
                r.start()
            else:
                sink.kill()
                time.sleep(downtime)
                sink.start()
        sender.join(timeout=drain_timeout)
        submitter.join(timeout=drain_timeout)
        assert not sender.is_alive() and not submitter.is_alive(), "the load did not finish"
        if submitter.error is not None:
            raise submitter.error
        if bulk_load is not None:
            bulk_load.stop()

        def drained() -> bool:
            x400.acked = submitter.acknowledged()
            return s.queued() == 0 and m.queued() == 0 and len(x400.acked) == x400_messages

        try:
            wait_for(drained, drain_timeout, "the queues of S and M to drain")
        except AssertionError as exc:
            notes = [f"NOT DRAINED: {exc}; S {s.queued()}, M {m.queued()} recipients queued"]
        else:
            notes = []
        x400.acked = submitter.acknowledged()
        smtp.delivered = sink.message_ids()
        x400.delivered = x400_delivered(r.root / "data" / "x400store")
    finally:
        if bulk_load is not None:
            bulk_load.stop()
        for proc in processes:
            proc.stop()
        sink.stop()
    # The bulk load's messages are not ours to count.
    smtp.delivered = collections.Counter(
        {k: n for k, n in smtp.delivered.items() if k.startswith("<smtp-")}
    )
    notes.append(
        f"smtp client: {sender.failures} attempts failed (M down) and were retried; "
        f"M started {m.starts}x, R {r.starts}x"
    )
    for proc in processes:
        if "Traceback" in proc.stderr():
            notes.append(f"{proc.name}: a Traceback in {proc.log_path}")
    return Result(
        smtp=smtp,
        x400=x400,
        kills={"M": m.kills, "R": r.kills, "sink": sink.kills},
        mid_flow_kills=mid_flow,
        under_load_kills=under_load,
        client_retries=sender.failures,
        bulk_runs=bulk_load.runs if bulk_load is not None else 0,
        seconds=time.monotonic() - began,
        notes=notes,
    )
