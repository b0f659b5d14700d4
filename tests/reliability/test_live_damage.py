"""Damage the MTA database under a running `waypost serve`, the ways disks and bugs do.

Each damaged object is quarantined (event 1201) or, for a lease of a dead worker, queued
again (event 1204); everything else is delivered and the process never exits. Afterwards
`waypost check --repair` leaves a database that checks clean. A torn page in a stopped
database stops `serve` at start-up with exit 76 and a pointer to the recovery procedure.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import corrupt
import msgspec
import pytest
from helpers import free_port

from waypost.message import Envelope, Message, Recipient
from waypost.nexthop import parse_next_hop
from waypost.service import EXIT_DATABASE_UNUSABLE
from waypost.store import Database
from waypost.store.base import NewMessage

pytestmark = pytest.mark.interop

TOTAL = 50
SMTP_SINK = "/usr/sbin/smtp-sink"


# -- plumbing ---------------------------------------------------------------------------------


def wait_for(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def waypost(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "waypost.cli.main", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "WAYPOST_CONFIG": ""},
    )
    assert "Traceback" not in result.stderr, result.stderr
    return result


def write(db_path: Path, sql: str, params: tuple[object, ...]) -> int:
    """One short autocommit statement behind Waypost's back; retried while the MTA writes."""
    deadline = time.monotonic() + 20
    while True:
        conn = sqlite3.connect(db_path, timeout=0.2, isolation_level=None)
        try:
            return conn.execute(sql, params).rowcount
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise
        finally:
            conn.close()
        time.sleep(0.02)


def query(db_path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


def body(number: int) -> bytes:
    return f"Subject: {number}\r\n\r\nmessage number {number:04d}\r\n".encode()


def new_message(number: int, hop: str) -> NewMessage:
    envelope = Envelope(
        mts_id=f"live{number}@waypost.test",
        originator="alice@origin.test",
        recipients=[Recipient(address=f"rcpt{number}@dest.test")],
    )
    return NewMessage(
        message=Message(envelope=envelope, content=body(number)), next_hops=[parse_next_hop(hop)]
    )


class Sink:
    """smtp-sink dumping every transaction into a directory; stopped by its PID."""

    def __init__(self, directory: Path, port: int) -> None:
        self.dir, self.port = directory, port
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        user = ["-u", pwd.getpwuid(os.getuid()).pw_name] if os.geteuid() == 0 else []
        self.proc = subprocess.Popen(
            [SMTP_SINK, *user, "-d", f"{self.dir}/%M.", f"127.0.0.1:{self.port}", "100"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)

    def numbers(self) -> list[int]:
        """The message numbers delivered so far (duplicates kept)."""
        found = []
        for path in self.dir.iterdir():
            data = path.read_bytes()
            at = data.find(b"message number ")
            if at >= 0:
                found.append(int(data[at + 15 : at + 19]))
        return found


@pytest.fixture
def sink_binary() -> str:
    if shutil.which(SMTP_SINK) is None:
        pytest.skip("needs Postfix's smtp-sink")
    return SMTP_SINK


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def config_file(root: Path, sink_port: int, **queue: float) -> Path:
    settings = {"poll_interval": 0.1, "min_backoff": 2, "max_backoff": 2, **queue}
    config = root / "waypost.toml"
    config.write_text(
        '[server]\nhostname = "live.test"\ndata_dir = "data"\n'
        '[log]\njson_file = "data/events.jsonl"\n'
        "[queue]\n"
        + "".join(f"{k} = {v}\n" for k, v in settings.items())
        + "[smtp]\nlisten = []\n[x400]\nlisten = []\n"
        "[smtp_client]\nconnect_timeout = 2\nconnection_cache_time = 0.5\n"
        '[[route]]\nmatch = "dest.test"\n'
        f'next_hop = "smtp:[127.0.0.1]:{sink_port}"\n'
    )
    return config


def serve(root: Path, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)],
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            env={**os.environ, "WAYPOST_CONFIG": ""},
        )


