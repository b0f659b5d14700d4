"""Opening the database, SQLite's integrity check and the schema's structure.

A `FatalError` when the rows cannot be checked at all; a `Problem` for what repair can mend.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from waypost.store.check.report import FatalKind, Problem, Repair
from waypost.store.schema import INDEXES, SCHEMA_VERSION, UPGRADABLE, connect, create

# The columns an upgrade from an older schema adds: (table, column) names as one set.
ADDED_COLUMNS = frozenset({"rank"})

# Tables whose loss loses queued mail: no repair can bring them back.
DATA_TABLES = ("messages", "content", "recipients")
# Tables that repair may create empty without losing anything.
SIDE_TABLES = ("meta", "quarantine")

# integrity_check lines that say only that an index disagrees with its table:
# REINDEX rebuilds the index from the table, so they are repairable.
_INDEX_ONLY = re.compile(
    r"(?:row \d+ missing from index|wrong # of entries in index|non-unique entry in index) (\S+)"
)

# The index SQLite keeps for meta's primary key: REINDEX rebuilds it like ours.
_META_KEY_INDEX = re.compile(r"sqlite_autoindex_meta_\d+")


class FatalError(Exception):
    """Raised inside the check when the database cannot be checked further."""

    def __init__(self, kind: FatalKind, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def reports_damage(exc: sqlite3.Error) -> bool:
    """Whether SQLite's error says the file is damaged (rather than, say, locked)."""
    text = str(exc)
    return "not a database" in text or "malformed" in text or "corrupt" in text


def describe_error(exc: sqlite3.Error) -> str:
    """SQLite's error in words an operator can act on."""
    text = str(exc)
    if "not a database" in text:
        return f"the file is not an SQLite database, or its header is destroyed ({text})"
    if "malformed" in text:
        return f"SQLite cannot read it: {text}"
    if "locked" in text or "busy" in text:
        return f"{text}: is Waypost still running? Stop it before `waypost check --repair`"
    return text


def open_readonly(path: str) -> sqlite3.Connection:
    """A read-only connection to the database at `path`; FatalError if SQLite cannot open it."""
    if not os.path.lexists(path):
        raise FatalError(FatalKind.MISSING, f"{path} does not exist")
    if os.path.isdir(path):
        raise FatalError(FatalKind.UNREADABLE, f"{path} is a directory, not a database file")
    try:
        return connect(path, readonly=True)
    except sqlite3.Error as exc:
        if isinstance(exc, sqlite3.DatabaseError) and reports_damage(exc):
            raise FatalError(FatalKind.CORRUPT, describe_error(exc)) from None
        raise FatalError(FatalKind.UNREADABLE, f"SQLite cannot open {path}: {exc}") from None


@contextlib.contextmanager
def read_snapshot(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One read transaction, so that every query sees the same snapshot; closes `conn` after.

    An SQLite error inside it is a `FatalError`: the file cannot be checked.
    """
    try:
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        kind = FatalKind.CORRUPT if reports_damage(exc) else FatalKind.UNREADABLE
        raise FatalError(kind, describe_error(exc)) from None
    finally:
        conn.close()


def check_integrity(conn: sqlite3.Connection) -> frozenset[str]:
    """Run SQLite's integrity check; returns the indexes that only disagree with their table.

    Anything else it reports (torn pages, bad b-trees, a file that is not a
    database) is fatal.
    """
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise FatalError(FatalKind.CORRUPT, describe_error(exc)) from None
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
        raise FatalError(FatalKind.CORRUPT, f"SQLite's integrity check fails: {shown}")
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
            for name in (*DATA_TABLES, *SIDE_TABLES)
        }
    finally:
        mem.close()
    return _Reference(sql=sql, columns=columns)


def reference_sql(name: str) -> str:
    """The SQL that creates table or index `name` as waypost.store.schema has it."""
    return _reference().sql[name]


@dataclass(frozen=True, slots=True)
class Structure:
    version: int | None
    problems: tuple[Problem, ...]


def check_structure(conn: sqlite3.Connection, damaged: frozenset[str]) -> Structure:
    """Tables, columns, schema version and indexes; FatalError if rows cannot be checked.

    `damaged` are the indexes that `check_integrity` found disagreeing with their table.
    """
    objects = {
        (str(kind), str(name))
        for kind, name in conn.execute("SELECT type, name FROM sqlite_master")
    }
    tables = {name for kind, name in objects if kind == "table"}
    indexes = {name for kind, name in objects if kind == "index"}
    ours = [t for t in (*DATA_TABLES, *SIDE_TABLES) if t in tables]
    if not ours:
        raise FatalError(
            FatalKind.NOT_WAYPOST,
            "it has none of Waypost's tables: it is not a Waypost MTA database",
        )
    lost = [t for t in DATA_TABLES if t not in tables]
    if lost:
        raise FatalError(FatalKind.SCHEMA, f"table {', '.join(lost)} is missing: its rows are lost")
    version, version_problem = _schema_version(conn, has_meta="meta" in tables)
    # What the upgrade adds is not there yet in an older Waypost's database.
    added = ADDED_COLUMNS if version in UPGRADABLE else frozenset()
    for table in ours:
        have = {str(row[1]) for row in conn.execute(f'PRAGMA table_info("{table}")')}
        missing = sorted(_reference().columns[table] - have - added)
        if missing:
            raise FatalError(FatalKind.SCHEMA, f"table {table} lacks column {', '.join(missing)}")
    problems = [
        Problem(kind="table", object_id=table, reason="is missing", action=Repair.CREATE_TABLE)
        for table in SIDE_TABLES
        if table not in tables
    ]
    if version_problem is not None:
        problems.append(version_problem)
    problems.extend(
        Problem(kind="index", object_id=name, reason="is missing", action=Repair.CREATE_INDEX)
        for name in INDEXES
        if name not in indexes
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
    return Structure(version=version, problems=(*rebuilt, *problems))


def _schema_version(
    conn: sqlite3.Connection, *, has_meta: bool
) -> tuple[int | None, Problem | None]:
    """The recorded schema version, or the problem repair mends; FatalError for another's."""
    row = (
        conn.execute(
            # NOT INDEXED: the key's index may be the damaged one.
            "SELECT CAST(value AS BLOB) FROM meta NOT INDEXED WHERE key = 'schema_version'"
        ).fetchone()
        if has_meta
        else None
    )
    value = row[0] if row is not None and isinstance(row[0], bytes) else b""
    text = value.decode("utf-8", "replace").strip()
    if text == str(SCHEMA_VERSION):
        return SCHEMA_VERSION, None
    if text.isascii() and text.isdigit() and int(text) in UPGRADABLE:
        older = int(text)
        return older, Problem(
            kind="meta",
            object_id="schema_version",
            reason=f"is {older}, an older Waypost's",
            action=Repair.UPGRADE,
        )
    if text.isascii() and text.isdigit():
        raise FatalError(
            FatalKind.VERSION,
            f"schema version {text} is not one this Waypost knows (it knows "
            f"{SCHEMA_VERSION}): another Waypost release wrote it",
        )
    return None, Problem(
        kind="meta",
        object_id="schema_version",
        reason="is not recorded" if row is None else f"is damaged ({value!r})",
        action=Repair.SET_VERSION,
    )
