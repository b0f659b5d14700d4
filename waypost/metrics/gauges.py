"""The gauges: what the queue holds by next hop, the oldest message's age, the open
associations and connections. Read when Prometheus scrapes, from a snapshot the event
loop takes (the store's reader thread runs the query), never from the scrape itself."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from waypost.message import BY_RANK
from waypost.metrics.labels import OTHER, transport_of
from waypost.store.base import HopState, PriorityState, QueueSummary
from waypost.store.qshape import WAITING_STATES

# How long a next hop whose queue emptied is still shown, with 0 recipients.
SHOW_EMPTIED = 3600.0

# (peer, direction, open associations) and (listener, open connections).
Associations = Callable[[], Iterable[tuple[str, str, int]]]
Connections = Callable[[], Iterable[tuple[str, int]]]


@dataclass
class LiveSources:
    """Where the live figures come from: the listeners, the delivery agents and the queue
    manager, asked when a snapshot is taken."""

    associations: Associations = lambda: ()
    smtp_connections: Connections = lambda: ()
    hops_down: Callable[[], Iterable[str]] = lambda: ()


@dataclass
class Snapshot:
    """The figures of one moment."""

    taken: float = 0.0
    queue: QueueSummary = field(default_factory=lambda: QueueSummary([], 0, 0))
    associations: list[tuple[str, str, int]] = field(default_factory=list)
    smtp_connections: list[tuple[str, int]] = field(default_factory=list)
    hops_down: list[str] = field(default_factory=list)


def bounded(hops: list[HopState], limit: int) -> list[HopState]:
    """The `limit` next hops with the most recipients keep their names; the others are
    summed under `other` (per state), their oldest the oldest of them."""
    totals: dict[str, int] = {}
    for hop in hops:
        totals[hop.next_hop] = totals.get(hop.next_hop, 0) + hop.recipients
    kept = set(sorted(totals, key=lambda h: (-totals[h], h))[:limit])
    merged: dict[tuple[str, str], HopState] = {}
    for hop in hops:
        name = hop.next_hop if hop.next_hop in kept else OTHER
        key = (name, hop.state)
        before = merged.get(key)
        if before is None:
            merged[key] = HopState(name, hop.state, hop.recipients, hop.octets, hop.oldest)
        else:
            merged[key] = HopState(
                name,
                hop.state,
                before.recipients + hop.recipients,
                before.octets + hop.octets,
                min(before.oldest, hop.oldest),
            )
    return list(merged.values())


def _by_priority(states: list[PriorityState], now: float) -> Iterator[Metric]:
    """The queue by priority: every priority and state shown, 0 when it has none, so that an
    alert on urgent mail waiting has a series to watch."""
    recipients = GaugeMetricFamily(
        "waypost_queue_priority_recipients",
        "Recipients in the queue, by their message's priority and state.",
        labels=["priority", "state"],
    )
    oldest = GaugeMetricFamily(
        "waypost_queue_priority_oldest_age_seconds",
        "Age of the oldest message of each priority in the queue.",
        labels=["priority"],
    )
    counts = {(s.priority, s.state): s.recipients for s in states}
    firsts: dict[str, float] = {}
    for s in states:
        firsts[s.priority] = min(firsts.get(s.priority, s.oldest), s.oldest)
    names = [p.label for p in BY_RANK]
    names += sorted({s.priority for s in states} - set(names))  # a damaged rank, if any
    for name in names:
        for state in WAITING_STATES:
            recipients.add_metric([name, state], counts.get((name, state), 0))
        first = firsts.get(name)
        oldest.add_metric([name], max(0.0, now - first) if first else 0.0)
    yield recipients
    yield oldest


class QueueCollector(Collector):
    """Yields the gauges of the latest snapshot (see module docstring)."""

    def __init__(self, max_next_hops: int, clock: Callable[[], float] = time.time) -> None:
        self.max_next_hops = max_next_hops
        self.clock = clock
        self.snapshot = Snapshot()
        self._seen: dict[str, float] = {}  # next hop → when it last had recipients

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot
        now = self.clock()
        recipients = GaugeMetricFamily(
            "waypost_queue_recipients",
            "Recipients in the queue, by next hop and state.",
            labels=["next_hop", "transport", "state"],
        )
        octets = GaugeMetricFamily(
            "waypost_queue_bytes",
            "Octets of the messages queued for each next hop (once per next hop).",
            labels=["next_hop", "transport"],
        )
        oldest = GaugeMetricFamily(
            "waypost_queue_oldest_age_seconds",
            "Age of the oldest message queued for each next hop.",
            labels=["next_hop", "transport"],
        )
        by_hop: dict[str, tuple[int, float]] = {}
        shown: set[tuple[str, str]] = set()
        for hop in bounded(snap.queue.hops, self.max_next_hops):
            transport = transport_of(hop.next_hop)
            recipients.add_metric([hop.next_hop, transport, hop.state], hop.recipients)
            shown.add((hop.next_hop, hop.state))
            size, first = by_hop.get(hop.next_hop, (0, hop.oldest))
            by_hop[hop.next_hop] = (size + hop.octets, min(first, hop.oldest))
            self._seen[hop.next_hop] = now
        # A next hop whose queue emptied shows 0 for a while rather than vanishing: a
        # graph reaches 0 and `sum()` over it stays a number.
        for name, seen in list(self._seen.items()):
            if now - seen > SHOW_EMPTIED:
                del self._seen[name]
                continue
            for state in WAITING_STATES:
                if (name, state) not in shown:
                    recipients.add_metric([name, transport_of(name), state], 0)
            by_hop.setdefault(name, (0, 0.0))
        for name, (size, first) in by_hop.items():
            transport = transport_of(name)
            octets.add_metric([name, transport], size)
            oldest.add_metric([name, transport], max(0.0, now - first) if first else 0.0)
        yield recipients
        yield octets
        yield oldest
        yield from _by_priority(snap.queue.priorities, now)
        yield GaugeMetricFamily(
            "waypost_queue_messages", "Messages in the queue.", value=snap.queue.messages
        )
        yield GaugeMetricFamily(
            "waypost_reports_owed",
            "Recipients whose report is owed and not yet made.",
            value=snap.queue.reports_owed,
        )
        associations = GaugeMetricFamily(
            "waypost_x400_associations",
            "P1 associations open now, by peer and direction.",
            labels=["peer", "direction"],
        )
        for peer, direction, count in snap.associations:
            associations.add_metric([peer, direction], count)
        yield associations
        connections = GaugeMetricFamily(
            "waypost_smtp_connections",
            "SMTP connections open now, by listener.",
            labels=["listener"],
        )
        for listener, count in snap.smtp_connections:
            connections.add_metric([listener], count)
        yield connections
        down = GaugeMetricFamily(
            "waypost_next_hops_down",
            "Next hops found unreachable, whose recipients wait for a probe.",
            value=len(snap.hops_down),
        )
        yield down
        yield GaugeMetricFamily(
            "waypost_snapshot_age_seconds",
            "How old these gauges are.",
            value=max(0.0, now - snap.taken) if snap.taken else 0.0,
        )
