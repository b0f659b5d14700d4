"""The overview's charts: key metrics sampled every few seconds into a ring, drawn as
small inline SVG sparklines on the server (no script in the browser)."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from waypost import events

SAMPLE_INTERVAL = 5.0
POINTS = 360  # half an hour at one sample every 5 s
WIDTH, HEIGHT = 240, 40
# A counter (Prometheus' naming) is shown as its rate, anything else as its value.
COUNTER_SUFFIX = "_total"


@dataclass(frozen=True, slots=True)
class Chart:
    """One metric ready to draw: `points` is an SVG polyline's attribute."""

    key: str
    label: str
    current: str
    points: str


class Sampler:
    """Samples `read()` into a ring of the last `points` values per key."""

    def __init__(
        self,
        read: Callable[[], Mapping[str, float]] | None,
        *,
        points: int = POINTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.read = read
        self.points = points
        self.clock = clock
        # One more sample than points: a rate needs two samples for each of its points.
        self._series: dict[str, deque[tuple[float, float]]] = {}

    def sample(self) -> None:
        if self.read is None:
            return
        now = self.clock()
        for key, value in self.read().items():
            series = self._series.setdefault(key, deque(maxlen=self.points + 1))
            series.append((now, float(value)))

    async def run(self, interval: float = SAMPLE_INTERVAL) -> None:
        """Sample until cancelled; a failing `read` costs its sample and an event, and the
        charts carry on."""
        while True:
            try:
                self.sample()
            except Exception as exc:
                events.emit(events.UNEXPECTED_ERROR, component="console charts", error=repr(exc))
            await asyncio.sleep(interval)

    def charts(self) -> list[Chart]:
        charts: list[Chart] = []
        for key in sorted(self._series):
            series = list(self._series[key])
            if key.endswith(COUNTER_SUFFIX):
                values = rates(series)
                label = key[: -len(COUNTER_SUFFIX)].replace("_", " ") + " per second"
                current = f"{values[-1]:.2f}/s" if values else "-"
            else:
                values = [value for _, value in series[-self.points :]]
                label = key.replace("_", " ")
                current = f"{values[-1]:g}" if values else "-"
            charts.append(Chart(key=key, label=label, current=current, points=sparkline(values)))
        return charts


def rates(series: Sequence[tuple[float, float]]) -> list[float]:
    """A counter's rate per second between successive samples; a counter that went back
    (the MTA restarted) counts from zero."""
    out: list[float] = []
    for (t0, v0), (t1, v1) in itertools.pairwise(series):
        elapsed = t1 - t0
        if elapsed <= 0:
            continue
        out.append((v1 - v0 if v1 >= v0 else v1) / elapsed)
    return out


def sparkline(values: Sequence[float], width: int = WIDTH, height: int = HEIGHT) -> str:
    """The points of a polyline through `values` scaled to the box, the newest on the
    right edge; a flat series is drawn along the bottom."""
    finite = [v if math.isfinite(v) else 0.0 for v in values]
    if not finite:
        return ""
    if len(finite) == 1:
        finite = finite * 2
    low, high = min(finite), max(finite)
    span = high - low
    step = width / (len(finite) - 1)
    margin = 1.0  # the stroke's half width, so that an extreme is not cut off
    usable = height - 2 * margin
    points = []
    for index, value in enumerate(finite):
        y = height - margin - (usable * (value - low) / span if span else 0.0)
        points.append(f"{index * step:.1f},{y:.1f}")
    return " ".join(points)
