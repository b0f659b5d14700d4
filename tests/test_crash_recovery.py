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

from waypost.store import Database

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
