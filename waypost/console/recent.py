"""The last events the MTA logged, kept in memory for the console's events page."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass

from waypost.events import EventDefinition, Severity

DEFAULT_CAPACITY = 2000


@dataclass(frozen=True, slots=True)
class RecentEvent:
    """One numbered event as it was logged: its message rendered, its fields as text."""

    id: int
    name: str
    category: str
    severity: Severity
    at: float
    message: str
    fields: dict[str, str]


class RecentEvents(logging.Handler):
    """A logging handler keeping the last `capacity` records that carry a numbered event;
    other records (a library's) are not the operator's events and are left out."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        super().__init__(level=logging.NOTSET)
        self._events: deque[RecentEvent] = deque(maxlen=capacity)

    def emit(self, record: logging.LogRecord) -> None:
        event = getattr(record, "waypost_event", None)
        if not isinstance(event, EventDefinition):
            return
        fields = getattr(record, "waypost_fields", None) or {}
        self._events.append(
            RecentEvent(
                id=event.id,
                name=event.name,
                category=event.category.value,
                severity=event.severity,
                at=record.created,
                message=record.getMessage(),
                fields={str(key): str(value) for key, value in fields.items()},
            )
        )

    def select(
        self,
        *,
        category: str | None = None,
        min_severity: Severity = Severity.DEBUG,
        limit: int = 500,
    ) -> list[RecentEvent]:
        """The newest first, of this category (None: all) and at least this severe."""
        # Under the handler's lock: emit() runs in whichever thread logs, and a deque
        # cannot be copied while another thread appends to it.
        self.acquire()
        try:
            kept = list(self._events)
        finally:
            self.release()
        chosen: list[RecentEvent] = []
        for event in reversed(kept):
            if category is not None and event.category != category:
                continue
            if event.severity < min_severity:
                continue
            chosen.append(event)
            if len(chosen) >= limit:
                break
        return chosen
