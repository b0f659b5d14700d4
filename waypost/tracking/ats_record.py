"""The ATS record: every ATS message transferred, kept whole — header, addresses and text —
for the period an air navigation service provider must keep it (ICAO Annex 10 Volume II
§3.5.1.5: at least 30 days), in an SQLite file of its own beside the tracking journal.

A record is written when the message is transferred (received from or sent to an AFTN
station, received or transferred over P1), with synchronous=FULL, before the transfer goes
on: a record once written survives a power cut. It is found by `waypost track --ats`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from waypost import events
from waypost.amhs.record import ATSRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS ats_messages (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    at              REAL NOT NULL,
    direction       TEXT NOT NULL,
    channel         TEXT NOT NULL,
    message_id      INTEGER,
    mts_id          TEXT,
    transmission_id TEXT,
    priority        TEXT NOT NULL,
    filing_time     TEXT NOT NULL,
    originator      TEXT NOT NULL,
    addressees      TEXT NOT NULL,
    ohi             TEXT NOT NULL DEFAULT '',
    text            TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ats_at ON ats_messages (at);
CREATE INDEX IF NOT EXISTS ats_mts ON ats_messages (mts_id) WHERE mts_id IS NOT NULL;
"""
COLUMNS = (
    "at, direction, channel, message_id, mts_id, transmission_id, priority, filing_time, "
    "originator, addressees, ohi, text"
)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    is_new = not os.path.exists(path)
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    if is_new:
        os.chmod(path, 0o600)
    conn.execute("PRAGMA journal_mode = WAL")
    # FULL: a record is a legal record; once written, a power cut does not take it back.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.executescript(SCHEMA)
    return conn


class ATSRecorder:
    """Writes ATS records in a thread of its own, with group commit: `record` returns once
    its record is durable, and the records of messages transferred together share one
    commit (the event loop never waits for the disk). Records past `retention` seconds
    are pruned at most once a minute."""

    PRUNE_EVERY = 60.0

    def __init__(self, path: str | Path, retention: float) -> None:
        self.path = Path(path)
        self.retention = retention
        self._conn = connect(self.path)
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._pruned_at = 0.0
        self.failed = 0
        self._thread = threading.Thread(target=self._run, name="waypost-ats-record", daemon=True)
        self._thread.start()

    async def record(self, record: ATSRecord) -> None:
        """Write one record; returns once it is durable. A failure is an event, not an
        exception: the message goes on regardless."""
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()
        self._queue.put(_Pending(record, written, loop))
        await written

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            with contextlib.suppress(queue.Empty):
                while len(batch) < 1000:
                    more = self._queue.get_nowait()
                    if more is None:
                        stop = True
                        break
                    batch.append(more)
            self._write([pending.record for pending in batch])
            for pending in batch:
                # (a loop closed meanwhile has no one waiting any more)
                with contextlib.suppress(RuntimeError):
                    pending.loop.call_soon_threadsafe(_resolve, pending.written)
            if stop:
                return

    def _write(self, records: list[ATSRecord]) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                f"INSERT INTO ats_messages ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                [record.row() for record in records],
            )
            latest = records[-1].at
            if latest - self._pruned_at >= self.PRUNE_EVERY:
                self._pruned_at = latest
                self._conn.execute(
                    "DELETE FROM ats_messages WHERE at < ?", (latest - self.retention,)
                )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
            self.failed += len(records)
            events.emit(events.TRACKING_WRITE_FAILED, path=self.path, count=len(records), error=exc)

    def close(self) -> None:
        """Write what is pending, then stop."""
        self._queue.put(None)
        self._thread.join()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()


@dataclass(frozen=True, slots=True)
class _Pending:
    record: ATSRecord
    written: asyncio.Future[None]
    loop: asyncio.AbstractEventLoop


def _resolve(written: asyncio.Future[None]) -> None:
    if not written.done():
        written.set_result(None)


def find_ats(
    path: str | Path,
    *,
    address: str | None = None,
    mts_id: str | None = None,
    transmission_id: str | None = None,
    since: float | None = None,
    until: float | None = None,
    limit: int = 100,
) -> list[ATSRecord]:
    """The records that match every condition given, oldest first. `address` is an AFTN
    (or O/R) address, as originator or addressee."""
    where: list[str] = []
    args: list[object] = []
    if address is not None:
        where.append("(originator = ? OR ' ' || addressees || ' ' LIKE ?)")
        args += [address, f"% {address} %"]
    if mts_id is not None:
        where.append("mts_id = ?")
        args.append(mts_id)
    if transmission_id is not None:
        where.append("transmission_id = ?")
        args.append(transmission_id)
    if since is not None:
        where.append("at >= ?")
        args.append(since)
    if until is not None:
        where.append("at <= ?")
        args.append(until)
    sql = f"SELECT {COLUMNS} FROM ats_messages"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id LIMIT ?"
    conn = connect(path, readonly=True)
    try:
        return [ATSRecord.from_row(row) for row in conn.execute(sql, [*args, limit])]
    finally:
        conn.close()
