"""The metrics of a running Waypost and the HTTP endpoint Prometheus scrapes (`GET
/metrics`), served on the event loop by aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Collection

from aiohttp import web
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.process_collector import ProcessCollector

from waypost import __version__, events
from waypost.metrics.counters import Counters
from waypost.metrics.gauges import LiveSources, QueueCollector, Snapshot
from waypost.store.base import QueueSummary, StoreError

# A snapshot younger than this is served again rather than taken anew (several scrapers).
FRESH = 1.0


class Metrics:
    """The registry with Waypost's counters and gauges. `summary` reads the queue (the
    store's `queue_summary`); `live` the listeners and delivery agents."""

    def __init__(
        self,
        summary: Callable[[], Awaitable[QueueSummary]],
        live: LiveSources,
        *,
        max_next_hops: int = 100,
        peers: Collection[str] = (),
    ) -> None:
        # The `_created` series double every counter's for what `process_start_time_seconds`
        # already says.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry()
        self.counters = Counters(self.registry, max_next_hops=max_next_hops, peers=peers)
        self.gauges = QueueCollector(max_next_hops)
        self.registry.register(self.gauges)
        ProcessCollector(registry=self.registry)  # CPU seconds, memory, open files
        info = Gauge("waypost_info", "This Waypost's version.", ["version"], registry=self.registry)
        info.labels(__version__).set(1)
        self.summary = summary
        self.live = live
        self._stop_observing: Callable[[], None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Count the events from now on."""
        self._stop_observing = self.counters.observe()

    def stop(self) -> None:
        if self._stop_observing is not None:
            self._stop_observing()
            self._stop_observing = None

    async def refresh(self) -> Snapshot:
        """A new snapshot, unless one younger than FRESH exists (taken once for many
        scrapes at once). A store that cannot be read leaves the last snapshot."""
        async with self._lock:
            snap = self.gauges.snapshot
            if time.time() - snap.taken < FRESH:
                return snap
            try:
                queue = await self.summary()
            except StoreError as exc:
                events.emit(events.UNEXPECTED_ERROR, component="metrics", error=str(exc))
                queue = snap.queue
            snap = Snapshot(
                taken=time.time(),
                queue=queue,
                associations=list(self.live.associations()),
                smtp_connections=list(self.live.smtp_connections()),
                hops_down=list(self.live.hops_down()),
            )
            self.gauges.snapshot = snap
            return snap

    def samples(self) -> dict[str, float]:
        """A few totals for the console's charts, from the counters and the last snapshot:
        keys ending in `_total` are counters (the console shows their rate)."""
        counters = self.counters
        snap = self.gauges.snapshot
        return {
            "queue recipients": float(sum(h.recipients for h in snap.queue.hops)),
            "messages_received_total": _total(counters.received),
            "delivered_total": _total(counters.delivered),
            "deferred_total": _total(counters.deferred),
            "failed_total": _total(counters.failed),
            "x400 associations": float(sum(count for _, _, count in snap.associations)),
            "smtp connections": float(sum(count for _, count in snap.smtp_connections)),
        }

    async def exposition(self) -> bytes:
        """The text format Prometheus reads, with fresh gauges."""
        await self.refresh()
        return generate_latest(self.registry)


class MetricsServer:
    """`GET /metrics` on one address; anything else is 404."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/", self._index)
        return app

    async def start(self, host: str, port: int) -> None:
        runner = web.AppRunner(self.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port, reuse_address=True)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        events.emit(events.HTTP_LISTENING, service="metrics endpoint", address=f"{host}:{port}")

    async def close(self) -> None:
        if self._runner is not None:
            with contextlib.suppress(Exception):
                await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        body = await self.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _index(self, request: web.Request) -> web.Response:
        return web.Response(text="Waypost metrics: /metrics\n")


def _total(counter: Counter) -> float:
    """The sum of a counter's series (every label set)."""
    return float(
        sum(
            sample.value
            for metric in counter.collect()
            for sample in metric.samples
            if sample.name.endswith("_total")
        )
    )
