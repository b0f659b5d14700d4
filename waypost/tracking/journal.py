"""The tracking journal: one record per step of a message's life, in its own SQLite file
beside the MTA database, kept for a while after the message has left the queue.

It is written in batches by a thread of its own, so a message's path through the queue
never waits for it. It is a record of what happened, not the queue: a crash may lose the
last half second of records, never a message (docs/operations.md, "Message tracking").
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from waypost import events

# Records are appended in time order, so a time is found by a binary search over the ids
# (`first_id_at`) rather than through an index on `at`, which every insert would pay for.
SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          REAL NOT NULL,
    kind        TEXT NOT NULL,
    message_id  INTEGER,
    mts_id      TEXT,
    msgid       TEXT,
    sender      TEXT,
    recipient   TEXT,
    next_hop    TEXT,
    remote_id   TEXT,
    linked_id   INTEGER,
    detail      TEXT NOT NULL DEFAULT '',
    fields      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS records_message ON records (message_id);
CREATE INDEX IF NOT EXISTS records_mts ON records (mts_id) WHERE mts_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_msgid ON records (msgid) WHERE msgid IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_remote ON records (remote_id) WHERE remote_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_linked ON records (linked_id) WHERE linked_id IS NOT NULL;
"""

COLUMNS = (
    "at, kind, message_id, mts_id, msgid, sender, recipient, next_hop, remote_id, linked_id, "
    "detail, fields"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Record:
    """One step of one message's life. `message_id` is this MTA's queue id; `linked_id`
    another message of this MTA the step made (a report, a converted message);
    `remote_id` what the next hop called the message (its queue id, or for X.400 the MTS
    identifier it kept)."""

    at: float
    kind: str
    message_id: int | None = None
    mts_id: str | None = None
    msgid: str | None = None
    sender: str | None = None
    recipient: str | None = None
    next_hop: str | None = None
    remote_id: str | None = None
    linked_id: int | None = None
    detail: str = ""
    fields: dict[str, object] = field(default_factory=dict)

    def row(self) -> tuple[object, ...]:
        return (
            self.at,
            self.kind,
            self.message_id,
            self.mts_id,
            self.msgid,
            self.sender,
            self.recipient,
            self.next_hop,
            self.remote_id,
            self.linked_id,
            self.detail,
            fields_json(self.fields),
        )

    @classmethod
    def from_row(cls, row: Sequence[object]) -> Record:
        at, kind, message_id, mts_id, msgid, sender, recipient, hop, remote, linked = row[:10]
        detail, fields = row[10], row[11]
        try:
            extra = json.loads(str(fields)) if fields else {}
        except ValueError:
            extra = {"unreadable": str(fields)}
        return cls(
            at=float(at),  # type: ignore[arg-type]
            kind=str(kind),
            message_id=None if message_id is None else int(message_id),  # type: ignore[call-overload]
            mts_id=_text(mts_id),
            msgid=_text(msgid),
            sender=_text(sender),
            recipient=_text(recipient),
            next_hop=_text(hop),
            remote_id=_text(remote),
            linked_id=None if linked is None else int(linked),  # type: ignore[call-overload]
            detail=str(detail or ""),
            fields=extra if isinstance(extra, dict) else {"value": extra},
        )


def fields_json(fields: Mapping[str, object]) -> str:
    """A record's other fields as the journal keeps them: a JSON object."""
    return json.dumps(fields, ensure_ascii=False, default=str) if fields else "{}"


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def first_id_at(conn: sqlite3.Connection, moment: float) -> int:
    """The id of the first record written at `moment` or later, or one past the last: a
    binary search over the ids, each step one rowid lookup."""
    low, high = conn.execute("SELECT min(id), max(id) FROM records").fetchone()
    if low is None:
        return 1
    high += 1
    while low < high:
        middle = (low + high) // 2
        # Records are only ever removed oldest first, but look for the next one all the same.
        at = conn.execute(
            "SELECT at FROM records WHERE id >= ? ORDER BY id LIMIT 1", (middle,)
        ).fetchone()[0]
        if at < moment:
            low = middle + 1
        else:
            high = middle
    return int(low)


def connect(path: str | Path, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection to the journal; a writer creates it (owner-only) with its schema."""
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
    else:
        is_new = not os.path.exists(path)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        if is_new:
            os.chmod(path, 0o600)  # it names senders and recipients: as private as the queue
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL: a power cut may lose the last records, never corrupt the file. The
        # journal is not what a 250 promises (that is the MTA database, synchronous=FULL).
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(SCHEMA)
    conn.execute("PRAGMA busy_timeout = 10000")
    return conn


@dataclass(frozen=True, slots=True)
class Retention:
    """How long records are kept after they were written, and at most how many."""

    seconds: float = 7 * 86400.0
    max_records: int = 5_000_000


class Journal:
    """Records appended from any thread; written by a thread of its own every `interval`
    seconds (or at once past `batch` records), pruned to the retention once a minute."""

    PRUNE_EVERY = 60.0

    def __init__(
        self,
        path: str | Path,
        retention: Retention | None = None,
        *,
        interval: float = 0.5,
        batch: int = 5000,
    ) -> None:
        self.path = Path(path)
        self.retention = retention or Retention()
        self.interval = interval
        self.batch = batch
        self.written = 0
        self.dropped = 0
        self.error: str | None = None
        self._pending: list[tuple[object, ...]] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._conn = connect(self.path)
        self._pruned_at = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="waypost-tracking", daemon=True)
        self._thread.start()

    def add(self, record: Record) -> None:
        self.add_rows([record.row()])

    def extend(self, records: Iterable[Record]) -> None:
        self.add_rows([record.row() for record in records])

    def add_rows(self, rows: Sequence[tuple[object, ...]]) -> None:
        """Records as rows of COLUMNS (what the recorder makes, without a Record each)."""
        with self._lock:
            # Bounded: a journal that cannot write (a full disk) must not grow the MTA's
            # memory without end; what is dropped is counted.
            if len(self._pending) >= self.batch * 20:
                self.dropped += len(rows)
                return
            self._pending += rows
            full = len(self._pending) >= self.batch
        if full:
            self._wake.set()

    def flush(self) -> None:
        """Write what is pending now (in the caller's thread)."""
        with self._lock:
            pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                f"INSERT INTO records ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                pending,
            )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._conn.rollback()
            self.dropped += len(pending)
            if self.error is None:  # once as it starts failing, not at every flush
                events.emit(
                    events.TRACKING_WRITE_FAILED, path=self.path, count=len(pending), error=exc
                )
            self.error = str(exc)
            return
        self.written += len(pending)
        self.error = None

    def prune(self, now: float | None = None) -> int:
        """Remove records older than the retention, then the oldest past its size."""
        now = time.time() if now is None else now
        self._pruned_at = now
        try:
            cut = first_id_at(self._conn, now - self.retention.seconds)
            removed = self._conn.execute("DELETE FROM records WHERE id < ?", (cut,)).rowcount
            row = self._conn.execute(
                "SELECT max(id) - ? FROM records", (self.retention.max_records,)
            )
            cut = row.fetchone()[0]
            if cut is not None and cut > 0:
                removed += self._conn.execute("DELETE FROM records WHERE id <= ?", (cut,)).rowcount
        except sqlite3.Error as exc:
            self.error = str(exc)
            return 0
        return int(removed)

    def close(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()
        self._conn.close()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()
            if time.time() - self._pruned_at >= self.PRUNE_EVERY:
                self.prune()
