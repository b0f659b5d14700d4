"""`waypost check`: verify and repair the MTA database offline — Waypost's `mtacheck`.

Exchange 5.5's MTA terminated on one bad object in its database (KB Q276222);
`mtacheck` found such objects and moved them to `mtacheck.out`. This module
does the same for the SQLite MTA database while Waypost is stopped: it checks
SQLite's own integrity, the schema, every message, recipient and content row
and the references between them, and with `repair=True` moves every bad object
to the `quarantine` table (a copy of every row first; nothing is deleted
silently), queues again work leased by workers that no longer exist, and
recreates missing indexes — all in one transaction — then checks again.

Exit codes of `waypost check` (`CheckReport.exit_code`):

* 0 `EXIT_CLEAN` — no problems.
* 1 `EXIT_PROBLEMS` — problems found and not repaired (no `--repair`, or the
  repair failed and was rolled back, or problems remain after it).
* 2 `EXIT_FATAL` — the database cannot be used: missing, unreadable, damaged
  below the row level (SQLite's integrity check fails), not a Waypost
  database, or a schema version this Waypost does not know. `--repair` never
  writes to such a file; `RECOVERY_PROCEDURE` says what to do.
* 3 `EXIT_REPAIRED` — problems were found and repaired, and the database now
  checks clean.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import os
import re
import shlex
import sqlite3
import time
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from waypost import events
from waypost.message import Envelope
from waypost.store import quarantine
from waypost.store.base import MessageState, RecipientState
from waypost.store.schema import INDEXES, SCHEMA_VERSION, connect, create, tolerant_text
from waypost.store.validate import check_message_row, check_recipient_row, is_number

EXIT_CLEAN = 0
EXIT_PROBLEMS = 1
EXIT_FATAL = 2
EXIT_REPAIRED = 3

RECOVERY_PROCEDURE = """\
Waypost cannot use this file, and `waypost check --repair` does not rewrite a file
damaged below the row level (that could make it worse). To recover:
  1. Keep Waypost stopped. Copy {path} aside, with its -wal and -shm files if they exist.
  2. Restore the MTA database from a backup, or salvage what SQLite can still read
     into a new file (one that does not exist yet):
       sqlite3 {path} .recover | sqlite3 {new}
     If that sqlite3 has no working .recover ("SQL logic error"), .dump saves the rows
     it can read before the damage:
       sqlite3 {path} .dump | sed 's/^ROLLBACK; -- due to errors$/COMMIT;/' | sqlite3 {new}
  3. Run `waypost check --repair --db {new}`: it moves what the damage broke to
     quarantine. When it checks clean, delete {path}-wal and {path}-shm (they belong
     to the damaged file), put {new} in place of {path}, and start Waypost."""

# Tables whose loss loses queued mail: no repair can bring them back.
_DATA_TABLES = ("messages", "content", "recipients")
# Tables that repair may create empty without losing anything.
_SIDE_TABLES = ("meta", "quarantine")

_QUARANTINED = MessageState.QUARANTINED.value
_LEASED = RecipientState.LEASED.value

# integrity_check lines that say only that an index disagrees with its table:
# REINDEX rebuilds the index from the table, so they are repairable.
_INDEX_ONLY = re.compile(
    r"(?:row \d+ missing from index|wrong # of entries in index|non-unique entry in index) (\S+)"
)

# The index SQLite keeps for meta's primary key: REINDEX rebuilds it like ours.
_META_KEY_INDEX = re.compile(r"sqlite_autoindex_meta_\d+")

_MESSAGE_SQL = """
SELECT m.id, m.mts_id, m.originator, m.envelope, m.size, m.received_at, m.expires_at, m.state,
       c.message_id, typeof(c.data), length(c.data)
FROM messages AS m LEFT JOIN content AS c ON c.message_id = m.id
ORDER BY m.id
"""
# Ordered like the messages, so that one pass over both pairs every recipient
# with its message (a merge join: nothing proportional to the queue is kept).
_RECIPIENT_SQL = """
SELECT id, message_id, rcpt_index, address, next_hop, state, due_at, attempts, report,
       lease_owner
