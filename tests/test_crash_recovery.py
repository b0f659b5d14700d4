"""SIGKILL while enqueuing: every enqueue that returned is in the database after restart."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from waypost.message import Envelope, Message, Recipient
from waypost.nexthop import LOCAL
from waypost.store import Database, NewMessage

HERE = Path(__file__).parent


def run_and_kill(db_path: Path, producers: int, acks_before_kill: int) -> list[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "crash_enqueuer.py"), str(db_path), str(producers)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    try:
        while len(acked) < acks_before_kill and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            acked.append(line.decode().strip())
        os.kill(proc.pid, signal.SIGKILL)
        # Lines the child printed before it died were acknowledged too.
        rest, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    acked += [x for x in rest.decode().splitlines() if x.strip()]
    assert proc.returncode == -signal.SIGKILL, err.decode()
    return acked


@pytest.mark.parametrize("producers", [1, 50])
def test_every_acknowledged_enqueue_survives_sigkill(tmp_path: Path, producers: int) -> None:
    db_path = tmp_path / "mta.db"
    rng = random.Random(producers)
    all_acked: list[str] = []
    for _round in range(3):
        acked = run_and_kill(db_path, producers, rng.randint(200, 1500))
        assert acked, "the enqueuer acknowledged nothing before it was killed"
        all_acked += acked
        # Restart: the database opens (recovering the WAL) and holds every acknowledged message.
        db = Database.open(str(db_path))
        stored = {row[0] for row in db.conn.execute("SELECT mts_id FROM messages")}
        assert db.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        missing = [m for m in all_acked if m not in stored]
        assert missing == [], f"{len(missing)} acknowledged messages lost"
    with sqlite3.connect(db_path) as conn:
        # Every message is whole: its recipient and content rows came in the same commit.
        orphans = conn.execute(
            "SELECT count(*) FROM messages m WHERE NOT EXISTS "
            "(SELECT 1 FROM recipients r WHERE r.message_id = m.id) OR NOT EXISTS "
            "(SELECT 1 FROM content c WHERE c.message_id = m.id)"
        ).fetchone()[0]
    assert orphans == 0


def test_serve_killed_mid_delivery_delivers_everything_after_restart(tmp_path: Path) -> None:
    """Leases held by a killed `serve` come back: every queued message is delivered."""
    config = tmp_path / "waypost.toml"
    config.write_text(
        '[server]\ndata_dir = "data"\n[queue]\npoll_interval = 0.1\n'
        "[smtp]\nlisten = []\n[x400]\nlisten = []\n"
    )
    (tmp_path / "data").mkdir(mode=0o700)
    db = Database.open(str(tmp_path / "data" / "mta.db"))
    total = 300
    with db.transaction():
        for i in range(total):
            db.enqueue(_local_message(i), time.time(), 3600)
    db.close()
    maildir = tmp_path / "data" / "maildir" / "bob" / "new"

    def delivered() -> list[Path]:
        return list(maildir.iterdir()) if maildir.exists() else []

    serve = [sys.executable, "-m", "waypost.cli.main", "serve", "-c", str(config)]
    proc = subprocess.Popen(serve, cwd=tmp_path, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(delivered()) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.kill()
    proc.wait(timeout=30)
    assert 0 < len(delivered()) < total, "the kill should land mid-delivery"
    proc = subprocess.Popen(serve, cwd=tmp_path, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _unique_bodies(delivered()) < total and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert _unique_bodies(delivered()) == total
    with sqlite3.connect(tmp_path / "data" / "mta.db") as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


def _local_message(i: int) -> NewMessage:
    envelope = Envelope(
        mts_id=f"m{i}@test", originator="a@test", recipients=[Recipient(address="bob@localhost")]
    )
    content = f"Subject: {i}\r\n\r\nmessage number {i}\r\n".encode()
    return NewMessage(message=Message(envelope=envelope, content=content), next_hops=[LOCAL])


def _unique_bodies(files: list[Path]) -> int:
    # At-least-once: a message may land twice after a kill, never zero times.
    return len({f.read_bytes().split(b"\n\n", 1)[-1] for f in files})
