"""The SQLite schema of the MTA database and how a connection to it is set up."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from typing import Any

from waypost.message import EnvelopeError, Priority, decode_envelope
from waypost.store.base import StoreError

SCHEMA_VERSION = 2
# The versions an older Waypost wrote that this one brings up to date on opening (upgrade).
UPGRADABLE = (1,)

# Messages and their recipients are separate rows: one recipient's progress
# never rewrites the message. Content lives in its own table so that scans of
# the queue never page message bodies in.
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    mts_id      TEXT NOT NULL,
    originator  TEXT NOT NULL,
    envelope    BLOB NOT NULL,
    size        INTEGER NOT NULL,
    received_at REAL NOT NULL,
    expires_at  REAL NOT NULL,
    state       TEXT NOT NULL DEFAULT 'active'
);
CREATE TABLE IF NOT EXISTS content (
    message_id INTEGER PRIMARY KEY,
    data       BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS recipients (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id  INTEGER NOT NULL,
    rcpt_index  INTEGER NOT NULL,
    address     TEXT NOT NULL,
    next_hop    TEXT NOT NULL,
    state       TEXT NOT NULL,
    due_at      REAL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    lease_owner TEXT,
    report      TEXT,
    updated_at  REAL NOT NULL,
    rank        INTEGER NOT NULL DEFAULT 1
);
-- due_at is set only while a recipient waits for a time (queued, deferred,
-- leased: the lease's expiry), so this one index finds all due work,
-- including work whose lease has run out. rank is its message's priority in the
-- order the queue serves it (0 urgent, 1 normal, 2 non-urgent): the claim reads
-- each rank's due work in turn, each one seek into the index.
CREATE INDEX IF NOT EXISTS recipients_due ON recipients (rank, due_at) WHERE due_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS recipients_message ON recipients (message_id);
CREATE INDEX IF NOT EXISTS recipients_report ON recipients (report) WHERE report IS NOT NULL;
CREATE TABLE IF NOT EXISTS quarantine (
    id             INTEGER PRIMARY KEY,
    kind           TEXT NOT NULL,
    object_id      INTEGER,
    reason         TEXT NOT NULL,
    row            TEXT NOT NULL,
    data           BLOB,
    quarantined_at REAL NOT NULL
);
"""

INDEXES = ("recipients_due", "recipients_message", "recipients_report")


def tolerant_text(data: bytes) -> str:
    """SQLite text as str; bytes that are not UTF-8 become lone surrogates, not an exception."""
    return data.decode("utf-8", "surrogateescape")


def is_valid_text(value: object) -> bool:
    """A str that holds no lone surrogate (so it came from valid UTF-8)."""
    if not isinstance(value, str):
        return False
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def connect(path: str, *, readonly: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL."""
    if readonly:
        conn = sqlite3.connect(
            f"file:{path}?mode=ro", uri=True, isolation_level=None, check_same_thread=False
        )
    else:
        is_new = path != ":memory:" and not os.path.exists(path)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        if is_new:
            # Owner-only: SQLite gives its -wal and -shm files the same mode, and
            # the queue holds other people's mail. chmod, never open()/close():
            # closing any descriptor of the file drops this process's POSIX locks
            # on it, which SQLite's other connections rely on.
            os.chmod(path, 0o600)
    # Text that is not UTF-8 (a damaged row) must not make a fetch raise for the
    # whole batch: decode it with surrogates, which validation then refuses.
    conn.text_factory = tolerant_text
    conn.execute("PRAGMA busy_timeout = 10000")
    if not readonly:
        # FULL, not NORMAL: in WAL mode NORMAL may roll back a commit after a
        # power loss, and a 250 must mean the message survives that.
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        # SQLite built with SQLITE_SECURE_DELETE (Debian's is) zeroes every page a
        # delete frees: each delivered message's content written twice more, a third
        # of the store's CPU for a 100 KiB message. FAST zeroes what costs no extra
        # I/O (the b-tree pages) and leaves freed overflow pages until they are reused,
        # as a removed queue file leaves its disk blocks.
        conn.execute("PRAGMA secure_delete = FAST")
    conn.execute("PRAGMA cache_size = -16000")
    return conn


def create(conn: sqlite3.Connection) -> tuple[int, int]:
    """Create the tables if they are missing, or bring an older Waypost's up to date, and
    record the schema version; (the version found, the version now)."""
    found = recorded_version(conn)
    if found is not None and found > SCHEMA_VERSION:
        raise StoreError(
            f"the database's schema is version {found}, newer than this Waypost's "
            f"({SCHEMA_VERSION}): upgrade Waypost"
        )
    if found in UPGRADABLE:
        conn.execute("BEGIN IMMEDIATE")
        try:
            upgrade(conn, found)
            conn.execute("COMMIT")
        except BaseException:
            conn.rollback()
            raise
        return found, SCHEMA_VERSION
    conn.executescript(SCHEMA)
    conn.execute(
        "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )
    return found or SCHEMA_VERSION, SCHEMA_VERSION


def recorded_version(conn: sqlite3.Connection) -> int | None:
    """The schema version the database records; None when it records none (a new file)."""
    has_meta = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
    ).fetchone()
    if not has_meta:
        return None
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    if row is None or not str(row[0]).isdigit():
        return None
    return int(row[0])


def upgrade(conn: sqlite3.Connection, found: int) -> None:
    """Bring a database of schema version `found` to SCHEMA_VERSION, inside the caller's
    transaction (the open, or `waypost check --repair`)."""
    if found == 1:
        # 2: each recipient's rank, from its message's priority.
        conn.execute("ALTER TABLE recipients ADD COLUMN rank INTEGER NOT NULL DEFAULT 1")
        conn.executemany(
            "UPDATE recipients SET rank = ? WHERE message_id = ?", list(ranks_to_set(conn))
        )
        conn.execute("DROP INDEX IF EXISTS recipients_due")
        conn.execute(
            "CREATE INDEX recipients_due ON recipients (rank, due_at) WHERE due_at IS NOT NULL"
        )
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
        (str(SCHEMA_VERSION),),
    )


def ranks_to_set(conn: Any) -> Iterator[tuple[int, int]]:
    """(rank, message id) for each message not of normal priority, read from its envelope;
    an envelope that does not decode is left normal, for the checker to find."""
    for message_id, blob in conn.execute("SELECT id, envelope FROM messages"):
        try:
            rank = decode_envelope(bytes(blob)).priority.rank
        except (EnvelopeError, TypeError):
            continue
        if rank != Priority.NORMAL.rank:
            yield rank, message_id
