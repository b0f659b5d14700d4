"""`--repair`: check again under the write lock and repair what is found, in one transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import Any, NamedTuple

from waypost import events
from waypost.message import decode_envelope
from waypost.store import quarantine
from waypost.store.check.report import Problem, Repair
from waypost.store.check.scan import Scanner, scan_rows
from waypost.store.check.structure import Structure, check_structure, reference_sql
from waypost.store.schema import SCHEMA_VERSION, connect, recorded_version, upgrade

# An event to emit once a repair has committed: (definition, fields).
Notice = tuple[events.EventDefinition, dict[str, object]]


class Repaired(NamedTuple):
    """What the repair found (and so repaired), and the events to emit for it."""

    structure: Structure
    scan: Scanner
    notices: list[Notice]


def repair_database(path: str, damaged: frozenset[str], now: float) -> Repaired:
    """Repair the database at `path`, whose `damaged` indexes only disagree with their tables.

    The repair is all or nothing: whatever fails (a `FatalError` included)
    rolls the one transaction back and is raised.
    """
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            structure = check_structure(conn, damaged)
            for problem in structure.problems:
                _repair_schema(conn, problem)
            # The indexes are sound again, so the scan may use them.
            scan = scan_rows(conn, unindexed=False)
            notices = [notice for p in scan.problems for notice in repair_row(conn, p, now)]
            conn.execute("COMMIT")
        except Exception:
            _rollback(conn)
            raise
    finally:
        conn.close()
    return Repaired(structure, scan, notices)


def _rollback(conn: sqlite3.Connection) -> None:
    with contextlib.suppress(sqlite3.Error):
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _repair_schema(conn: sqlite3.Connection, problem: Problem) -> None:
    name = str(problem.object_id)
    if problem.action in (Repair.CREATE_TABLE, Repair.CREATE_INDEX):
        conn.execute(reference_sql(name))
    elif problem.action is Repair.SET_VERSION:
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
    elif problem.action is Repair.REINDEX:
        conn.execute(f'REINDEX "{name}"')
    elif problem.action is Repair.UPGRADE:
        found = recorded_version(conn)
        assert found is not None
        upgrade(conn, found)


def repair_row(conn: Any, problem: Problem, now: float) -> list[Notice]:
    """Apply one row repair; returns the events to emit once the transaction commits."""
    object_id = problem.object_id
    assert isinstance(object_id, int)
    if problem.action is Repair.REQUEUE:
        return _requeue(conn, object_id, now)
    if problem.action is Repair.SET_RANK:
        _set_rank(conn, object_id, now)
        return []
    reason = f"waypost check: {problem.reason}"
    # quarantine.* looked up at each call, not bound once: tests replace them.
    if problem.action is Repair.QUARANTINE_MESSAGE:
        done = quarantine.quarantine_message(conn, object_id, reason, now)
    elif problem.action is Repair.QUARANTINE_RECIPIENT:
        done = quarantine.quarantine_recipient(conn, object_id, reason, now)
    elif problem.action is Repair.REMOVE_RECIPIENT:
        done = quarantine.quarantine_recipient(conn, object_id, reason, now, remove=True)
    elif problem.action is Repair.QUARANTINE_CONTENT:
        done = quarantine.quarantine_content(conn, object_id, reason, now)
    else:
        raise AssertionError(problem.action)
    if not done:
        return []
    moved = {"kind": problem.kind, "object_id": object_id, "reason": problem.reason}
    return [(events.OBJECT_QUARANTINED, moved)]


def _set_rank(conn: Any, recipient_id: int, now: float) -> None:
    """Give a recipient the rank of its message's priority (the scan found them valid)."""
    row = conn.execute(
        "SELECT m.envelope FROM recipients AS r JOIN messages AS m ON m.id = r.message_id "
        "WHERE r.id = ?",
        (recipient_id,),
    ).fetchone()
    if row is not None:
        rank = decode_envelope(bytes(row[0])).priority.rank
        conn.execute(
            "UPDATE recipients SET rank = ?, updated_at = ? WHERE id = ?",
            (rank, now, recipient_id),
        )


def _requeue(conn: Any, recipient_id: int, now: float) -> list[Notice]:
    """Queue again a recipient leased by a worker that no longer exists."""
    row = conn.execute(
        "SELECT message_id, lease_owner FROM recipients WHERE id = ? AND state = 'leased'",
        (recipient_id,),
    ).fetchone()
    if row is None:
        return []
    conn.execute(
        "UPDATE recipients SET state = 'queued', due_at = ?, lease_owner = NULL, "
        "updated_at = ? WHERE id = ?",
        (now, now, recipient_id),
    )
    fields = {"recipient_id": recipient_id, "message_id": row[0], "owner": row[1]}
    return [(events.LEASE_EXPIRED, fields)]
