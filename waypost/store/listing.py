"""Which queued recipients an operator asked to see: filters by state, next hop, sender,
recipient and age, for `waypost queue list` and the scripts built on it. Read-only."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from waypost.message import BY_RANK, Priority
from waypost.store.base import HopState, PriorityState, QueueSummary
from waypost.store.database import Database, QueueRow
from waypost.store.qshape import WAITING_STATES

_COLUMNS = (
    "r.message_id, r.id, r.address, m.originator, r.next_hop, r.state, r.attempts, "
    "r.last_error, r.due_at, m.received_at, m.size, r.report, r.rank"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class QueueFilter:
    """Every condition given must hold. `sender`/`recipient` are address patterns (see
    `like_pattern`); ages are in seconds, measured at `now`."""

    states: tuple[str, ...] = ()
    next_hop: str | None = None
    sender: str | None = None
    recipient: str | None = None
    older_than: float | None = None
    younger_than: float | None = None
    priority: Priority | None = None
    now: float = 0.0

    def where(self) -> tuple[str, list[object]]:
        """The SQL condition over recipients `r` joined to messages `m`, and its arguments."""
        clauses: list[str] = []
        args: list[object] = []
        if self.states:
            clauses.append(f"r.state IN ({', '.join('?' for _ in self.states)})")
            args.extend(self.states)
        if self.next_hop is not None:
            clauses.append("r.next_hop = ?")
            args.append(self.next_hop)
        if self.sender is not None:
            clauses.append("m.originator LIKE ? ESCAPE '\\'")
            args.append(like_pattern(self.sender))
        if self.recipient is not None:
            clauses.append("r.address LIKE ? ESCAPE '\\'")
            args.append(like_pattern(self.recipient))
        if self.priority is not None:
            clauses.append("r.rank = ?")
            args.append(self.priority.rank)
        if self.older_than is not None:
            clauses.append("m.received_at <= ?")
            args.append(self.now - self.older_than)
        if self.younger_than is not None:
            clauses.append("m.received_at > ?")
            args.append(self.now - self.younger_than)
        return (" AND ".join(clauses) or "TRUE"), args


def like_pattern(pattern: str) -> str:
    """An address pattern as SQL LIKE: `*` any run of characters, `?` one character, and
    `@example.org` every address of that domain; otherwise the whole address. LIKE
    compares ASCII letters without case, as mail domains and O/R addresses compare."""
    if pattern.startswith("@"):
        pattern = "*" + pattern
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def select_rows(db: Database, where: QueueFilter, limit: int | None = None) -> Iterator[QueueRow]:
    """The recipients that match, by message and then recipient order."""
    condition, args = where.where()
    sql = (
        f"SELECT {_COLUMNS} FROM recipients AS r JOIN messages AS m ON m.id = r.message_id "
        f"WHERE {condition} ORDER BY r.message_id, r.rcpt_index"
    )
    if limit is not None:
        sql += " LIMIT ?"
        args = [*args, limit]
    for row in db.conn.execute(sql, args):
        yield QueueRow(*row)


def count_rows(db: Database, where: QueueFilter) -> int:
    """How many recipients match, whatever the limit on what is shown."""
    condition, args = where.where()
    row = db.conn.execute(
        "SELECT count(*) FROM recipients AS r JOIN messages AS m ON m.id = r.message_id "
        f"WHERE {condition}",
        args,
    ).fetchone()
    return int(row[0])


def queue_summary(db: Database) -> QueueSummary:
    """One pass over the recipients still in the queue, grouped by next hop, state and
    rank: the queue by next hop and state, and by priority and state, are both read from
    it."""
    marks = ", ".join("?" for _ in WAITING_STATES)
    rows = db.conn.execute(
        "SELECT r.next_hop, r.state, r.rank, count(*), coalesce(sum(m.size), 0), "
        "min(m.received_at) FROM recipients AS r JOIN messages AS m ON m.id = r.message_id "
        f"WHERE r.state IN ({marks}) GROUP BY r.next_hop, r.state, r.rank",
        WAITING_STATES,
    ).fetchall()
    by_hop: dict[tuple[str, str], list[float]] = {}
    by_rank: dict[tuple[object, str], list[float]] = {}
    for hop, state, rank, count, octets, oldest in rows:
        first = float(oldest or 0.0)
        for totals, key in ((by_hop, (str(hop), str(state))), (by_rank, (rank, str(state)))):
            total = totals.setdefault(key, [0, 0, first])
            total[0] += int(count)
            total[1] += int(octets or 0)
            total[2] = min(total[2], first)
    hops = [
        HopState(hop, state, int(count), int(octets), oldest)
        for (hop, state), (count, octets, oldest) in by_hop.items()
    ]
    priorities = [
        PriorityState(_priority_name(rank), state, int(count), oldest)
        for (rank, state), (count, _, oldest) in by_rank.items()
    ]
    messages = db.conn.execute("SELECT count(*) FROM messages WHERE state = 'active'").fetchone()
    owed = db.conn.execute("SELECT count(*) FROM recipients WHERE report IS NOT NULL").fetchone()
    return QueueSummary(
        hops=hops,
        messages=int(messages[0]),
        reports_owed=int(owed[0]),
        priorities=priorities,
    )


def _priority_name(rank: object) -> str:
    """A rank as the priority's name: urgent, normal, non-urgent."""
    if isinstance(rank, int) and 0 <= rank < len(BY_RANK):
        return BY_RANK[rank].label
    return f"rank {rank!r}"