FROM recipients {hint} ORDER BY message_id, id
"""
_ORPHAN_CONTENT_SQL = """
SELECT c.message_id, length(c.data)
FROM content AS c LEFT JOIN messages AS m ON m.id = c.message_id
WHERE m.id IS NULL ORDER BY c.message_id
"""


class FatalKind(enum.StrEnum):
    """Why the database cannot be checked row by row."""

    MISSING = "missing"
    UNREADABLE = "unreadable"
    CORRUPT = "corrupt"
    NOT_WAYPOST = "not-waypost"
    SCHEMA = "schema"
    VERSION = "version"


class Repair(enum.StrEnum):
    """What `--repair` does about a problem."""

    QUARANTINE_MESSAGE = "quarantine-message"
    QUARANTINE_RECIPIENT = "quarantine-recipient"
    REMOVE_RECIPIENT = "remove-recipient"
    QUARANTINE_CONTENT = "quarantine-content"
    REQUEUE = "requeue"
    CREATE_TABLE = "create-table"
    SET_VERSION = "set-version"
    CREATE_INDEX = "create-index"
    REINDEX = "reindex"


# (what repair would do, what it did)
_REPAIR_TEXT: dict[Repair, tuple[str, str]] = {
    Repair.QUARANTINE_MESSAGE: (
        "repair moves the message and its recipients to quarantine",
        "moved the message and its recipients to quarantine",
    ),
    Repair.QUARANTINE_RECIPIENT: (
        "repair moves the recipient to quarantine",
        "moved the recipient to quarantine",
    ),
    Repair.REMOVE_RECIPIENT: (
        "repair moves the recipient row to the quarantine table",
        "moved the recipient row to the quarantine table",
    ),
    Repair.QUARANTINE_CONTENT: (
        "repair moves the content to the quarantine table",
        "moved the content to the quarantine table",
    ),
    Repair.REQUEUE: ("repair queues it again", "queued again"),
    Repair.CREATE_TABLE: ("repair creates it, empty", "created, empty"),
    Repair.SET_VERSION: (
        f"repair records schema version {SCHEMA_VERSION}",
        f"recorded schema version {SCHEMA_VERSION}",
    ),
    Repair.CREATE_INDEX: ("repair recreates it", "recreated"),
    Repair.REINDEX: ("repair rebuilds it from its table", "rebuilt from its table"),
}
_SCHEMA_REPAIRS = frozenset(
    {Repair.CREATE_TABLE, Repair.SET_VERSION, Repair.CREATE_INDEX, Repair.REINDEX}
)
_QUARANTINE_REPAIRS = frozenset(
    {
        Repair.QUARANTINE_MESSAGE,
        Repair.QUARANTINE_RECIPIENT,
        Repair.REMOVE_RECIPIENT,
        Repair.QUARANTINE_CONTENT,
    }
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """One bad object: `kind` is message, recipient, content, table, index or meta."""

    kind: str
    object_id: int | str
    reason: str
    action: Repair
    repaired: bool = False

    @property
    def repair(self) -> str:
        """What repair does about it, or did."""
        future, past = _REPAIR_TEXT[self.action]
        return past if self.repaired else future


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckReport:
    """What one `check_database` found, and what its repair did.

    `messages`, `recipients` and `content` count the rows checked;
    `quarantined_*` count objects already in quarantine (not problems);
    `after` is the check run again after a repair.
    """

    path: str
    fatal: str | None = None
    fatal_kind: FatalKind | None = None
    schema_version: int | None = None
    messages: int = 0
    recipients: int = 0
    content: int = 0
    problems: tuple[Problem, ...] = ()
    repair_requested: bool = False
    repaired: int = 0
    repair_error: str | None = None
    quarantined_messages: int = 0
    quarantined_recipients: int = 0
    quarantine_entries: int = 0
    after: CheckReport | None = None
    seconds: float = 0.0

    @property
    def objects(self) -> int:
        return self.messages + self.recipients + self.content

    @property
    def clean(self) -> bool:
        return self.fatal is None and not self.problems

    @property
    def remaining(self) -> tuple[Problem, ...]:
        """Problems still in the database: after a repair, those its second check found."""
        if self.after is not None:
            return self.after.problems
        return tuple(p for p in self.problems if not p.repaired)

    @property
    def exit_code(self) -> int:
        if self.fatal is not None:
            return EXIT_FATAL
        if not self.problems:
            return EXIT_CLEAN
        if self.after is not None:
            if self.after.fatal is not None:
                return EXIT_FATAL
            if self.after.clean and self.repaired:
                return EXIT_REPAIRED
        return EXIT_PROBLEMS


class _FatalError(Exception):
    """Raised inside the check when the database cannot be checked further."""

    def __init__(self, kind: FatalKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


# -- the public entry point -----------------------------------------------------------


def check_database(path: str, *, repair: bool = False, now: float | None = None) -> CheckReport:
    """Check the MTA database at `path` (Waypost stopped); with `repair`, repair and re-check.

    Never raises for anything wrong with the file: every failure is in the report.
    """
    started = time.perf_counter()
    when = time.time() if now is None else now
    events.emit(events.CHECK_STARTED, path=path)
    notices: list[_Notice] = []
    report = _check(path, repair=repair, now=when, notices=notices)
    report = replace(report, seconds=time.perf_counter() - started)
    _emit(report, notices)
    return report


# An event to emit once a repair has committed: (definition, fields).
_Notice = tuple[events.EventDefinition, dict[str, object]]


def _emit(report: CheckReport, notices: list[_Notice]) -> None:
    if report.fatal is not None:
        if report.fatal_kind in (FatalKind.MISSING, FatalKind.UNREADABLE):
            events.emit(events.STORE_OPEN_FAILED, path=report.path, reason=report.fatal)
        else:
            events.emit(events.STORE_CORRUPT, path=report.path, reason=report.fatal)
    for problem in report.problems:
        events.emit(
            events.CHECK_PROBLEM,
            kind=problem.kind,
            object_id=problem.object_id,
            reason=problem.reason,
        )
    if report.repair_error is not None:
        events.emit(events.CHECK_REPAIR_FAILED, path=report.path, error=report.repair_error)
    for event, fields in notices:
        events.emit(event, **fields)
    quarantined = sum(1 for p in report.problems if p.repaired and p.action in _QUARANTINE_REPAIRS)
    if report.repaired:
        events.emit(
            events.CHECK_REPAIRED,
            path=report.path,
            repaired=report.repaired,
            quarantined=quarantined,
            requeued=sum(1 for p in report.problems if p.repaired and p.action is Repair.REQUEUE),
            schema=sum(1 for p in report.problems if p.repaired and p.action in _SCHEMA_REPAIRS),
        )
    if report.after is not None:
        if report.after.fatal is not None:
            events.emit(events.STORE_CORRUPT, path=report.path, reason=report.after.fatal)
        for problem in report.after.problems:
            events.emit(
                events.CHECK_PROBLEM,
                kind=problem.kind,
                object_id=problem.object_id,
                reason=f"still there after the repair: {problem.reason}",
            )
    events.emit(
        events.CHECK_FINISHED,
        path=report.path,
        objects=report.objects,
        problems=len(report.problems),
        repaired=quarantined,
    )


def _check(path: str, *, repair: bool, now: float, notices: list[_Notice]) -> CheckReport:
    try:
        conn = _open_readonly(path)
    except _FatalError as exc:
        return CheckReport(path=path, fatal=exc.reason, fatal_kind=exc.kind)
    try:
        # One read transaction: every query sees the same snapshot.
        conn.execute("BEGIN")
        damaged = _integrity(conn)
        structure = _structure(conn, damaged)
        if not repair:
            scan = _scan(conn, unindexed=bool(damaged))
            conn.execute("COMMIT")
            return _report(path, structure, scan)
        conn.execute("COMMIT")
    except _FatalError as exc:
        return CheckReport(
            path=path, fatal=exc.reason, fatal_kind=exc.kind, repair_requested=repair
        )
    except sqlite3.Error as exc:
        kind = FatalKind.CORRUPT if _damaged(exc) else FatalKind.UNREADABLE
        return CheckReport(
            path=path, fatal=_describe(exc), fatal_kind=kind, repair_requested=repair
        )
    finally:
        conn.close()
    # The file is sound below the row level: only now may it be written to.
    return _repair(path, damaged, now, notices)


def _report(path: str, structure: _Structure, scan: _Scanner) -> CheckReport:
    return CheckReport(
        path=path,
        schema_version=structure.version,
        messages=scan.messages,
        recipients=scan.recipients,
        content=scan.content,
        problems=(*structure.problems, *scan.problems),
        quarantined_messages=scan.quarantined_messages,
        quarantined_recipients=scan.quarantined_recipients,
        quarantine_entries=scan.quarantine_entries,
    )


def _repair(path: str, damaged: frozenset[str], now: float, notices: list[_Notice]) -> CheckReport:
    """Check again under the write lock and repair what is found, in one transaction."""

    def failed(exc: Exception) -> CheckReport:
        report = _check(path, repair=False, now=now, notices=notices)
        error = _describe(exc) if isinstance(exc, sqlite3.Error) else f"{type(exc).__name__}: {exc}"
        return replace(report, repair_requested=True, repair_error=error)

    try:
        conn = connect(path)
    except sqlite3.Error as exc:
        return failed(exc)
    done: list[_Notice] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        conn.close()
        return failed(exc)
    try:
        structure = _structure(conn, damaged)
        for problem in structure.problems:
            _repair_schema(conn, problem)
        # The indexes are sound again, so the scan may use them.
        scan = _scan(conn, unindexed=False)
        for problem in scan.problems:
            done.extend(_repair_row(conn, problem, now))
        conn.execute("COMMIT")
    except _FatalError as exc:
        _rollback(conn)
        return CheckReport(path=path, fatal=exc.reason, fatal_kind=exc.kind, repair_requested=True)
    except Exception as exc:
        # Whatever fails, the one transaction is undone: the repair is all or nothing.
        _rollback(conn)
        conn.close()
        return failed(exc)
    finally:
        conn.close()
    report = replace(_report(path, structure, scan), repair_requested=True)
    if not report.problems:
        return report
    notices.extend(done)
    # The counts are those found before the repair; `after` has the new ones.
    return replace(
        report,
        problems=tuple(replace(p, repaired=True) for p in report.problems),
        repaired=len(report.problems),
        after=_check(path, repair=False, now=now, notices=notices),
    )


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _repair_schema(conn: sqlite3.Connection, problem: Problem) -> None:
    name = str(problem.object_id)
    if problem.action is Repair.CREATE_TABLE or problem.action is Repair.CREATE_INDEX:
        conn.execute(_reference().sql[name])
    elif problem.action is Repair.SET_VERSION:
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    elif problem.action is Repair.REINDEX:
        conn.execute(f'REINDEX "{name}"')


def _repair_row(conn: sqlite3.Connection, problem: Problem, now: float) -> list[_Notice]:
    """Apply one row repair; returns the events to emit once the transaction commits."""
    object_id = problem.object_id
    assert isinstance(object_id, int)
    reason = f"waypost check: {problem.reason}"
    moved = {"kind": problem.kind, "object_id": object_id, "reason": problem.reason}
    if problem.action is Repair.QUARANTINE_MESSAGE:
        done = quarantine.quarantine_message(conn, object_id, reason, now)
    elif problem.action is Repair.QUARANTINE_RECIPIENT:
        done = quarantine.quarantine_recipient(conn, object_id, reason, now)
    elif problem.action is Repair.REMOVE_RECIPIENT:
        done = quarantine.quarantine_recipient(conn, object_id, reason, now, remove=True)
    elif problem.action is Repair.QUARANTINE_CONTENT:
        done = quarantine.quarantine_content(conn, object_id, reason, now)
    elif problem.action is Repair.REQUEUE:
        row = conn.execute(
            "SELECT message_id, lease_owner FROM recipients WHERE id = ? AND state = 'leased'",
            (object_id,),
        ).fetchone()
        if row is None:
            return []
        conn.execute(
            "UPDATE recipients SET state = 'queued', due_at = ?, lease_owner = NULL, "
            "updated_at = ? WHERE id = ?",
            (now, now, object_id),
        )
        fields = {"recipient_id": object_id, "message_id": row[0], "owner": row[1]}
        return [(events.LEASE_EXPIRED, fields)]
    else:
        raise AssertionError(problem.action)
    return [(events.OBJECT_QUARANTINED, moved)] if done else []


# -- opening, integrity and schema ----------------------------------------------------------


def _open_readonly(path: str) -> sqlite3.Connection:
    if not os.path.lexists(path):
        raise _FatalError(FatalKind.MISSING, f"{path} does not exist")
    if os.path.isdir(path):
        raise _FatalError(FatalKind.UNREADABLE, f"{path} is a directory, not a database file")
    try:
        return connect(path, readonly=True)
    except sqlite3.DatabaseError as exc:
        if _damaged(exc):
            raise _FatalError(FatalKind.CORRUPT, _describe(exc)) from None
        raise _FatalError(FatalKind.UNREADABLE, f"SQLite cannot open {path}: {exc}") from None
    except sqlite3.Error as exc:
        raise _FatalError(FatalKind.UNREADABLE, f"SQLite cannot open {path}: {exc}") from None


def _damaged(exc: sqlite3.Error) -> bool:
    text = str(exc)
    return "not a database" in text or "malformed" in text or "corrupt" in text


def _describe(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "not a database" in text:
        return f"the file is not an SQLite database, or its header is destroyed ({text})"
    if "malformed" in text:
        return f"SQLite cannot read it: {text}"
    if "locked" in text or "busy" in text:
        return f"{text}: is Waypost still running? Stop it before `waypost check --repair`"
    return text


def _integrity(conn: sqlite3.Connection) -> frozenset[str]:
    """Run SQLite's integrity check; returns the indexes that only disagree with their table.

    Anything else it reports (torn pages, bad b-trees, a file that is not a
    database) is fatal.
    """
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise _FatalError(FatalKind.CORRUPT, _describe(exc)) from None
    lines = [line for row in rows for line in str(row[0]).splitlines() if line.strip()]
    if lines == ["ok"]:
        return frozenset()
    damaged: set[str] = set()
    other: list[str] = []
    for line in lines:
        match = _INDEX_ONLY.fullmatch(line.strip())
        if match is not None and (
            match.group(1) in INDEXES or _META_KEY_INDEX.fullmatch(match.group(1))
        ):
            damaged.add(match.group(1))
        else:
            other.append(line.strip())
    if other:
        shown = "; ".join(other[:3]) + (f"; … ({len(other) - 3} more)" if len(other) > 3 else "")
        raise _FatalError(FatalKind.CORRUPT, f"SQLite's integrity check fails: {shown}")
    return frozenset(damaged)


@dataclass(frozen=True, slots=True)
class _Reference:
    """The schema as waypost.store.schema creates it: each object's SQL and each table's columns."""

    sql: dict[str, str]
    columns: dict[str, frozenset[str]]


@functools.cache
def _reference() -> _Reference:
    mem = sqlite3.connect(":memory:")
    try:
        create(mem)
        sql = {
            str(name): str(text)
            for name, text in mem.execute(
                "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"
            )
        }
        columns = {
            name: frozenset(str(row[1]) for row in mem.execute(f'PRAGMA table_info("{name}")'))
            for name in (*_DATA_TABLES, *_SIDE_TABLES)
        }
    finally:
        mem.close()
    return _Reference(sql=sql, columns=columns)


@dataclass(frozen=True, slots=True)
class _Structure:
    version: int | None
    problems: tuple[Problem, ...]


def _structure(conn: sqlite3.Connection, damaged: frozenset[str]) -> _Structure:
    """Tables, columns, schema version and indexes; _FatalError if rows cannot be checked."""
    objects = {
        (str(kind), str(name))
        for kind, name in conn.execute("SELECT type, name FROM sqlite_master")
    }
    tables = {name for kind, name in objects if kind == "table"}
    indexes = {name for kind, name in objects if kind == "index"}
    ours = [t for t in (*_DATA_TABLES, *_SIDE_TABLES) if t in tables]
    if not ours:
        raise _FatalError(
            FatalKind.NOT_WAYPOST,
            "it has none of Waypost's tables: it is not a Waypost MTA database",
        )
    lost = [t for t in _DATA_TABLES if t not in tables]
    if lost:
        raise _FatalError(
            FatalKind.SCHEMA, f"table {', '.join(lost)} is missing: its rows are lost"
        )
    reference = _reference()
    for table in ours:
        have = {str(row[1]) for row in conn.execute(f'PRAGMA table_info("{table}")')}
        missing = sorted(reference.columns[table] - have)
        if missing:
            raise _FatalError(FatalKind.SCHEMA, f"table {table} lacks column {', '.join(missing)}")
    problems: list[Problem] = []
    for table in _SIDE_TABLES:
        if table not in tables:
            problems.append(
                Problem(
                    kind="table",
                    object_id=table,
                    reason="is missing",
                    action=Repair.CREATE_TABLE,
                )
            )
    version: int | None = None
    row = (
        conn.execute(
            # NOT INDEXED: the key's index may be the damaged one.
            "SELECT CAST(value AS BLOB) FROM meta NOT INDEXED WHERE key = 'schema_version'"
        ).fetchone()
        if "meta" in tables
        else None
    )
    value = row[0] if row is not None and isinstance(row[0], bytes) else b""
    text = value.decode("utf-8", "replace").strip()
    if text == str(SCHEMA_VERSION):
        version = SCHEMA_VERSION
    elif text.isascii() and text.isdigit():
        raise _FatalError(
            FatalKind.VERSION,
            f"schema version {text} is not one this Waypost knows (it knows "
            f"{SCHEMA_VERSION}): another Waypost release wrote it",
        )
    else:
        problems.append(
            Problem(
                kind="meta",
                object_id="schema_version",
                reason="is not recorded" if row is None else f"is damaged ({value!r})",
                action=Repair.SET_VERSION,
            )
        )
    for name in INDEXES:
        if name not in indexes:
            problems.append(
                Problem(
                    kind="index", object_id=name, reason="is missing", action=Repair.CREATE_INDEX
                )
            )
    # Damaged indexes are rebuilt first, before anything writes through them.
    rebuilt = [
        Problem(
            kind="index",
            object_id=name,
            reason="disagrees with its table (SQLite's integrity check)",
            action=Repair.REINDEX,
        )
        for name in sorted(damaged)
        if name in indexes
    ]
    return _Structure(version=version, problems=(*rebuilt, *problems))


# -- the row-by-row scan ---------------------------------------------------------------------


class _Scanner:
    """One pass over messages (with their content's type and length) and recipients.

    `run()` yields one line per object when `listing`, nothing otherwise;
    problems and counts accumulate on the scanner. With `tolerant`, the
    connection decodes text with `tolerant_text` and text that is not UTF-8 is
    a problem of its row.
    """

    def __init__(
        self, conn: sqlite3.Connection, *, listing: bool, unindexed: bool, tolerant: bool
    ) -> None:
        self.conn = conn
        self.listing = listing
        self.tolerant = tolerant
        # A damaged recipients index must not steer the scan: read the table itself.
        self.recipient_sql = _RECIPIENT_SQL.format(hint="NOT INDEXED" if unindexed else "")
        self.messages = 0
        self.recipients = 0
        self.content = 0
        self.quarantined_messages = 0
        self.quarantined_recipients = 0
        self.quarantine_entries = 0
        self.problems: list[Problem] = []

    def _problem(self, kind: str, object_id: int, reason: str, action: Repair) -> str:
        # Bad text in a reason must not make writing the reason fail in turn.
        reason = reason.encode("utf-8", "backslashreplace").decode("utf-8")
        self.problems.append(Problem(kind=kind, object_id=object_id, reason=reason, action=action))
        return f"BAD: {reason}"

    def run(self) -> Iterator[str]:
        yield from self._messages_and_recipients()
        yield from self._orphaned_content()
        try:
            row = self.conn.execute("SELECT count(*) FROM quarantine").fetchone()
            self.quarantine_entries = int(row[0])
        except sqlite3.OperationalError:
            pass  # no quarantine table: the schema check reports it

    def _orphan(self, row: Sequence[Any]) -> str:
        self.recipients += 1
        if row[5] == _QUARANTINED:
            self.quarantined_recipients += 1
        return self._problem(
            "recipient",
            row[0],
            f"its message {row[1]!r} does not exist",
            Repair.REMOVE_RECIPIENT,
        )

    def _messages_and_recipients(self) -> Iterator[str]:
        listing = self.listing
        rows = iter(self.conn.execute(self.recipient_sql))
        r = next(rows, None)
        lines: list[str] = []  # one message's recipient lines, when listing
        for m in self.conn.execute(_MESSAGE_SQL):
            mid = m[0]
            self.messages += 1
            # Recipients ordered before this message belong to no message. (SQLite
            # orders NULL first, then numbers, then text and blobs, after every id.)
            while r is not None:
                rmid = r[1]
                if rmid == mid or not (rmid is None or (is_number(rmid) and rmid < mid)):
                    break
                status = self._orphan(r)
                if listing:
                    yield f"recipient {r[0]} {status}"
                r = next(rows, None)
            if m[8] is not None:
                self.content += 1  # the content row of an existing message
            state = m[7]
            envelope: Envelope | None = None
            status = ""
            if state == _QUARANTINED:
                self.quarantined_messages += 1
            else:
                why = _bad_text(m, _MESSAGE_TEXT) if self.tolerant else None
                if why is None:
                    envelope, why = _check_message(m)
                if why is None:
                    why = _content_problem(m[8] is not None, m[9], m[10], m[4])
                if why is not None:
                    envelope = None
                    status = self._problem("message", mid, why, Repair.QUARANTINE_MESSAGE)
            count = 0
            seen: dict[int, int] = {}
            while r is not None and r[1] == mid:
                count += 1
                rstatus = self._recipient(r, mid, state, envelope, seen)
                if listing:
                    lines.append(f"  recipient {r[0]} {rstatus}")
                r = next(rows, None)
            self.recipients += count
            if envelope is not None:
                wanted = len(envelope.recipients)
                if count < wanted:
                    why = (
                        "has no recipient rows"
                        if count == 0
                        else f"has {_plural(count, 'recipient row')} for {wanted} envelope "
                        "recipients: a recipient row is lost"
                    )
                    status = self._problem("message", mid, why, Repair.QUARANTINE_MESSAGE)
            if listing:
                if not status:
                    status = (
                        f"quarantined ({_plural(count, 'recipient')})"
                        if state == _QUARANTINED
                        else f"ok ({_plural(count, 'recipient')}, {_plural(m[4], 'byte')})"
                    )
                yield f"message {mid} {status}"
                yield from lines
                lines.clear()
        while r is not None:
            status = self._orphan(r)
            if listing:
                yield f"recipient {r[0]} {status}"
            r = next(rows, None)

    def _recipient(
        self,
        r: Sequence[Any],
        mid: int,
        message_state: object,
        envelope: Envelope | None,
        seen: dict[int, int],
    ) -> str:
        rid: int = r[0]
        state = r[5]
        if state == _QUARANTINED:
            # Already set aside: only its reference (checked by the caller) matters.
            self.quarantined_recipients += 1
            return "quarantined"
        if message_state == _QUARANTINED:
            return self._problem(
                "recipient",
                rid,
                f"is {state!r} but its message {mid} is quarantined",
                Repair.QUARANTINE_RECIPIENT,
            )
        if envelope is None:
            return f"goes with bad message {mid}"
        why = (self.tolerant and _bad_text(r, _RECIPIENT_TEXT)) or _check_recipient(r, envelope)
        if why is not None:
            return self._problem("recipient", rid, why, Repair.QUARANTINE_RECIPIENT)
        index: int = r[2]
        first = seen.setdefault(index, rid)
        if first != rid:
            return self._problem(
                "recipient",
                rid,
                f"envelope recipient {index} already has recipient row {first}",
                Repair.QUARANTINE_RECIPIENT,
            )
        if state == _LEASED:
            return self._problem(
                "recipient",
                rid,
                f"is leased by {r[9]!r}, a worker that no longer exists (the check runs offline)",
                Repair.REQUEUE,
            )
        return f"ok {state}"

    def _orphaned_content(self) -> Iterator[str]:
        for message_id, length in self.conn.execute(_ORPHAN_CONTENT_SQL):
            self.content += 1
            status = self._problem(
                "content",
                message_id,
                f"is orphaned: no message {message_id} ({_plural(length or 0, 'byte')})",
                Repair.QUARANTINE_CONTENT,
            )
            if self.listing:
                yield f"content {message_id} {status}"


def _check_message(row: Sequence[Any]) -> tuple[Envelope | None, str | None]:
    # One bad object must never stop the check, whatever a validator lets escape.
    try:
        return check_message_row(row[:8])
    except Exception as exc:
        return None, f"envelope does not decode: {type(exc).__name__}: {exc}"


def _check_recipient(row: Sequence[Any], envelope: Envelope) -> str | None:
    try:
        return check_recipient_row(row[:9], envelope)
    except Exception as exc:
        return f"recipient does not validate: {type(exc).__name__}: {exc}"


def _scan(conn: sqlite3.Connection, *, unindexed: bool) -> _Scanner:
    """Scan every row; text that is not UTF-8 is a problem of its row, not an exception."""
    conn.text_factory = tolerant_text
    scan = _Scanner(conn, listing=False, unindexed=unindexed, tolerant=True)
    for _ in scan.run():
        pass
    return scan


# Text columns of a message row and of a recipient row (as the scan selects them).
_MESSAGE_TEXT = ((1, "mts_id"), (2, "originator"), (7, "state"))
_RECIPIENT_TEXT = ((3, "address"), (4, "next_hop"), (5, "state"), (8, "report"), (9, "lease_owner"))


def _bad_text(row: Sequence[Any], columns: tuple[tuple[int, str], ...]) -> str | None:
    for index, name in columns:
        value = row[index]
        if type(value) is str and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"its {name} is not valid UTF-8"
    return None


def _content_problem(exists: bool, kind: object, length: object, size: object) -> str | None:
    if not exists:
        return "its content is missing"
    if kind != "blob":
        return f"its content is {kind}, not a blob"
    if length != size:
        short = (
            "truncated"
            if isinstance(length, int) and isinstance(size, int) and (length < size)
            else "wrong length"
        )
        return f"its content is {_plural(_int(length), 'byte')}, {size!r} were stored ({short})"
    return None


def _int(value: object) -> int:
    return value if isinstance(value, int) else -1


def _plural(n: int, word: str, words: str | None = None) -> str:
    return f"{n:,} {word if n == 1 else words or word + 's'}"


# -- rendering -------------------------------------------------------------------------------


def list_objects(path: str, *, unindexed: bool = False) -> Generator[str, None, None]:
    """Every object in the database, one line each, streamed from a read-only connection."""
    try:
        conn = connect(path, readonly=True)
    except sqlite3.Error as exc:
        yield f"(cannot list the objects: {exc})"
        return
    conn.text_factory = tolerant_text
    try:
        conn.execute("BEGIN")
        yield from _Scanner(conn, listing=True, unindexed=unindexed, tolerant=True).run()
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        yield f"(the listing stopped: {_describe(exc)})"
    finally:
        conn.close()


def recovery_procedure(path: str) -> str:
    """The recovery procedure for a database damaged below the row level, for this file."""
    stem, ext = os.path.splitext(path)
    new = f"{stem}.recovered{ext or '.db'}"
    return RECOVERY_PROCEDURE.format(path=shlex.quote(path), new=shlex.quote(new))


_FATAL_HINT: dict[FatalKind, str] = {
    FatalKind.MISSING: "Check the path (the MTA database is mta.db in the data directory). "
    "If the file was lost, restore it from a backup.",
    FatalKind.UNREADABLE: "Check that it is a file, its permissions, and the disk it is on.",
    FatalKind.NOT_WAYPOST: "Check the path: this is not the MTA database. Nothing was changed.",
    FatalKind.VERSION: "Use the Waypost release that wrote this database; this one does not "
    "repair it. Nothing was changed.",
}


def render_lines(report: CheckReport, verbose: bool = False) -> Generator[str, None, None]:
    """The report as readable lines, like mtacheck's; `verbose` adds every object, streamed."""
    yield f"Waypost check of {report.path}"
    if report.fatal is not None:
        yield f"FATAL ({report.fatal_kind}): {report.fatal}"
        hint = _FATAL_HINT.get(report.fatal_kind) if report.fatal_kind else None
        if hint is not None:
            yield hint
        else:
            yield from recovery_procedure(report.path).splitlines()
        yield f"Result: the database cannot be used (exit code {report.exit_code})"
        return
    indexes = [p for p in report.problems if p.action is Repair.REINDEX]
    yield "SQLite integrity: " + (
        "ok"
        if not indexes
        else "ok but for index "
        + ", ".join(str(p.object_id) for p in indexes)
        + " (disagrees with its table)"
    )
    schema = [p for p in report.problems if p.action in _SCHEMA_REPAIRS]
    yield f"Schema: version {report.schema_version or 'not recorded'}, " + (
        "tables and indexes ok" if not schema else _plural(len(schema), "problem")
    )
    if verbose:
        after = report.after if report.after is not None and report.after.fatal is None else None
        yield "Objects (after repair):" if after is not None else "Objects:"
        yield from (
            f"  {line}"
            for line in list_objects(report.path, unindexed=bool(indexes) and report.after is None)
        )
    yield from _sections(report)
    if report.problems:
        yield f"Problems ({len(report.problems):,}):"
        for p in report.problems:
            yield f"  {p.kind} {p.object_id}: {p.reason}  → {p.repair}"
    if report.repair_error is not None:
        yield f"Repair failed and was rolled back, nothing was changed: {report.repair_error}"
    elif report.repaired:
        quarantined = sum(1 for p in report.problems if p.action in _QUARANTINE_REPAIRS)
        requeued = sum(1 for p in report.problems if p.action is Repair.REQUEUE)
        yield (
            f"Repair: {_plural(report.repaired, 'problem')} repaired in one transaction "
            f"({quarantined:,} moved to quarantine, {_plural(requeued, 'stale lease')} "
            "queued again, "
            f"{len(schema):,} schema repairs)"
        )
    elif report.problems and not report.repair_requested:
        yield "Run `waypost check --repair` to repair them (Waypost must be stopped)."
    if report.after is not None:
        after = report.after
        if after.fatal is not None:
            yield f"Check after repair: FATAL: {after.fatal}"
        elif after.clean:
            yield (
                f"Check after repair: clean ({after.messages:,} messages, "
                f"{after.recipients:,} recipients, {after.content:,} content rows; "
                f"quarantine table {_plural(after.quarantine_entries, 'entry', 'entries')})"
            )
        else:
            yield f"Check after repair: {_plural(len(after.problems), 'problem')} remain:"
            for p in after.problems:
                yield f"  {p.kind} {p.object_id}: {p.reason}"
    yield f"Result: {_RESULT[report.exit_code]} (exit code {report.exit_code})"


_RESULT = {
    EXIT_CLEAN: "clean",
    EXIT_PROBLEMS: "problems found",
    EXIT_FATAL: "the database cannot be used",
    EXIT_REPAIRED: "repaired; the database checks clean",
}


def _sections(report: CheckReport) -> Iterator[str]:
    def bad(kind: str, *, leases: bool = False) -> int:
        return sum(
            1 for p in report.problems if p.kind == kind and (p.action is Repair.REQUEUE) == leases
        )

    yield (
        f"Messages: {report.messages:,} checked, {bad('message'):,} bad, "
        f"{report.quarantined_messages:,} already quarantined"
    )
    yield (
        f"Recipients: {report.recipients:,} checked, {bad('recipient'):,} bad, "
        f"{_plural(bad('recipient', leases=True), 'stale lease')}, "
        f"{report.quarantined_recipients:,} already quarantined"
    )
    yield f"Content: {report.content:,} checked, {bad('content'):,} orphaned"
    yield f"Quarantine table: {_plural(report.quarantine_entries, 'entry', 'entries')}"
    if report.seconds and not report.repaired:
        rate = report.recipients / report.seconds
        yield f"Time: {report.seconds:.2f} s ({rate:,.0f} recipients/s)"
    elif report.seconds:
        yield f"Time: {report.seconds:.2f} s, with the repair and the check after it"


def render(report: CheckReport, verbose: bool = False) -> str:
    """The whole report as one string; for a large queue write `render_lines` line by line."""
    return "\n".join(render_lines(report, verbose))


__all__ = [
    "EXIT_CLEAN",
    "EXIT_FATAL",
    "EXIT_PROBLEMS",
    "EXIT_REPAIRED",
    "RECOVERY_PROCEDURE",
    "CheckReport",
    "FatalKind",
    "Problem",
    "Repair",
    "check_database",
    "list_objects",
    "recovery_procedure",
    "render",
    "render_lines",
]
