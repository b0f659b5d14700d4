"""Finding messages in the tracking journal by any of their identifiers, and each one's
life: the records of the messages found, and of those they made or were made from (a
report, a gateway's converted message), oldest first."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from waypost.store.listing import like_pattern
from waypost.tracking.journal import COLUMNS, Record, connect, first_id_at

# Lives followed through links (reports, conversions) at most, and records shown at most.
MAX_MESSAGES = 1000
MAX_RECORDS = 100_000


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackQuery:
    """Every condition given must hold for a record to start a search; times are Unix
    seconds (`find` applies them). `remote_id` is what a previous hop called the message
    (`queued as …`)."""

    message_id: int | None = None
    msgid: str | None = None
    mts_id: str | None = None
    remote_id: str | None = None
    sender: str | None = None
    recipient: str | None = None
    since: float | None = None
    until: float | None = None

    def where(self) -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
        if self.message_id is not None:
            clauses.append("(message_id = ? OR linked_id = ?)")
            args += [self.message_id, self.message_id]
        if self.msgid is not None:
            clauses.append("msgid = ?")
            args.append(_bracketed(self.msgid))
        if self.mts_id is not None:
            clauses.append("mts_id = ?")
            args.append(self.mts_id)
        if self.remote_id is not None:
            clauses.append("remote_id = ?")
            args.append(self.remote_id)
        if self.sender is not None:
            clauses.append("sender LIKE ? ESCAPE '\\'")
            args.append(like_pattern(self.sender))
        if self.recipient is not None:
            clauses.append("recipient LIKE ? ESCAPE '\\'")
            args.append(like_pattern(self.recipient))
        return (" AND ".join(clauses) or "1"), args


def _bracketed(msgid: str) -> str:
    """A Message-ID as the header writes it: `<…>` may be left off when asking."""
    msgid = msgid.strip()
    return msgid if msgid.startswith("<") else f"<{msgid}>"


@dataclass(frozen=True, slots=True)
class Life:
    """One message's records, oldest first; `made_from` is the message it was made from."""

    message_id: int | None
    records: list[Record]
    made_from: int | None = None

    @property
    def mts_id(self) -> str | None:
        return next((r.mts_id for r in self.records if r.mts_id), None)

    @property
    def msgid(self) -> str | None:
        return next((r.msgid for r in self.records if r.msgid), None)


def search(path: str | Path, query: TrackQuery, *, limit: int = 100) -> list[Life]:
    """`find` in the journal at `path`, on a read-only connection of its own (for
    `waypost track` and the console); sqlite3.Error when it cannot be read."""
    conn = connect(path, readonly=True)
    try:
        return find(conn, query, limit=limit)
    finally:
        conn.close()


def find(conn: sqlite3.Connection, query: TrackQuery, *, limit: int = 100) -> list[Life]:
    """The lives of the messages whose records match, with the messages linked to them,
    in the order they were first seen; at most `limit` starting messages."""
    condition, args = query.where()
    # A time range is a range of ids (records are written in time order).
    if query.since is not None:
        condition += " AND id >= ?"
        args.append(first_id_at(conn, query.since))
    if query.until is not None:
        condition += " AND id < ?"
        args.append(first_id_at(conn, query.until + 0.001))
    seeds = conn.execute(
        f"SELECT DISTINCT message_id, linked_id FROM records WHERE {condition} ORDER BY id LIMIT ?",
        [*args, limit * 20],
    ).fetchall()
    ids: list[int] = []
    for message_id, linked_id in seeds:
        for found in (message_id, linked_id):
            if found is not None and found not in ids and len(ids) < limit:
                ids.append(int(found))
    return _lives(_records(conn, ids))


def _records(conn: sqlite3.Connection, ids: list[int]) -> list[Record]:
    """The records of `ids` and of every message linked to them, through links both ways."""
    seen: set[int] = set()
    rows: dict[int, tuple[object, ...]] = {}
    todo = list(ids)
    while todo and len(seen) < MAX_MESSAGES and len(rows) < MAX_RECORDS:
        batch = [i for i in dict.fromkeys(todo) if i not in seen][:500]
        todo = []
        if not batch:
            break
        seen.update(batch)
        marks = ",".join("?" * len(batch))
        for row in conn.execute(
            f"SELECT id, {COLUMNS} FROM records WHERE message_id IN ({marks}) "
            f"OR linked_id IN ({marks})",
            [*batch, *batch],
        ):
            rows[row[0]] = row
            for linked in (row[3], row[10]):  # message_id, linked_id
                if linked is not None and linked not in seen:
                    todo.append(int(linked))
    return [Record.from_row(rows[key][1:]) for key in sorted(rows)]


def _lives(records: Iterable[Record]) -> list[Life]:
    by_message: dict[int | None, list[Record]] = {}
    made_from: dict[int, int] = {}
    for record in records:
        by_message.setdefault(record.message_id, []).append(record)
        if record.linked_id is not None and record.message_id is not None:
            made_from.setdefault(record.linked_id, record.message_id)
    lives = [
        Life(message_id, sorted(group, key=lambda r: r.at), made_from.get(message_id or -1))
        for message_id, group in by_message.items()
    ]
    return sorted(lives, key=lambda life: life.records[0].at)
