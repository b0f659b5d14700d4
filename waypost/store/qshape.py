"""Queues by next hop and message age, as Postfix's qshape shows them: recipients waiting
for each next hop in age buckets that double (`queue list --shape`, the console)."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from waypost.store.database import Database
from waypost.store.validate import is_number

BUCKETS = (5, 10, 20, 40, 80, 160, 320, 640, 1280)  # minutes, each under its label
HEADINGS = (*(str(b) for b in BUCKETS), f"{BUCKETS[-1]}+")
# Waiting for delivery: what qshape counts (delivered and failed ones are only waiting
# for their report, quarantined ones for an operator).
WAITING_STATES = ("queued", "deferred", "held", "leased")


@dataclass(frozen=True, slots=True)
class ShapeRow:
    """One next hop (or the total): recipients in all, and in each age bucket."""

    next_hop: str
    total: int
    buckets: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Shape:
    rows: list[ShapeRow]  # the busiest next hop first
    total: ShapeRow


def bucket_of(age_seconds: float) -> int:
    """The index of the age bucket; a damaged arrival time counts as the oldest, the one
    to look at."""
    minutes = age_seconds / 60 if is_number(age_seconds) else math.inf
    return next((i for i, limit in enumerate(BUCKETS) if minutes < limit), len(BUCKETS))


def shape(recipients: Iterable[tuple[str, object]], now: float) -> Shape:
    """The shape of (next hop, arrival time) pairs, one per recipient."""
    table: dict[str, Counter[int]] = defaultdict(Counter)
    for next_hop, received_at in recipients:
        age = now - received_at if isinstance(received_at, (int, float)) else math.inf
        table[str(next_hop)][bucket_of(age)] += 1
    width = len(HEADINGS)
    rows = [
        ShapeRow(hop, sum(counts.values()), tuple(counts[i] for i in range(width)))
        for hop, counts in table.items()
    ]
    rows.sort(key=lambda row: (-row.total, row.next_hop))
    totals = tuple(sum(row.buckets[i] for row in rows) for i in range(width))
    return Shape(rows=rows, total=ShapeRow("TOTAL", sum(totals), totals))


def read_shape(db: Database, now: float) -> Shape:
    marks = ", ".join("?" for _ in WAITING_STATES)
    rows = db.conn.execute(
        "SELECT r.next_hop, m.received_at FROM recipients AS r "
        f"JOIN messages AS m ON m.id = r.message_id WHERE r.state IN ({marks})",
        WAITING_STATES,
    )
    return shape(rows, now)
