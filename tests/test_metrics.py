"""The metrics on their own and in a running service: counters from events, bounded
labels, the queue gauges from the real store, and the endpoint in the text format."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from pathlib import Path

import pytest
from helpers import free_port, make_message, running_service
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from waypost import events
from waypost.message import Priority
from waypost.metrics.counters import Counters
from waypost.metrics.gauges import QueueCollector, Snapshot, bounded
from waypost.metrics.labels import OTHER, LabelBudget
from waypost.store.base import HopState, QueueSummary


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_a_label_budget_names_the_first_values_and_shares_one_for_the_rest() -> None:
    budget = LabelBudget(2)
    assert [budget(v) for v in ("a", "b", "c", "a", "d")] == ["a", "b", OTHER, "a", OTHER]


def test_next_hops_past_the_limit_are_summed_under_other() -> None:
    hops = [
        HopState("smtp:big", "queued", 50, 500, 10.0),
        HopState("smtp:mid", "deferred", 20, 200, 5.0),
        HopState("smtp:small", "deferred", 3, 30, 1.0),
        HopState("smtp:tiny", "deferred", 1, 10, 7.0),
    ]
    kept = {(h.next_hop, h.state): h for h in bounded(hops, 2)}
    assert set(kept) == {("smtp:big", "queued"), ("smtp:mid", "deferred"), (OTHER, "deferred")}
    other = kept[(OTHER, "deferred")]
    assert (other.recipients, other.octets, other.oldest) == (4, 40, 1.0)


def test_counters_count_the_events_whatever_the_log_level() -> None:
    counters = Counters(CollectorRegistry(), max_next_hops=1, peers=["PEER-MTA"])
    stop = counters.observe()
    try:
        events.emit(events.DELIVERED, message_id=1, recipient="a", next_hop="smtp:x", size=100)
        events.emit(events.DELIVERED, message_id=2, recipient="b", next_hop="smtp:y", size=50)
        events.emit(
            events.RECIPIENT_EXPIRED,
            message_id=3,
            recipient="c",
            attempts=9,
            error="e",
            next_hop="x400:PEER-MTA",
        )
        events.emit(events.X400_BIND_REFUSED, client="192.0.2.1:99", mta_name="EVIL", reason="r")
        events.emit(
            events.X400_ASSOCIATION_OPENED,
            direction="Outbound",
            peer="PEER-MTA",
            address="a",
            mode="1988",
        )
    finally:
        stop()
    events.emit(events.DELIVERED, message_id=4, recipient="d", next_hop="smtp:x", size=1)
    assert counters.delivered.labels("smtp:x", "smtp")._value.get() == 1
    assert counters.delivered.labels(OTHER, "smtp")._value.get() == 1  # the budget was 1
    assert counters.delivered_bytes.labels("smtp:x", "smtp")._value.get() == 100
    assert counters.failed.labels(OTHER, "x400", "expired")._value.get() == 1
    assert counters.associations_failed.labels("unknown", "inbound")._value.get() == 1
    assert counters.associations_opened.labels("PEER-MTA", "outbound")._value.get() == 1
    assert counters.events.labels("delivery", "info")._value.get() == 2


def test_a_next_hop_whose_queue_emptied_shows_zero() -> None:
    now = [1000.0]
    collector = QueueCollector(10, clock=lambda: now[0])
    collector.snapshot = Snapshot(
        taken=now[0], queue=QueueSummary([HopState("local", "queued", 2, 20, 990.0)], 1, 0)
    )
    families = {f.name: f for f in collector.collect()}
    assert {s.value for s in families["waypost_queue_recipients"].samples} == {2, 0}
    assert families["waypost_queue_oldest_age_seconds"].samples[0].value == 10.0
    collector.snapshot = Snapshot(taken=now[0], queue=QueueSummary([], 0, 0))
    families = {f.name: f for f in collector.collect()}
    values = [(s.labels["state"], s.value) for s in families["waypost_queue_recipients"].samples]
    assert sorted(values) == [("deferred", 0), ("held", 0), ("leased", 0), ("queued", 0)]
    now[0] += 7200  # an hour on, it is gone
    families = {f.name: f for f in collector.collect()}
    assert families["waypost_queue_recipients"].samples == []


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain")
        return str(answer.read().decode())


async def test_a_service_serves_its_queue_on_the_endpoint(tmp_path: Path) -> None:
    port = free_port()
    svc = await running_service(
        tmp_path,
        f'[server]\ndata_dir = "data"\n[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n'
        '[[route]]\nmatch = "later.example"\nnext_hop = "smtp:[127.0.0.1]:1"\n',
        background=False,  # what is submitted stays queued
    )
    try:
        await svc.start_http()
        for _ in range(3):
            await svc.submit(make_message(("x@later.example",)))
        await svc.submit(make_message(("y@later.example",), priority=Priority.URGENT))
        text = await asyncio.to_thread(_scrape, port)
    finally:
        await svc.stop()
    found = samples(text)
    hop = (("next_hop", "smtp:[127.0.0.1]:1"), ("state", "queued"), ("transport", "smtp"))
    assert found[("waypost_queue_recipients", hop)] == 4
    assert found[("waypost_queue_messages", ())] == 4
    assert found[("waypost_messages_received_total", (("source", "submit"),))] == 4
    assert found[("waypost_store_enqueue_seconds_count", ())] == 4
    by_priority = {
        labels: value
        for (name, labels), value in found.items()
        if name == "waypost_queue_priority_recipients" and ("state", "queued") in labels
    }
    assert by_priority == {
        (("priority", "urgent"), ("state", "queued")): 1,
        (("priority", "normal"), ("state", "queued")): 3,
        (("priority", "non-urgent"), ("state", "queued")): 0,
    }
    assert found[("waypost_queue_priority_oldest_age_seconds", (("priority", "non-urgent"),))] == 0
    assert ("process_cpu_seconds_total", ()) in found


async def test_an_endpoint_address_in_use_stops_the_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        svc = await running_service(
            tmp_path,
            f'[server]\ndata_dir = "data"\n[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
            f'[metrics]\nenabled = true\nlisten = "127.0.0.1:{port}"\n',
            background=False,
        )
        try:
            with pytest.raises(OSError, match="metrics"):
                await svc.start_http()
        finally:
            await svc.stop()


async def test_the_samples_for_the_console_total_every_label_set(tmp_path: Path) -> None:
    svc = await running_service(
        tmp_path,
        f'[server]\ndata_dir = "data"\n[smtp]\nlisten = ["127.0.0.1:{free_port()}"]\n'
        "[console]\nenabled = true\n"  # the counters are kept for the console too
        '[[route]]\nmatch = "later.example"\nnext_hop = "smtp:[127.0.0.1]:1"\n',
        background=False,
    )
    try:
        assert svc.metrics is not None and svc.metrics_server is None
        for n in range(2):
            await svc.submit(make_message((f"x{n}@later.example",)))
        await svc.metrics.refresh()
        found = svc.metrics.samples()
    finally:
        await svc.stop()
    assert found["messages_received_total"] == 2
    assert found["queue recipients"] == 2
    assert found["delivered_total"] == 0


def test_counting_every_event_does_not_turn_the_protocol_trace_on() -> None:
    # An observed event is always emitted (events.enabled is true for it): were the trace
    # counted, every SMTP session would build its trace whatever the log level.
    counters = Counters(CollectorRegistry(), max_next_hops=1, peers=[])
    stop = counters.observe()
    try:
        assert events.enabled(events.DELIVERED)
        assert not events.enabled(events.SMTP_TRACE)
        assert not events.enabled(events.X400_TRACE)
    finally:
        stop()
