"""The counters and histograms, counted from the events (`events.observe`) and from the
store's commits: each fact is counted by the call that logs it, whatever the log level."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from waypost import events
from waypost.events import EventDefinition
from waypost.metrics.labels import LabelBudget, transport_of

UNKNOWN_PEER = "unknown"

# Seconds from an enqueue's submission to its durable commit (a 250 waits for it).
ENQUEUE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# Operations that shared one group commit (one fsync).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def _number(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


class Counters:
    """Waypost's counters in `registry`. `peers`: the configured X.400 peers' names, the
    only ones that get a label of their own."""

    def __init__(
        self, registry: CollectorRegistry, *, max_next_hops: int, peers: Collection[str]
    ) -> None:
        self.hop = LabelBudget(max_next_hops)
        self.peers = frozenset(peers)
        r = registry
        self.received = Counter(
            "waypost_messages_received",
            "Messages queued, by how they came.",
            ["source"],
            registry=r,
        )
        self.received_bytes = Counter(
            "waypost_received_bytes", "Octets of content queued.", ["source"], registry=r
        )
        self.delivered = Counter(
            "waypost_delivered",
            "Recipients delivered (locally) or passed to the next hop.",
            ["next_hop", "transport"],
            registry=r,
        )
        self.delivered_bytes = Counter(
            "waypost_delivered_bytes",
            "Octets of content delivered or passed on, once per recipient.",
            ["next_hop", "transport"],
            registry=r,
        )
        self.deferred = Counter(
            "waypost_deferred",
            "Delivery attempts deferred (a temporary failure).",
            ["next_hop", "transport"],
            registry=r,
        )
        self.failed = Counter(
            "waypost_failed",
            "Recipients failed for good: refused, or expired in the queue.",
            ["next_hop", "transport", "reason"],
            registry=r,
        )
        self.reports = Counter(
            "waypost_reports_sent", "Reports made and queued, by kind.", ["kind"], registry=r
        )
        self.conversions = Counter(
            "waypost_gateway_conversions",
            "Recipients the MIXER gateway converted for the other world.",
            ["conversion", "stage"],
            registry=r,
        )
        self.quarantined = Counter(
            "waypost_quarantined_objects",
            "Objects of the MTA database moved to quarantine.",
            ["kind"],
            registry=r,
        )
        self.associations_opened = Counter(
            "waypost_x400_associations_opened",
            "P1 associations opened and bound.",
            ["peer", "direction"],
            registry=r,
        )
        self.associations_failed = Counter(
            "waypost_x400_associations_failed",
            "P1 associations aborted, refused, or whose transfer failed.",
            ["peer", "direction"],
            registry=r,
        )
        self.smtp_refused = Counter(
            "waypost_smtp_connections_refused",
            "SMTP connections refused at accept (over a limit).",
            registry=r,
        )
        self.events = Counter(
            "waypost_events",
            "Events emitted, logged or not, by category and severity (the trace apart).",
            ["category", "severity"],
            registry=r,
        )
        self.enqueue_seconds = Histogram(
            "waypost_store_enqueue_seconds",
            "Time from an enqueue's submission to its durable commit.",
            buckets=ENQUEUE_BUCKETS,
            registry=r,
        )
        self.commit_operations = Histogram(
            "waypost_store_commit_operations",
            "Operations that shared one group commit of the MTA database.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self._by_event: dict[int, Callable[[Mapping[str, object]], None]] = {
            events.MESSAGE_QUEUED.id: self._queued,
            events.DELIVERED.id: self._delivered,
            events.RECIPIENT_DEFERRED.id: self._deferred,
            events.RECIPIENT_FAILED.id: lambda f: self._failed(f, "refused"),
            events.RECIPIENT_EXPIRED.id: lambda f: self._failed(f, "expired"),
            events.REPORT_QUEUED.id: self._report,
            events.GATEWAY_CONVERTED.id: lambda f: self._converted(f, "queue"),
            events.GATEWAY_CONVERTED_ON_ARRIVAL.id: lambda f: self._converted(f, "arrival"),
            events.OBJECT_QUARANTINED.id: self._quarantined,
            events.X400_ASSOCIATION_OPENED.id: self._opened,
            events.X400_ASSOCIATION_ABORTED.id: lambda f: self._assoc_failed(f, "inbound"),
            events.X400_BIND_REFUSED.id: self._bind_refused,
            events.X400_PEER_REFUSED.id: lambda f: self._assoc_failed(f, "outbound"),
            events.X400_TRANSFER_FAILED.id: lambda f: self._assoc_failed(f, "outbound"),
            events.SMTP_CONNECTION_REFUSED.id: lambda f: self.smtp_refused.inc(),
        }
        # (metric, labels) → its child; bounded, as the labels are.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        self._event_counters = {
            (c, s): self.events.labels(c.value, s.name.lower())
            for c in events.Category
            for s in events.Severity
            if s > events.Severity.DEBUG
        }

    def observe(self) -> Callable[[], None]:
        """Count every event from now on but the protocol trace's; returns how to stop.
        (An event observed is always emitted: observing the trace would write it.)"""
        counted = [e for e in events.catalogue() if e.severity > events.Severity.DEBUG]
        return events.observe(counted, self._event)

    def committed(self, operations: int, seconds: float) -> None:
        """The store's commit hook (in its writer thread: prometheus_client is thread-safe)."""
        del seconds
        self.commit_operations.observe(operations)

    def peer(self, name: object) -> str:
        """A configured peer's name; anything else (an unknown caller) is `unknown`."""
        text = str(name or "")
        if text.endswith(")") and " (" in text:  # `NAME (address)`: the bound peer's name
            text = text[: text.rindex(" (")]
        return text if text in self.peers else UNKNOWN_PEER

    def _event(self, event: EventDefinition, fields: Mapping[str, object]) -> None:
        self._event_counters[(event.category, event.severity)].inc()
        count = self._by_event.get(event.id)
        if count is not None:
            count(fields)

    def _hop(self, fields: Mapping[str, object]) -> tuple[str, str]:
        hop = str(fields.get("next_hop") or "")
        return self.hop(hop), transport_of(hop)

    def _child(self, metric: Counter, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once: each message counts several."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _queued(self, f: Mapping[str, object]) -> None:
        source = str(f.get("source") or "")
        self._child(self.received, source).inc()
        self._child(self.received_bytes, source).inc(_number(f.get("size")))

    def _delivered(self, f: Mapping[str, object]) -> None:
        labels = self._hop(f)
        self._child(self.delivered, *labels).inc()
        self._child(self.delivered_bytes, *labels).inc(_number(f.get("size")))

    def _deferred(self, f: Mapping[str, object]) -> None:
        self._child(self.deferred, *self._hop(f)).inc()

    def _failed(self, f: Mapping[str, object], reason: str) -> None:
        self.failed.labels(*self._hop(f), reason).inc()

    def _report(self, f: Mapping[str, object]) -> None:
        self.reports.labels(str(f.get("kind") or "")).inc()

    def _converted(self, f: Mapping[str, object], stage: str) -> None:
        self.conversions.labels(str(f.get("conversion") or ""), stage).inc(
            _number(f.get("recipients"))
        )

    def _quarantined(self, f: Mapping[str, object]) -> None:
        self.quarantined.labels(str(f.get("kind") or "")).inc()

    def _opened(self, f: Mapping[str, object]) -> None:
        direction = str(f.get("direction") or "").lower()
        self.associations_opened.labels(self.peer(f.get("peer")), direction).inc()

    def _assoc_failed(self, f: Mapping[str, object], direction: str) -> None:
        self.associations_failed.labels(self.peer(f.get("peer")), direction).inc()

    def _bind_refused(self, f: Mapping[str, object]) -> None:
        self.associations_failed.labels(self.peer(f.get("mta_name")), "inbound").inc()