# -- damage under a running MTA ----------------------------------------------------------------


def test_damage_under_a_running_mta_is_quarantined_and_the_rest_delivered(
    tmp_path: Path, sink_binary: str, procs: list[subprocess.Popen[bytes]]
) -> None:
    sink_port = free_port()
    config = config_file(tmp_path, sink_port)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db_path = data / "mta.db"
    event_log = data / "events.jsonl"
    hop = f"smtp:[127.0.0.1]:{sink_port}"
    db = Database.open(str(db_path))
    with db.transaction():
        ids = [db.enqueue(new_message(i, hop), time.time(), 3600) for i in range(TOTAL)]
    db.close()
    number_of = {mid: i for i, mid in enumerate(ids)}
    rid_of = dict(query(db_path, "SELECT message_id, id FROM recipients"))

    proc = serve(tmp_path, config, tmp_path / "serve.log")
    procs.append(proc)
    # Nothing listens at the next hop yet: every message is deferred, tried or held back
    # with the others for the hop (it is down).
    wait_for(
        lambda: (
            query(
                db_path,
                "SELECT count(*) FROM recipients WHERE state = 'deferred' "
                "AND last_error IS NOT NULL",
            )[0][0]
            == TOTAL
        ),
        30,
        "every recipient deferred once",
    )

    # Damage one object each, only while its recipient waits (deferred, not leased): one
    # statement each, so the MTA sees the row either whole before or damaged after.
    spare = iter(ids)
    waiting = (
        "EXISTS (SELECT 1 FROM recipients AS r WHERE r.message_id = {table}.{column} "
        "AND r.state = 'deferred' AND r.due_at > ?)"
    )

    def damage(sql: str, values: tuple[object, ...]) -> int:
        for mid in spare:
            if write(db_path, sql, (*values, mid, time.time() + 0.3)) == 1:
                return mid
        raise AssertionError("no message left to damage")

    garbled = damage(
        "UPDATE messages SET envelope = ? WHERE id = ? AND "
        + waiting.format(table="messages", column="id"),
        (b"\xc1\x00\xffgarbage\x13\x37" * 3,),
    )
    mistyped = damage(
        "UPDATE messages SET envelope = ? WHERE id = ? AND "
        + waiting.format(table="messages", column="id"),
        (msgspec.msgpack.encode({"mts_id": 12345, "recipients": "everyone"}),),
    )
    truncated = damage(
        "UPDATE content SET data = substr(data, 1, 10) WHERE message_id = ? AND "
        + waiting.format(table="content", column="message_id"),
        (),
    )

    def recipient_damage(assignments: str, values: tuple[object, ...]) -> int:
        return damage(
            f"UPDATE recipients SET {assignments} WHERE message_id = ? AND state = 'deferred' "
            "AND due_at > ?",
            values,
        )

    missing_message = 10**6
    orphaned = recipient_damage("message_id = ?", (missing_message,))
    bogus = recipient_damage("state = 'bogus'", ())
    bad_index = recipient_damage("rcpt_index = 99", ())
    bad_text = recipient_damage("next_hop = CAST(X'736d74703aff' AS TEXT)", ())  # not UTF-8
    now = time.time()
    dead = "otherhost:99999:dead"
    expired_lease = recipient_damage(
        "state = 'leased', lease_owner = ?, due_at = ?", (dead, now - 60)
    )
    short_lease = recipient_damage("state = 'leased', lease_owner = ?, due_at = ?", (dead, now + 4))
    stuck_lease = recipient_damage(
        "state = 'leased', lease_owner = ?, due_at = ?", (dead, now + 86400)
    )

    # The next hop comes up: everything not damaged (and the two leases that run out) goes.
    sink = Sink(tmp_path / "sink", sink_port)
    sink.start()
    try:
        quarantined_messages = {garbled, mistyped, truncated}
        quarantined_recipients = {rid_of[m] for m in (bogus, bad_index, bad_text, orphaned)}
        never = quarantined_messages | {orphaned, bogus, bad_index, bad_text, stuck_lease}
        expected = {number_of[mid] for mid in ids if mid not in never}

        wait_for(lambda: set(sink.numbers()) >= expected, 60, "every undamaged message")

        def quarantine_events() -> set[tuple[str, int]]:
            return {
                (e["fields"]["kind"], e["fields"]["object_id"])
                for e in events(event_log)
                if e["id"] == 1201
            }

        want = {("message", m) for m in quarantined_messages} | {
            ("recipient", r) for r in quarantined_recipients
        }
        wait_for(lambda: quarantine_events() >= want, 15, "event 1201 for every damaged object")
        time.sleep(1.0)  # a little longer: nothing else may be quarantined or delivered
        assert quarantine_events() == want
        assert proc.poll() is None, "waypost serve exited"
    finally:
        sink.stop()
    delivered = sink.numbers()
    assert set(delivered) == expected
    assert {number_of[m] for m in never}.isdisjoint(delivered)
    reasons = {
        (e["fields"]["kind"], e["fields"]["object_id"]): e["fields"]["reason"]
        for e in events(event_log)
        if e["id"] == 1201
    }
    assert str(missing_message) in reasons[("recipient", rid_of[orphaned])]
    assert "bogus" in reasons[("recipient", rid_of[bogus])]
    assert "99" in reasons[("recipient", rid_of[bad_index])]
    assert "10 bytes" in reasons[("message", truncated)]
    released = {e["fields"]["recipient_id"] for e in events(event_log) if e["id"] == 1204}
    assert {rid_of[expired_lease], rid_of[short_lease]} <= released
    assert rid_of[stuck_lease] not in released
    assert not [e for e in events(event_log) if e["severity"] == "CRITICAL"]

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    log = (tmp_path / "serve.log").read_text(errors="replace")
    assert "Traceback" not in log, log

    # Offline: the repair sets aside what the MTA could not see (the message that lost its
    # recipient) and queues the stuck lease again; then the database checks clean.
    repair = waypost(tmp_path, "check", "--repair", "-c", str(config))
    assert repair.returncode in (0, 3), repair.stdout + repair.stderr
    check = waypost(tmp_path, "check", "-c", str(config))
    assert check.returncode == 0, check.stdout + check.stderr
    assert query(db_path, "SELECT state FROM recipients WHERE id = ?", (rid_of[stuck_lease],)) != [
        ("leased",)
    ]
    assert query(db_path, "PRAGMA integrity_check") == [("ok",)]


# -- a torn page at start-up -------------------------------------------------------------------


@pytest.mark.parametrize("last_stop", ["clean", "unclean"])
def test_torn_page_stops_serve_at_start_up(tmp_path: Path, last_stop: str) -> None:
    """After a clean stop (the quick check at start-up) and after an unclean one (the
    check with repair, which must not write to the file)."""
    config = config_file(tmp_path, free_port())
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    db_path = data / "mta.db"
    corrupt.build_database(db_path, 300)
    (data / "waypost.pid").write_text("" if last_stop == "clean" else "99999\n")
    with corrupt.raw(db_path) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
    corrupt.tear_page(db_path, pages // 2)
    before = corrupt.file_bytes(db_path)
    result = subprocess.run(
        [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "WAYPOST_CONFIG": ""},
    )
    assert result.returncode == EXIT_DATABASE_UNUSABLE == 76, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert str(db_path) in result.stderr
    assert "damaged" in result.stderr and "recovery procedure in docs/operations.md" in (
        result.stderr
    ), result.stderr
    assert corrupt.file_bytes(db_path) == before
    assert any(e["id"] == 1203 for e in events(data / "events.jsonl"))
